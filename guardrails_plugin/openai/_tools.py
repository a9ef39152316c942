"""The user's tools for a plain ``openai`` loop: what each one is called, the JSON schema the
model sees, and what the tool body will really receive for the arguments a model wrote.

The guard decides on the arguments the tool receives, not on the text the model wrote. So a
tool's arguments are parsed here exactly once, and the same parsed values are decided and
then passed to the tool:

- a plain Python function (:meth:`FunctionTool.from_function`): a pydantic model built from
  its signature (``extra="forbid"``) validates the arguments, coercions and defaults applied,
  as ``pydantic.validate_call`` would;
- a JSON-schema tool (:meth:`FunctionTool.from_schema`), LangChain-free: ``jsonschema``
  validates the arguments against the schema; keys the schema's ``properties`` do not name are
  refused even where the schema would let them through (the guard cannot tell what the body
  does with them).

Fail closed: text that is not one JSON object (malformed JSON, a string, a list, duplicate
keys, ``NaN``), keys the tool does not take, values its schema rejects: each gives a reason
instead of arguments, and the loop denies the call with it (rule ``malformed-call``).
"""

from __future__ import annotations

import copy
import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_type_hints

__all__ = ["FunctionTool", "function_tool", "parse_arguments"]

_MAX_SHOWN = 200


