"""Optional arguments: absent, ``None`` or empty passes; a value given must be in scope.

``optional(Emails(domains=["example.com"]))`` on ``cc`` says "no copy, or copies inside
example.com". A rule that checks an optional argument passes when the call leaves it out,
sets it to ``None``, to ``""`` or to an empty list or tuple; any other value, ``0``,
``False``, ``" "``, ``{}`` and ``[""]`` included, goes to the wrapped scope, which judges it
as it would a required argument. That holds for every effect: a ``deny`` rule with an
optional argument fires when its other scoped arguments are inside their scopes and the
optional one is absent, empty, or inside its scope.

In policy files (and grants kept in a store) the wrapper is a key next to the scope::

    cc: {email: {domains: [example.com]}, optional: true}

:func:`arg_data` and :func:`arg_scope` turn an argument's scope into that plain data and
back, so Python, YAML and stored grants round-trip exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import Scope, ScopeError, scope_from_spec
from ._text import describe

__all__ = ["OptionalScope", "arg_data", "arg_scope", "is_empty", "optional"]


def is_empty(value: object) -> bool:
    """Whether ``value`` counts as "not given": ``None``, ``""``, ``[]`` or ``()``.

    Exact types only: ``0``, ``False``, whitespace, ``{}``, an empty set and a list of empty
    strings are values, judged by the scope (fail closed on what a tool might act on)."""
    if value is None:
        return True
    t = type(value)
    if t is str or t is list or t is tuple:
        return not value
    return False


class OptionalScope(Scope):
    """``scope``, or nothing: see the module's docstring. Build with :func:`optional`."""

    scope: Scope

    def __init__(self, scope: Scope) -> None:
        if not isinstance(scope, Scope):
            raise ScopeError(
                f"optional() wraps a scope (Emails, Urls, ...), found {describe(scope)}"
            )
        self.scope = scope.scope if isinstance(scope, OptionalScope) else scope

    def check(self, value: object) -> None:
        if is_empty(value):
            return
        self.scope.check(value)

    def spec(self) -> dict[str, Any]:
        return {"optional": True, **arg_data(self.scope)}

    def within(self, other: Scope) -> bool:
        """Narrower only than another optional scope whose wrapped scope is wider: a
        required scope refuses the absent value this one lets through."""
        return isinstance(other, OptionalScope) and self.scope.within(other.scope)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptionalScope) and self.scope == other.scope

    def __hash__(self) -> int:
        return hash(("optional", self.scope))

    def __repr__(self) -> str:
        return f"optional({self.scope!r})"


def optional(scope: Scope) -> OptionalScope:
    """Mark an argument's scope optional: absent, ``None``, ``""``, ``[]`` pass; any other
    value must be inside ``scope``."""
    return OptionalScope(scope)


def arg_data(scope: Scope) -> dict[str, Any]:
    """An argument's scope as plain data: ``{kind: settings}``, plus ``optional: true``."""
    if isinstance(scope, OptionalScope):
        return {**arg_data(scope.scope), "optional": True}
    return {scope.kind: scope.spec()}


def arg_scope(data: Mapping[str, Any]) -> Scope:
    """The scope :func:`arg_data` wrote (``ScopeError`` when it is not that shape)."""
    if not isinstance(data, Mapping):
        raise ScopeError(f"expected one scope like {{email: {{...}}}}, found {describe(data)}")
    flag = data.get("optional", False)
    rest = {k: v for k, v in data.items() if k != "optional"}
    if flag not in (True, False):
        raise ScopeError(f"'optional' must be true or false, found {describe(flag)}")
    if len(rest) != 1:
        raise ScopeError(f"expected one scope like {{email: {{...}}}}, found {describe(data)}")
    ((kind, settings),) = rest.items()
    inner = scope_from_spec(str(kind), settings or {})
    return OptionalScope(inner) if flag else inner
