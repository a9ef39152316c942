"""The arguments a function tool of the OpenAI Agents SDK will receive, read the way it reads
them.

The SDK hands a function tool the model's arguments as a JSON string; a ``@function_tool``
parses it with ``json.loads`` (last key wins) into an object and validates that object with
the tool's parameter model, whose contract is the tool's ``params_json_schema``. The guard
decides on that object, checked against that schema:

- not JSON, or JSON that is not an object: unreadable;
- a key the schema does not name (an extra key, a field's Python name where the schema
  names its alias): unreadable, even where the tool's model would ignore or accept it;
- a value the schema rejects (a string where it wants a number, a missing required key):
  unreadable, even where the tool's model would coerce it.

An unreadable call becomes a ``ToolCall`` with ``problem`` set, which the engine denies as
``malformed-call``: the guard decides only on what it can read exactly as the tool would.
Defaults the schema declares are filled in for keys the model left out (the tool would run
with them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

_VALIDATORS: dict[str, Draft202012Validator | str] = {}


def _validator(schema: Mapping[str, Any]) -> Draft202012Validator | str:
    """The schema's validator (cached by its canonical JSON), or why there is none."""
    try:
        key = json.dumps(schema, sort_keys=True, default=repr)
    except (TypeError, ValueError) as exc:
        return f"the tool's parameter schema is not JSON: {exc}"
    hit = _VALIDATORS.get(key)
    if hit is None:
        try:
            Draft202012Validator.check_schema(schema)
            hit = Draft202012Validator(schema)
        except SchemaError as exc:
            hit = f"the tool's parameter schema is invalid: {exc.message}"
        if len(_VALIDATORS) >= 512:
            _VALIDATORS.clear()
        _VALIDATORS[key] = hit
    return hit


def parse_json(raw: Any) -> tuple[Any, str | None]:
    """The model's argument string parsed as the tool parses it (``json.loads``; an empty
    string is ``{}``), or the problem."""
    if not isinstance(raw, str):
        return raw, f"the arguments are a {type(raw).__name__}, not a JSON string"
    if not raw:
        return {}, None
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return raw, f"the arguments are not valid JSON: {exc}"


def received(schema: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """``value`` (the parsed arguments) as the tool receives it, checked against ``schema``
    (the tool's ``params_json_schema``): the arguments with declared defaults filled in, and
    ``None``; or what was sent and the problem."""
    if not isinstance(value, dict):
        return value, f"the arguments are a JSON {_kind(value)}, not an object"
    props = schema.get("properties")
    known = props if isinstance(props, Mapping) else {}
    extra = sorted(k for k in value if k not in known)
    if extra:
        names = ", ".join(repr(k) for k in extra)
        return value, f"the tool's schema has no argument {names} (known: {sorted(known)})"
    check = _validator(schema)
    if isinstance(check, str):
        return value, check
    error = next(iter(sorted(check.iter_errors(value), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(the arguments)"
        return value, f"argument {where} does not fit the tool's schema: {error.message}"
    args = dict(value)
    for name, spec in known.items():
        if name not in args and isinstance(spec, Mapping) and "default" in spec:
            args[name] = spec["default"]
    return args, None


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__
