"""The JSON Schema (draft 2020-12) of policy files, and the reference page built from it.

``guardrails-plugin schema`` prints :func:`policy_schema`; editors validate policy files
with it (``# yaml-language-server: $schema=policy.schema.json``). ``docs/policy-reference.md``
is :func:`reference_markdown`, and a test keeps the two equal, so the reference names every
key the schema knows and nothing else.

The schema checks the *shape* of a file: which keys exist, their types, exactly one effect
per rule, exactly one measure per budget, the settings each scope kind takes. What only the
loader can check stays with it: globs and paths that must parse, roles and lists that a
rule names but no layer defines, ``extends`` cycles, ``module:qualname`` that must import.
The scope kinds are those registered when the schema is made (``--import`` a module first
to include its kinds); each kind's settings are read from its class's signature.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..scopes import SCOPE_KINDS

SCHEMA_ID = "https://guardrails-plugin.dev/schemas/policy.json"

_NAME = {"type": "string", "minLength": 1}
_REF = {
    "type": "object",
    "description": "A reference to a named value of `lists:`; stands for that whole value.",
    "properties": {"list": {"type": "string", "minLength": 1}},
    "required": ["list"],
    "additionalProperties": False,
}
_TEXT = {"type": ["string", "number"], "not": {"type": "boolean"}}


def _names(what: str, *, empty: bool = False) -> dict[str, Any]:
    return {
        "description": what,
        "anyOf": [
            _NAME,
            {"type": "array", "items": _NAME, **({} if empty else {"minItems": 1})},
            {"$ref": "#/$defs/list_ref"},
        ],
    }


def _doc(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, **schema}


def policy_schema(*, builtin_only: bool = False) -> dict[str, Any]:
    """The JSON Schema of a policy file (a fresh dict each call): with the scope kinds
    registered so far, or only this package's own (``builtin_only``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "guardrails-plugin policy",
        "description": "A policy file: rules, budgets and data flows, optionally layered.",
        "$ref": "#/$defs/policy",
        "$defs": {
            "policy": _policy(),
            "rule": _rule(),
            "budget": _budget(),
            "flow": _flow(),
            "role": _role(),
            "scope": _scope(builtin_only),
            "arg_scope": _scope(builtin_only, optional=True),
            "list_ref": _REF,
        },
    }


def _policy() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "A policy (one layer of a layered one).",
        "properties": {
            "name": _doc(
                _TEXT, "The policy's name (default `policy`; a parent file: its file name)."
            ),
            "version": _doc(_TEXT, "Its version, named with its digest in audit records."),
            "imports": _doc(
                {
                    "anyOf": [
                        {"type": "string", "pattern": _MODULE},
                        {"type": "array", "items": {"type": "string", "pattern": _MODULE}},
                    ]
                },
                "Modules imported before the rules are built, to register custom scope kinds "
                "and predicates. Importing runs their code: `lint` does it only with `--import`.",
            ),
            "extends": _doc(
                {
                    "anyOf": [
                        {"type": "string", "minLength": 1},
                        {"$ref": "#/$defs/policy"},
                        {
                            "type": "array",
                            "items": {
                                "anyOf": [
                                    {"type": "string", "minLength": 1},
                                    {"$ref": "#/$defs/policy"},
                                ]
                            },
                        },
                    ]
                },
                "The layers above this one: policy files (paths relative to this file) or "
                "inline policies. Ancestors come first, each once; the first is the root.",
            ),
            "lists": _doc(
                {"type": "object", "additionalProperties": True},
                "Named values (lists of addresses, hosts, tools...) that rules refer to as "
                "`{list: name}` in place of a whole value.",
            ),
            "roles": _doc(
                {"type": "object", "additionalProperties": {"$ref": "#/$defs/role"}},
                "Roles by name: the agents holding each, and the roles it inherits from.",
            ),
            "rules": _doc(
                {"type": "array", "items": {"$ref": "#/$defs/rule"}},
                "Allow, ask and deny rules. A matching deny beats everything, ask beats allow.",
            ),
            "budgets": _doc(
                {"type": "array", "items": {"$ref": "#/$defs/budget"}},
                "Limits on calls, amounts, distinct values and tokens, optionally per window.",
            ),
            "flows": _doc(
                {"type": "array", "items": {"$ref": "#/$defs/flow"}},
                "Data flows: once a source's content entered a run, its sinks are gated.",
            ),
            "unscoped_args": _doc(
                {"enum": ["any", "empty"]},
                "What a rule or grant that scopes some arguments says of the others: any value "
                "(`any`, the default), or absent, null or empty (`empty`).",
            ),
        },
        "additionalProperties": False,
    }


