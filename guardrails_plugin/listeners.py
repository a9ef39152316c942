"""Listeners by kind of event: subscribe to the decisions on tool calls alone.

A guard tells its ``listeners`` about everything it checks, as ``listener(event,
decision)``: decisions on tool calls, but also the kill-switch check before every model call
(a ``ModelCall``), every tool result it records (a ``ToolResult``) and every message agents
pass (an ``AgentMessage``). A listener that wants only some of these subscribes to them::

    from guardrails_plugin import Guard, subscribe

    guard = Guard(policy, listeners=[subscribe(print_denials, "tool_call")])

Plain listeners keep receiving everything they received before: decisions on calls,
results and messages. What a model answer used (a ``ModelUsage``, recorded with
``Guard.record_usage``) reaches only the listeners that ask for it, by subscribing to
``"model_usage"`` or by having a ``kinds`` set that holds it (the ``Shadow`` listener does):
it is not a decision, and most listeners would have no use for one per model answer.
:func:`event_kind` names the kind of any event.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ._decision import Decision
from ._events import AgentMessage, Event, ModelCall, ModelUsage, ToolCall, ToolResult


class EventKind(enum.StrEnum):
    """What a guard checked: a tool call (a decision on it, approvals and refusals too), a
    model call (the kill-switch check before it), a tool result (recorded for data flow,
    budgets and the cascade monitor), or a message between agents; or what a model answer
    used (recorded for model budgets; heard only by listeners that ask for it)."""

    TOOL_CALL = "tool_call"
    MODEL_CALL = "model_call"
    TOOL_RESULT = "tool_result"
    MESSAGE = "message"
    MODEL_USAGE = "model_usage"

    def __str__(self) -> str:
        return self.value


_KINDS: dict[type, EventKind] = {
    ToolCall: EventKind.TOOL_CALL,
    ModelCall: EventKind.MODEL_CALL,
    ToolResult: EventKind.TOOL_RESULT,
    AgentMessage: EventKind.MESSAGE,
    ModelUsage: EventKind.MODEL_USAGE,
}


def event_kind(event: Event | ModelUsage) -> EventKind:
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

    def __call__(self, event: Event | ModelUsage, decision: Decision) -> None:
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


def hears_usage(listener: object) -> bool:
    """Whether ``listener`` asked for model usage: a ``kinds`` set holding
    ``"model_usage"`` (a :class:`Subscription` to it, or a listener such as ``Shadow``)."""
    kinds = getattr(listener, "kinds", None)
    return isinstance(kinds, (set, frozenset)) and EventKind.MODEL_USAGE in kinds


def tell_usage(
    listeners: Iterable[Callable[..., None]], usage: ModelUsage, decision: Decision
) -> None:
    """Give ``usage`` and what recording it decided to the listeners that asked for it."""
    for listener in listeners:
        if hears_usage(listener):
            listener(usage, decision)


def _kinds(kinds: Iterable[EventKind | str]) -> frozenset[EventKind]:
    found = set()
    for k in kinds:
        try:
            found.add(EventKind(k))
        except ValueError:
            allowed = ", ".join(e.value for e in EventKind)
            raise ValueError(f"unknown event kind {k!r}; expected one of {allowed}") from None
    return frozenset(found)


__all__ = ["EventKind", "Subscription", "event_kind", "hears_usage", "subscribe"]
