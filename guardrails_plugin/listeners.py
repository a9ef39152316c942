"""Listeners by kind of event: subscribe to the decisions on tool calls alone.

A guard tells its ``listeners`` about everything it checks, as ``listener(event,
decision)``: decisions on tool calls, but also the kill-switch check before every model call
(a ``ModelCall``), every tool result it records (a ``ToolResult``) and every message agents
pass (an ``AgentMessage``). A listener that wants only some of these subscribes to them::

    from guardrails_plugin import Guard, subscribe

    guard = Guard(policy, listeners=[subscribe(print_denials, "tool_call")])

Plain listeners keep receiving everything, as before. :func:`event_kind` names the kind of
any event.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._decision import Decision
from ._events import AgentMessage, Event, ModelCall, ToolCall, ToolResult


class EventKind(enum.StrEnum):
    """What a guard checked: a tool call (a decision on it, approvals and refusals too), a
    model call (the kill-switch check before it), a tool result (recorded for data flow,
    budgets and the cascade monitor), or a message between agents."""

    TOOL_CALL = "tool_call"
    MODEL_CALL = "model_call"
    TOOL_RESULT = "tool_result"
    MESSAGE = "message"

    def __str__(self) -> str:
        return self.value


_KINDS: dict[type, EventKind] = {
    ToolCall: EventKind.TOOL_CALL,
    ModelCall: EventKind.MODEL_CALL,
    ToolResult: EventKind.TOOL_RESULT,
    AgentMessage: EventKind.MESSAGE,
}


def event_kind(event: Event) -> EventKind:
    """The kind of ``event`` (``TypeError`` for something that is not a guard event)."""
    kind = _KINDS.get(type(event))
    if kind is None:
        for cls, found in _KINDS.items():
            if isinstance(event, cls):
                return found
        raise TypeError(f"not a guard event: {type(event).__name__}")
    return kind


@dataclass(frozen=True, slots=True)
class Subscription:
    """A listener that hears only the events of ``kinds`` (see :func:`subscribe`)."""

    listener: Callable[[Any, Decision], None]
    kinds: frozenset[EventKind]

    def __call__(self, event: Event, decision: Decision) -> None:
        """Pass ``event`` and its decision on when the event is of a subscribed kind."""
        if _KINDS.get(type(event)) in self.kinds or (
            type(event) not in _KINDS and event_kind(event) in self.kinds
        ):
            self.listener(event, decision)


def subscribe(
    listener: Callable[[Any, Decision], None],
    *kinds: EventKind | str,
) -> Subscription:
    """``listener`` for the events of ``kinds`` only (default: ``"tool_call"``, the
    decisions on tool calls); pass the result in ``Guard(listeners=[...])``."""
    chosen = _kinds(kinds or (EventKind.TOOL_CALL,))
    if not callable(listener):
        raise TypeError(f"a listener must be callable, found {type(listener).__name__}")
    return Subscription(listener, chosen)


def _kinds(kinds: Iterable[EventKind | str]) -> frozenset[EventKind]:
    found = set()
    for k in kinds:
        try:
            found.add(EventKind(k))
        except ValueError:
            allowed = ", ".join(e.value for e in EventKind)
            raise ValueError(f"unknown event kind {k!r}; expected one of {allowed}") from None
    return frozenset(found)


__all__ = ["EventKind", "Subscription", "event_kind", "subscribe"]
