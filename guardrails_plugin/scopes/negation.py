"""``Not``: the complement of another scope, failing closed on what that scope cannot read.

``Not(Emails(domains=["example.com"]))`` accepts a value only when ``Emails`` *read* it and
found it outside: a recipient list with an address at another domain. A value the inner
scope cannot read at all (a number where an address belongs, a header it cannot parse, a
crashing predicate) is not "outside" it: ``Not`` refuses it as unreadable too, so a deny rule
written with ``not:`` still fires on it and an allow rule does not let it through.

In a policy file: ``{not: {email: {domains: [example.com]}}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._base import Scope, ScopeError, ScopeViolation, scope_from_spec

__all__ = ["Not"]


class Not(Scope):
    """Every value ``scope`` reads and refuses; nothing it cannot read.

    Build with a scope (``Not(Paths(["/srv/secret"]))``) or, as policy files and stores do,
    with the inner scope's kind and settings (``Not(path={"roots": ["/srv/secret"]})``).
    """

    kind = "not"

    def __init__(self, scope: Scope | None = None, **spec: Any) -> None:
        if scope is not None:
            if spec or not isinstance(scope, Scope):
                raise ScopeError(f"not: expected one scope, found {scope!r:.80}")
            self._inner = scope
            return
        if len(spec) != 1:
            raise ScopeError(
                f"not: expected exactly one scope like {{email: {{domains: [...]}}}}, "
                f"found {sorted(spec)!r:.80}"
            )
        ((kind, settings),) = spec.items()
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise ScopeError(f"not: settings of scope {kind!r} must be a mapping")
        self._inner = scope_from_spec(kind, settings)

    @property
    def inner(self) -> Scope:
        """The scope this one is the complement of."""
        return self._inner

    def check(self, value: object) -> None:
        """Pass when the inner scope read ``value`` and refused it; refuse otherwise, as
        unreadable when the inner scope could not read it."""
        try:
            self._inner.check(value)
        except ScopeViolation as exc:
            if exc.unreadable:
                raise ScopeViolation(f"not {self._inner.kind}: {exc}", unreadable=True) from exc
            return  # read, and outside the inner scope: inside this one
        except Exception as exc:  # the inner scope crashed: it could not read the value
            raise ScopeViolation(
                f"not {self._inner.kind}: cannot read the value ({type(exc).__name__}: {exc})",
                unreadable=True,
            ) from exc
        raise ScopeViolation(
            f"inside the {self._inner.kind} scope this rule excludes",
            allowed=f"excluded: {self._inner!r}",
        )

    def spec(self) -> dict[str, Any]:
        """``{inner kind: inner settings}``, as a policy file writes it under ``not:``."""
        return {self._inner.kind: self._inner.spec()}

    def within(self, other: Scope) -> bool:
        """Only ``not A`` within ``not A``. (``B`` within ``A`` is not enough: ``B`` may be
        unable to read a value ``A`` reads and refuses, so ``not B`` would refuse what
        ``not A`` accepts: an integer-only ``Number`` and ``0.5``.)"""
        return isinstance(other, Not) and other._inner == self._inner

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Not) and self._inner == other._inner

    def __hash__(self) -> int:
        return hash(("Not", self._inner))

    def __repr__(self) -> str:
        return f"Not({self._inner!r})"
