"""Plain values: numbers in a range, one of a fixed set, strings of a pattern, a predicate.

These are the small scopes for arguments that are not resources: an amount, a mode, an id.
Types are checked strictly, because tool arguments come from a model that may send ``"12"``
for ``12`` or ``true`` for ``1``, and a scope that coerces has already guessed.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview

__all__ = ["Number", "OneOf", "Pattern", "Predicate"]

Bound = int | float


def _bound(name: str, value: object) -> Bound | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScopeError(f"{name} must be an int or a float, found {describe(value)}")
    if not math.isfinite(value):
        raise ScopeError(f"{name} must be finite, found {value!r}")
    return value


class Number(Scope):
    """Numbers in a range.

    Accepts ``int``, ``float`` and ``Decimal``; refuses ``bool`` (``True`` is not ``1``
    here), strings (``"12"`` is not ``12``), NaN and infinities. ``ge``/``gt`` give the
    lower bound (inclusive/exclusive), ``le``/``lt`` the upper one; at most one of each.
    ``integer=True`` accepts only ``int`` values (``3.0`` is a float and is refused).

    Example::

        >>> amount = Number(gt=0, le=500)
        >>> amount.contains(120.5)
        True
        >>> amount.contains(0)
        False
        >>> amount.contains("120")
        False
    """

    kind = "number"

    def __init__(
        self,
        *,
        ge: Bound | None = None,
        le: Bound | None = None,
        gt: Bound | None = None,
        lt: Bound | None = None,
        integer: bool = False,
    ) -> None:
        self._ge, self._le = _bound("ge", ge), _bound("le", le)
        self._gt, self._lt = _bound("gt", gt), _bound("lt", lt)
        if self._ge is not None and self._gt is not None:
            raise ScopeError("give at most one lower bound (ge or gt), found both")
        if self._le is not None and self._lt is not None:
            raise ScopeError("give at most one upper bound (le or lt), found both")
        if not isinstance(integer, bool):
            raise ScopeError(f"integer must be a bool, found {describe(integer)}")
        self._integer = integer
        low = self._ge if self._ge is not None else self._gt
        high = self._le if self._le is not None else self._lt
        if low is not None and high is not None:
            inclusive = self._ge is not None and self._le is not None
            if low > high or (low == high and not inclusive):
                raise ScopeError(f"the range {self._describe_range()} holds no number")

    def _describe_range(self) -> str:
        parts = []
        if self._ge is not None:
            parts.append(f"{self._ge!r} <=")
        elif self._gt is not None:
            parts.append(f"{self._gt!r} <")
        parts.append("x")
        if self._le is not None:
            parts.append(f"<= {self._le!r}")
        elif self._lt is not None:
            parts.append(f"< {self._lt!r}")
        kind = "an integer" if self._integer else "a number"
        return f"{kind} {' '.join(parts)}" if len(parts) > 1 else kind

    def check(self, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ScopeViolation(f"expected a number, found {describe(value)}", unreadable=True)
        if self._integer and not isinstance(value, int):
            raise ScopeViolation(f"expected an integer, found {describe(value)}", unreadable=True)
        if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, Decimal) and not value.is_finite()
        ):
            raise ScopeViolation(f"expected a finite number, found {value!r}", unreadable=True)
        if (
            (self._ge is not None and not value >= self._ge)
            or (self._gt is not None and not value > self._gt)
            or (self._le is not None and not value <= self._le)
            or (self._lt is not None and not value < self._lt)
        ):
            raise ScopeViolation(
                f"{value!r} is out of range", allowed=f"allowed: {self._describe_range()}"
            )

    def spec(self) -> dict[str, Any]:
        bounds = {"ge": self._ge, "le": self._le, "gt": self._gt, "lt": self._lt}
        return {**{k: v for k, v in bounds.items() if v is not None}, "integer": self._integer}

    def within(self, other: Scope) -> bool:
        """Range inclusion, exclusive bounds included; an integer scope fits in a number one."""
        if not isinstance(other, Number):
            return False
        if other._integer and not self._integer:
            return False
        return self._lower_within(other) and self._upper_within(other)

    def _lower_within(self, other: Number) -> bool:
        if other._ge is not None:
            if self._ge is not None:
                return self._ge >= other._ge
            return self._gt is not None and self._gt >= other._ge
        if other._gt is not None:
            if self._gt is not None:
                return self._gt >= other._gt
            return self._ge is not None and self._ge > other._gt
        return True

    def _upper_within(self, other: Number) -> bool:
        if other._le is not None:
            if self._le is not None:
                return self._le <= other._le
            return self._lt is not None and self._lt <= other._le
        if other._lt is not None:
            if self._lt is not None:
                return self._lt <= other._lt
            return self._le is not None and self._le < other._lt
        return True


Scalar = str | int | float | bool | None


def _key(value: object) -> tuple[str, object] | None:
    """A type-aware key: ``True`` and ``1`` differ, ``1`` and ``1.0`` (one JSON number) agree."""
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("str", value)
    return None


class OneOf(Scope):
    """One of a fixed set of JSON scalars (strings, numbers, booleans, null).

    Comparison is type-aware: ``True`` does not match ``1`` and ``"1"`` does not match ``1``
    (Python's ``True == 1`` would), while ``1`` and ``1.0`` are the same JSON number.

    Example::

        >>> mode = OneOf(["draft", "final"])
        >>> mode.contains("draft")
        True
        >>> mode.contains("DRAFT")
        False
        >>> OneOf([1, 2]).contains(True)
        False
    """

    kind = "one_of"

    def __init__(self, values: Iterable[Scalar]) -> None:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise ScopeError(f"values must be a list of JSON scalars, found {describe(values)}")
        keys: dict[tuple[str, object], Scalar] = {}
        for value in values:
            key = _key(value)
            if key is None:
                raise ScopeError(
                    f"values must be strings, numbers, booleans or None, found {describe(value)}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise ScopeError(f"values must be finite numbers, found {value!r}")
            keys.setdefault(key, value)
        if not keys:
            raise ScopeError("values must list at least one value, found none")
        self._keys = frozenset(keys)
        self._values = [keys[k] for k in sorted(keys, key=lambda k: (k[0], repr(k[1])))]

    def check(self, value: object) -> None:
        key = _key(value)
        if key is None:
            raise ScopeViolation(
                f"not one of the allowed values, found {describe(value)}",
                unreadable=True,
                allowed=f"expected one of {self._values!r}",
            )
        if key not in self._keys:
            raise ScopeViolation(
                f"not one of the allowed values, found {describe(value)}",
                allowed=f"expected one of {self._values!r}",
            )

    def spec(self) -> dict[str, Any]:
        return {"values": list(self._values)}

    def within(self, other: Scope) -> bool:
        """Every value of ``self`` is a value of ``other``."""
        return isinstance(other, OneOf) and self._keys <= other._keys


class Pattern(Scope):
    """Strings that match a regular expression entirely (``re.fullmatch``).

    For identifiers and codes, not for URLs, paths, SQL or shell lines: those have scopes
    that parse them. The pattern is compiled once; keep it free of catastrophic backtracking
    (nested quantifiers such as ``(a+)+``), since it runs on model-chosen input.

    Example::

        >>> ticket = Pattern(r"[A-Z]{2,5}-[0-9]+")
        >>> ticket.contains("OPS-1234")
        True
        >>> ticket.contains("OPS-1234; rm -rf /")
        False
    """

    kind = "pattern"

    def __init__(self, regex: str) -> None:
        if not isinstance(regex, str):
            raise ScopeError(f"regex must be a string, found {describe(regex)}")
        try:
            self._compiled = re.compile(regex)
        except re.error as exc:
            raise ScopeError(f"regex {preview(regex)} does not compile: {exc}") from None
        self._regex = regex

    def check(self, value: object) -> None:
        if not isinstance(value, str):
            raise ScopeViolation(f"expected a string, found {describe(value)}", unreadable=True)
        if self._compiled.fullmatch(value) is None:
            raise ScopeViolation(
                f"{preview(value)} does not match the pattern",
                allowed=f"pattern {self._regex!r}",
            )

    def spec(self) -> dict[str, Any]:
        return {"regex": self._regex}

    def within(self, other: Scope) -> bool:
        """Only the same regex (regular-language inclusion is not attempted)."""
        return isinstance(other, Pattern) and self._regex == other._regex


def _import(reference: str) -> Callable[[Any], object]:
    module_name, _, qualname = reference.partition(":")
    if not module_name or not qualname:
        raise ScopeError(f"fn must be 'module:qualname', found {preview(reference)}")
    try:
        target: Any = importlib.import_module(module_name)
        for attribute in qualname.split("."):
            target = getattr(target, attribute)
    except (ImportError, AttributeError) as exc:
        raise ScopeError(f"fn {preview(reference)} cannot be imported: {exc}") from None
    if not callable(target):
        raise ScopeError(f"fn {preview(reference)} is not callable, found {describe(target)}")
    return target  # type: ignore[no-any-return]


class Predicate(Scope):
    """Values for which a function returns ``True``: the escape hatch for rules no other
    scope expresses.

    ``fn`` is a callable or a ``"module:qualname"`` string; either way it must be importable
    by that name (a module-level function, not a lambda or a closure), so the scope can be
    written to a policy file or a store and loaded back. ``description`` says in words what
    the function allows, and is quoted in deny reasons.

    ``fn(value)`` must return exactly ``True`` to allow. ``False`` is a plain violation; an
    exception or a result that is not a bool is an unreadable one (``unreadable=True``), so
    a crashing predicate in a deny rule denies.

    Example::

        >>> even = Predicate("operator:not_", "a falsy value")
        >>> even.contains(0)
        True
        >>> even.contains(3)
        False
        >>> even.spec()
        {'fn': 'operator:not_', 'description': 'a falsy value'}
    """

    kind = "predicate"

    def __init__(self, fn: Callable[[Any], object] | str, description: str = "") -> None:
        if isinstance(fn, str):
            reference = fn
            self._fn = _import(fn)
        elif callable(fn):
            module = getattr(fn, "__module__", None)
            qualname = getattr(fn, "__qualname__", None)
            if not module or not qualname or "<" in qualname:
                raise ScopeError(
                    f"fn {preview(fn)} must be a module-level function importable by name "
                    "(not a lambda, closure or bound method), so the scope can be saved"
                )
            reference = f"{module}:{qualname}"
            if _import(reference) is not fn:
                raise ScopeError(
                    f"fn {preview(fn)} is not what {reference!r} imports; pass a module-level "
                    "function"
                )
            self._fn = fn
        else:
            raise ScopeError(f"fn must be a callable or 'module:qualname', found {describe(fn)}")
        if not isinstance(description, str):
            raise ScopeError(f"description must be a string, found {describe(description)}")
        self._reference = reference
        self._description = description or reference

    @property
    def fn(self) -> Callable[[Any], object]:
        """The function itself."""
        return self._fn

    @property
    def description(self) -> str:
        """What the function allows, in words."""
        return self._description

    def check(self, value: object) -> None:
        try:
            result = self._fn(value)
        except Exception as exc:  # a predicate that crashes cannot say yes
            raise ScopeViolation(
                f"{preview(value)} could not be checked",
                unreadable=True,
                allowed=f"checked against {self._description!r}: {self._reference} raised "
                f"{type(exc).__name__}: {exc}",
            ) from exc
        if result is True:
            return
        if result is False:
            raise ScopeViolation(
                f"{preview(value)} fails the check",
                allowed=f"it is not {self._description}",
            )
        raise ScopeViolation(
            f"{preview(value)} could not be checked",
            unreadable=True,
            allowed=f"checked against {self._description!r}: {self._reference} returned "
            f"{describe(result)}, not a bool",
        )

    def spec(self) -> dict[str, Any]:
        return {"fn": self._reference, "description": self._description}

    def within(self, other: Scope) -> bool:
        """The same function (descriptions may differ)."""
        return isinstance(other, Predicate) and self._fn is other._fn
