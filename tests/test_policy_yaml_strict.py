"""Policy files are read strictly: UTF-8 only, no key twice in a mapping, aliases within
limits, and a lint that imports nothing the file names unless asked."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import Policy, PolicyFileError, ToolCall
from guardrails_plugin.cli import main

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
scopes = st.sampled_from(
    [
        {"path": {"roots": ["/srv/data"]}},
        {"number": {"gt": 0, "le": 100}},
        {"email": {"domains": ["example.com"]}},
        {"one_of": {"values": ["a", "b"]}},
    ]
)
rules = st.fixed_dictionaries(
    {"allow": names},
    optional={
        "agents": st.lists(names, min_size=1, max_size=3),
        "args": st.dictionaries(names, scopes, min_size=1, max_size=3),
        "reason": st.text("abc xyz", max_size=20),
    },
)
policies = st.fixed_dictionaries(
    {"rules": st.lists(rules, min_size=1, max_size=6)},
    optional={"name": names, "version": st.integers(1, 99)},
)


def write(tmp_path: Path, text: str | bytes, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=policies, pick=st.integers(0, 10_000))
def test_a_key_given_twice_anywhere_is_an_error_naming_both_lines(
    tmp_path: Path, data: dict[str, Any], pick: int
) -> None:
    rules = [{"id": f"r{i}", **r} for i, r in enumerate(data["rules"])]
    data = json.loads(json.dumps({**data, "rules": rules}))  # no shared objects, no anchors
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    # The same document loads as YAML's own safe loader reads it ...
    assert Policy.from_yaml(write(tmp_path, text)) == Policy.from_dict(yaml.safe_load(text))
    # ... and repeating any "key: value" line (same indentation, same mapping) is refused.
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if ": " in line or line.rstrip().endswith(":")]
    keyed = [i for i in keyed if not lines[i].rstrip().endswith(":")]  # a scalar value
    i = keyed[pick % len(keyed)]
    line = lines[i]
    bare = line.lstrip(" ")
    indent = len(line) - len(bare)
    if bare.startswith("- "):  # first key of a list item: repeat it without the dash
        bare, indent = bare[2:], indent + 2
    key = bare.partition(":")[0]
    doubled = [*lines[: i + 1], " " * indent + bare, *lines[i + 1 :]]
    path = write(tmp_path, "\n".join(doubled) + "\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_yaml(path)
    message = str(info.value)
    assert f"line {i + 2}" in message
    assert f"first on line {i + 1}" in message
    assert repr(yaml.safe_load(key)) in message


def test_a_second_args_cannot_erase_a_rules_scope(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        "rules:\n"
        "  - allow: read_file\n"
        "    args: {path: {path: {roots: [/srv/data]}}}\n"
        "    args: {}\n"
    )
    assert main(["lint", write(tmp_path, text)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("error: ")
    assert "key 'args' given twice in one mapping (first on line 3)" in captured.err


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    text = (
        "x-base: &base {allow: read_file, reason: base}\nrules:\n  - <<: *base\n    reason: own\n"
    )
    data = yaml.safe_load(text)
    data.pop("x-base")
    with pytest.raises(PolicyFileError, match="unknown key 'x-base'"):
        Policy.from_yaml(write(tmp_path, text))  # not a duplicate: an unknown top-level key
    assert Policy.from_dict(data).rules[0].reason == "own"


def alias_document(width: int, depth: int) -> str:
    lines = ["rules:", "  - allow: t0", f"    reason: &a0 [{', '.join(['x'] * width)}]"]
    for level in range(1, depth + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines += [f"  - allow: t{level}", f"    reason: &a{level} [{refs}]"]
    return "\n".join(lines) + "\n"


def test_a_nine_level_alias_bomb_fails_fast_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, alias_document(9, 9))
    assert main(["lint", path]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: file: not valid YAML for a policy: its aliases expand")
    assert err.count("\n") == 1


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(width=st.integers(1, 12), depth=st.integers(1, 12))
def test_aliases_are_refused_exactly_when_they_expand_past_the_limit(
    tmp_path: Path, width: int, depth: int
) -> None:
    from guardrails_plugin.policy._files import ALIAS_ALLOWANCE, ALIAS_RATIO, parse_yaml

    text = alias_document(width, depth)
    # Nodes as written (an alias is the node it names) and once every alias is expanded:
    # the root, "rules" and its list; per rule a mapping, two keys, a tool; then the reasons.
    distinct = 3 + 4 * (depth + 1) + (1 + width) + depth
    sizes = [1 + width]
    for _ in range(depth):
        sizes.append(1 + width * sizes[-1])
    expanded = 3 + sum(4 + s for s in sizes)
    limit = ALIAS_RATIO * distinct + ALIAS_ALLOWANCE
    if expanded > limit:
        with pytest.raises(PolicyFileError, match="aliases expand it"):
            parse_yaml(text)
    else:
        assert parse_yaml(text) == yaml.safe_load(text)


def test_an_alias_to_its_own_container_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="alias refers to a node that contains it"):
        Policy.from_yaml(write(tmp_path, "rules: &r\n  - *r\n"))


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b"rules:\n  - allow: read\n    reason: caf\xe9\n", 3),
        (b"\xff\xferules: []\n", 1),
        (b"name: x\nrules:\n  - allow: \xc3(\n", 3),
    ],
)
def test_a_file_that_is_not_utf8_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], raw: bytes, line: int
) -> None:
    path = write(tmp_path, raw)
    with pytest.raises(PolicyFileError, match=f"line {line}: not UTF-8 text"):
        Policy.from_yaml(path)
    for verb in (["lint", path], ["check", path, "read"]):
        assert main(verb) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path}: line {line}: not UTF-8 text")
        assert err.count("\n") == 1


@pytest.mark.parametrize("value", ["[a, b]", "{x: 1}"])
@pytest.mark.parametrize("key", ["reason", "id"])
def test_rule_texts_must_be_strings(tmp_path: Path, key: str, value: str) -> None:
    path = write(tmp_path, f"rules:\n  - allow: read\n    {key}: {value}\n")
    with pytest.raises(PolicyFileError, match=f"{key}: expected a string"):
        Policy.from_yaml(path)


MODULE = "guardrails_lint_probe_module"


@pytest.fixture
def probe_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module whose import leaves a mark on disk, on sys.path."""
    mark = tmp_path / "imported"
    (tmp_path / f"{MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(mark)!r}).write_text('yes')\n"
        "def ok(value):\n    return value == 'ok'\n"
        "def always(call):\n    return True\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return mark


PROBE_POLICY = f"""
rules:
  - id: cond
    deny: shell
    when: {MODULE}:always
  - id: pred
    allow: tag
    args:
      value: {{predicate: {{fn: "{MODULE}:ok", description: an ok value}}}}
"""


def test_lint_imports_nothing_unless_asked(
    tmp_path: Path, probe_module: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, PROBE_POLICY)
    assert main(["lint", path]) == 0
    out = capsys.readouterr().out
    assert not probe_module.exists()
    assert MODULE not in sys.modules
    assert f"when: {MODULE}:always" in out
    assert f"fn: {MODULE}:ok" in out
    # What lint printed without importing is what it prints with --import.
    assert main(["lint", "--import", path]) == 0
    assert probe_module.exists()
    assert capsys.readouterr().out == out


def test_a_policy_read_without_imports_denies_what_those_guard(
    tmp_path: Path, probe_module: Path
) -> None:
    policy = Policy.from_yaml(write(tmp_path, PROBE_POLICY), imports=False)
    assert not probe_module.exists()
    assert not policy.evaluate(ToolCall("tag", {"value": "ok"})).allowed
    shell = policy.evaluate(ToolCall("shell", {}))
    assert not shell.allowed
    assert "was not imported" in shell.reason
    imported = Policy.from_yaml(write(tmp_path, PROBE_POLICY))
    assert imported.evaluate(ToolCall("tag", {"value": "ok"})).allowed
    assert imported == policy


@pytest.mark.parametrize("when", ["'os; rm'", "[a, b]", "no_colon", "'mod:'", "'1bad:name'"])
def test_a_malformed_reference_is_an_error_with_or_without_imports(
    tmp_path: Path, when: str
) -> None:
    path = write(tmp_path, f"rules:\n  - deny: shell\n    when: {when}\n")
    for imports in (False, True):
        with pytest.raises(PolicyFileError, match=r"rules\[0\]: when"):
            Policy.from_yaml(path, imports=imports)
