"""Policy files: the same policy as the Python API, written in YAML.

Why this file is long: it is the whole strict reader (YAML without duplicate keys or alias
bombs) and the validator of every part of a file, each error naming where it is; the
sections beside rules, budgets and flows live in ``_sections.py``.

.. code-block:: yaml

    name: support-bot
    version: 3
    rules:
      - id: read-data
        allow: read_file
        agents: [researcher]
        args:
          path: {path: {roots: [/srv/data]}}
      - deny: "delete_*"
      - ask: send_email
        args:
          to: {email: {domains: [example.com]}}
    budgets:
      - calls: 20
        tools: search
        per: run
      - sum: {arg: amount, limit: 1000}
        tools: transfer
      - rate: 5
        window: 60
        tools: send_email
    flows:
      - sources: [fetch_url]
        sinks: [send_email]
        effect: ask

Every error names the file, where in it (``rules[2] (id 'read-data')``) and what is wrong.

The YAML is read strictly: the file must be UTF-8; a key given twice in one mapping is an
error naming both lines (YAML's "last one wins" would let a second ``args: {}`` silently
erase a rule's scopes); aliases may not expand the document past
``ALIAS_RATIO`` times its own size (plus ``ALIAS_ALLOWANCE`` nodes), so an alias bomb is
refused before anything is built from it.

``imports=False`` reads ``when:`` conditions and ``predicate`` scopes without importing the
modules they name (what ``guardrails-plugin lint`` does unless given ``--import``, so linting
an untrusted file runs none of its code): their shape is checked and they print as written,
but they hold no function, and a policy built that way denies every call they guard.

``extends:`` names parent files (relative to the file) or inline policies; a file reached
twice (a diamond) is read once, and files extending each other in a cycle are an error
naming the cycle. ``lists:`` holds named values that rules refer to as ``{list: name}``
(recorded on the rule, so it prints back as written). ``imports:`` names modules imported
before the rules are built (custom scope kinds); with ``imports=False`` a scope of a kind
they would register is kept as written and denies what it guards. ``not:`` wraps a scope.

This module builds the parts of a policy; :class:`Policy` (``_policy.py``) puts them together,
so the two modules import in one direction only.
"""

from __future__ import annotations

import contextlib
import gc
import os
import reprlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import yaml

from .._errors import PolicyError, PolicyFileError, ScopeError, ScopeViolation
from .._events import ToolCall
from ..scopes import SCOPE_KINDS, Not, OptionalScope, Scope, scope_from_spec
from ._budgets import Budget, Measure
from ._flows import DataFlow
from ._roles import Role
from ._rules import Condition, Rule, RuleEffect
from ._sections import has_ref, imports_of, lists_of, resolve, roles_of

ALIAS_RATIO = 10
"""How many times its own node count a document may grow to once its aliases are expanded."""
ALIAS_ALLOWANCE = 10_000
"""Nodes of alias expansion every document may have whatever its size."""

_TOP_KEYS = {
    "name",
    "version",
    "rules",
    "budgets",
    "flows",
    "imports",
    "extends",
    "lists",
    "roles",
    "unscoped_args",
}
_RULE_KEYS = {
    "id",
    "allow",
    "ask",
    "deny",
    "agents",
    "roles",
    "args",
    "reason",
    "when",
    "widen",
    "shadow",
}
_BUDGET_KEYS = {
    "id",
    "calls",
    "rate",
    "sum",
    "distinct",
    "tokens",
    "cost",
    "tools",
    "agents",
    "per",
    "window",
}
_FLOW_KEYS = {"id", "sources", "sinks", "effect", "carries", "args"}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


@dataclass(frozen=True)
class PolicyParts:
    """What a policy file says, validated piece by piece, before the policy is assembled."""

    rules: list[Rule]
    budgets: list[Budget]
    flows: list[DataFlow]
    name: str
    version: str
    roles: tuple[Role, ...] = ()
    lists: Mapping[str, Any] = field(default_factory=dict)
    imports: tuple[str, ...] = ()
    extends: tuple[tuple[str, PolicyParts], ...] = ()
    """The parent layers: where each was read from, and what it says."""
    unscoped_args: Any = "any"


