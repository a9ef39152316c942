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
in its own audit log), and every result it records reaches ``candidate`` too. Give the
shadow guard its own store: its budgets must not spend the live ones.
"""

from __future__ import annotations

import collections

from ._decision import Decision, Effect
from ._events import AgentMessage, Event, ModelCall, ToolCall, ToolResult
from .guard import Guard

__all__ = ["Shadow"]

_RECENT = 1_024
"""Call ids remembered to tell a refusal from a new call."""


class Shadow:
    """A listener that decides every call a live guard decides again with a shadow guard.

    ``guard`` must be in shadow mode (``Guard(policy, mode="shadow")``), so that nothing it
    decides could be mistaken for an enforced decision. A call is followed once: the
    decision an approval adds to an ``ask`` (kind ``"approval"``) is not a new call, nor is a
    deny an adapter adds to a call already decided (``Guard.refuse``: the call changed after
    its decision, or is in doubt), recognised as a deny for a call (id and tool) followed
    moments ago. Hand-offs (``AgentMessage``) reach the shadow guard's cascade monitor. A
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
        self._recent: collections.OrderedDict[tuple[str, str | None, str | None, str], None] = (
            collections.OrderedDict()
        )

    def __repr__(self) -> str:
        return f"Shadow({self.guard!r}, errors={self.errors})"

    def __call__(self, event: Event, decision: Decision) -> None:
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
            self.guard.check(event)
        except Exception as exc:  # never into the live guard: see the class doc
            self.errors += 1
            self.last_error = exc
