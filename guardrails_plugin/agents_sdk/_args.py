"""The arguments a function tool of the OpenAI Agents SDK will receive, read the way it reads
them.

The SDK hands a function tool the model's arguments as a JSON string; a ``@function_tool``
parses it with ``json.loads`` (last key wins) into an object and validates that object with
the tool's parameter model, whose contract is the tool's ``params_json_schema``. The guard
decides on that object, checked against that schema:

- not JSON, or JSON that is not an object: unreadable;
- a key the schema does not name (an extra key, a field's Python name where the schema
  names its alias): unreadable, even where the tool's model would ignore or accept it;
- a value the schema rejects (a string where it wants a number, a missing required key
  without a default): unreadable, even where the tool's model would coerce it.

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
        return raw, f"the arguments are {type(raw).__name__}, not JSON text"
    if not raw:
        return {}, None
    try:
        return json.loads(raw), None
    except ValueError as exc:
        return raw, f"the arguments are not valid JSON: {_short(str(exc))}"


def received(
    schema: Mapping[str, Any], value: Any, tool: str = "the tool"
) -> tuple[Any, str | None]:
    """``value`` (the parsed arguments) as the tool receives it, checked against ``schema``
    (the tool's ``params_json_schema``): the arguments with declared defaults filled in, and
    ``None``; or what was sent and the problem (worded as the other adapters word it).

    A strict schema lists every property as required, defaulted ones too; the tool's model
    still fills in a missing defaulted argument, so such a key may be left out here too."""
    if not isinstance(value, dict):
        return value, (
            f"expected an object of named arguments, found {_kind(value)} "
            f"{_short(json.dumps(value, default=str))}"
        )
    props = schema.get("properties")
    known = props if isinstance(props, Mapping) else {}
    unknown = [k for k in value if k not in known]
    if unknown:
        shown = ", ".join(repr(_short(k, 60)) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        accepted = ", ".join(sorted(known)) or "none"
        return value, (
            f"argument(s) {shown}{more} are not in the schema of tool {tool!r} "
            f"(it accepts: {_short(accepted)})"
        )
    args = dict(value)
    for name, spec in known.items():
        if name not in args and isinstance(spec, Mapping) and "default" in spec:
            args[name] = spec["default"]
    check = _validator(schema)
    if isinstance(check, str):
        return value, check
    error = next(iter(sorted(check.iter_errors(args), key=lambda e: list(e.path))), None)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        detail = f"{where}: {error.message}" if where else error.message
        return value, f"the tool's schema rejects these arguments: {_short(detail)}"
    return args, None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
