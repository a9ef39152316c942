"""Policy files: the same policy as the Python API, written in YAML.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import yaml

from .._errors import PolicyError, PolicyFileError, ScopeError
from ..scopes import Scope, scope_from_spec
from ._budgets import Budget, Measure
from ._flows import DataFlow
from ._policy import Policy
from ._rules import Condition, Rule, RuleEffect

_TOP_KEYS = {"name", "version", "rules", "budgets", "flows"}
_RULE_KEYS = {"id", "allow", "ask", "deny", "agents", "args", "reason", "when"}
_BUDGET_KEYS = {
    "id",
    "calls",
    "rate",
    "sum",
    "distinct",
    "tokens",
    "tools",
    "agents",
    "per",
    "window",
}
_FLOW_KEYS = {"id", "sources", "sinks", "effect"}


def load_policy_file(path: str) -> Policy:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise PolicyFileError(path, "file", f"cannot read it: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "file"
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyFileError(path, where, f"not valid YAML: {problem}") from exc
    return policy_from_data(data, source=path)


def policy_from_data(data: Any, *, source: str = "<dict>") -> Policy:
    if not isinstance(data, Mapping):
        raise PolicyFileError(
            source, "top level", f"expected a mapping with 'rules', found {_kind(data)}"
        )
    _keys(source, "top level", data, _TOP_KEYS)
    rules = [
        _rule(source, i, r) for i, r in enumerate(_list(source, "rules", data.get("rules", [])))
    ]
    budgets = [
        _budget(source, i, b)
        for i, b in enumerate(_list(source, "budgets", data.get("budgets", [])))
    ]
    flows = [
        _flow(source, i, f) for i, f in enumerate(_list(source, "flows", data.get("flows", [])))
    ]
    try:
        return Policy(
            rules,
            budgets=budgets,
            flows=flows,
            name=str(data.get("name", "policy")),
            version=str(data.get("version", "1")),
        )
    except PolicyError as exc:
        raise PolicyFileError(source, "policy", str(exc)) from exc


def _rule(source: str, i: int, data: Any) -> Rule:
    where = f"rules[{i}]"
    if not isinstance(data, Mapping):
        raise PolicyFileError(source, where, f"expected a mapping, found {_kind(data)}")
    if "id" in data:
        where += f" (id {data['id']!r})"
    _keys(source, where, data, _RULE_KEYS)
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
    scopes = {name: _scope(source, f"{where}: args.{name}", spec) for name, spec in args.items()}
    when = data.get("when")
    condition = None
    if when is not None:
        from ..scopes import Predicate

        try:
            condition = cast("Condition", Predicate(when, description=str(when)).fn)
        except (ScopeError, TypeError, ValueError) as exc:
            raise PolicyFileError(source, f"{where}: when", str(exc)) from exc
    try:
        return Rule(
            effect=RuleEffect(effect),
            tools=data[effect],
            agents=data.get("agents") or ("*",),
            args=scopes,
            when=condition,
            id=str(data.get("id") or ""),
            reason=str(data.get("reason") or ""),
        )
    except (PolicyError, TypeError) as exc:
        raise PolicyFileError(source, where, str(exc)) from exc


def _scope(source: str, where: str, spec: Any) -> Scope:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise PolicyFileError(
            source, where, f"expected one scope like {{path: {{roots: [/data]}}}}, found {spec!r}"
        )
    ((kind, settings),) = spec.items()
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise PolicyFileError(
            source, where, f"settings of scope {kind!r} must be a mapping, found {_kind(settings)}"
        )
    try:
        return scope_from_spec(str(kind), settings)
    except ScopeError as exc:
        raise PolicyFileError(source, where, str(exc)) from exc


def _budget(source: str, i: int, data: Any) -> Budget:
    where = f"budgets[{i}]"
    if not isinstance(data, Mapping):
        raise PolicyFileError(source, where, f"expected a mapping, found {_kind(data)}")
    if "id" in data:
        where += f" (id {data['id']!r})"
    _keys(source, where, data, _BUDGET_KEYS)
    kinds = [k for k in ("calls", "rate", "sum", "distinct", "tokens") if k in data]
    if len(kinds) != 1:
        raise PolicyFileError(
            source, where, "needs exactly one of 'calls', 'rate', 'sum', 'distinct' or 'tokens'"
        )
    kind = kinds[0]
    common: dict[str, Any] = {
        "tools": data.get("tools") or ("*",),
        "agents": data.get("agents") or ("*",),
        "per": data.get("per") or ("run",),
        "id": str(data.get("id") or ""),
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
        allowed = {"sum": {"arg"}, "distinct": {"arg", "items"}, "tokens": {"of", "encoding"}}[kind]
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


def _flow(source: str, i: int, data: Any) -> DataFlow:
    where = f"flows[{i}]"
    if not isinstance(data, Mapping):
        raise PolicyFileError(source, where, f"expected a mapping, found {_kind(data)}")
    _keys(source, where, data, _FLOW_KEYS)
    try:
        return DataFlow(
            sources=data.get("sources") or (),
            sinks=data.get("sinks") or (),
            effect=data.get("effect", "ask"),
            id=str(data.get("id") or ""),
        )
    except (PolicyError, TypeError) as exc:
        raise PolicyFileError(source, where, str(exc)) from exc


def _list(source: str, key: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyFileError(source, key, f"expected a list, found {_kind(value)}")
    return value


def _keys(source: str, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise PolicyFileError(
            source, where, f"unknown key {unknown[0]!r}; expected one of {sorted(allowed)}"
        )


def _kind(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"
