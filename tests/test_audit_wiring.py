"""The audit log wired into the guard: what a real run leaves in it, and what happens when
it cannot be written.

``Guard(policy, audit=AuditLog(...))`` records every decision with the policy's version and
digest and the checkpoint the step started from; approvals with who answered; operator
actions on ``guard.controls`` with who did them; breaker trips with their evidence;
``Recovery(..., audit=...)`` its rollbacks. A decision the log cannot record does not go
ahead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes import tool_call, user
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_apps import tool_graph
from test_cascade_containment import LOOPED, ping_pong
from test_langgraph_rollback import Bank, banking, policy, runaway_script

from guardrails_plugin import (
    AgentMessage,
    Approval,
    Budget,
    Guard,
    MemoryStore,
    ModelCall,
    Policy,
    ToolCall,
    allow,
    ask,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.cascade import Breaker, CascadeMonitor, Cycles
from guardrails_plugin.langgraph import Recovery, answer, approval_requests
from guardrails_plugin.testing import ScriptedChatModel


@pytest.fixture(params=["audit.db", "audit.jsonl"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    with AuditLog(tmp_path / request.param) as opened:
        yield opened


def test_a_guarded_graph_run_is_recorded_with_policy_checkpoint_and_approver(log: Any) -> None:
    from langchain_core.tools import tool

    sent: list[str] = []

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an e-mail."""
        sent.append(to)
        return "sent"

    @tool
    def search(q: str) -> str:
        """Search."""
        return "found"

    guard = Guard(
        Policy([allow("search"), ask("send_email", id="mail-needs-ok")], version="7"),
        audit=log,
    )
    script = [
        tool_call("search", q="llamas", id="s1"),
        tool_call(
            "send_email", to="ops@example.com", body="api_key=sk-abcdefghijklmnopqrstuvwx", id="m1"
        ),
        "done",
    ]
    graph = tool_graph(
        ScriptedChatModel(script), [search, send_email], guard, checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": "t-1"}}
    out = graph.invoke(user("go"), config)
    [pending] = approval_requests(out)
    graph.invoke(answer(out, {pending.call_id: Approval.approve(approver="alice")}), config)
    assert sent == ["ops@example.com"]

    records = list(log.iter())
    kinds = [(r.kind, r.tool, r.outcome) for r in records]
    assert kinds == [
        ("decision", "search", "allow"),
        ("decision", "send_email", "ask"),
        ("approval", "send_email", "allow"),
    ]
    ask_record, approved = records[1], records[2]
    assert approved.approver == "alice"
    assert {r.policy for r in records} == {guard.policy_id}
    assert guard.policy_id.startswith("7:")
    assert ask_record.thread_id == "t-1"
    history = [s.config["configurable"]["checkpoint_id"] for s in graph.get_state_history(config)]
    assert ask_record.checkpoint_id in history  # the step can be found again (and rolled back to)
    assert "sk-abcdefghijklmnopqrstuvwx" not in str(ask_record.args)  # secrets redacted
    assert log.verify().ok


def test_model_calls_are_recorded_only_when_stopped(log: Any) -> None:
    guard = Guard(Policy([]), audit=log)
    assert guard.check(ModelCall(agent="a", thread_id="t")).allowed
    assert list(log.iter()) == []
    guard.controls.kill(thread="t", reason="runaway", by="bob")
    assert guard.check(ModelCall(agent="a", thread_id="t")).denied
    [kill, stopped] = list(log.iter())
    assert (kill.kind, kill.outcome, kill.approver, kill.thread_id) == (
        "control",
        "kill",
        "bob",
        "t",
    )
    assert (stopped.kind, stopped.outcome, stopped.rule) == ("control", "deny", "kill-switch")


def test_operator_actions_are_recorded_with_who_did_them(log: Any) -> None:
    guard = Guard(Policy([]), store=MemoryStore(), audit=log)
    guard.grant("scraper", "fetch_url")
    guard.controls.pause(thread="t-9", reason="looks odd", by="alice")
    guard.controls.resume(thread="t-9", by="alice")
    guard.controls.quarantine("scraper", reason="spreading", by="bob")
    guard.controls.resume(agent="scraper", by="bob")
    assert not guard.controls.resume(agent="nobody", by="bob")
    got = [(r.outcome, r.approver, r.agent, r.thread_id) for r in log.iter()]
    assert got == [
        ("pause", "alice", None, "t-9"),
        ("resume", "alice", None, "t-9"),
        ("quarantine", "bob", "scraper", None),
        ("resume", "bob", "scraper", None),
        ("resume-nothing", "bob", "nobody", None),
    ]
    quarantine = list(log.iter())[2]
    assert len(quarantine.detail["grants_revoked"]) == 1


def test_breaker_trips_are_recorded_with_their_evidence(log: Any) -> None:
    guard = Guard(
        Policy([]),
        cascade=CascadeMonitor([Cycles()]),
        breaker=Breaker({"cycles": "quarantine"}),
        audit=log,
    )
    ping_pong(guard, 6)
    trips = list(log.iter(kind="trip"))
    # the trip itself with its evidence, then the decision on the tripping message
    assert [(t.outcome, t.rule) for t in trips] == [
        ("quarantine", "cascade:cycles"),
        ("deny", "cascade:cycles"),
    ]
    trip = trips[0]
    assert trip.agent == "b"
    assert [e["sender"] for e in trip.detail["evidence"]] == ["a", "b", "a", "b", "a", "b"]
    assert trip.detail["evidence"][0]["content"] == LOOPED[:500]
    messages = list(log.iter(kind="decision"))
    assert len(messages) == 5  # the five hand-offs before it, allowed
    assert messages[0].detail["recipient"] == "b"


def test_a_rollback_is_recorded(tmp_path: Path, log: Any) -> None:
    bank = Bank(tmp_path / "bank.db")
    tools, compensations = banking(bank)
    store = MemoryStore()
    guard = Guard(policy(), store=store, audit=log)
    config: Any = {"configurable": {"thread_id": "t-1"}}
    graph = tool_graph(
        ScriptedChatModel(runaway_script()),
        tools,
        guard,
        checkpointer=InMemorySaver(),
        compensations=compensations,
    )
    graph.invoke(user("pay the vendor"), config)
    report = Recovery(graph, store, compensations, audit=log).rollback(config)
    assert report.ok
    [rolled] = list(log.iter(kind="rollback"))
    assert (rolled.outcome, rolled.thread_id, rolled.checkpoint_id) == ("ok", "t-1", report.target)
    assert rolled.detail["undone"] == 1
    assert rolled.detail["restored"] is True
    assert log.verify().ok


class BrokenLog:
    """An audit log whose disk is full."""

    def decision(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    def append(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")


def test_a_decision_the_log_cannot_record_does_not_go_ahead_and_gives_its_budget_back() -> None:
    store = MemoryStore()
    guard = Guard(
        Policy([allow("search")], budgets=[Budget.calls(1, tools="search", per="run", id="one")]),
        store=store,
        audit=BrokenLog(),  # type: ignore[arg-type]
    )
    decision = guard.check(ToolCall("search", {"q": "x"}, thread_id="t"))
    assert (decision.effect, decision.rule, decision.kind) == ("deny", "audit-error", "guard")
    assert "No space left on device" in decision.reason
    assert "it was allow by rule 'allow search'" in decision.reason
    # the budget the allowed decision took was given back: a working log allows it again
    guard.audit = None
    assert guard.check(ToolCall("search", {"q": "x"}, thread_id="t")).allowed
    denied = Guard(Policy([]), audit=BrokenLog())  # type: ignore[arg-type]
    assert denied.check(ToolCall("rm", {}, thread_id="t")).rule == "default-deny"


def test_an_agent_message_is_recorded_with_sender_and_recipient(log: Any) -> None:
    guard = Guard(Policy([]), cascade=CascadeMonitor([Cycles()]), audit=log)
    guard.check(AgentMessage("boss", "worker", "do the thing", thread_id="t"))
    [record] = list(log.iter())
    assert (record.agent, record.detail["recipient"], record.outcome) == ("boss", "worker", "allow")


def test_cli_control_actions_are_recorded_with_audit(tmp_path: Path) -> None:
    from guardrails_plugin.cli import main

    store, audit = str(tmp_path / "guard.db"), str(tmp_path / "audit.db")
    assert main(["init", "--store", store]) == 0
    pause = ["pause", "--store", store, "--thread", "t-1", "--by", "carol", "--audit", audit]
    assert main(pause) == 1  # no log there: refused before acting, nothing made
    assert not Path(audit).exists()
    assert main(["flags", "--store", store]) == 0
    AuditLog(audit).close()  # the guards' log, as a Guard(audit=AuditLog(...)) makes it
    assert main(pause) == 0
    assert (
        main(["resume", "--store", store, "--thread", "t-1", "--by", "carol", "--audit", audit])
        == 0
    )
    got = [(r.kind, r.outcome, r.approver, r.thread_id) for r in AuditLog(audit).iter()]
    assert got == [("control", "pause", "carol", "t-1"), ("control", "resume", "carol", "t-1")]
    assert main(["audit", "verify", "--log", audit]) == 0


class TripsUnwritable:
    """An audit log that records decisions but fails on anything else (a trip)."""

    def __init__(self) -> None:
        self.decisions: list[Any] = []

    def decision(self, event: Any, decision: Any, **kwargs: Any) -> None:
        self.decisions.append(decision)

    def append(self, *args: Any, **kwargs: Any) -> None:
        raise OSError(5, "Input/output error")


def test_a_trip_the_log_cannot_record_stops_the_step() -> None:
    guard = Guard(
        Policy([]),
        cascade=CascadeMonitor([Cycles()]),
        breaker=Breaker(default="record"),  # the breaker alone would let it go on
        audit=TripsUnwritable(),  # type: ignore[arg-type]
    )
    decisions = ping_pong(guard, 6)
    assert all(d.allowed for d in decisions[:5])
    assert (decisions[5].effect, decisions[5].rule) == ("deny", "audit-error")
    assert "Input/output error" in decisions[5].reason
    assert [t.signal for t in guard.trips()] == ["cycles"]  # the Store has it, the log not


def test_listeners_see_the_decision_that_stands_when_the_log_fails() -> None:
    seen: list[str] = []
    guard = Guard(
        Policy([allow("search")]),
        audit=BrokenLog(),  # type: ignore[arg-type]
        listeners=[lambda event, decision: seen.append(decision.rule)],
    )
    assert guard.check(ToolCall("search", {"q": "x"}, thread_id="t")).rule == "audit-error"
    assert seen == ["audit-error"]


def test_async_checks_record_off_the_event_loop(log: Any) -> None:
    import asyncio
    import threading

    appended_on: list[str] = []
    original = log.decision

    def spy(*args: Any, **kwargs: Any) -> Any:
        appended_on.append(threading.current_thread().name)
        return original(*args, **kwargs)

    log.decision = spy
    guard = Guard(Policy([allow("search")]), audit=log)

    async def go() -> Any:
        return await guard.acheck(ToolCall("search", {"q": "x"}, thread_id="t"))

    assert asyncio.run(go()).allowed
    assert appended_on
    assert appended_on[0] != threading.main_thread().name
    [record] = list(log.iter())
    assert record.tool == "search"
    broken = Guard(Policy([allow("search")]), audit=BrokenLog())  # type: ignore[arg-type]
    assert asyncio.run(broken.acheck(ToolCall("search", {}, thread_id="t"))).rule == "audit-error"


def test_an_operator_action_the_log_cannot_record_says_it_is_in_force() -> None:
    from guardrails_plugin import GuardrailsError

    guard = Guard(Policy([]), audit=BrokenLog())  # type: ignore[arg-type]
    with pytest.raises(GuardrailsError, match="the kill of thread 't' is in force, but the audit"):
        guard.controls.kill(thread="t", by="ops")
    assert [f.target for f in guard.controls.flags()] == ["t"]


def test_a_rollback_records_who_asked_for_it(tmp_path: Path, log: Any) -> None:
    bank = Bank(tmp_path / "bank.db")
    tools, compensations = banking(bank)
    store = MemoryStore()
    guard = Guard(policy(), store=store)
    config: Any = {"configurable": {"thread_id": "t-1"}}
    graph = tool_graph(
        ScriptedChatModel(runaway_script()),
        tools,
        guard,
        checkpointer=InMemorySaver(),
        compensations=compensations,
    )
    graph.invoke(user("pay the vendor"), config)
    Recovery(graph, store, compensations, audit=log).rollback(config, by="dana")
    [rolled] = list(log.iter(kind="rollback"))
    assert rolled.approver == "dana"


def test_async_operator_actions_are_recorded(log: Any) -> None:
    import asyncio

    guard = Guard(Policy([]), audit=log)

    async def go() -> None:
        await guard.controls.apause(thread="t", by="erin")
        await guard.controls.aquarantine("scraper", by="erin")
        await guard.controls.aresume(thread="t", by="erin")

    asyncio.run(go())
    got = [(r.outcome, r.approver) for r in log.iter(kind="control")]
    assert got == [("pause", "erin"), ("quarantine", "erin"), ("resume", "erin")]
