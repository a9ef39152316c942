"""Denies the LangGraph gate finds are decisions of the engine: a held call a person refuses,
a call refused as in doubt (rule ``exactly-once``), a call changed after its decision (rule
``changed-after-decision``). Each is in the audit log, seen by the listeners, and leaves the
budget as it should be (the decision's charge given back where the call did not run), sync
and async, through real ``create_agent`` agents and ``StateGraph`` graphs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fakes import Ran, recording_tool, tool_messages, user
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_apps import tool_graph

from guardrails_plugin import (
    Budget,
    Decision,
    Effect,
    Event,
    Guard,
    ModelCall,
    Policy,
    RunKilled,
    ToolCall,
    ToolCallDenied,
    allow,
    ask,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import answer
from guardrails_plugin.langgraph._ledger import DONE_PREFIX, _claim_doc
from guardrails_plugin.store import MemoryStore
from guardrails_plugin.testing import ScriptedChatModel, tool_call

MODES = ["sync", "async"]
THREAD = "t-1"
CONFIG: Any = {"configurable": {"thread_id": THREAD}}


def run(agent: Any, value: Any, mode: str) -> Any:
    if mode == "async":
        return asyncio.run(agent.ainvoke(value, CONFIG))
    return agent.invoke(value, CONFIG)


def guarded(tmp_path: Path, store: Any = None) -> tuple[Guard, AuditLog, list[Decision]]:
    """A guard with an audit log, a listener and a budget of one ``pay`` per thread."""
    seen: list[Decision] = []

    def listener(event: Event, decision: Decision) -> None:
        seen.append(decision)

    log = AuditLog(tmp_path / "audit.db")
    policy = Policy([allow("pay")], budgets=[Budget.calls(1, tools="pay", per=("thread",))])
    guard = Guard(policy, store=store, audit=log, listeners=[listener])
    return guard, log, seen


def denies(log: AuditLog, rule: str) -> list[Any]:
    return [r for r in log if r.outcome == "deny" and r.rule == rule]


def allowed_rule(guard: Guard) -> str:
    return guard.policy.rules[0].id


def one_call_left(guard: Guard) -> bool:
    """Whether exactly the thread's one ``pay`` is free: given back, and only once (real
    checks: the first is allowed, the second exhausts the budget)."""
    probe = ToolCall("pay", {"amount": 1}, agent="probe", thread_id=THREAD)
    first, second = guard.check(probe), guard.check(probe)
    return first.effect is not Effect.DENY and (second.effect, second.kind) == (
        Effect.DENY,
        "budget",
    )


# -- a held call a person refuses -------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_held_call_a_person_refuses_is_an_audited_decision(tmp_path: Path, mode: str) -> None:
    guard, log, seen = guarded(tmp_path)
    ran: Ran = []
    pay = recording_tool("pay", ran, "amount", returns="paid")
    model = ScriptedChatModel([tool_call("pay", amount=5), "stopped"])
    agent = create_agent(
        model, [pay], middleware=[GuardMiddleware(guard)], checkpointer=InMemorySaver()
    )
    paused: list[bool] = []

    def operator(event: Event, decision: Decision) -> None:  # pauses once the model has asked
        if isinstance(event, ModelCall) and not paused:
            paused.append(True)
            guard.controls.pause(thread=THREAD, reason="looking into it")

    guard.listeners.append(operator)

    out = run(agent, user("pay"), mode)
    (held,) = out["__interrupt__"]
    assert held.value["type"] == "paused"
    assert held.value["tool"] == "pay"
    guard.controls.resume(thread=THREAD)
    out = run(agent, Command(resume={"answer": "reject", "message": "not today"}), mode)

    assert ran == []
    (message,) = tool_messages(out)
    assert "a person refused the held call: not today" in message.text
    (record,) = denies(log, "pause")
    assert record.tool == "pay"
    assert "not today" in record.reason
    assert [d.rule for d in seen if d.effect is Effect.DENY and d.tool == "pay"] == ["pause"]
    assert log.verify().ok
    assert one_call_left(guard)  # a held call took no budget


# -- a call refused as in doubt ---------------------------------------------------------------


class DiedHoldingTheClaim(MemoryStore):
    """A store where another attempt claimed every call first and then died (it holds the
    claim, without a result): the race the exactly-once claim exists for."""

    def put_if(self, key: str, value: Any, *, expected: Any) -> bool:
        if key.startswith(DONE_PREFIX) and expected is None and isinstance(value, dict):
            super().put(key, {"tool": value.get("tool"), "claim": _claim_doc(0.0)})
            return False
        return super().put_if(key, value, expected=expected)

    async def aput_if(self, key: str, value: Any, *, expected: Any) -> bool:
        return self.put_if(key, value, expected=expected)


@pytest.mark.parametrize("mode", MODES)
def test_a_call_in_doubt_is_an_audited_decision_that_gives_its_charge_back(
    tmp_path: Path, mode: str
) -> None:
    guard, log, seen = guarded(tmp_path, DiedHoldingTheClaim())
    ran: Ran = []
    pay = recording_tool("pay", ran, "amount", returns="paid")
    graph = tool_graph(
        ScriptedChatModel([tool_call("pay", amount=5), "done"]),
        [pay],
        guard,
        checkpointer=InMemorySaver(),
    )

    with pytest.raises(ToolCallDenied) as caught:
        run(graph, user("pay"), mode)

    assert caught.value.decision.rule == "exactly-once"
    assert ran == []
    (record,) = denies(log, "exactly-once")
    assert record.tool == "pay"
    assert "may have run" in record.reason
    assert [(d.effect, d.rule) for d in seen if d.tool == "pay"] == [
        (Effect.ALLOW, allowed_rule(guard)),
        (Effect.DENY, "exactly-once"),
    ]
    assert one_call_left(guard)  # this attempt's charge given back: it ran nothing


# -- a call changed after its decision --------------------------------------------------------


class Rewrite(AgentMiddleware):  # type: ignore[type-arg]
    """A user's middleware inside the guard that changes the amount of the first call."""

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        return handler(self._change(request))

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        return await handler(self._change(request))

    @staticmethod
    def _change(request: Any) -> Any:
        return request.override(tool_call={**request.tool_call, "args": {"amount": 900}})


