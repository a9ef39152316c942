"""Tool-aware checks: a policy read against the tools an agent really has.

A policy names tools and their arguments by string, so a typo passes every check that does
not know the app: a rule for ``http_gte`` leaves the real ``http_get`` matching no rule
(hidden from the model by default deny), a scope on ``pth`` never sees the ``path`` the
tool takes. :func:`check_tools` compares the policy with the bound tools' names and argument
schemas (JSON Schema properties, as LangChain's ``BaseTool.args`` gives them) and reports:

- ``unknown-tool``: a rule names a tool (by its exact name) that is not bound, with a
  did-you-mean from the bound names (glob patterns are left alone: ``deny("delete_*")``
  with no such tool is a safety belt, not a typo);
- ``unmatched-tool``: a bound tool no rule speaks about, so default deny hides it (a tool a
  ``deny`` names is denied on purpose and not reported);
- ``unknown-argument``: a rule scopes an argument the tool's schema does not have (the
  scope would never see a value: an ``allow`` then never matches, a ``deny`` never fires);
- ``wrong-kind``: a scope whose kind cannot read the argument's type (``Paths`` on an
  integer: an ``allow`` never allows, an ``ask`` or ``deny`` matches every call).

The check reads tools by duck typing (``name`` and ``args``), so the core imports no
framework; adapters (``GuardMiddleware``, ``GuardedToolNode``) and ``guardrails-plugin lint
--tools`` call it at build time and warn (:class:`PolicyToolWarning`) or, strict, raise.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import PolicyError
from ..scopes import Not, OptionalScope, Scope
from ._patterns import is_glob
from ._rules import Rule, RuleEffect

PSEUDO_TOOLS = frozenset({"handoff"})
"""Names the guard checks that are not tools an agent binds (``guard_node`` hand-offs)."""

SCOPE_TYPES: dict[str, frozenset[str]] = {
    "path": frozenset({"string"}),
    "url": frozenset({"string"}),
    "sql": frozenset({"string"}),
    "shell": frozenset({"string"}),
    "pattern": frozenset({"string"}),
    "email": frozenset({"string", "array"}),
    "number": frozenset({"integer", "number"}),
    "text": frozenset({"string"}),
}
"""The JSON types each scope kind can read (kinds not listed read anything)."""


class PolicyToolWarning(UserWarning):
    """The policy does not fit the tools it guards (see :func:`check_tools`). Raised as
    :class:`PolicyToolError` instead where the adapter was built with ``strict=True``."""


class PolicyToolError(PolicyError):
    """A policy that does not fit its tools, refused by an adapter built with
    ``strict=True``; the message lists every problem found."""


@dataclass(frozen=True, slots=True)
class ToolProblem:
    """One mismatch between a policy and its tools."""

    kind: str
    """``unknown-tool``, ``unmatched-tool``, ``unknown-argument`` or ``wrong-kind``."""
    tool: str
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class ToolShape:
    """What the check needs of a tool: its name and, when known, the JSON types each of
    its arguments takes (``None``: any type, or the guard cannot tell)."""

    name: str
    args: Mapping[str, frozenset[str] | None] | None = None
    """``None`` when the tool's schema cannot be read: its arguments are not checked."""

    @classmethod
    def of(cls, tool: Any) -> ToolShape:
        """Read a tool by duck typing: a ``ToolShape``; an object with ``name`` and
        ``args`` (LangChain's ``BaseTool``: its argument JSON schemas by name); or a mapping
        ``{"name": ..., "args": {...}}``."""
        if isinstance(tool, ToolShape):
            return tool
        if isinstance(tool, Mapping):
            name, args = tool.get("name"), tool.get("args")
        else:
            name = getattr(tool, "name", None)
            try:
                args = getattr(tool, "args", None)
            except Exception:  # a schema the tool itself cannot render
                args = None
        if not isinstance(name, str) or not name:
            raise TypeError(f"expected a tool with a name, found {type(tool).__name__} {tool!r}")
        if not isinstance(args, Mapping):
            return cls(name)
        return cls(name, {str(k): json_types(v) for k, v in args.items()})


def json_types(schema: Any) -> frozenset[str] | None:
    """The JSON types a property schema admits (``null`` left out), or ``None`` when it
    does not say (no ``type``, a ``$ref``, an empty schema)."""
    if not isinstance(schema, Mapping):
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        found = {kind}
    elif isinstance(kind, list):
        found = {k for k in kind if isinstance(k, str)}
    else:
        found = set()
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list):
                for branch in branches:
                    sub = json_types(branch)
                    if sub is None:
                        return None
                    found |= sub
        if not found:
            return None
    found.discard("null")
    return frozenset(found) or None


