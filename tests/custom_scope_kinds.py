"""A module a policy file names in ``imports:``: it registers the ``even`` scope kind."""

from __future__ import annotations

from typing import Any

from guardrails_plugin.scopes import Scope, ScopeViolation


class Even(Scope):
    """Even integers (``strict: false`` also takes strings of digits)."""

    kind = "even"

    def __init__(self, strict: bool = True) -> None:
        self._strict = strict

    def check(self, value: object) -> None:
        if isinstance(value, str) and not self._strict and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScopeViolation(f"expected an integer, found {value!r:.40}", unreadable=True)
        if value % 2:
            raise ScopeViolation(f"{value} is odd")

    def spec(self) -> dict[str, Any]:
        return {"strict": self._strict}
