"""The one place that imports z3, lazily, with an error naming the extra to install."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .._errors import GuardrailsError

_Z3: ModuleType | None = None


class VerifyUnavailable(GuardrailsError):
    """z3 is not installed: ``pip install 'guardrails-plugin[verify]'``."""


def z3() -> Any:
    """The ``z3`` module (``VerifyUnavailable`` when the ``verify`` extra is not installed)."""
    global _Z3
    if _Z3 is None:
        try:
            import z3 as module
        except ImportError as exc:  # pragma: no cover - the extra is installed in tests
            raise VerifyUnavailable(
                "policy verification needs z3: pip install 'guardrails-plugin[verify]'"
            ) from exc
        _Z3 = module
    return _Z3
