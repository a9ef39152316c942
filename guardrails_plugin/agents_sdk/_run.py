"""What the OpenAI Agents SDK adapter keeps about a run: in memory, the decisions waiting
for the next step of their call; in the store, the calls waiting for a person
(``agents-sdk/pending/<thread>/<call id>``) and the approved or rejected calls already taken
(``agents-sdk/done/<thread>/<call id>``), which make an approval apply exactly once; the calls
the SDK showed a person because the tool's own ``needs_approval`` asked
(``agents-sdk/shown/<thread>/<call id>``); the ask rules a person answered with the SDK's
"always approve" (``agents-sdk/always/<thread or run>/<agent>/<tool>``, a set of rule ids)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.items import ToolApprovalItem

from .._decision import Decision
from .._events import AgentMessage, ToolCall

PENDING = "agents-sdk/pending/"
DONE = "agents-sdk/done/"
SHOWN = "agents-sdk/shown/"
ALWAYS = "agents-sdk/always/"


@dataclass
class Ticket:
    """A decision waiting for the next step of its call (guardrail, then invoker)."""

    call: ToolCall
    decision: Decision
    params: Any = None
    raw: str | None = None
    """The argument string the decision was made for (checked at the invoker)."""
    send: str | None = None
    """The argument string the tool gets (the edited arguments for an edit)."""


@dataclass
class Run:
    """What the adapter keeps about one SDK run (one ``RunContextWrapper``) in memory."""

    run_id: str
    thread_id: str | None
    decided: dict[str, Ticket] = field(default_factory=dict)
    tickets: dict[str, Ticket] = field(default_factory=dict)
    said: dict[str, str] = field(default_factory=dict)
    calls: dict[str, dict[str, str]] = field(default_factory=dict)
    started_by: AgentMessage | None = None
    sent: Any = None
    """What the current model turn was sent (for a token estimate when no usage comes back)."""
    stopped: Decision | None = None
    """A call the kill switch stopped since the last model turn: the run must not end as if
    nothing happened (``tool_use_behavior`` may end it without another model turn)."""

    @property
    def scope(self) -> str:
        return self.thread_id or "-"


def pending_key(scope: str, call_id: str | None) -> str:
    return f"{PENDING}{scope}/{call_id}"


def done_key(scope: str, call_id: str | None) -> str:
    return f"{DONE}{scope}/{call_id}"


def shown_key(scope: str, call_id: str | None) -> str:
    return f"{SHOWN}{scope}/{call_id}"


def always_key(run: Run, agent: str, tool: str) -> str:
    """Where the ask rules answered "always" for ``agent``'s ``tool`` are kept: per thread,
    else per run (as the SDK keeps the approval, in the run's state)."""
    return f"{ALWAYS}{run.thread_id or run.run_id}/{agent}/{tool}"


def call_doc(call: ToolCall) -> dict[str, Any]:
    return {
        "tool": call.tool,
        "args": json.loads(json.dumps(dict(call.args), default=repr)),
        "agent": call.agent,
        "call_id": call.call_id,
        "thread_id": call.thread_id,
    }


def call_from_doc(doc: Mapping[str, Any], run: Run) -> ToolCall:
    return ToolCall(
        str(doc.get("tool")),
        doc.get("args") or {},
        agent=str(doc.get("agent")),
        call_id=doc.get("call_id"),
        run_id=run.run_id,
        thread_id=run.thread_id,
    )


def item_call_id(item: ToolApprovalItem) -> str:
    raw = item.raw_item
    call_id = raw.get("call_id") if isinstance(raw, Mapping) else getattr(raw, "call_id", None)
    if not isinstance(call_id, str) or not call_id:
        raise ValueError(f"the approval item has no call id: {item!r}")
    return call_id
