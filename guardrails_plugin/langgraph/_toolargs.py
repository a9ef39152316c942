"""What a LangChain tool will really receive: its arguments as the tool's own schema parses them.

The guard must decide on the arguments the tool body gets, not on what the model wrote:
pydantic aliases (``file_path`` for the field ``path``), defaults, coercions and a string
input to a one-argument tool all change them. :func:`received` runs the tool's own parsing
(``BaseTool._to_args_and_kwargs``, which validates with the tool's ``args_schema``) on the
model's input and returns the keyword arguments the tool body will be called with, without
the arguments the framework injects (``InjectedToolArg``, ``InjectedState``, ``ToolRuntime``,
``InjectedToolCallId``): the model does not control those (LangGraph's ToolNode replaces
whatever the model sends for them; an injected argument ToolNode does not replace, such as
one a tool class's ``_run`` declares outside its schema, reaches the tool as sent, so a
model sending it is denied).

Fail closed: a key the tool's schema does not know (extra keys, confusable names), input the
schema rejects, a string where the guard cannot tell which
parameter receives it, or a tool whose schema the guard cannot see: each gives a reason
instead of arguments, and the adapter denies the call with it.

The per-tool reading of the schema (known keys, injected names, a validating copy of the
tool when some arguments are injected) is cached by tool instance; parsing itself costs one
pydantic validation per call, as it does in the tool.

One shortcut, read from the schema's own compiled validator (its pydantic core schema): when
every field is a plain ``str``, ``int``, ``float`` or ``bool`` (or that or ``None``), with
no alias, constraint, validator, custom init or post-init, and a configuration that changes
no value, validation gives back a value of exactly its field's type unchanged. A call whose
keys are all such field names and whose values all have exactly those types (``type(v) is
int``: not a bool for an int, not an int for a float) is then decided on its values as sent,
defaults filled in as validation would, without running the validator. Anything else (an
alias, an unknown or injected key, another type, a missing required field) takes the full
validation.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, Tool
from pydantic import AliasChoices, AliasPath, BaseModel, create_model
from pydantic.v1 import BaseModel as BaseModelV1

__all__ = ["NO_SCHEMA", "received"]

NO_SCHEMA = (
    "the guard cannot see the tool's argument schema, so it cannot tell what the tool would receive"
)
"""The reason given where an adapter cannot see the tool (fail closed)."""

_MAX_SHOWN = 200


@dataclass(frozen=True, slots=True)
class _Schema:
    """One tool's schema, read once."""

    known: frozenset[str]
    """Keys the model may send: field names and their aliases. Injected arguments among
    them only where LangGraph's ToolNode strips what the model sent for them and injects
    its own values (``_replaced``; LangChain's callbacks never show them): those are
    accepted and left out. An injected argument nothing replaces is not a key the model
    may send."""
    injected: frozenset[str]
    """Arguments the framework supplies: dropped from what the guard sees."""
    parser: BaseTool | None
    """The tool (or a copy validating without the injected fields) whose own parsing runs."""
    first: str | None
    """The parameter a string input reaches, if the guard can tell."""
    problem: str | None = None
    model: type[BaseModel] | None = None
    """Set when the tool parses objects with LangChain's own ``_parse_input`` over a
    pydantic v2 schema: :func:`received` then does what it does without its per-call
    introspection (validate, then keep the keys sent, set through an alias, or defaulted)."""
    fields: tuple[str, ...] = ()
    defaulted: frozenset[str] = frozenset()
    exact: Mapping[str, tuple[type, ...]] | None = None
    """Per field, the value types validation gives back unchanged (the shortcut in the
    module docstring); ``None`` where the schema allows no shortcut."""
    defaults: Mapping[str, Any] | None = None
    """The default of each field that has one (immutable scalars only, for the shortcut)."""


