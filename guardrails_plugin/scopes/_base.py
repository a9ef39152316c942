"""The contract every argument scope keeps.

A scope constrains one argument of a tool call to what the tool will really touch: a path
after normalization, the host an HTTP client would connect to, every program a shell line
would run. It is built (and validated) once, when the policy loads, and then ``check`` is a
fast pure function.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from .._errors import ScopeError, ScopeViolation

__all__ = ["Scope", "ScopeError", "ScopeViolation", "scope_from_spec", "SCOPE_KINDS"]

SCOPE_KINDS: dict[str, type[Scope]] = {}
"""Scope classes by ``kind`` (the key used in policy files)."""


class Scope(abc.ABC):
    """One argument's allowed values.

    Subclasses set ``kind`` (the name used in YAML policy files) and implement:

    - ``check(value)``: return ``None`` when ``value`` is inside the scope; raise
      ``ScopeViolation`` with a reason (what was found, what is allowed) when it is not.
      Any other exception (a parser crash, a wrong type) is treated by the guard as
      "cannot understand" and denies: fail closed. Raise ``ScopeViolation`` yourself for
      wrong types so the reason is readable.
    - ``spec()``: the settings as plain JSON/YAML data; ``type(self)(**spec())`` rebuilds an
      equal scope. Used for printing, linting, policy files and grants kept in a store.
    - ``within(other)``: ``True`` only if every value this scope accepts, ``other`` accepts
      too. Used to refuse delegations that would widen a grant. When unsure, return ``False``.
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            SCOPE_KINDS[cls.kind] = cls

    @abc.abstractmethod
    def check(self, value: object) -> None:
        """Raise ``ScopeViolation`` if ``value`` is outside this scope."""

    @abc.abstractmethod
    def spec(self) -> dict[str, Any]:
        """Plain-data settings; ``type(self)(**self.spec())`` is an equal scope."""

    def within(self, other: Scope) -> bool:
        """Whether this scope is at most as wide as ``other`` (conservative)."""
        return type(self) is type(other) and self.spec() == other.spec()

    def contains(self, value: object) -> bool:
        """``True`` if ``check`` accepts ``value`` (convenience for tests and REPLs)."""
        try:
            self.check(value)
        except ScopeViolation:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Scope) and type(self) is type(other) and self.spec() == other.spec()
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(sorted(self.spec().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.spec().items())
        return f"{type(self).__name__}({args})"


def scope_from_spec(kind: str, spec: Mapping[str, Any]) -> Scope:
    """Build a scope from its kind and settings, as found in a policy file or a store."""
    cls = SCOPE_KINDS.get(kind)
    if cls is None:
        known = ", ".join(sorted(SCOPE_KINDS))
        raise ScopeError(f"unknown scope kind {kind!r}; known kinds: {known}")
    try:
        return cls(**dict(spec))
    except TypeError as exc:
        raise ScopeError(f"bad settings for scope {kind!r}: {exc}") from exc
