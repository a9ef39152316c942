"""The fast path that reads policy files gives exactly what YAML's safe loader gives, and is
as strict: generated documents (block and flow style, numbers, booleans, nulls, tags, merge
keys, anchors, keys repeated on one line or on different lines) read by ``parse_yaml`` are
compared with libyaml's stock safe loader plus an independent duplicate-key check."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import PolicyFileError
from guardrails_plugin.policy._files import parse_yaml

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

KEYS = ["a", "b", "tool", "1", "1.0", "true", "yes", "null", "~", "'a'", '"b"', "!!str 1", "<<"]
SCALARS = [
    "a",
    "tool_1",
    "danger_*",
    "'*_admin'",
    "1",
    "-2",
    "0x1f",
    "1.5",
    "1e3",
    ".inf",
    "true",
    "False",
    "null",
    "~",
    "''",
    "'x y'",
    '"q\\n"',
    "2001-12-14",
    "!!str 7",
    "!!int '3'",
    "!!binary aGk=",
    "x&y",
    "&v tool",
    "*v",
]

scalars = st.sampled_from(SCALARS)
keys = st.sampled_from(KEYS)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: ("seq", items)),
        st.lists(st.tuples(keys, inner), max_size=4).map(lambda pairs: ("map", pairs)),
    ),
    max_leaves=12,
)


def flow(tree: Any) -> str:
    if isinstance(tree, str):
        return tree
    kind, items = tree
    if kind == "seq":
        return "[" + ", ".join(flow(i) for i in items) + "]"
    return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in items) + "}"


def block(tree: Any, indent: int, use_block: st.DataObject) -> str:
    """``tree`` in block style where ``use_block`` says so, else in flow style."""
    pad = " " * indent
    if isinstance(tree, str) or not tree[1] or not use_block.draw(st.booleans()):
        return pad + flow(tree)
    kind, items = tree
    if kind == "seq":
        return "\n".join(f"{pad}- {flow(i)}" for i in items)
    lines = []
    for key, value in items:
        if isinstance(value, str) or not value[1]:
            lines.append(f"{pad}{key}: {flow(value)}")
        else:
            lines.append(f"{pad}{key}:\n{block(value, indent + 2, use_block)}")
    return "\n".join(lines)


def duplicate_keys(text: str) -> bool:
    """Whether a mapping of the document holds two keys that construct equal (merge keys
    aside): walks the composed nodes and builds each key with the stock constructor."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        stack = [root] if root is not None else []
        seen_nodes: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen_nodes:
                continue
            seen_nodes.add(id(node))
            if isinstance(node, yaml.MappingNode):
                found: list[Any] = []
                for key_node, value_node in node.value:
                    stack.append(value_node)
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = loader.construct_object(key_node, deep=True)
                    if key in found:
                        return True
                    found.append(key)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return False
    finally:
        loader.dispose()


@settings(max_examples=400, deadline=None)
@given(tree=trees, use_block=st.data())
def test_parse_yaml_is_the_safe_loader_and_refuses_every_duplicate(
    tree: Any, use_block: st.DataObject
) -> None:
    text = block(tree, 0, use_block) + "\n"
    try:
        expected: Any = yaml.load(text, Loader=_Loader)  # a safe loader
        stock_error = None
    except yaml.YAMLError as exc:
        stock_error = exc
    if stock_error is not None:
        with pytest.raises(PolicyFileError):
            parse_yaml(text)
    elif duplicate_keys(text):
        with pytest.raises(PolicyFileError, match="given twice in one mapping"):
            parse_yaml(text)
    else:
        got = parse_yaml(text)
        assert repr(got) == repr(expected)  # same values, same key order, same types


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("{a: 1, a: 2}", 1),
        ("rules: [{allow: x, args: {}, args: {}}]", 1),
        ("a: 1\nb: {c: 1, 'c': 2}\n", 2),
        ("a: 1\nb: 2\na: 3\n", 1),
        ("1: x\n1.0: y\n", 1),
        ("base: &b {a: 1}\nrule: {<<: [*b, {c: 1, c: 2}]}\n", 2),
        ("<<: {a: 1, a: 2}\n", 1),
    ],
)
def test_a_repeated_key_is_refused_on_the_same_line_too(text: str, line: int) -> None:
    with pytest.raises(PolicyFileError, match=rf"given twice.*first on line {line}\)"):
        parse_yaml(text)
    with pytest.raises(PolicyFileError, match=rf"given twice.*first on line {line}\)"):
        parse_yaml(text + "# &anchor-free, but the slow path\n")


texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    rules=st.lists(
        st.fixed_dictionaries(
            {"id": texts, "deny": st.lists(texts.filter(bool), min_size=1, max_size=3)},
            optional={"reason": texts, "agents": st.lists(texts.filter(bool), max_size=2)},
        ),
        max_size=5,
    ),
    name=texts,
)
def test_lint_prints_what_reads_back_as_the_same_policy(
    rules: list[dict[str, Any]], name: str
) -> None:
    """The printed policy (libyaml's emitter) reads back to the data it printed, whatever
    the text in names, ids and reasons (control characters, quotes, non-ASCII, long lines)."""
    from guardrails_plugin.cli import _dump

    data = {"name": name, "rules": rules}
    assert parse_yaml(_dump(data)) == data
