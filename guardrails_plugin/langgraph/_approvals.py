"""The caller's side of an approval interrupt: read what waits, answer it with a Command.

out = graph.invoke(inputs, config)
for request in approval_requests(out):           # or approval_requests(graph, config)
    print(request.agent, request.tool, request.args, request.reason)
graph.invoke(answer(out, {request.call_id: Approval.approve()}), config)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.types import Command, Interrupt, StateSnapshot

from .._approvals import Answer, Approval, ApprovalRequest
from .._decision import Decision, Effect
from .._events import ToolCall


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """One guarded call waiting for a person (the payload of a guard ``interrupt``)."""

    interrupt_id: str
    call_id: str | None
    agent: str
    tool: str
    args: Mapping[str, Any]
    rule: str
    reason: str
    allowed: tuple[Answer, ...]
    thread_id: str | None = None
    asked_at: float | None = None
    expires_at: float | None = None
    payload: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def request(self) -> ApprovalRequest:
        """The same question as an ``ApprovalRequest``: what approvers (``ConsoleApprover``,
        ``QueueApprover``, your own) take."""
        call = ToolCall(
            self.tool, self.args, agent=self.agent, call_id=self.call_id, thread_id=self.thread_id
        )
        asked = Decision(Effect.ASK, self.rule, self.reason, tool=self.tool, agent=self.agent)
        return ApprovalRequest(call, asked, allowed=self.allowed)

    @classmethod
    def from_interrupt(cls, item: Interrupt) -> list[PendingApproval]:
        """The approvals a guard interrupt asks for: one (``"approval"``), several of one
        step (``"approvals"``), or none (another interrupt)."""
        value = item.value
        if not isinstance(value, Mapping):
            return []
        if value.get("type") == "approval":
            return [cls._one(item.id, value)]
        if value.get("type") == "approvals":
            return [
                cls._one(item.id, request)
                for request in value.get("requests", ())
                if isinstance(request, Mapping)
            ]
        return []

    @classmethod
    def _one(cls, interrupt_id: str, value: Mapping[str, Any]) -> PendingApproval:
        return cls(
            interrupt_id=interrupt_id,
            call_id=value.get("call_id"),
            agent=str(value.get("agent")),
            tool=str(value.get("tool")),
            args=dict(value.get("args") or {}),
            rule=str(value.get("rule")),
            reason=str(value.get("reason")),
            allowed=tuple(Answer(a) for a in value.get("allowed_decisions", ())),
            thread_id=value.get("thread_id"),
            asked_at=value.get("asked_at"),
            expires_at=value.get("expires_at"),
            payload=dict(value),
        )


def _interrupts(source: Any, config: Any = None) -> list[Interrupt]:
    if config is not None:  # a graph and a config: what waits on that thread
        state = source.get_state(config, subgraphs=True)
        return _from_state(state)
    # A ``StateSnapshot`` is a named tuple: read it as a snapshot before the iterable case,
    # which would look for ``Interrupt`` items among its fields and find none.
    if isinstance(source, StateSnapshot):
        return _from_state(source)
    if isinstance(source, Mapping):  # an invoke() result
        return list(source.get("__interrupt__", ()))
    if isinstance(source, Interrupt):
        return [source]
    if isinstance(source, Iterable) and not isinstance(source, str | bytes):
        return [i for i in source if isinstance(i, Interrupt)]
    raise TypeError(
        "expected an invoke() result, Interrupts, a StateSnapshot, or a graph and its config; "
        f"found {type(source).__name__}"
    )


def _from_state(state: Any) -> list[Interrupt]:
    found: dict[str, Interrupt] = {i.id: i for i in getattr(state, "interrupts", ())}
    for task in getattr(state, "tasks", ()):
        for i in task.interrupts:
            found.setdefault(i.id, i)
        if isinstance(task.state, StateSnapshot):  # else a config, or None: not fetched
            for i in _from_state(task.state):
                found.setdefault(i.id, i)
    return list(found.values())


def approval_requests(source: Any, config: Any = None) -> list[PendingApproval]:
    """The approvals a run waits for: pass an ``invoke`` result, a list of ``Interrupt``, a
    ``StateSnapshot``, or a graph and its config (subgraph interrupts included)."""
    return [p for i in _interrupts(source, config) for p in PendingApproval.from_interrupt(i)]


def answer(source: Any, answers: Mapping[str, Any] | Any, config: Any = None) -> Command[Any]:
    """A ``Command(resume=...)`` answering the guard's interrupts in ``source``.

    ``answers`` maps call ids to an ``Approval`` (or a bool, or a dict such as
    ``{"type": "edit", "args": {...}}``); a single value answers every pending approval.
    Pause interrupts are resumed too (the pause itself must be lifted with
    ``Controls.resume``, or the run stops again at once). An approval left unanswered stays
    pending; a call id that is not pending raises ``KeyError``.
    """
    interrupts = _interrupts(source, config)
    resume: dict[str, Any] = {}
    where: dict[str | None, PendingApproval] = {}
    bundles: set[str] = set()
    for item in interrupts:
        value = item.value
        if isinstance(value, Mapping) and value.get("type") == "paused":
            resume[item.id] = True
        if isinstance(value, Mapping) and value.get("type") == "approvals":
            bundles.add(item.id)
        for pending in PendingApproval.from_interrupt(item):
            where[pending.call_id] = pending
    if isinstance(answers, Mapping) and not _looks_like_answer(answers):
        unknown = [c for c in answers if c not in where]
        if unknown:
            raise KeyError(
                f"no pending approval for call {unknown[0]!r}; pending: {sorted(map(str, where))}"
            )
        chosen = {c: _plain(v) for c, v in answers.items()}
    else:
        chosen = dict.fromkeys(where, _plain(answers))
    for call_id, value in chosen.items():
        interrupt_id = where[call_id].interrupt_id
        if interrupt_id in bundles:  # one interrupt for several calls: answers by call id
            resume.setdefault(interrupt_id, {})[str(call_id)] = value
        else:
            resume[interrupt_id] = value
    return Command(resume=resume)


def _looks_like_answer(value: Mapping[str, Any]) -> bool:
    return "type" in value or "answer" in value or "decisions" in value


def _plain(value: Any) -> Any:
    """A resume value that survives any checkpointer's serializer: a plain dict."""
    approval = Approval.parse(value)
    doc: dict[str, Any] = {"type": str(approval.answer)}
    if approval.args is not None:
        doc["args"] = dict(approval.args)
    if approval.replace:
        doc["replace"] = True
    if approval.tool is not None:
        doc["tool"] = approval.tool
    if approval.message:
        doc["message"] = approval.message
    if approval.approver:
        doc["approver"] = approval.approver
    return doc


def answer_with(
    source: Any, approver: Callable[[ApprovalRequest], Any], config: Any = None
) -> Command[Any]:
    """Ask ``approver`` (e.g. ``ConsoleApprover()``) about every pending approval in
    ``source`` and return the ``Command`` that resumes the graph with its answers."""
    answers = {p.call_id: approver(p.request) for p in approval_requests(source, config)}
    return answer(source, answers, config)


async def aanswer_with(
    source: Any, approver: Callable[[ApprovalRequest], Any], config: Any = None
) -> Command[Any]:
    """:func:`answer_with` for async approvers (``QueueApprover``); sync ones work too.
    Pending approvals are asked concurrently."""
    pending = approval_requests(source, config)

    async def ask(p: PendingApproval) -> Any:
        value = approver(p.request)
        return await value if inspect.isawaitable(value) else value

    values = await asyncio.gather(*(ask(p) for p in pending))
    return answer(source, {p.call_id: v for p, v in zip(pending, values, strict=True)}, config)