@dataclass(frozen=True, eq=False, kw_only=True)
class FunctionTool:
    """One tool the model may call: ``name``, the JSON schema of its ``parameters``, and the
    ``function`` that runs it (sync or async, called with the parsed arguments as keywords).

    Build one with :func:`function_tool` (from a function's signature) or
    :meth:`from_schema` (a JSON schema you already have)."""

    name: str
    function: Callable[..., Any] = field(repr=False)
    parameters: Mapping[str, Any] = field(repr=False)
    description: str = ""
    _validate: Callable[[dict[str, Any]], dict[str, Any]] = field(repr=False, compare=False)
    _known: frozenset[str] = field(repr=False, compare=False)

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function (``arun`` awaits it)."""
        return inspect.iscoroutinefunction(self.function)

    # -- building -------------------------------------------------------------------------

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> FunctionTool:
        """A tool from a function's signature: its type hints make the schema (pydantic),
        its docstring the description. ``*args``, ``**kwargs`` and positional-only
        parameters are refused: the guard could not tell what each would receive."""
        from pydantic import ConfigDict, ValidationError, create_model

        tool_name = name or function.__name__
        try:
            hints = get_type_hints(function)
        except Exception as exc:
            raise TypeError(f"tool {tool_name!r}: cannot read its type hints: {exc}") from exc
        fields: dict[str, Any] = {}
        for param in inspect.signature(function).parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise TypeError(
                    f"tool {tool_name!r}: parameter {param.name!r} is {param.kind.description}; "
                    "a tool takes named arguments only"
                )
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints.get(param.name, Any), default)
        model = create_model(
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        names = tuple(fields)

        def validate(args: dict[str, Any]) -> dict[str, Any]:
            try:
                parsed = model.model_validate(args)
            except ValidationError as exc:
                raise _Rejected(_first_error(exc)) from None
            return {n: getattr(parsed, n) for n in names}

        schema = model.model_json_schema()
        schema.pop("title", None)
        return cls(
            name=tool_name,
            function=function,
            parameters=schema,
            description=(description or inspect.getdoc(function) or "").strip(),
            _validate=validate,
            _known=frozenset(names),
        )

    @classmethod
    def from_schema(
        cls,
        name: str,
        parameters: Mapping[str, Any],
        function: Callable[..., Any],
        *,
        description: str = "",
    ) -> FunctionTool:
        """A tool from a JSON schema (an object schema with ``properties``), validated with
        ``jsonschema``; ``function`` is called with the arguments as keywords. An argument
        left out is decided and passed with its default: the schema's ``default``, else the
        function's own."""
        import jsonschema

        if not isinstance(parameters, Mapping) or parameters.get("type") != "object":
            raise TypeError(f"tool {name!r}: parameters must be a JSON schema of type 'object'")
        validator_class = jsonschema.validators.validator_for(parameters)
        validator_class.check_schema(parameters)
        validator = validator_class(parameters)
        properties = parameters.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise TypeError(f"tool {name!r}: the schema's properties must be an object")

        # Arguments the model leaves out are decided (and passed) with the value the tool
        # would use: the schema's default, else the function's own. A deny on a default
        # value cannot be dodged by leaving the argument out.
        defaults: dict[str, Any] = {}
        try:
            for pname, param in inspect.signature(function).parameters.items():
                if pname in properties and param.default is not param.empty:
                    defaults[pname] = param.default
        except (TypeError, ValueError):  # a callable without a readable signature
            pass
        for pname, spec in properties.items():
            if isinstance(spec, Mapping) and "default" in spec:
                defaults[str(pname)] = spec["default"]

        def validate(args: dict[str, Any]) -> dict[str, Any]:
            error = jsonschema.exceptions.best_match(validator.iter_errors(args))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path)
                raise _Rejected(f"{where + ': ' if where else ''}{error.message}")
            for pname, value in defaults.items():
                if pname not in args:
                    args[pname] = copy.deepcopy(value)
            return args

        return cls(
            name=name,
            function=function,
            parameters=dict(parameters),
            description=description,
            _validate=validate,
            _known=frozenset(str(k) for k in properties),
        )

    # -- what the model sees --------------------------------------------------------------

    def chat_param(self) -> dict[str, Any]:
        """This tool for ``chat.completions.create(tools=[...])``."""
        function: dict[str, Any] = {"name": self.name, "parameters": dict(self.parameters)}
        if self.description:
            function["description"] = self.description
        return {"type": "function", "function": function}

    def responses_param(self) -> dict[str, Any]:
        """This tool for ``responses.create(tools=[...])``."""
        param: dict[str, Any] = {
            "type": "function",
            "name": self.name,
            "parameters": dict(self.parameters),
            "strict": False,
        }
        if self.description:
            param["description"] = self.description
        return param

    # -- what the tool receives -----------------------------------------------------------

    def receive(self, args: Any) -> tuple[dict[str, Any] | None, str | None]:
        """The keyword arguments the function will be called with for the decoded JSON
        ``args``; or ``None`` and why the guard cannot tell (deny)."""
        if not isinstance(args, dict):
            return None, (
                f"expected an object of named arguments, found {_json_kind(args)} "
                f"{_short(json.dumps(args, default=str))}"
            )
        unknown = [k for k in args if k not in self._known]
        if unknown:  # worded as the LangChain adapter words it
            shown = ", ".join(repr(_short(k, 60)) for k in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            accepted = ", ".join(sorted(self._known)) or "none"
            return None, (
                f"argument(s) {shown}{more} are not in the schema of tool {self.name!r} "
                f"(it accepts: {_short(accepted)})"
            )
        try:
            return self._validate(dict(args)), None
        except _Rejected as exc:
            return None, f"the tool's schema rejects these arguments: {_short(str(exc))}"
        except Exception as exc:  # a validator that breaks: the guard cannot tell
            return None, f"the tool's schema could not read these arguments: {exc!r}"


def function_tool(
    function: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Any:
    """``FunctionTool.from_function`` as a decorator, with or without arguments::

    @function_tool
    def read_file(path: str) -> str: ...
    """
    if function is None:
        return lambda f: FunctionTool.from_function(f, name=name, description=description)
    return FunctionTool.from_function(function, name=name, description=description)


def parse_arguments(text: Any) -> tuple[Any, str | None]:
    """The JSON value of a tool call's argument text, or why it is not one: anything but a
    string, malformed JSON, duplicate keys (parsers disagree on which one wins), ``NaN`` or
    ``Infinity`` (not JSON)."""
    if not isinstance(text, str):
        return None, f"the arguments are {type(text).__name__}, not JSON text"
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant), None
    except _Rejected as exc:
        return None, f"the arguments are not valid JSON: {exc}"
    except (ValueError, RecursionError) as exc:
        return None, f"the arguments are not valid JSON: {_short(str(exc))}"


class _Rejected(Exception):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Rejected(f"the key {_short(repr(key))} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON number")


def _first_error(exc: Any) -> str:
    errors = exc.errors(include_url=False)
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where + ': ' if where else ''}{first.get('msg', '')}{more}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {str: "a string", list: "a list", bool: "a boolean"}.get(type(value), "a number")


def _short(text: str, limit: int = _MAX_SHOWN) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