_MODULE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
_QUALNAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


def _rule() -> dict[str, Any]:
    tools = "The tools (names or globs) the rule is about."
    return {
        "type": "object",
        "description": "One permission or prohibition.",
        "properties": {
            "id": _doc(_TEXT, "The rule's id, named in decisions (default: made from it)."),
            "allow": _names(f"{tools} Permits them within `args`."),
            "ask": _names(f"{tools} Permits them once a person approves."),
            "deny": _names(f"{tools} Forbids them when every scoped argument is in scope."),
            "agents": _names(
                "The agents (names or globs) it binds; default every agent.", empty=True
            ),
            "roles": _names(
                "Roles it is given to: their agents and those of roles inheriting them.", empty=True
            ),
            "args": _doc(
                {
                    "anyOf": [
                        {
                            "type": "object",
                            "additionalProperties": {
                                "anyOf": [
                                    {"$ref": "#/$defs/arg_scope"},
                                    {"$ref": "#/$defs/list_ref"},
                                ]
                            },
                        },
                        {"type": "null"},
                    ]
                },
                "Argument names mapped to one scope each.",
            ),
            "when": _doc(
                {"type": "string", "pattern": _QUALNAME},
                "`module:qualname` of a function of the call: the rule applies when it returns true.",
            ),
            "reason": _doc(_TEXT, "The text a decision by this rule gives (`{tool}` is replaced)."),
            "widen": _doc(
                {"type": "boolean"},
                "In a lower layer: permit what the layers above do not (lint warns). Not on deny.",
            ),
            "shadow": _doc(
                {"type": "boolean"},
                "Try the rule out: decisions are made without it and marked with what it would "
                "have changed (`would`: deny, ask or allow). A shadow allow never opens a call.",
            ),
        },
        "additionalProperties": False,
        "oneOf": [{"required": [e]} for e in ("allow", "ask", "deny")],
        "if": {"required": ["deny"]},
        "then": {"properties": {"widen": {"const": False}}},
    }


def _limit() -> dict[str, Any]:
    return {"type": "number", "minimum": 0}


def _budget() -> dict[str, Any]:
    measures = ("calls", "rate", "sum", "distinct", "tokens", "cost")
    return {
        "type": "object",
        "description": "A limit per partition (run, thread, agent, tool or everything).",
        "properties": {
            "id": _doc(_TEXT, "The budget's id: named in denials, and its counter's store key."),
            "calls": _doc(_limit(), "At most this many calls."),
            "rate": _doc(_limit(), "At most this many calls in any `window` seconds."),
            "sum": _doc(
                {
                    "type": "object",
                    "properties": {"arg": _NAME, "limit": _limit()},
                    "required": ["arg", "limit"],
                    "additionalProperties": False,
                },
                "The numbers in argument `arg` add up to at most `limit`.",
            ),
            "distinct": _doc(
                {
                    "type": "object",
                    "properties": {
                        "arg": _NAME,
                        "limit": _limit(),
                        "items": {"enum": ["value", "email"]},
                    },
                    "required": ["arg", "limit"],
                    "additionalProperties": False,
                },
                "At most `limit` distinct values of `arg` (`items: email`: addresses in it).",
            ),
            "tokens": _doc(
                {
                    "type": "object",
                    "properties": {
                        "limit": _limit(),
                        "of": {"enum": ["args", "results", "model"]},
                        "encoding": {"type": "string"},
                    },
                    "required": ["limit"],
                    "additionalProperties": False,
                },
                "At most `limit` tokens in the calls' arguments (`of: args`), their results "
                "(`of: results`), or the model's answers as their usage reports them "
                "(`of: model`).",
            ),
            "cost": _doc(
                {
                    "type": "object",
                    "properties": {
                        "limit": _limit(),
                        "prices": {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": {
                                "type": "array",
                                "items": {"type": "number", "minimum": 0},
                                "minItems": 2,
                                "maxItems": 2,
                            },
                        },
                    },
                    "required": ["limit", "prices"],
                    "additionalProperties": False,
                },
                "At most `limit` dollars of model use; `prices` maps a model-name glob to "
                "`[input, output]` dollars per million tokens (a model no glob prices counts "
                "the budget as used up).",
            ),
            "tools": _names("The tools it counts; default every tool.", empty=True),
            "agents": _names("The agents it counts; default every agent.", empty=True),
            "per": _doc(
                {
                    "anyOf": [
                        {"enum": ["run", "thread", "agent", "tool", "global"]},
                        {
                            "type": "array",
                            "items": {"enum": ["run", "thread", "agent", "tool", "global"]},
                        },
                        {"type": "null"},
                    ]
                },
                "The partition(s) each total is kept for; default `run`.",
            ),
            "window": _doc(
                {"anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}]},
                "Seconds: the total is over the last `window` seconds (a rate).",
            ),
        },
        "additionalProperties": False,
        "oneOf": [{"required": [m]} for m in measures],
        "allOf": [
            {"if": {"required": ["rate"]}, "then": {"required": ["window"]}},
            {
                "if": {"required": ["distinct"]},
                "then": {"properties": {"window": {"type": "null"}}},
            },
        ],
    }


