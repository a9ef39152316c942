"""Hand-offs between agents, as the cascade monitor sees them.

A hand-off tool (langgraph-supervisor, langgraph-swarm, or anyone's tool whose metadata names
a destination) is checked as a call carrying the message it hands on; a worker's hand-back
(over a plain edge) is reported from the messages that show it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from .._events import AgentMessage, ToolCall
from ..guard import Guard
from ._causal import ACTIVATION, INBOX

HANDOFFS_SEEN: contextvars.ContextVar[dict[str, AgentMessage] | None] = contextvars.ContextVar(
    "guardrails_handoffs_seen", default=None
)
"""Set by ``guard_node`` while its node runs: hand-off tools decided inside the node add
their destination and message, so the node does not report the same hand-off to the
cascade monitor a second time when it surfaces as the node's ``Command``, and its
recipient reports it under the same id."""

HANDOFF_DESTINATION = "__handoff_destination"
"""Tool metadata naming the agent a hand-off tool transfers to (langgraph-supervisor,
langgraph-swarm, and anyone's own tools that set it)."""


def handoff_call(
    call: ToolCall, recipient: str, content: str, guard: Guard, message_id: str | None = None
) -> ToolCall:
    """``call`` carrying the message it hands to ``recipient``: the guard's cascade monitor
    sees it (with its provenance) when the call is checked."""
    message = handoff_message(
        call.agent,
        recipient,
        content,
        guard,
        run_id=call.run_id,
        thread_id=call.thread_id,
        step=call.step,
        message_id=message_id or call.call_id,
    )
    return ToolCall(
        call.tool,
        call.args if call.readable else call.raw_args,
        agent=call.agent,
        call_id=call.call_id,
        run_id=call.run_id,
        thread_id=call.thread_id,
        step=call.step,
        raw_args=call.raw_args,
        message=message,
        problem=call.problem,
    )


def handoff_message(
    sender: str,
    recipient: str,
    content: str,
    guard: Guard,
    *,
    run_id: str | None,
    thread_id: str | None,
    step: int | None,
    message_id: str | None,
) -> AgentMessage:
    """The message ``sender`` hands to ``recipient`` (its provenance, its causal parent: the
    wrapped node it is sent from, else the run's inbox), recorded as delivered. A hand-off's
    call is built once with it (``guard_node``), or copied with it (``handoff_call``)."""
    scope = thread_id or run_id or "-"
    monitor = guard.cascade
    path = monitor.provenance(scope, sender) if monitor is not None else ()
    act = ACTIVATION.get()  # the wrapped node this runs in: the message's causal parent
    parent, generation = (
        (act.parent, act.generation) if act is not None else INBOX.started(scope, sender, run_id)
    )
    message = AgentMessage(
        sender,
        recipient,
        content,
        run_id=run_id,
        thread_id=thread_id,
        step=step,
        path=path,
        id=message_id,
        parent=parent,
        generation=generation,
    )
    INBOX.delivered(scope, message)
    return message


def destination(tool: Any) -> str | None:
    """The agent a hand-off tool transfers to, from its metadata; None for other tools."""
    meta = getattr(tool, "metadata", None)
    target = meta.get(HANDOFF_DESTINATION) if isinstance(meta, Mapping) else None
    return target if isinstance(target, str) and target else None


def text_of(message: Any) -> str:
    """The text of a message (string content, or the text parts of a list)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, str) or (isinstance(p, Mapping) and p.get("type") == "text")
        )
    return ""


def said_with(state: Any, call_id: str | None) -> str:
    """What the AI message that made tool call ``call_id`` says: its text, else its call."""
    return _made(state, call_id)[0]


def _made(state: Any, call_id: str | None) -> tuple[str, int | None]:
    """``said_with``, and the position in the thread's messages of the AI message that
    made the call (``None`` when not found)."""
    messages = state.get("messages") if isinstance(state, Mapping) else state
    if not isinstance(messages, list):
        messages = getattr(state, "messages", None)
        if not isinstance(messages, list):
            return "", None
    for i in range(len(messages) - 1, -1, -1):
        m = messages[i]
        if isinstance(m, AIMessage):
            for tc in m.tool_calls:
                if tc.get("id") == call_id:
                    return text_of(m) or f"{tc.get('name')}({tc.get('args')})", i
    return "", None


def with_destination(call: ToolCall, tool: Any, state: Any, guard: Guard) -> ToolCall:
    """``call`` as a hand-off when ``tool`` is a hand-off tool, else unchanged. Marks the
    destination seen for an enclosing ``guard_node``."""
    target = destination(tool)
    if target is None:
        return call
    handback(state, call, guard)  # the answer that gave the agent its turn: the parent
    said, at = _made(state, call.call_id)
    # The message's id: the call's id, which the model chose, qualified by where the call
    # stands in the thread (which the graph decides): a model that repeats one tool-call id
    # every round must not make each round's hand-off a duplicate the monitor drops. A task
    # re-run on resume sees the same messages: the same id, counted once.
    mid = None if at is None or call.call_id is None else f"{call.call_id}@{at}"
    call = handoff_call(call, target, said, guard, message_id=mid)
    seen = HANDOFFS_SEEN.get()
    if seen is not None and call.message is not None:
        seen[target] = call.message
    return call


HANDOFF_BACK = "__is_handoff_back"
"""Response metadata langgraph-supervisor puts on the message pair it adds when a worker's
turn ends and control goes back to the supervisor (over a plain edge, not a tool call)."""
_HANDBACK_LOOKBACK = 24


def handback(state: Any, call: ToolCall, guard: Guard) -> AgentMessage | None:
    """The worker's hand-back that gave ``call``'s agent the turn, if the messages show one
    (langgraph-supervisor's hand-back pair): the cascade monitor must see the answer going
    back too, or a supervisor/worker loop looks one-way. None when a user's message came
    after it (a new turn: the user, not the answer, gave the agent its turn; the answer
    that ended the previous turn goes unreported). Looks at the last few messages only;
    the hand-back's tool-call id makes every report of it count once."""
    if guard.cascade is None or call.call_id is None:
        return None
    messages = state.get("messages") if isinstance(state, Mapping) else state
    if not isinstance(messages, list):
        messages = getattr(state, "messages", None)
        if not isinstance(messages, list):
            return None
    lo = max(0, len(messages) - _HANDBACK_LOOKBACK)
    mine = None
    for i in range(len(messages) - 1, lo - 1, -1):
        m = messages[i]
        if isinstance(m, AIMessage) and any(tc.get("id") == call.call_id for tc in m.tool_calls):
            mine = i
            break
    if mine is None:
        return None
    for i in range(mine - 1, lo - 1, -1):
        m = messages[i]
        if not isinstance(m, AIMessage):
            if isinstance(m, HumanMessage):
                return None  # a user's turn since: the user gave the agent its turn
            continue
        if not (m.response_metadata or {}).get(HANDOFF_BACK):
            if m.name == call.agent:
                continue  # the agent's own earlier turns since the hand-back
            return None
        worker = m.name
        if not worker or worker == call.agent or not m.tool_calls:
            return None
        act = ACTIVATION.get()
        if act is not None and worker in act.senders:
            return None  # the enclosing guard_node reported it as the node's arrival
        mid = f"handback:{m.tool_calls[0].get('id')}"
        told = INBOX.told(call.scope_key, mid)
        if told is not None:  # built already (for the hand-off's parent): the same message
            return told
        said = ""
        for j in range(i - 1, lo - 1, -1):
            before = messages[j]
            if isinstance(before, AIMessage) and before.name == worker:
                said = text_of(before)
                if said:
                    break
        monitor = guard.cascade
        parent, generation = INBOX.started(call.scope_key, worker, call.run_id)
        message = AgentMessage(
            worker,
            call.agent,
            said,
            run_id=call.run_id,
            thread_id=call.thread_id,
            step=call.step,
            path=monitor.provenance(call.scope_key, worker),
            id=mid,
            parent=parent,
            generation=generation,
        )
        INBOX.delivered(call.scope_key, message)
        return message
    return None
