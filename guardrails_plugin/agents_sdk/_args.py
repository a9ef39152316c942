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

_PRIMITIVES = {"string", "integer", "number", "boolean", "null"}
_PLAIN_KEYS = {"type", "title", "description", "default"}


class _Compiled:
    """A tool's schema, read once: the keys it names, those it requires (a defaulted key is
    not required: the tool's model fills it in), and either a plain type per key (the common
    case: an object of scalars, checked here) or a ``jsonschema`` validator."""

    __slots__ = ("defaults", "known", "plain", "problem", "required", "schema", "validator")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self.schema = schema
        props = schema.get("properties")
        self.known: Mapping[str, Any] = props if isinstance(props, Mapping) else {}
        self.defaults = {
            k: v["default"]
            for k, v in self.known.items()
            if isinstance(v, Mapping) and "default" in v
        }
        required = schema.get("required")
        self.required = tuple(
            k for k in (required if isinstance(required, list) else ()) if k not in self.defaults
        )
        self.problem: str | None = None
        self.validator: Draft202012Validator | None = None
        self.plain: dict[str, tuple[str, ...]] | None = _plain(schema, self.known)
        if self.plain is None:
            try:
                Draft202012Validator.check_schema(schema)
                self.validator = Draft202012Validator(schema)
            except SchemaError as exc:
                self.problem = f"the tool's parameter schema is invalid: {exc.message}"

    def check(self, args: Mapping[str, Any]) -> str | None:
        """Why ``args`` (defaults filled in) do not fit the schema, or None."""
        if self.plain is None:
            assert self.validator is not None
            errors = sorted(self.validator.iter_errors(args), key=lambda e: list(e.path))
            if not errors:
                return None
            where = ".".join(str(p) for p in errors[0].absolute_path)
            return f"{where}: {errors[0].message}" if where else errors[0].message
        for key in self.required:
            if key not in args:
                return f"{key!r} is a required property"
        for key, value in args.items():
            types = self.plain.get(key)
            if types is not None and not any(_is(value, t) for t in types):
                return f"{key}: {value!r} is not of type {', '.join(repr(t) for t in types)}"
        return None


def _plain(
    schema: Mapping[str, Any], known: Mapping[str, Any]
) -> dict[str, tuple[str, ...]] | None:
    """Scalar types per key when the schema is an object of scalars and nothing else."""
    if schema.get("type") != "object" or set(schema) - {
        "type",
        "properties",
        "required",
        "title",
        "description",
        "additionalProperties",
    }:
        return None
    if schema.get("additionalProperties", False) not in (False, True):
        return None
    plain: dict[str, tuple[str, ...]] = {}
    for key, spec in known.items():
        if not isinstance(spec, Mapping) or set(spec) - _PLAIN_KEYS or "type" not in spec:
            return None
        kind = spec["type"]
        types = tuple(kind) if isinstance(kind, list) else (kind,)
        if not types or not all(isinstance(t, str) and t in _PRIMITIVES for t in types):
            return None
        plain[key] = types
    return plain


def _is(value: Any, kind: str) -> bool:
    """JSON Schema's type test (an integral float is an integer, a bool is not a number)."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "number" or isinstance(value, int) or value.is_integer()


_COMPILED: dict[int, _Compiled] = {}


def _compiled(schema: Mapping[str, Any]) -> _Compiled:
    hit = _COMPILED.get(id(schema))
    if hit is None or hit.schema is not schema:  # (the entry keeps its schema alive)
        if len(_COMPILED) >= 1024:
            _COMPILED.clear()
        hit = _COMPILED[id(schema)] = _Compiled(schema)
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
    compiled = _compiled(schema)
    known = compiled.known
    unknown = [k for k in value if k not in known]
    if unknown:
        shown = ", ".join(repr(_short(k, 60)) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        accepted = ", ".join(sorted(known)) or "none"
        return value, (
            f"argument(s) {shown}{more} are not in the schema of tool {tool!r} "
            f"(it accepts: {_short(accepted)})"
        )
    if compiled.problem is not None:
        return value, compiled.problem
    args = dict(value)
    for name, default in compiled.defaults.items():
        if name not in args:
            args[name] = default
    detail = compiled.check(args)
    if detail is not None:
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