def _flow() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Untrusted content must not drive actions on the outside world unchecked.",
        "properties": {
            "id": _doc(_TEXT, "The flow's id, named in decisions."),
            "sources": _names("Tools whose results are untrusted content.", empty=True),
            "sinks": _names("Tools gated once such content entered the run.", empty=True),
            "effect": _doc(
                {"enum": ["ask", "deny"]}, "What happens to a sink call then; default ask."
            ),
            "carries": _doc(
                {"type": "boolean"},
                "Gate a sink call only when one of its arguments carries content fingerprinted "
                "from an untrusted result (not merely once such content entered the run).",
            ),
            "args": _doc(
                {
                    "anyOf": [
                        {
                            "type": "object",
                            "additionalProperties": {
                                "anyOf": [
                                    {"$ref": "#/$defs/arg_scope"},
                                    {"$ref": "#/$defs/list_ref"},
                                ]
                            },
                        },
                        {"type": "null"},
                    ]
                },
                "Argument scopes of the sink calls the flow gates (others pass it).",
            ),
        },
        "additionalProperties": False,
    }


def _role() -> dict[str, Any]:
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "agents": _names("The agents (names or globs) holding the role.", empty=True),
                    "inherits": _names("Roles whose permissions this one inherits.", empty=True),
                },
                "additionalProperties": False,
            },
            {"type": "null"},
        ],
        "description": "A role: `agents` holding it, and the roles it `inherits`.",
    }


def _scope(builtin_only: bool, *, optional: bool = False) -> dict[str, Any]:
    """One scope; with ``optional``, as an argument's: ``optional: true`` may sit beside the
    kind (the argument may then be absent, null or empty)."""
    kinds = []
    for kind in sorted(SCOPE_KINDS):
        cls = SCOPE_KINDS[kind]
        if builtin_only and not cls.__module__.startswith("guardrails_plugin."):
            continue
        kinds.append(
            {
                "type": "object",
                "title": kind,
                "description": _first_line(cls.__doc__),
                "properties": {
                    kind: {"anyOf": [_settings(kind, cls), {"type": "null"}]},
                    **({"optional": {"type": "boolean"}} if optional else {}),
                },
                "required": [kind],
                "additionalProperties": False,
            }
        )
    return {"description": "One scope: `{kind: {settings}}`.", "oneOf": kinds}


def _settings(kind: str, cls: type) -> dict[str, Any]:
    if kind == "not":
        return {"$ref": "#/$defs/scope"}
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, param in inspect.signature(cls.__init__).parameters.items():  # type: ignore[misc]
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        props[name] = _annotation(str(param.annotation))
        if param.default is inspect.Parameter.empty:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _annotation(text: str) -> dict[str, Any]:
    """A loose JSON type for a settings parameter, from its annotation (the loader checks the
    values themselves); a ``{list: name}`` reference is accepted for any of them."""
    if text == "bool":
        return {"type": "boolean"}
    return {}  # any value: strings, lists, numbers; the scope's own validation decides


def _first_line(doc: str | None) -> str:
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "`")


# -- the reference page ----------------------------------------------------------------------