_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """YAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self._check_unique(node)
        return cast("dict[Any, Any]", super().construct_mapping(node, deep=deep))

    def _check_unique(self, node: yaml.MappingNode) -> None:
        """No key twice in ``node``, nor in a mapping merged into it with ``<<`` (merged
        mappings are never constructed on their own, so they are checked here)."""
        first: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                # "<<: *base" then a key of its own is an override, by design
                merged = value_node.value if isinstance(value_node, yaml.SequenceNode) else []
                for part in [value_node, *merged]:
                    if isinstance(part, yaml.MappingNode):
                        self._check_unique(part)
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first.setdefault(key, key_node)
            except TypeError:
                continue  # unhashable: the base class reports it
            if earlier is not key_node:
                _twice(key, earlier, key_node)

    def construct_plain(self, node: yaml.Node) -> Any:
        """What :meth:`construct_document` gives for ``node``, in a document without anchors.

        Plain strings, mappings of plain-string keys and sequences (nearly all of a policy
        file) are built here directly, with the same duplicate-key check; any other node
        (numbers, booleans, null, tags, merge keys, other keys) goes to the safe
        constructor, so the result is the same data."""
        cls = type(node)
        tag = node.tag
        if cls is yaml.ScalarNode:
            if tag == _STR_TAG:
                return node.value
        elif cls is yaml.MappingNode:
            pairs = node.value
            if tag == _MAP_TAG and all(
                type(k) is yaml.ScalarNode and k.tag == _STR_TAG for k, _ in pairs
            ):
                keys: dict[str, yaml.Node] = {}
                for key_node, _ in pairs:  # every key first, as construct_mapping does
                    earlier = keys.setdefault(key_node.value, key_node)
                    if earlier is not key_node:
                        _twice(key_node.value, earlier, key_node)
                build = self.construct_plain
                return {key_node.value: build(value_node) for key_node, value_node in pairs}
        elif cls is yaml.SequenceNode and tag == _SEQ_TAG:
            build = self.construct_plain
            return [build(child) for child in node.value]
        return self.construct_object(node, deep=True)


def _twice(key: Any, earlier: yaml.Node, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"key {key!r} given twice in one mapping (first on line {earlier.start_mark.line + 1})",
        node.start_mark,
    )


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a document is read (or written): YAML nodes
    and the data built from them are hundreds of thousands of new container objects, which otherwise
    trigger collections that walk them all again and again (most of the reading time of a
    large policy). Whatever the reading leaves unreachable is collected once it is back on."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def read_yaml(path: str) -> Any:
    """The data in the YAML file at ``path``, read strictly (see the module's docstring)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise PolicyFileError(path, "file", f"cannot read it: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PolicyFileError(
            path,
            f"line {line}",
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "policy files are UTF-8",
        ) from None
    return parse_yaml(text, source=path)