_CACHE: dict[int, tuple[BaseTool, Any, _Schema]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 4096


def received(
    tool: BaseTool | None, raw: Any, *, tool_call_id: str | None = None
) -> tuple[dict[str, Any] | None, str | None]:
    """The keyword arguments ``tool`` will be called with for the model's input ``raw`` (a
    mapping or a string), injected arguments left out; or ``None`` and why the guard cannot
    tell (deny). ``tool_call_id`` is passed to the tool's parsing as LangChain passes it.
    """
    if tool is None:
        return None, NO_SCHEMA
    schema = _schema(tool)
    if schema.exact is not None and type(raw) is dict:
        exact = _exact(schema, schema.exact, raw)
        if exact is not None:
            return exact, None
    return _validated(tool, schema, raw, tool_call_id)


def _validated(
    tool: BaseTool, schema: _Schema, raw: Any, tool_call_id: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """:func:`received` by the tool's schema's own validation (no shortcut)."""
    if schema.problem is not None or schema.parser is None:
        return None, schema.problem or NO_SCHEMA
    model = schema.model
    if (
        model is not None
        and type(raw) is dict
        and schema.known.issuperset(raw)
        and all(type(k) is str for k in raw)
    ):
        # the common case in one pass: an object of known (string) keys, a pydantic schema
        return _parse_fast(schema, model, raw)  # (validation does not write into raw)
    tool_input: str | dict[str, Any]
    if isinstance(raw, str):
        tool_input = raw
    elif isinstance(raw, dict | Mapping) and all(type(k) is str or isinstance(k, str) for k in raw):
        unknown = [k for k in raw if k not in schema.known]
        if unknown:
            return None, _unknown(tool, unknown, schema)
        tool_input = dict(raw)  # the tool's parsing writes into its input
    else:
        return None, (
            f"expected an object of named arguments, found {type(raw).__name__} {_short(repr(raw))}"
        )
    if schema.model is not None and isinstance(tool_input, dict):
        return _parse_fast(schema, schema.model, tool_input)
    try:
        positional, keywords = schema.parser._to_args_and_kwargs(tool_input, tool_call_id)
    except Exception as exc:  # the tool would not run with this input either
        return None, f"the tool's schema rejects these arguments: {_short(_first_line(exc))}"
    if positional:
        if len(positional) != 1 or keywords or schema.first is None:
            return None, (
                "a string input to a tool that does not take exactly one argument: the guard "
                "cannot tell what each parameter would receive"
            )
        return {schema.first: _plain(positional[0])}, None
    return {k: _plain(v) for k, v in keywords.items() if k not in schema.injected}, None


def _parse_fast(
    schema: _Schema, model: type[BaseModel], tool_input: dict[str, Any]
) -> tuple[dict[str, Any] | None, str | None]:
    """``BaseTool._to_args_and_kwargs`` for an object input and a pydantic v2 schema, the
    per-tool work done once (``_schema``)."""
    if not schema.fields:  # LangChain passes nothing to a tool without arguments
        return {}, None
    try:
        result = model.model_validate(tool_input)
    except Exception as exc:
        return None, f"the tool's schema rejects these arguments: {_short(_first_line(exc))}"
    provided = result.model_fields_set
    out: dict[str, Any] = {}
    for k in schema.fields:
        if k in tool_input or k in provided or k in schema.defaulted:
            out[k] = _plain(getattr(result, k))
    return out, None


def _exact(
    schema: _Schema, types: Mapping[str, tuple[type, ...]], raw: dict[Any, Any]
) -> dict[str, Any] | None:
    """What validation would give for ``raw`` when every key is a field's name and every
    value has exactly a type that field gives back unchanged: the values as sent, in field
    order, defaults filled in; else ``None`` (validate)."""
    for k, v in raw.items():
        allowed = types.get(k) if type(k) is str else None
        if allowed is None or type(v) not in allowed:
            return None
    out: dict[str, Any] = {}
    defaults = schema.defaults or {}
    for k in schema.fields:
        if k in raw:
            out[k] = raw[k]
        elif k in defaults:
            out[k] = defaults[k]
        else:  # a required field is missing: validation says what is wrong
            return None
    return out


def _schema(tool: BaseTool) -> _Schema:
    key = id(tool)
    args_schema = tool.args_schema
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is tool and hit[1] is args_schema:
        return hit[2]
    try:
        schema = _read(tool, args_schema)
    except Exception as exc:
        schema = _Schema(
            frozenset(),
            frozenset(),
            None,
            None,
            problem=f"cannot read the tool's argument schema ({type(exc).__name__}: "
            f"{_short(str(exc))})",
        )
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = (tool, args_schema, schema)
    return schema


def _replaced(tool: BaseTool) -> frozenset[str]:
    """The injected arguments LangGraph's ToolNode replaces whatever the model sent for them
    (``_get_all_injected_args``, which reads ``func`` and the input schema): only those may
    be sent and left out. Another injected argument (one a tool class's ``_run`` declares
    outside its schema) reaches the tool as sent: a key the guard must not accept. Nothing,
    if the guard cannot tell (LangGraph changed)."""
    try:
        from langgraph.prebuilt.tool_node import _get_all_injected_args

        found = _get_all_injected_args(tool)
        keys = set(found.all_injected_keys) | set(found.state)
        keys.update(k for k in (found.store, found.runtime) if k)
    except Exception:
        return frozenset()
    return frozenset(keys)


def _read(tool: BaseTool, args_schema: Any) -> _Schema:
    signature_injected = frozenset(tool._injected_args_keys)
    replaced = _replaced(tool)
    names = list(tool.args)  # LangChain's own view of what the model may send
    first = _string_target(tool, names, signature_injected)
    if args_schema is None or isinstance(args_schema, dict):
        known = frozenset(names) | (signature_injected & replaced)
        return _Schema(known, signature_injected, tool, first)
    if isinstance(args_schema, type) and issubclass(args_schema, BaseModel):
        offered = tool.tool_call_schema
        if isinstance(offered, type) and issubclass(offered, BaseModel):
            in_schema = frozenset(args_schema.model_fields) - frozenset(offered.model_fields)
        else:
            in_schema = frozenset()
        injected = in_schema | signature_injected
        accepted: set[str] = set()
        for name, info in args_schema.model_fields.items():
            accepted.add(name)
            if isinstance(info.alias, str):
                accepted.add(info.alias)
            accepted.update(_alias_keys(info.validation_alias))
        parser: BaseTool = tool
        validator: type[BaseModel] = args_schema
        if in_schema:
            # Validate with the tool's own schema (aliases, validators, config) but without
            # the injected fields, which the framework fills in only when the tool runs.
            loose = create_model(  # type: ignore[call-overload]
                f"{args_schema.__name__}WithoutInjected",
                __base__=args_schema,
                **dict.fromkeys(in_schema, (Any, None)),
            )
            parser = tool.model_copy(update={"args_schema": loose})
            validator = loose
        standard = (
            type(tool)._parse_input is BaseTool._parse_input
            and type(tool)._to_args_and_kwargs is BaseTool._to_args_and_kwargs
        )
        names_in_order = tuple(k for k in validator.model_fields if k not in injected)
        defaulted = frozenset(
            k
            for k in names_in_order
            if k not in ("args", "kwargs") and not validator.model_fields[k].is_required()
        )
        exact = _exact_types(validator, names_in_order, defaulted) if standard else None
        return _Schema(
            (frozenset(accepted) - injected) | (injected & replaced),
            injected,
            parser,
            first,
            model=validator if standard else None,
            fields=names_in_order,
            defaulted=defaulted,
            exact=None if exact is None else exact[0],
            defaults=None if exact is None else exact[1],
        )
    if isinstance(args_schema, type) and issubclass(args_schema, BaseModelV1):
        v1_schema: Any = args_schema
        fields: dict[str, Any] = dict(v1_schema.__fields__)
        offered_v1: Any = tool.tool_call_schema
        offered_fields = getattr(offered_v1, "__fields__", None)
        offered_names = set(fields) if offered_fields is None else set(offered_fields)
        if set(fields) - offered_names:
            return _Schema(
                frozenset(),
                frozenset(),
                None,
                None,
                problem="the tool's pydantic v1 schema has injected arguments, which the guard "
                "cannot validate before they are injected",
            )
        v1_names = set(fields) | {f.alias for f in fields.values()}
        known_v1 = frozenset(v1_names) | (signature_injected & replaced)
        return _Schema(known_v1, signature_injected, tool, first)
    return _Schema(
        frozenset(),
        frozenset(),
        None,
        None,
        problem=f"cannot read the tool's argument schema ({type(args_schema).__name__})",
    )


_EXACT_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
# Configuration that never changes a value of exactly its field's type (strictness, alias
# and error options, serialization); anything else (``str_strip_whitespace``,
# ``str_max_length``, ``validate_default``, ``allow_inf_nan``, ...) turns the shortcut off.
_NEUTRAL_CONFIG = frozenset(
    {
        "title",
        "strict",
        "extra_fields_behavior",
        "validate_by_alias",
        "validate_by_name",
        "loc_by_alias",
        "from_attributes",
        "revalidate_instances",
        "hide_input_in_errors",
        "validation_error_cause",
        "coerce_numbers_to_str",
        "cache_strings",
        "serialize_by_alias",
        "ser_json_timedelta",
        "ser_json_temporal",
        "ser_json_bytes",
        "ser_json_inf_nan",
        "regex_engine",
    }
)
_IMMUTABLE = (str, int, float, bool, type(None))


def _exact_types(
    model: type[BaseModel], fields: tuple[str, ...], defaulted: frozenset[str]
) -> tuple[dict[str, tuple[type, ...]], dict[str, Any]] | None:
    """Per field, the types that ``model``'s validation gives back unchanged, and the
    defaults it fills in; ``None`` unless the whole schema allows the shortcut (module
    docstring). Read from the compiled core schema, which is what validation runs."""
    if model.model_validate.__func__ is not BaseModel.model_validate.__func__:  # type: ignore[attr-defined]
        return None
    core: Any = model.__pydantic_core_schema__
    if not isinstance(core, dict) or core.get("type") != "model":
        return None  # (definitions, a custom core schema, ...)
    if core.get("custom_init") or core.get("root_model") or core.get("post_init"):
        return None
    if set(core) - {
        "type",
        "cls",
        "config",
        "custom_init",
        "root_model",
        "schema",
        "metadata",
        "ref",
    }:
        return None
    config = core.get("config") or {}
    if set(config) - _NEUTRAL_CONFIG:
        return None
    inner = core.get("schema")
    if not isinstance(inner, dict) or inner.get("type") != "model-fields":
        return None
    if set(inner) - {"type", "fields", "model_name", "computed_fields"}:
        return None
    all_fields = inner.get("fields")
    if not isinstance(all_fields, dict) or set(all_fields) != set(fields):
        return None  # (injected fields: the full path leaves them out)
    types: dict[str, tuple[type, ...]] = {}
    defaults: dict[str, Any] = {}
    for name in fields:
        field = all_fields[name]
        if not isinstance(field, dict) or field.get("type") != "model-field":
            return None
        if set(field) - {"type", "schema", "metadata", "serialization_alias"}:
            return None
        schema = field.get("schema")
        if isinstance(schema, dict) and schema.get("type") == "default":
            if set(schema) - {"type", "schema", "default", "metadata"} or "default" not in schema:
                return None
            default = schema["default"]
            if type(default) not in _IMMUTABLE or name not in defaulted:
                return None
            defaults[name] = default
            schema = schema.get("schema")
        elif name in defaulted:
            return None
        nullable = False
        if isinstance(schema, dict) and schema.get("type") == "nullable":
            if set(schema) - {"type", "schema", "metadata"}:
                return None
            nullable = True
            schema = schema.get("schema")
        if not isinstance(schema, dict) or set(schema) - {"type", "metadata"}:
            return None  # (constraints, strictness per field, other types)
        kind = _EXACT_TYPES.get(schema.get("type"))  # type: ignore[arg-type]
        if kind is None:
            return None
        types[name] = (kind, type(None)) if nullable else (kind,)
    return types, defaults


def _alias_keys(alias: Any) -> set[str]:
    if isinstance(alias, str):
        return {alias}
    if isinstance(alias, AliasPath):
        head = alias.path[0] if alias.path else None
        return {head} if isinstance(head, str) else set()
    if isinstance(alias, AliasChoices):
        found: set[str] = set()
        for choice in alias.choices:
            found |= _alias_keys(choice)
        return found
    return set()


_NOT_PARAMETERS = frozenset({"run_manager", "callbacks", "config"})


def _string_target(tool: BaseTool, names: list[str], injected: frozenset[str]) -> str | None:
    """The argument a string input becomes, for a one-argument tool. A string input is
    validated as the schema's first field but passed positionally, and the function's other
    parameters keep their Python defaults (not the schema's): the guard only decides
    strings for tools with exactly one parameter, the one the schema names."""
    if len(names) != 1:
        return None
    if isinstance(tool, StructuredTool):
        fns = [f for f in (tool.func, tool.coroutine) if f is not None]
        same_name = True
    elif isinstance(tool, Tool):
        fns = [f for f in (tool.func, tool.coroutine) if f is not None]
        same_name = False  # a Tool passes its one input positionally, whatever its name
    else:
        fns = [tool._run]
        same_name = True
    for fn in fns:
        params = _parameters(fn, injected)
        if params is None or len(params) != 1 or (same_name and params[0] != names[0]):
            return None
    return names[0]


def _parameters(fn: Any, injected: frozenset[str]) -> list[str] | None:
    """The parameters of ``fn`` a caller fills in (not the framework's), or ``None`` if the
    guard cannot read them (``*args``, ``**kwargs``, no signature)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    found = []
    for p in params:
        if p.name in injected or p.name in _NOT_PARAMETERS:
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return None
        found.append(p.name)
    return found


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    """Nested models as the plain dicts and lists a policy reads; other values as they are
    (a ``Path`` stays a ``Path``: path scopes read it)."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, BaseModel):
        return {k: _plain(v) for k, v in value.model_dump().items()}
    if isinstance(value, BaseModelV1):
        return {k: _plain(v) for k, v in value.dict().items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def _unknown(tool: BaseTool, unknown: list[str], schema: _Schema) -> str:
    shown = ", ".join(repr(_short(k, 60)) for k in unknown[:5])
    more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
    accepted = ", ".join(sorted(schema.known)) or "none"
    return (
        f"argument(s) {shown}{more} are not in the schema of tool {tool.name!r} "
        f"(it accepts: {_short(accepted)})"
    )


def _first_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).strip().splitlines())
    return f"{type(exc).__name__}: {text}"


def _short(text: str, limit: int = _MAX_SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
