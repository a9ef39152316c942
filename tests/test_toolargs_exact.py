"""The shortcut in ``received()`` (values that already have their field's exact type are not
re-validated) gives exactly what full validation gives: the same arguments, of the same
types, or the same refusal.

Generated pydantic schemas (plain, optional and constrained fields, defaults and default
factories, aliases and validation aliases, validators, configurations that change values)
and generated inputs (field names, aliases, extra and injected-looking keys, values of every
JSON type and of the wrong type, numbers as strings, objects as JSON strings, bools for ints,
ints for floats, NaN and infinities, lone surrogates), each decided twice: by ``received()``
and by the tool's own validation alone. The tool's own parsing (LangChain's
``_to_args_and_kwargs``) is the second oracle for every input the guard accepts.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, create_model, field_validator

from guardrails_plugin.langgraph import _toolargs
from guardrails_plugin.langgraph._toolargs import _schema, _validated, received

NAMES = ("a", "b", "path", "n")

# (annotation, a strategy of values of exactly that type)
PLAIN: list[Any] = [str, int, float, bool, str | None, int | None, float | None, bool | None]
OTHER: list[Any] = [
    list[str],
    dict[str, int],
    Literal["x", "y"],
    Annotated[int, Field(ge=0)],
    Annotated[str, Field(max_length=3)],
    Annotated[float, Field(allow_inf_nan=False)],
    Any,
]

VALUES = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["3", "-1", "1.5", "true", "", " x ", "X", '{"a": 1}', "[1]", "\ud800"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1.0, -0.0, 2.5]),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)

DEFAULTS = st.sampled_from([None, 0, 1, "", "x", 1.5, True, False])

CONFIGS = st.sampled_from(
    [
        {},
        {"populate_by_name": True},
        {"strict": True},
        {"str_strip_whitespace": True},
        {"str_to_lower": True},
        {"allow_inf_nan": False},
        {"validate_default": True},
        {"coerce_numbers_to_str": True},
        {"str_max_length": 2},
        {"extra": "forbid"},
    ]
)


@st.composite
def schemas(draw: st.DrawFn, *, plain_only: bool = False) -> type[BaseModel]:
    """A pydantic model of one to three fields."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    fields: dict[str, Any] = {}
    for name in names:
        kinds = PLAIN if plain_only else PLAIN + OTHER
        annotation = draw(st.sampled_from(kinds))
        how = draw(st.sampled_from(["required", "default", "factory", "alias", "choices"]))
        if plain_only and how in ("factory", "alias", "choices"):
            how = "default"
        if how == "required":
            fields[name] = (annotation, ...)
        elif how == "default":
            fields[name] = (annotation, draw(DEFAULTS))
        elif how == "factory":
            fields[name] = (annotation, Field(default_factory=lambda: None))
        elif how == "alias":
            fields[name] = (annotation, Field(alias=f"{name}_alias"))
        else:
            fields[name] = (
                annotation,
                Field(validation_alias=AliasChoices(name, f"{name}_other")),
            )
    config = {} if plain_only else draw(CONFIGS)
    validators: dict[str, Any] = {}
    if not plain_only and draw(st.booleans()):
        target = draw(st.sampled_from(names))

        def upper(cls: Any, value: Any) -> Any:
            return value.upper() if isinstance(value, str) else value

        validators["_upper"] = field_validator(target)(classmethod(upper))  # type: ignore[call-overload]
    return create_model(  # type: ignore[call-overload, no-any-return]
        "Generated",
        __config__=ConfigDict(**config),  # type: ignore[typeddict-item]
        __validators__=validators,
        **fields,
    )


def as_tool(model: type[BaseModel]) -> BaseTool:
    def body(**kwargs: Any) -> str:
        return "ran"

    return StructuredTool.from_function(
        body, name="generated", description="Generated.", args_schema=model
    )


@st.composite
def inputs(draw: st.DrawFn, model: type[BaseModel]) -> Any:
    """What a model may send: mostly objects of the schema's names and aliases with values
    of any type, sometimes extra keys, sometimes not an object at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.text(max_size=10), st.lists(st.integers(), max_size=2)))
    keys = list(model.model_fields)
    for name, info in model.model_fields.items():
        if isinstance(info.alias, str):
            keys.append(info.alias)
        keys.append(f"{name}_other")
    keys += ["extra", "tool_call_id", "config"]
    chosen = draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))
    return {k: draw(VALUES) for k in chosen}


def typed(value: Any) -> Any:
    """``value`` with every leaf's type kept and NaN comparable (1 != 1.0 != True here)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [typed(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return ("float", "nan")
    return (type(value).__name__, value)


def full(tool: BaseTool, raw: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``received()`` without the shortcut: the schema's validation, always."""
    schema = dataclasses.replace(_schema(tool), exact=None)
    return _validated(tool, schema, raw, "c1")


# (a default of another type than its field makes pydantic warn when LangChain dumps it)
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_shortcut_gives_what_validation_gives(data: st.DataObject) -> None:
    model = data.draw(schemas())
    tool = as_tool(model)
    raw = data.draw(inputs(model))
    fast = received(tool, raw, tool_call_id="c1")
    slow = full(tool, raw)
    assert typed(fast[0]) == typed(slow[0])
    assert fast[1] == slow[1]
    if fast[0] is not None:  # the tool's own parsing is the second oracle
        _, keywords = tool._to_args_and_kwargs(dict(raw), "c1")
        assert typed(keywords) == typed(fast[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_the_shortcut_is_taken_for_exactly_typed_values(data: st.DataObject) -> None:
    # Plain schemas, each field sent (or left to its default) with a value of exactly its
    # type: the shortcut answers, and its answer is the validated one.
    model = data.draw(schemas(plain_only=True))
    tool = as_tool(model)
    schema = _schema(tool)
    assert schema.exact is not None, model.__pydantic_core_schema__
    raw: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if not info.is_required() and data.draw(st.booleans()):
            continue
        kind = schema.exact[name][0]
        raw[name] = data.draw(st.from_type(kind).filter(lambda v, k=kind: type(v) is k))
    fast = _toolargs._exact(schema, schema.exact, raw)
    assert fast is not None
    assert typed(fast) == typed(full(tool, raw)[0])


def test_what_turns_the_shortcut_off() -> None:
    class Plain(BaseModel):
        path: str
        n: int = 3

    class Aliased(BaseModel):
        model_config = ConfigDict(populate_by_name=True)
        path: str = Field(alias="file_path")

    class Stripped(BaseModel):
        model_config = ConfigDict(str_strip_whitespace=True)
        path: str

    class Checked(BaseModel):
        path: str

        @field_validator("path")
        @classmethod
        def _lower(cls, value: str) -> str:
            return value.lower()

    assert _schema(as_tool(Plain)).exact == {"path": (str,), "n": (int,)}
    for model in (Aliased, Stripped, Checked):
        assert _schema(as_tool(model)).exact is None, model
    plain = as_tool(Plain)
    assert received(plain, {"path": "/a"}) == ({"path": "/a", "n": 3}, None)
    assert received(plain, {"path": "/a", "n": True})[0] == {"path": "/a", "n": 1}
    assert received(plain, {"path": "/a", "file_path": "/b"})[0] is None
    assert received(as_tool(Aliased), {"path": "/a", "file_path": "/etc/x"}) == (
        {"path": "/etc/x"},
        None,
    )
