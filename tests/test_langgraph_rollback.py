"""Rollback end to end through the adapters: GuardedToolNode and GuardMiddleware record side
effects, safe points and violations as the agent runs; Recovery undoes the effects newest
first and returns the thread to the safe point before the violation."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fakes import tool_call, tool_messages, user
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph_apps import tool_graph

from guardrails_plugin import Guard, MemoryStore, Policy, SQLiteStore, allow
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import Recovery
from guardrails_plugin.rollback import Compensations, Journal, SideEffect
from guardrails_plugin.scopes import Number
from guardrails_plugin.testing import ScriptedChatModel

CONFIG = {"configurable": {"thread_id": "t-1"}}


class Bank:
    """A real (tiny) side-effect target: balances in a SQLite table."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS acct (name TEXT PRIMARY KEY, cents INT)")
        self.db.execute("INSERT OR IGNORE INTO acct VALUES ('ops', 10000), ('vendor', 0)")
        self.undone: list[str] = []

    def move(self, src: str, dst: str, cents: int) -> None:
        self.db.execute("UPDATE acct SET cents = cents - ? WHERE name = ?", (cents, src))
        self.db.execute("UPDATE acct SET cents = cents + ? WHERE name = ?", (cents, dst))

    def balances(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, cents FROM acct").fetchall())


def banking(bank: Bank) -> tuple[list[Any], Compensations]:
    def pay(to: str, cents: int) -> str:
        bank.move("ops", to, cents)
        return f"paid {cents} to {to}"

    def wipe(table: str) -> str:
        raise AssertionError("never runs: the guard denies it")

    compensations = Compensations()

    @compensations.undo(
        "pay", capture=lambda args, result: {"to": args["to"], "cents": args["cents"]}
    )
    def refund(effect: SideEffect) -> None:
        bank.move(effect.data["to"], "ops", effect.data["cents"])
        bank.undone.append(effect.call_id or "")

    tools = [
        StructuredTool.from_function(pay, name="pay", description="Pay a vendor."),
        StructuredTool.from_function(wipe, name="wipe", description="Wipe a table."),
    ]
    return tools, compensations


def policy() -> Policy:
    return Policy([allow("pay", args={"cents": Number(gt=0, le=5000)})])


def runaway_script() -> list[Any]:
    return [
        tool_call("pay", to="vendor", cents=1000, id="p1"),
        tool_call("pay", to="vendor", cents=2000, id="p2"),
        tool_call("pay", to="vendor", cents=3000, id="p3"),
        tool_call("wipe", table="acct", id="w1"),  # the violation
        "done",
    ]


@contextmanager
def checkpointer(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
    elif kind == "sqlite":
        conn = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
        try:
            yield SqliteSaver(conn)
        finally:
            conn.close()
    else:
        from langgraph.checkpoint.postgres import PostgresSaver

        url = request.getfixturevalue("postgres_url")
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver


@pytest.mark.parametrize("kind", ["memory", "sqlite", "postgres"])
def test_tool_node_rollback_undoes_payments_newest_first_and_restores_the_safe_point(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bank = Bank(tmp_path / "bank.db")
    tools, compensations = banking(bank)
    store = SQLiteStore(tmp_path / "guard.db") if kind != "memory" else MemoryStore()
    guard = Guard(policy(), store=store)
    thread = {"configurable": {"thread_id": f"rollback-{kind}-{tmp_path.name}"}}
    with checkpointer(kind, tmp_path, request) as saver:
        graph = tool_graph(
            ScriptedChatModel(runaway_script()),
            tools,
            guard,
            checkpointer=saver,
            compensations=compensations,
        )
        out = graph.invoke(user("pay the vendor"), thread)
        assert bank.balances() == {"ops": 4000, "vendor": 6000}
        assert "default-deny" in tool_messages(out)[-1].text

        recovery = Recovery(graph, store, compensations)
        (violation,) = recovery.violations(thread)
        assert (violation.tool, violation.rule) == ("wipe", "default-deny")
        assert [p.tool for p in recovery.safe_points(thread)] == ["pay", "pay", "pay"]

        # by default: back to the last safe point before the violation (before p3)
        report = recovery.rollback(thread)
        assert report.ok, str(report)
        assert bank.undone == ["p3"]
        assert bank.balances() == {"ops": 7000, "vendor": 3000}
        state = graph.get_state(thread)
        assert state.next == ("tools",)
        assert state.values["messages"][-1].tool_calls[0]["id"] == "p3"

        # then further back, to the oldest safe point: newest first, p3 not undone twice
        oldest = recovery.safe_points(thread)[-1]
        report = recovery.rollback(thread, to=oldest.checkpoint_id)
        assert report.ok, str(report)
        assert bank.undone == ["p3", "p2", "p1"]
        assert bank.balances() == {"ops": 10000, "vendor": 0}
        state = graph.get_state(thread)
        assert state.values["messages"][-1].tool_calls[0]["id"] == "p1"
        assert not [m for m in state.values["messages"] if m.type == "tool"]


def test_after_a_rollback_the_restored_step_runs_its_tool_again(tmp_path: Path) -> None:
    """The done-ledger must not hand back the result of a payment that was refunded."""
    bank = Bank(tmp_path / "bank.db")
    tools, compensations = banking(bank)
    guard = Guard(policy())
    model = ScriptedChatModel(
        [tool_call("pay", to="vendor", cents=1000, id="p1"), tool_call("wipe", table="x"), "ok"]
    )
    graph = tool_graph(
        model, tools, guard, checkpointer=InMemorySaver(), compensations=compensations
    )
    graph.invoke(user("pay"), CONFIG)
    report = Recovery(graph, guard.store, compensations).rollback(CONFIG)
    assert report.ok
    assert bank.balances()["vendor"] == 0
    model.script.extend(["finished"])
    model.calls = len(model.script) - 1
    graph.invoke(None, CONFIG)  # resume: the payment step runs again, for real
    assert bank.balances()["vendor"] == 1000


async def test_middleware_records_effects_and_async_rollback(tmp_path: Path) -> None:
    bank = Bank(tmp_path / "bank.db")
    tools, compensations = banking(bank)
    store = MemoryStore()
    guard = Guard(policy(), store=store)
    agent = create_agent(
        ScriptedChatModel(runaway_script()),
        tools=tools,
        middleware=[GuardMiddleware(guard, compensations=compensations)],
        checkpointer=InMemorySaver(),
        name="treasurer",
    )
    await agent.ainvoke({"messages": [HumanMessage("pay")]}, CONFIG)
    assert bank.balances()["vendor"] == 6000
    journal = Journal(store)
    assert [e.agent for e in journal.effects("t-1")] == ["treasurer"] * 3
    recovery = Recovery(agent, journal, compensations)
    oldest = (await recovery.asafe_points(CONFIG))[-1]
    report = await recovery.arollback(CONFIG, to=oldest.checkpoint_id)
    assert report.ok, str(report)
    assert bank.undone == ["p3", "p2", "p1"]
    assert bank.balances() == {"ops": 10000, "vendor": 0}
    assert (await agent.aget_state(CONFIG)).next == ("tools",)
