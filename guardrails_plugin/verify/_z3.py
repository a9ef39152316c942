"""The one place that imports z3, lazily, with an error naming the extra to install."""

from __future__ import annotations

import time
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


RLIMIT = 60_000_000
"""The default resource limit of one solver check (z3's ``rlimit``: a count of the
solver's elementary steps, the same on every machine and under any load; see
``docs/verification.md`` for how it compares with seconds)."""
TIMEOUT = 300.0
"""The default wall-clock ceiling of one solver check, in seconds: a last-resort guard
(the resource limit decides first on any machine that is not starved)."""

LINT_RLIMIT = 4_000_000
"""The default resource limit of one ``lint --deep`` question (a question it does not
settle gives no warning)."""
LINT_TIMEOUT = 120.0
"""The default wall-clock ceiling of one ``lint --deep`` question, in seconds."""
Limits = tuple[int, "float | None"]
"""A resource limit and a wall-clock ceiling (``limit``'s arguments)."""

RESOURCE = "resource limit"
TIME = "time limit"


def limit(solver: Any, rlimit: int, timeout: float | None) -> Any:
    """``solver`` with each check limited to ``rlimit`` steps (``0``: none) and, as a
    last resort, ``timeout`` seconds (``None``: none). Returns ``solver``; ``gave_up`` tells
    which limit a check that answered ``unknown`` met."""
    solver.set("rlimit", max(0, int(rlimit)))
    solver.set("timeout", 0 if timeout is None else max(1, int(timeout * 1000)))
    solver.__dict__["_limits"] = (max(0, int(rlimit)), timeout)
    return solver


def _count(solver: Any) -> int:
    stats = solver.statistics()
    names = stats.keys()
    return int(stats.get_key_value("rlimit count")) if "rlimit count" in names else 0


def check(solver: Any, *assumptions: Any) -> Any:
    """``solver.check(*assumptions)``, remembering the steps and seconds it took (for
    ``gave_up``)."""
    before, started = _count(solver), time.perf_counter()
    verdict = solver.check(*assumptions)
    solver.__dict__["_spent"] = (_count(solver) - before, time.perf_counter() - started)
    return verdict


def gave_up(solver: Any) -> str:
    """Why the last ``check`` of ``solver`` answered ``unknown``: ``RESOURCE`` (it used up
    its resource limit: the same answer on any machine), ``TIME`` (the wall-clock ceiling:
    the answer depends on the machine and its load), or z3's own reason (an incomplete
    theory, ...). z3 reports both limits as ``canceled`` (or ``timeout``), so the steps and
    seconds spent decide."""
    reason = str(solver.reason_unknown())
    steps, timeout = solver.__dict__.get("_limits", (0, None))
    spent, seconds = solver.__dict__.get("_spent", (0, 0.0))
    if reason not in ("canceled", "timeout", "max. resource limit exceeded"):
        return reason
    if steps and spent >= steps:
        return RESOURCE
    if reason == "timeout" or (timeout is not None and seconds >= 0.9 * timeout):
        return TIME
    return reason


QUICK = 1 / 15
"""The share of the resource limit a quick try gets (a guess at a readable or short model,
a search of few distinct calls first)."""