def parse_yaml(text: str, *, source: str = "<yaml>") -> Any:
    """The data in a YAML document, read strictly (see the module's docstring)."""
    loader = _StrictLoader(text)
    try:
        with collector_paused():
            node = loader.get_single_node()
            if node is None:
                return None
            if "&" not in text:  # no anchor, no alias: nothing can expand, nothing is shared
                return loader.construct_plain(node)
            _check_expansion(source, node)
            return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyFileError(source, where, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise PolicyFileError(source, "file", "not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def _check_expansion(source: str, root: yaml.Node) -> None:
    """Refuse aliases that expand the document far past its own size, and recursive ones.

    Counts, without building anything, the nodes the document has once every alias is
    replaced by what it names (each distinct node's expanded size is computed once)."""
    size: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(size[id(child)] for child in _children(node))
            size[key] = total
            continue
        if key in size:
            continue
        if key in on_path:
            mark = node.start_mark
            raise PolicyFileError(
                source,
                f"line {mark.line + 1}, column {mark.column + 1}",
                "not valid YAML for a policy: an alias refers to a node that contains it",
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)
    limit = ALIAS_RATIO * len(size) + ALIAS_ALLOWANCE
    if size[id(root)] > limit:
        raise PolicyFileError(
            source,
            "file",
            f"not valid YAML for a policy: its aliases expand it to {size[id(root)]:,} nodes "
            f"from {len(size):,} (at most {limit:,})",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def parts_from_file(path: str, *, imports: bool = True) -> PolicyParts:
    """The parts of the policy in the YAML file at ``path`` (and of the files it extends)."""
    with collector_paused():
        return _parts_of_file(path, imports, (), {}, top=True)


def _parts_of_file(
    path: str,
    imports: bool,
    stack: tuple[str, ...],
    cache: dict[str, PolicyParts],
    *,
    top: bool = False,
) -> PolicyParts:
    real = os.path.realpath(path)
    if real in stack:
        loop = [*stack[stack.index(real) :], real]
        raise PolicyFileError(
            path, "extends", "files extend each other in a cycle: " + " -> ".join(loop)
        )
    found = cache.get(real)
    if found is None:
        name = "policy" if top else None  # a parent file is named after itself by default
        found = _parts(read_yaml(path), path, imports, (*stack, real), cache, default_name=name)
        cache[real] = found
    return found


def parts_from_data(data: Any, *, source: str = "<dict>", imports: bool = True) -> PolicyParts:
    """The parts of the policy in plain data (the policy-file shape)."""
    return _parts(data, source, imports, (), {}, default_name="policy")


def _parts(
    data: Any,
    source: str,
    imports: bool,
    stack: tuple[str, ...],
    cache: dict[str, PolicyParts],
    *,
    default_name: str | None,
) -> PolicyParts:
    if not isinstance(data, Mapping):
        raise PolicyFileError(
            source, "top level", f"expected a mapping with 'rules', found {_kind(data)}"
        )
    _keys(source, "top level", data, _TOP_KEYS)
    modules = imports_of(source, data.get("imports"), imports)
    lists = lists_of(source, data.get("lists"))
    unimported = bool(modules) and not imports
    rules = [
        _rule(source, i, r, imports, lists, unimported)
        for i, r in enumerate(_list(source, "rules", data.get("rules", [])))
    ]
    budgets = [
        _budget(source, i, b)
        for i, b in enumerate(_list(source, "budgets", data.get("budgets", [])))
    ]
    flows = [
        _flow(source, i, f, lists)
        for i, f in enumerate(_list(source, "flows", data.get("flows", [])))
    ]
    if default_name is None:  # a file: named after itself unless it says otherwise
        default_name = os.path.basename(source)
    return PolicyParts(
        rules=rules,
        budgets=budgets,
        flows=flows,
        name=_text(source, "name", data.get("name", default_name)),
        version=_text(source, "version", data.get("version", "1")),
        roles=roles_of(source, data.get("roles")),
        lists=lists,
        imports=modules,
        extends=_extends(source, data.get("extends"), imports, stack, cache),
        unscoped_args=_unscoped_args(source, data),
    )


def _extends(
    source: str,
    value: Any,
    imports: bool,
    stack: tuple[str, ...],
    cache: dict[str, PolicyParts],
) -> tuple[tuple[str, PolicyParts], ...]:
    """The parent layers ``extends:`` names: file paths (relative to ``source``'s folder) or
    inline policies (as ``to_dict`` prints them)."""
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)):
        value = [value]
    out: list[tuple[str, PolicyParts]] = []
    base = os.path.dirname(source) if not source.startswith("<") else ""
    for i, entry in enumerate(_list(source, "extends", value)):
        where = f"extends[{i}]"
        if isinstance(entry, str) and entry:
            path = os.path.join(base, entry)
            if not os.path.isfile(path):
                raise PolicyFileError(source, where, f"no policy file at {path!r}")
            out.append((path, _parts_of_file(path, imports, stack, cache)))
        elif isinstance(entry, Mapping):
            inner = f"{source} {where}"
            out.append((inner, _parts(entry, inner, imports, stack, cache, default_name="policy")))
        else:
            raise PolicyFileError(
                source, where, f"expected a file path or a policy mapping, found {_kind(entry)}"
            )
    return tuple(out)


def _rule(
    source: str,
    i: int,
    data: Any,
    imports: bool,
    lists: Mapping[str, Any] | None = None,
    unimported: bool = False,
) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(data, Mapping):
        raise PolicyFileError(source, where, f"expected a mapping, found {_kind(data)}")
    if "id" in data:
        where += f" (id {reprlib.repr(data['id'])})"
    _keys(source, where, data, _RULE_KEYS)
    refs: list[tuple[tuple[str, ...], str]] = []
    if lists is not None and has_ref(data):
        data = resolve(source, where, data, lists, (), refs)
    effects = [e for e in ("allow", "ask", "deny") if e in data]
    if len(effects) != 1:
        raise PolicyFileError(
            source, where, "needs exactly one of 'allow', 'ask' or 'deny' naming the tools"
        )
    effect = effects[0]
    args = data.get("args") or {}
    if not isinstance(args, Mapping):
        raise PolicyFileError(
            source, where, f"'args' must map argument names to scopes, found {_kind(args)}"
        )
    scopes = {
        name: _arg_scope(source, f"{where}: args.{name}", spec, imports, unimported)
        for name, spec in args.items()
    }
    when = data.get("when")
    condition = None
    if when is not None:
        try:
            if imports:
                from ..scopes import Predicate

                condition = cast("Condition", Predicate(when, description=str(when)).fn)
            else:
                condition = _UnimportedCondition(when)
        except (ScopeError, TypeError, ValueError) as exc:
            raise PolicyFileError(source, f"{where}: when", str(exc)) from exc
    rule_id = _text(source, where + ": id", data.get("id") or "")
    reason = _text(source, where + ": reason", data.get("reason") or "")
    widen = data.get("widen", False)
    if not isinstance(widen, bool):
        raise PolicyFileError(
            source, f"{where}: widen", f"expected true or false, found {_kind(widen)}"
        )
    if widen and effect == "deny":
        raise PolicyFileError(source, f"{where}: widen", "a deny rule cannot widen anything")
    shadow = data.get("shadow", False)
    if not isinstance(shadow, bool):
        raise PolicyFileError(
            source, f"{where}: shadow", f"expected true or false, found {_kind(shadow)}"
        )
    try:
        return Rule(
            effect=RuleEffect(effect),
            tools=data[effect],
            agents=data.get("agents") or ("*",),
            args=scopes,
            when=condition,
            id=rule_id,
            reason=reason,
            roles=data.get("roles") or (),
            widen=widen,
            shadow=shadow,
            refs=tuple(refs),
        )
    except (PolicyError, TypeError) as exc:
        raise PolicyFileError(source, where, str(exc)) from exc


def _scope(source: str, where: str, spec: Any, imports: bool, unimported: bool = False) -> Scope:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise PolicyFileError(
            source,
            where,
            f"expected one scope like {{path: {{roots: [/data]}}}}, found {_kind(spec)}",
        )
    ((kind, settings),) = spec.items()
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise PolicyFileError(
            source, where, f"settings of scope {kind!r} must be a mapping, found {_kind(settings)}"
        )
    try:
        if kind == "not":
            return Not(_scope(source, f"{where}.not", settings, imports, unimported))
        if kind == "predicate" and not imports:
            return _UnimportedPredicate(**dict(settings))
        if unimported and kind not in SCOPE_KINDS:
            return _UnimportedScope(str(kind), settings)
        return scope_from_spec(str(kind), settings)
    except ScopeError as exc:
        raise PolicyFileError(source, where, str(exc)) from exc
    except TypeError as exc:
        raise PolicyFileError(source, where, f"bad settings for scope {kind!r}: {exc}") from exc


def _arg_scope(
    source: str, where: str, spec: Any, imports: bool, unimported: bool = False
) -> Scope:
    """An argument's scope: one scope, and ``optional: true`` next to it if it may be absent
    or empty (``scopes/optional.py``)."""
    if not isinstance(spec, Mapping) or "optional" not in spec:
        return _scope(source, where, spec, imports, unimported)
    flag = spec["optional"]
    if flag is not True and flag is not False:
        raise PolicyFileError(
            source, f"{where}: optional", f"expected true or false, found {_kind(flag)}"
        )
    inner = _scope(
        source, where, {k: v for k, v in spec.items() if k != "optional"}, imports, unimported
    )
    return OptionalScope(inner) if flag else inner


def _unscoped_args(source: str, data: Mapping[str, Any]) -> str:
    value = data.get("unscoped_args", "any")
    if value not in ("any", "empty"):
        raise PolicyFileError(
            source, "unscoped_args", f"expected 'any' or 'empty', found {_kind(value)}"
        )
    return cast("str", value)


def _reference(reference: object, what: str) -> tuple[str, str]:
    """``module:qualname`` split, checked for shape only (nothing is imported)."""
    if not isinstance(reference, str):
        raise ScopeError(f"{what} must be 'module:qualname', found {_kind(reference)}")
    module, _, qualname = reference.partition(":")
    names = [*module.split("."), *qualname.split(".")]
    if not module or not qualname or not all(n.isidentifier() for n in names):
        raise ScopeError(f"{what} must be 'module:qualname', found {reference!r:.80}")
    return module, qualname


class _UnimportedCondition:
    """A rule's ``when:`` read without importing it: prints as written, never holds."""

    def __init__(self, reference: object) -> None:
        self.__module__, self.__qualname__ = _reference(reference, "when")

    def __call__(self, call: ToolCall) -> bool:
        raise RuntimeError(
            f"{self.__module__}:{self.__qualname__} was not imported (policy read without imports)"
        )

    def __repr__(self) -> str:
        return f"<not imported {self.__module__}:{self.__qualname__}>"


class _UnimportedPredicate(Scope):
    """A ``predicate`` scope read without importing its function: prints as written, and no
    value is inside it (an unreadable violation, so deny and ask rules fail closed)."""

    def __init__(self, fn: object, description: object = "") -> None:
        _reference(fn, "fn")
        if not isinstance(description, str):
            raise ScopeError(f"description must be a string, found {_kind(description)}")
        self._fn = cast("str", fn)
        self._description = description or self._fn

    def check(self, value: object) -> None:
        raise ScopeViolation(
            f"{self._fn} was not imported (policy read without imports)", unreadable=True
        )

    def spec(self) -> dict[str, Any]:
        return {"fn": self._fn, "description": self._description}

    def within(self, other: Scope) -> bool:
        return False


# Set after the class is made, so it is not registered as the "predicate" kind.
_UnimportedPredicate.kind = "predicate"


class _UnimportedScope(Scope):
    """A scope of a kind the file's ``imports:`` would register, read without importing:
    prints as written, and no value is inside it (unreadable, so every rule fails closed)."""

    def __init__(self, kind: str, settings: Mapping[str, Any]) -> None:
        self._kind = kind
        self._settings = dict(settings)
        # the instance's kind, so it prints as written (the class registers no kind)
        object.__setattr__(self, "kind", kind)

    def check(self, value: object) -> None:
        raise ScopeViolation(
            f"scope kind {self._kind!r} was not imported (policy read without imports)",
            unreadable=True,
        )

    def spec(self) -> dict[str, Any]:
        return dict(self._settings)

    def within(self, other: Scope) -> bool:
        return False


def _budget(source: str, i: int, data: Any) -> Budget:
    where = f"budgets[{i}]"
    if not isinstance(data, Mapping):
        raise PolicyFileError(source, where, f"expected a mapping, found {_kind(data)}")
    if "id" in data:
        where += f" (id {data['id']!r})"
    _keys(source, where, data, _BUDGET_KEYS)
    kinds = [k for k in ("calls", "rate", "sum", "distinct", "tokens", "cost") if k in data]
    if len(kinds) != 1:
        raise PolicyFileError(
            source,
            where,
            "needs exactly one of 'calls', 'rate', 'sum', 'distinct', 'tokens' or 'cost'",
        )
    kind = kinds[0]
    common: dict[str, Any] = {
        "tools": data.get("tools") or ("*",),
        "agents": data.get("agents") or ("*",),
        "per": data.get("per") or ("run",),
        "id": _text(source, where + ": id", data.get("id") or ""),
    }
    if data.get("window") is not None:
        common["window"] = data["window"]
    value = data[kind]
    try:
        if kind in ("calls", "rate"):
            if kind == "rate" and "window" not in common:
                raise PolicyError("a rate needs 'window', in seconds")
            return Budget(limit=value, measure=Measure.CALLS, **common)
        if not isinstance(value, Mapping):
            raise PolicyError(f"'{kind}' must be a mapping with 'limit', found {_kind(value)}")
        extra = {k: v for k, v in value.items() if k != "limit"}
        allowed = {
            "sum": {"arg"},
            "distinct": {"arg", "items"},
            "tokens": {"of", "encoding"},
            "cost": {"prices"},
        }[kind]
        unknown = set(extra) - allowed
        if unknown:
            raise PolicyError(
                f"unknown settings {sorted(unknown)} for '{kind}'; expected {sorted(allowed | {'limit'})}"
            )
        if "limit" not in value:
            raise PolicyError(f"'{kind}' needs 'limit'")
        return Budget(limit=value["limit"], measure=Measure(kind), **extra, **common)
    except (PolicyError, TypeError, ValueError) as exc:
        raise PolicyFileError(source, where, str(exc)) from exc


def _flow(source: str, i: int, data: Any, lists: Mapping[str, Any] | None = None) -> DataFlow:
    where = f"flows[{i}]"
    if not isinstance(data, Mapping):
        raise PolicyFileError(source, where, f"expected a mapping, found {_kind(data)}")
    _keys(source, where, data, _FLOW_KEYS)
    refs: list[tuple[tuple[str, ...], str]] = []
    if lists is not None and has_ref(data):
        data = resolve(source, where, data, lists, (), refs)
    extras = _flow_extras(source, where, data)
    try:
        return DataFlow(
            sources=data.get("sources") or (),
            sinks=data.get("sinks") or (),
            effect=data.get("effect", "ask"),
            id=_text(source, where + ": id", data.get("id") or ""),
            refs=tuple(refs),
            **extras,
        )
    except (PolicyError, TypeError) as exc:
        raise PolicyFileError(source, where, str(exc)) from exc


def _flow_extras(source: str, where: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """A flow's ``carries`` and ``args`` (argument scopes, as in rules), when given."""
    extras: dict[str, Any] = {}
    if "carries" in data:
        extras["carries"] = data["carries"]
    args = data.get("args") or {}
    if not isinstance(args, Mapping):
        raise PolicyFileError(
            source, where, f"'args' must map argument names to scopes, found {_kind(args)}"
        )
    if args:
        extras["args"] = {
            name: _arg_scope(source, f"{where}: args.{name}", spec, True)
            for name, spec in args.items()
        }
    return extras


def _list(source: str, key: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyFileError(source, key, f"expected a list, found {_kind(value)}")
    return value


def _keys(source: str, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    if allowed.issuperset(data):
        return
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise PolicyFileError(
            source, where, f"unknown key {unknown[0]!r}; expected one of {sorted(allowed)}"
        )


def _text(source: str, where: str, value: Any) -> str:
    """A name, version, id or reason: a string, or a number written without quotes."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise PolicyFileError(source, where, f"expected a string, found {_kind(value)}")


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value):.60}"
