"""Shadow mode: see what a policy would do to live traffic without blocking anything.

``Guard(policy, mode="shadow")`` decides and records every call as usual, but lets each one
run: a call the policy denies or asks about is allowed, and its decision says what the
policy decided (``Decision.shadow``: ``"deny"`` or ``"ask"``). The audit log records it
(``detail.shadow``), OpenTelemetry tags it (``guardrails.decision.shadow``) and listeners
see it. Budgets still count what ran, so a budget that would have run out shows as a
``shadow="deny"`` decision of kind ``"budget"`` from then on. Flags stay enforced: a
kill, a pause or a quarantine is an operator's (or the cascade breaker's), not the policy's.

To try a candidate policy beside the one that enforces, on the same traffic, follow the
enforcing guard with a shadow guard::

    live = Guard(policy, store=store, audit=audit)
    candidate = Guard(new_policy, mode="shadow", store=MemoryStore(), audit=shadow_audit)
    live.listeners.append(Shadow(candidate))

Every tool call the live guard decides is decided again by ``candidate`` (which records it
in its own audit log), and every result it records reaches ``candidate`` too, as does what
each model answer used (``Guard.record_usage``), so the candidate's model token and cost
budgets count the live traffic. Give the shadow guard its own store: its budgets must not
spend the live ones. ``Shadow.report()`` sums up what the candidate would have done: calls
it would have denied or asked about, by rule, and the budgets that would have run out.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

from ._decision import Decision, Effect
from ._events import AgentMessage, Event, ModelCall, ModelUsage, ToolCall, ToolResult
from .guard import Guard
from .listeners import EventKind

__all__ = ["Shadow", "ShadowReport"]

_RECENT = 1_024
"""Call ids remembered to tell a refusal from a new call."""


@dataclass
class ShadowReport:
    """What a shadow guard would have done to the traffic it followed.

    ``would`` counts the calls (tool and model calls) it would have denied or asked about,
    by ``(effect, rule)``; ``budgets`` names each budget that would have run out, with the
    shadow guard's clock at the first call it would have stopped; ``decided`` counts the
    events it decided, ``errors`` those it could not.
    """

    decided: int = 0
    would: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    budgets: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``would`` as ``{"deny": {rule: n}, "ask": {...}}``."""
        would: dict[str, dict[str, int]] = {}
        for (effect, rule), n in sorted(self.would.items()):
            would.setdefault(effect, {})[rule] = n
        return {
            "decided": self.decided,
            "would": would,
            "budgets": dict(self.budgets),
            "errors": self.errors,
        }

    def __str__(self) -> str:
        lines = [f"{self.decided} events decided by the shadow guard, {self.errors} errors"]
        for (effect, rule), n in self.would.most_common():
            lines.append(f"would {effect}: {n} by {rule!r}")
        for budget, at in self.budgets.items():
            lines.append(f"budget {budget!r} would have run out (first stop at {at:g})")
        return "\n".join(lines)


class Shadow:
    """A listener that decides every call a live guard decides again with a shadow guard.

    ``guard`` must be in shadow mode (``Guard(policy, mode="shadow")``), so that nothing it
    decides could be mistaken for an enforced decision. A call is followed once: the
    decision an approval adds to an ``ask`` (kind ``"approval"``) is not a new call, nor is a
    deny an adapter adds to a call already decided (``Guard.refuse``: the call changed after
    its decision, or is in doubt), recognised as a deny for a call (id and tool) followed
    moments ago. Hand-offs (``AgentMessage``) reach the shadow guard's cascade monitor, and
    model usage (``ModelUsage``) its model budgets: ``kinds`` holds every event kind. A
    failure of the shadow guard (its store, its audit log) is counted in ``errors`` and
    never reaches the live guard: a candidate must not break the traffic it watches.
    """

    def __init__(self, guard: Guard) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"Shadow needs a Guard, found {type(guard).__name__}")
        if guard.mode != "shadow":
            raise ValueError("Shadow needs a guard in shadow mode: Guard(policy, mode='shadow')")
        self.guard = guard
        self.errors = 0
        """Events the shadow guard could not decide (its store or audit log failed)."""
        self.last_error: BaseException | None = None
        self._report = ShadowReport()
        self._recent: collections.OrderedDict[tuple[str, str | None, str | None, str], None] = (
            collections.OrderedDict()
        )

    def __repr__(self) -> str:
        return f"Shadow({self.guard!r}, errors={self.errors})"

    kinds = frozenset(EventKind)
    """Every kind of event, model usage included (see ``listeners.py``)."""

    def report(self) -> ShadowReport:
        """What the shadow guard would have done so far (a copy)."""
        r = self._report
        return ShadowReport(r.decided, collections.Counter(r.would), dict(r.budgets), self.errors)

    def __call__(self, event: Event | ModelUsage, decision: Decision) -> None:
        if isinstance(event, ModelUsage):
            try:
                self.guard.record_usage(event)
            except Exception as exc:  # never into the live guard: see the class doc
                self.errors += 1
                self.last_error = exc
            return
        if decision.kind == "approval" or not isinstance(
            event, ToolCall | ToolResult | ModelCall | AgentMessage
        ):
            return
        if isinstance(event, ToolCall) and event.call_id is not None:
            key = (event.call_id, event.thread_id, event.run_id, event.tool)
            if key in self._recent and decision.effect is Effect.DENY:
                return  # a refusal of a call followed already (whatever its kind)
            self._recent[key] = None
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
        try:
            shadowed = self.guard.check(event)
        except Exception as exc:  # never into the live guard: see the class doc
            self.errors += 1
            self.last_error = exc
            return
        report = self._report
        report.decided += 1
        if shadowed.shadow is not None:
            report.would[(shadowed.shadow, shadowed.rule)] += 1
            if shadowed.kind == "budget" and shadowed.shadow == "deny":
                report.budgets.setdefault(shadowed.rule, self.guard.clock())
