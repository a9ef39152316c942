"""The drivers that run the gate's sans-IO flows, sync and async.

A flow is a generator yielding ``(name, args)`` operations (guard checks, store reads and
writes, ``interrupt``, journal marks); a driver performs each with the method of the same
name (its async twin prefers ``a<name>``) and sends the result back, as ``Guard`` does with
its own flows: the sync and the async path cannot drift apart. An operation that raises is
thrown into the flow at its ``yield``: a flow may handle it (the ledger does, once the tool
ran), else it goes on up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .._approvals import EditReader
from .._decision import Decision
from .._events import Event, ModelCall, ToolCall, ToolResult
from ._hitl import ask
from ._where import Where

if TYPE_CHECKING:
    from ..guard import Guard
    from ..rollback import Journal

Op = tuple[str, tuple[Any, ...]]
"""One operation a flow yields: the driver method's name and its arguments."""


class _Gate(Protocol):
    """What a driver needs of the gate whose flows it runs (``_gate.Gate`` is one): the
    guard to ask, and the journal to write to. A protocol, so that this module does not
    import the gate that imports it."""

    guard: Guard
    journal: Journal | None


class _Driver:
    """Runs a gate flow: each yielded op is a method of the same name here."""

    def __init__(self, gate: _Gate) -> None:
        self.gate = gate
        self.guard = gate.guard
        self.store = gate.guard.store

    def run(self, flow: Generator[Op, Any, Any]) -> Any:
        try:
            op = next(flow)
            while True:
                name, args = op
                try:
                    result = getattr(self, name)(*args)
                except Exception as exc:  # the flow may handle it (or it goes on up)
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value

    def interrupt(
        self, payload: Mapping[str, Any], read: Callable[[Any], Any] | None = None
    ) -> Any:
        """LangGraph's ``interrupt``; ``read`` turns the resume value into what the flow
        gets (raising for one it cannot read: see :func:`._hitl.ask`)."""
        return ask(payload, read)

    def decide(self, call: ToolCall, edits: EditReader | None = None) -> Decision:
        return self.guard.decide(call, edits=edits)

    def check(self, call: Event) -> Decision:
        return self.guard.check(call)

    def resolve(
        self, call: ToolCall, asked: Decision, value: Any, edits: EditReader | None = None
    ) -> Decision:
        return self.guard.resolve(call, asked, value, edits=edits)

    def expire(self, call: ToolCall, asked: Decision, why: str) -> Decision:
        return self.guard.expire(call, asked, why)

    def refuse(self, call: ToolCall, rule: str, reason: str, extra: Mapping[str, Any]) -> Decision:
        return self.guard.refuse(call, rule, reason, **extra)

    def release(self, decision: Decision) -> None:
        self.guard.release(decision)

    def controls(self, call: ToolCall) -> Decision:
        return self.guard.check(ModelCall(agent=call.agent, thread_id=call.thread_id))

    def record(self, result: ToolResult) -> None:
        self.guard.record(result)

    def get(self, key: str) -> Any:
        return self.store.get(key)

    def put(self, key: str, value: Any) -> None:
        self.store.put(key, value)

    def delete(self, key: str) -> None:
        self.store.delete(key)

    def put_if(self, key: str, value: Any, expected: Any) -> bool:
        return self.store.put_if(key, value, expected=expected)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def violation(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        self.gate.journal.mark_violation(**_violation_fields(call, where, decision))

    def safe_point(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        self.gate.journal.mark_safe_point(**_safe_point_fields(call, where, decision))

    def effect(self, call: ToolCall, where: Where, data: Mapping[str, Any]) -> None:
        assert self.gate.journal is not None
        assert where.thread_id is not None
        self.gate.journal.record_effect(
            where.thread_id, where.checkpoint_id, where.checkpoint_ns, call, data
        )


class _AsyncDriver(_Driver):
    async def arun(self, flow: Generator[Op, Any, Any]) -> Any:
        try:
            op = next(flow)
            while True:
                name, args = op
                method = getattr(self, "a" + name, None)
                try:
                    result = await method(*args) if method else getattr(self, name)(*args)
                except Exception as exc:
                    op = flow.throw(exc)
                    continue
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value

    async def adecide(self, call: ToolCall, edits: EditReader | None = None) -> Decision:
        return await self.guard.adecide(call, edits=edits)

    async def acheck(self, call: Event) -> Decision:
        return await self.guard.acheck(call)

    async def aresolve(
        self, call: ToolCall, asked: Decision, value: Any, edits: EditReader | None = None
    ) -> Decision:
        return await self.guard.aresolve(call, asked, value, edits=edits)

    async def aexpire(self, call: ToolCall, asked: Decision, why: str) -> Decision:
        return await self.guard.aexpire(call, asked, why)

    async def arefuse(
        self, call: ToolCall, rule: str, reason: str, extra: Mapping[str, Any]
    ) -> Decision:
        return await self.guard.arefuse(call, rule, reason, **extra)

    async def arelease(self, decision: Decision) -> None:
        await self.guard.arelease(decision)

    async def acontrols(self, call: ToolCall) -> Decision:
        return await self.guard.acheck(ModelCall(agent=call.agent, thread_id=call.thread_id))

    async def arecord(self, result: ToolResult) -> None:
        await self.guard.arecord(result)

    async def aget(self, key: str) -> Any:
        return await self.store.aget(key)

    async def aput(self, key: str, value: Any) -> None:
        await self.store.aput(key, value)

    async def adelete(self, key: str) -> None:
        await self.store.adelete(key)

    async def aput_if(self, key: str, value: Any, expected: Any) -> bool:
        return await self.store.aput_if(key, value, expected=expected)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def aviolation(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        await self.gate.journal.amark_violation(**_violation_fields(call, where, decision))

    async def asafe_point(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        await self.gate.journal.amark_safe_point(**_safe_point_fields(call, where, decision))

    async def aeffect(self, call: ToolCall, where: Where, data: Mapping[str, Any]) -> None:
        assert self.gate.journal is not None
        assert where.thread_id is not None
        await self.gate.journal.arecord_effect(
            where.thread_id, where.checkpoint_id, where.checkpoint_ns, call, data
        )


def _violation_fields(call: ToolCall, where: Where, decision: Decision) -> dict[str, Any]:
    return {
        "thread_id": where.thread_id,
        "checkpoint_id": where.checkpoint_id,
        "checkpoint_ns": where.checkpoint_ns,
        "agent": call.agent,
        "tool": call.tool,
        "rule": decision.rule,
        "reason": decision.reason,
    }


def _safe_point_fields(call: ToolCall, where: Where, decision: Decision) -> dict[str, Any]:
    return {
        "thread_id": where.thread_id,
        "checkpoint_id": where.checkpoint_id,
        "checkpoint_ns": where.checkpoint_ns,
        "step": where.step,
        "agent": call.agent,
        "tool": call.tool,
        "reason": f"before {call.tool!r} ({decision.effect}: {decision.rule})",
    }


def drivers(gate: _Gate) -> tuple[_Driver, _AsyncDriver]:
    return _Driver(gate), _AsyncDriver(gate)


class NeedsPerson(Exception):
    """Raised by a deferring driver where a flow would interrupt (internal)."""


class _Deferring(_Driver):
    def interrupt(
        self, payload: Mapping[str, Any], read: Callable[[Any], Any] | None = None
    ) -> Any:
        raise NeedsPerson


class _AsyncDeferring(_AsyncDriver):
    def interrupt(
        self, payload: Mapping[str, Any], read: Callable[[Any], Any] | None = None
    ) -> Any:
        raise NeedsPerson


def deferring_drivers(gate: _Gate) -> tuple[_Driver, _AsyncDriver]:
    """Drivers that stop a flow where it would interrupt, raising ``NeedsPerson``."""
    return _Deferring(gate), _AsyncDeferring(gate)
