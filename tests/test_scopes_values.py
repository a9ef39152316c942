"""Plain values: Number, OneOf, Pattern, Predicate."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest

from guardrails_plugin.scopes import Number, OneOf, Pattern, Predicate, ScopeError, ScopeViolation


def is_even(value: object) -> bool:
    """A module-level predicate, importable as 'test_scopes_values:is_even'."""
    return isinstance(value, int) and value % 2 == 0


def explodes(value: object) -> bool:
    raise RuntimeError("boom")


def says_yes_loosely(value: object) -> object:
    return 1


def reason(scope: Any, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return str(caught.value)


# --- Number -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 10, 5, 2.5, Decimal("9.99"), 10.0])
def test_numbers_in_range_are_allowed(value: object) -> None:
    Number(ge=0, le=10).check(value)


@pytest.mark.parametrize("value", [-1, 10.0001, Decimal("10.01"), 11])
def test_numbers_out_of_range_are_denied(value: object) -> None:
    assert "out of range; allowed: a number 0 <= x <= 10" in reason(Number(ge=0, le=10), value)


def test_exclusive_bounds_exclude_the_bound() -> None:
    scope = Number(gt=0, lt=1)
    assert not scope.contains(0)
    assert not scope.contains(1)
    assert scope.contains(0.5)


def test_a_string_is_not_a_number() -> None:
    assert reason(Number(ge=0), "12") == "expected a number, found str '12'"


@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_a_number(value: bool) -> None:
    assert "expected a number, found bool" in reason(Number(ge=0, le=10), value)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity")]
)
def test_nan_and_infinities_are_denied(value: object) -> None:
    assert "finite" in reason(Number(), value)


@pytest.mark.parametrize("value", [None, [1], {"n": 1}, 1j])
def test_other_types_are_denied(value: object) -> None:
    assert "expected a number" in reason(Number(), value)


def test_integer_accepts_only_ints() -> None:
    scope = Number(ge=1, le=100, integer=True)
    assert scope.contains(7)
    assert "expected an integer, found float 7.0" in reason(scope, 7.0)
    assert not scope.contains(Decimal(7))


def test_huge_integers_compare_exactly() -> None:
    assert not Number(le=2**53).contains(2**53 + 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ge": 1, "gt": 0}, "at most one lower bound"),
        ({"le": 1, "lt": 2}, "at most one upper bound"),
        ({"ge": 5, "le": 1}, "holds no number"),
        ({"gt": 1, "lt": 1}, "holds no number"),
        ({"ge": "1"}, "ge must be an int or a float"),
        ({"le": True}, "le must be an int or a float"),
        ({"lt": math.inf}, "must be finite"),
        ({"integer": 1}, "integer must be a bool"),
    ],
)
def test_number_bad_settings_fail_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Number(**kwargs)


@pytest.mark.parametrize(
    "scope", [Number(), Number(ge=0), Number(gt=0.5, lt=2, integer=True), Number(le=-1)]
)
def test_number_spec_round_trips(scope: Number) -> None:
    assert type(scope)(**scope.spec()) == scope


def test_number_within_is_range_inclusion() -> None:
    wide = Number(ge=0, le=100)
    assert Number(ge=10, le=20).within(wide)
    assert Number(gt=0, lt=100).within(wide)
    assert Number(ge=0, le=100).within(wide)
    assert not wide.within(Number(ge=10, le=20))
    assert not Number(ge=-1, le=5).within(wide)
    assert not Number(ge=0).within(wide)  # unbounded above
    open_range = Number(gt=0, lt=100)
    assert not Number(ge=0, le=50).within(open_range)  # 0 is outside
    assert Number(ge=0.1, le=50).within(open_range)
    assert Number(gt=0, le=99).within(open_range)
    assert not Number(ge=0, le=10).within(Number(ge=0, le=10, integer=True))
    assert Number(ge=0, le=10, integer=True).within(Number(ge=0, le=10))


# --- OneOf ------------------------------------------------------------------------------


def test_one_of_accepts_listed_values() -> None:
    scope = OneOf(["draft", "final", 3, None, False])
    for value in ("draft", "final", 3, 3.0, None, False):
        scope.check(value)


def test_one_of_is_case_and_type_exact() -> None:
    scope = OneOf(["draft", 1])
    assert "expected one of" in reason(scope, "Draft")
    assert "found str '1'" in reason(scope, "1")


def test_true_does_not_match_one_and_zero_does_not_match_false() -> None:
    assert "found bool True" in reason(OneOf([1, 2]), True)
    assert not OneOf([0]).contains(False)
    assert not OneOf([True]).contains(1)
    assert not OneOf([False]).contains(0)


@pytest.mark.parametrize("value", [["draft"], {"draft": 1}, {"draft"}, b"draft"])
def test_one_of_denies_unhashable_and_other_types(value: object) -> None:
    assert not OneOf(["draft"]).contains(value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "at least one value"),
        ("draft", "list of JSON scalars"),
        ([["a"]], "strings, numbers, booleans or None"),
        ([math.nan], "finite"),
    ],
)
def test_one_of_bad_settings_fail_at_construction(values: Any, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        OneOf(values)


def test_one_of_spec_round_trips_and_ignores_order() -> None:
    scope = OneOf(["b", "a", 1, True, None])
    assert type(scope)(**scope.spec()) == scope
    assert OneOf(["a", "b"]) == OneOf(["b", "a"])


def test_one_of_within_is_subset() -> None:
    assert OneOf(["a"]).within(OneOf(["a", "b"]))
    assert not OneOf(["a", "c"]).within(OneOf(["a", "b"]))
    assert not OneOf([True]).within(OneOf([1]))


# --- Pattern ----------------------------------------------------------------------------


def test_pattern_must_match_the_whole_string() -> None:
    scope = Pattern(r"[A-Z]{2,5}-[0-9]+")
    assert scope.contains("OPS-1234")
    assert "does not match" in reason(scope, "OPS-1234; rm -rf /")
    assert not scope.contains("xOPS-1")
    assert not scope.contains("OPS-1\n")


@pytest.mark.parametrize("value", [1234, None, b"OPS-1", ["OPS-1"]])
def test_pattern_checks_strings_only(value: object) -> None:
    assert "expected a string" in reason(Pattern(r".*"), value)


def test_pattern_bad_regex_fails_at_construction() -> None:
    with pytest.raises(ScopeError, match="does not compile"):
        Pattern("([a-z]+")


def test_pattern_spec_and_within() -> None:
    scope = Pattern(r"\d+")
    assert type(scope)(**scope.spec()) == scope
    assert scope.within(Pattern(r"\d+"))
    assert not scope.within(Pattern(r".*"))  # inclusion is not attempted: conservative


# --- Predicate --------------------------------------------------------------------------


def test_predicate_allows_what_the_function_says_yes_to() -> None:
    scope = Predicate(is_even, "an even integer")
    assert scope.contains(4)
    assert reason(scope, 3) == "3 fails the check; it is not an even integer"


def test_predicate_from_a_reference_string() -> None:
    scope = Predicate(f"{__name__}:is_even", "an even integer")
    assert scope.fn is is_even
    assert scope.contains(2)
    assert Predicate("math:isfinite", "finite").contains(1.5)


def test_predicate_spec_round_trips_through_the_reference() -> None:
    scope = Predicate(is_even, "an even integer")
    assert scope.spec() == {"fn": f"{__name__}:is_even", "description": "an even integer"}
    assert type(scope)(**scope.spec()) == scope


def test_predicate_that_raises_denies_and_says_why() -> None:
    message = reason(Predicate(explodes, "anything"), 1)
    assert "raised RuntimeError: boom" in message


def test_predicate_must_return_exactly_true() -> None:
    assert "not a bool" in reason(Predicate(says_yes_loosely, "anything"), 1)


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda v: True, "module-level function"),
        ("nosuchmodule_xyz:fn", "cannot be imported"),
        ("math:no_such_function", "cannot be imported"),
        ("math", "module:qualname"),
        ("math:pi", "not callable"),
        (42, "callable or 'module:qualname'"),
    ],
)
def test_predicate_bad_settings_fail_at_construction(fn: Any, message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Predicate(fn, "x")


def test_predicate_within_is_the_same_function() -> None:
    assert Predicate(is_even, "even").within(Predicate(f"{__name__}:is_even", "other words"))
    assert not Predicate(is_even, "even").within(Predicate(explodes, "even"))


def flagged(scope: Any, value: object) -> bool:
    """Whether ``scope`` refuses ``value`` as unreadable (as opposed to readable but outside)."""
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return bool(caught.value.unreadable)


@pytest.mark.parametrize(
    ("scope", "value"),
    [
        (Number(le=10), "5"),
        (Number(le=10), True),
        (Number(le=10), math.nan),
        (Number(le=10, integer=True), 5.0),
        (OneOf(["a"]), ["a"]),
        (Pattern(r"a+"), 3),
        (Predicate(explodes, "anything"), 1),
        (Predicate(says_yes_loosely, "anything"), 1),
    ],
)
def test_values_the_scope_cannot_read_are_flagged_unreadable(scope: Any, value: object) -> None:
    assert flagged(scope, value) is True


@pytest.mark.parametrize(
    ("scope", "value"),
    [
        (Number(le=10), 11),
        (OneOf(["a"]), "b"),
        (OneOf([1]), True),
        (Pattern(r"a+"), "b"),
        (Predicate(is_even, "even"), 3),
    ],
)
def test_readable_values_outside_the_scope_are_not_flagged(scope: Any, value: object) -> None:
    assert flagged(scope, value) is False