_INTRO = """\
# Policy file reference

<!-- Generated by `guardrails-plugin schema --markdown` from the JSON Schema that
`guardrails-plugin schema` prints; tests/test_policy_schema.py keeps them equal. -->

A policy file is YAML (or JSON) with the keys below. `guardrails-plugin schema` prints the
JSON Schema (draft 2020-12) for editors; `guardrails-plugin lint FILE` checks a file fully
(the schema checks its shape; the loader also checks what refers to what: roles, lists,
`extends` cycles, globs and paths that must parse).

Names (`allow`, `agents`, `tools`, ...) are a string or a list of strings; globs (`*`, `?`,
`[abc]`) match case-sensitively. Any value inside a rule may be written `{list: NAME}`,
which stands for the value `lists: NAME` holds, and prints back as written.

## Precedence

1. A matching `deny` in any layer denies; so does a data-flow gate with `effect: deny`, and
   any rule that cannot be evaluated (fail closed).
2. The root layer (the first of the `extends` chain) must permit the call, and so must every
   other layer that has `allow` or `ask` rules about the tool for the agent: a lower layer
   narrows, never widens. A layer with no such rule leaves the tool to the others.
3. A matching `allow`/`ask` rule with `widen: true` stands in for the layers above its own
   (lint warns about each one); a run-time grant stands in for every layer.
4. Among permitted calls, an `ask` anywhere (a rule or a data-flow gate) beats `allow`.
5. Budgets of every layer count every call they cover; the first exhausted one denies.
6. Rules with `shadow: true` take no part in 1-5: the decision is the policy's without
   them. When the policy with them enforced would decide another effect, the decision is
   marked with it (`would`, `would_rule`; audit `detail.would`, the dashboard's "would
   deny"). So a shadow `deny` over an `allow` leaves the call allowed, marked would deny,
   and a shadow `allow` never opens what the other rules deny (marked would allow).

So adding a layer below the root, without `widen`, never turns a deny into an allow (a
generated test checks it). Putting a new root *above* a policy is different: that policy
becomes a lower layer, and the tools it says nothing about are left to the new root.

Roles: a rule with `roles: [R]` binds the agents of `R` and of every role inheriting `R`.
Each layer sees the roles of its ancestors and its own, so a lower layer cannot give a new
agent the permissions an upper layer granted to a role.

`imports:` runs code: the modules are imported when the policy loads (not by `lint` unless
given `--import`). Treat a policy file with `imports:` like the code it names.
"""


def reference_markdown() -> str:
    """``docs/policy-reference.md``: every key of every part of a policy file, from the schema."""
    schema = policy_schema(builtin_only=True)
    defs = schema["$defs"]
    out = [_INTRO]
    for title, key in (
        ("Top level", "policy"),
        ("Rules (`rules:` items)", "rule"),
        ("Budgets (`budgets:` items)", "budget"),
        ("Data flows (`flows:` items)", "flow"),
    ):
        part = defs[key]
        out.append(f"\n## {title}\n\n{part['description']}\n\n| key | meaning |\n|---|---|\n")
        for name, prop in part["properties"].items():
            out.append(f"| `{name}` | {prop.get('description', '')} |\n")
        if "oneOf" in part:
            choices = ", ".join(f"`{c['required'][0]}`" for c in part["oneOf"])
            out.append(f"\nExactly one of {choices}.\n")
    role = defs["role"]["anyOf"][0]
    out.append(
        f"\n## Roles (`roles:` values)\n\n{defs['role']['description']}\n\n"
        "| key | meaning |\n|---|---|\n"
    )
    for name, prop in role["properties"].items():
        out.append(f"| `{name}` | {prop['description']} |\n")
    out.append(
        "\n## Scopes (`args:` values)\n\nEach argument has one scope, `{kind: {settings}}`. "
        "`not` takes one scope and accepts the values that scope reads and refuses, never one "
        "it cannot read.\n\n| kind | settings (required in bold) | meaning |\n|---|---|---|\n"
    )
    for entry in defs["scope"]["oneOf"]:
        kind = entry["title"]
        settings = entry["properties"][kind]["anyOf"][0]
        if "$ref" in settings:
            names = "one scope"
        else:
            required = set(settings.get("required", ()))
            names = ", ".join(
                f"**`{n}`**" if n in required else f"`{n}`" for n in settings["properties"]
            )
        out.append(f"| `{kind}` | {names or '—'} | {entry['description']} |\n")
    return "".join(out)