@pytest.mark.parametrize("mode", MODES)
def test_a_call_changed_after_its_decision_is_an_audited_decision(
    tmp_path: Path, mode: str
) -> None:
    guard, log, seen = guarded(tmp_path)
    ran: Ran = []
    pay = recording_tool("pay", ran, "amount", returns="paid")
    agent = create_agent(
        ScriptedChatModel([tool_call("pay", amount=5), "done"]),
        [pay],
        middleware=[GuardMiddleware(guard), Rewrite()],
        checkpointer=InMemorySaver(),
    )

    out = run(agent, user("pay"), mode)

    assert ran == []
    (message,) = tool_messages(out)
    assert message.status == "error"
    assert "changed-after-decision" in message.text
    (record,) = denies(log, "changed-after-decision")
    assert record.tool == "pay"
    assert "'amount'" in record.reason
    assert [(d.effect, d.rule) for d in seen if d.tool == "pay"] == [
        (Effect.ALLOW, allowed_rule(guard)),
        (Effect.DENY, "changed-after-decision"),
    ]
    assert log.verify().ok
    assert one_call_left(guard)  # the charge of the decision given back


# -- fail closed and the engine verb itself ---------------------------------------------------


class BrokenSink(AuditLog):
    def decision(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")


@pytest.mark.parametrize("mode", MODES)
def test_refuse_denies_even_when_the_audit_log_cannot_record_it(tmp_path: Path, mode: str) -> None:
    policy = Policy([allow("pay")], budgets=[Budget.calls(1, tools="pay", per=("thread",))])
    guard = Guard(policy)
    call = ToolCall("pay", {"amount": 5}, thread_id=THREAD)
    allowed = guard.check(call)
    assert allowed.allowed
    assert allowed.charges
    guard.audit = BrokenSink(tmp_path / "audit.db")  # the log breaks before the refusal

    if mode == "async":
        refused = asyncio.run(guard.arefuse(call, "my-rule", "found out", refund=allowed))
    else:
        refused = guard.refuse(call, "my-rule", "found out", refund=allowed)

    assert refused.effect is Effect.DENY
    assert refused.rule == "my-rule"
    assert refused.kind == "guard"
    assert not refused.charges
    guard.audit = None
    assert guard.check(call).allowed  # refunded once: the budget of one is free again
    assert not guard.check(call).allowed  # and only once


@pytest.mark.parametrize("mode", MODES)
def test_refuse_keeps_its_rule_when_the_refund_fails(mode: str) -> None:
    class FailingCharges(MemoryStore):
        broken = False

        def charge(self, *args: Any, **kwargs: Any) -> Any:
            if self.broken:
                raise OSError("store down")
            return super().charge(*args, **kwargs)

        async def acharge(self, *args: Any, **kwargs: Any) -> Any:
            return self.charge(*args, **kwargs)

    store = FailingCharges()
    policy = Policy([allow("pay")], budgets=[Budget.calls(1, tools="pay")])
    guard = Guard(policy, store=store)
    call = ToolCall("pay", {"amount": 5}, thread_id=THREAD)
    allowed = guard.check(call)
    store.broken = True

    if mode == "async":
        refused = asyncio.run(guard.arefuse(call, "my-rule", "found out", refund=allowed))
    else:
        refused = guard.refuse(call, "my-rule", "found out", refund=allowed)

    assert (refused.effect, refused.rule) == (Effect.DENY, "my-rule")
    assert "not given back" in refused.reason
    assert "store down" in refused.reason


# -- an approved call the kill switch stops ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_an_approved_call_a_kill_stops_is_an_audited_decision_of_that_call(
    tmp_path: Path, mode: str
) -> None:
    seen: list[tuple[Event, Decision]] = []
    log = AuditLog(tmp_path / "audit.db")
    policy = Policy([ask("pay")], budgets=[Budget.calls(1, tools="pay", per=("thread",))])
    guard = Guard(policy, audit=log, listeners=[lambda e, d: seen.append((e, d))])
    ran: Ran = []
    agent = create_agent(
        ScriptedChatModel([tool_call("pay", amount=5), "done"]),
        [recording_tool("pay", ran, "amount", returns="paid")],
        middleware=[GuardMiddleware(guard)],
        checkpointer=InMemorySaver(),
    )
    out = run(agent, user("pay"), mode)
    guard.controls.kill(thread=THREAD, reason="enough")

    with pytest.raises(RunKilled):
        run(agent, answer(out, True), mode)

    assert ran == []
    (record,) = [r for r in log if r.outcome == "deny" and r.tool == "pay"]
    assert record.kind == "control"
    assert "enough" in record.reason
    assert [(d.effect, d.kind) for e, d in seen if isinstance(e, ToolCall) and d.tool == "pay"][
        -1
    ] == (Effect.DENY, "control")
    assert log.verify().ok
    guard.controls.resume(thread=THREAD)
    assert one_call_left(guard)  # the approved call's charge given back, once