def check_tools(
    rules: Sequence[Rule], tools: Iterable[Any], *, agent: str | None = None
) -> list[ToolProblem]:
    """Every mismatch between ``rules`` and ``tools`` (read with :meth:`ToolShape.of`), in
    policy order then tool order. With ``agent``, rules that do not apply to that agent
    are not held against its tools (a policy shared by several agents)."""
    shapes = {s.name: s for s in map(ToolShape.of, tools)}
    names = sorted(shapes)
    mine = [r for r in rules if agent is None or r._agents.matches(agent)]
    problems: list[ToolProblem] = []
    for rule in mine:
        for pattern in rule.tools:
            if pattern in shapes or is_glob(pattern) or pattern in PSEUDO_TOOLS:
                continue
            problems.append(
                ToolProblem(
                    "unknown-tool",
                    pattern,
                    f"rule {rule.id!r} names tool {pattern!r}, which is not among the bound "
                    f"tools{_did_you_mean(pattern, names)} (bound: {', '.join(names) or 'none'})",
                    rule.id,
                )
            )
        for name in names:
            if rule._tools.matches(name):
                problems.extend(_argument_problems(rule, shapes[name]))
    for name in names:
        if not any(r._tools.matches(name) for r in mine):
            problems.append(
                ToolProblem(
                    "unmatched-tool",
                    name,
                    f"bound tool {name!r} matches no rule: default deny hides it from the "
                    f"model{_did_you_mean(name, _rule_names(mine))}",
                )
            )
    return problems


def _argument_problems(rule: Rule, shape: ToolShape) -> list[ToolProblem]:
    if shape.args is None:
        return []
    problems = []
    known = sorted(shape.args)
    for arg, scope in rule.args.items():
        if arg not in shape.args:
            problems.append(
                ToolProblem(
                    "unknown-argument",
                    shape.name,
                    f"rule {rule.id!r} scopes argument {arg!r}, which tool {shape.name!r} does "
                    f"not take{_did_you_mean(arg, known)} (it takes: {', '.join(known) or 'none'})",
                    rule.id,
                )
            )
            continue
        types = shape.args[arg]
        readable = SCOPE_TYPES.get(_reading(scope).kind)
        if types is None or readable is None or types & readable:
            continue
        what = " or ".join(sorted(types))
        if rule.effect is not RuleEffect.ALLOW:
            effect = f"every call matches the {rule.effect} (a value its scope cannot read does)"
        elif isinstance(scope, OptionalScope):
            effect = "the rule allows only calls that leave it empty"
        else:
            effect = "the rule never allows a call (its scope cannot read the value)"
        problems.append(
            ToolProblem(
                "wrong-kind",
                shape.name,
                f"rule {rule.id!r} puts a {type(scope).__name__} scope (reads "
                f"{' or '.join(sorted(readable))}) on argument {arg!r} of tool {shape.name!r}, "
                f"which takes {what}: {effect}",
                rule.id,
            )
        )
    return problems


def _reading(scope: Scope) -> Scope:
    """The scope that reads the value: ``optional(...)`` and ``not:`` read it with the scope
    they wrap (an absent or empty value aside)."""
    while True:
        if isinstance(scope, OptionalScope):
            scope = scope.scope
        elif isinstance(scope, Not):
            scope = scope.inner
        else:
            return scope


def _rule_names(rules: Sequence[Rule]) -> list[str]:
    return sorted({p for r in rules for p in r.tools if not is_glob(p)})


def _did_you_mean(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def report(
    problems: Sequence[ToolProblem], *, strict: bool, where: str, stacklevel: int = 3
) -> None:
    """Warn about ``problems`` (one :class:`PolicyToolWarning` each), or, ``strict``, raise
    :class:`PolicyToolError` naming them all. ``where`` names the adapter, for the message;
    ``stacklevel`` points the warning at the caller that built it."""
    if not problems:
        return
    if strict:
        listed = "\n".join(f"- {p}" for p in problems)
        raise PolicyToolError(f"{where}: the policy does not fit its tools:\n{listed}")
    for p in problems:
        warnings.warn(f"{where}: {p}", PolicyToolWarning, stacklevel=stacklevel)


__all__ = [
    "PolicyToolError",
    "PolicyToolWarning",
    "ToolProblem",
    "ToolShape",
    "check_tools",
    "json_types",
    "report",
]
