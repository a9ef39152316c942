"""The numbers behind the dashboard's live plots, as the page reads them (``/api/state``'s
``state.plots``, the same document the live stream's ``state`` events carry).

Traffic is generated (tools allowed, asked about, denied, or allowed under a shadow deny;
several agents and threads; messages between agents; times from a fake clock) and run
through a real ``Guard``. The oracles are the guard's own answers, counted by the test:
decisions per outcome and time bucket, calls charged per thread (every call not denied),
messages per (sender, recipient).
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from guardrails_plugin import (
    AgentMessage,
    Decision,
    Guard,
    Policy,
    SQLiteStore,
    ToolCall,
    allow,
    ask,
    deny,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.dashboard import Dashboard
from guardrails_plugin.dashboard._plots import MAX_BUCKETS, STEPS
from guardrails_plugin.policy import Budget

BASE = "http://127.0.0.1:8765"
AGENTS = ["planner", "coder", "tester"]
THREADS = ["t-1", "t-2", "t-3"]
LIMIT = 6


def policy() -> Policy:
    return Policy(
        [
            allow("read"),
            ask("mail"),
            deny("mail", shadow=True, id="no-mail-soon"),
            allow("write"),
            deny("write", shadow=True, id="no-writes-soon"),
            allow("handoff"),
        ],
        budgets=[Budget.calls(LIMIT, per="thread", id="calls-per-thread")],
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def expected_series(event: Any, d: Decision) -> str:
    if (d.would == "deny" or d.shadow == "deny") and d.allowed:
        return "would_deny"
    return {"allow": "allow", "deny": "deny", "ask": "ask"}[str(d.effect)]


steps = st.lists(
    st.tuples(
        st.one_of(
            st.builds(
                lambda tool, agent, thread: ToolCall(tool, {}, agent=agent, thread_id=thread),
                st.sampled_from(["read", "mail", "write", "delete"]),
                st.sampled_from(AGENTS),
                st.sampled_from(THREADS),
            ),
            st.builds(
                lambda pair, thread, text: AgentMessage(*pair, text, thread_id=thread),
                st.permutations(AGENTS).map(lambda p: (p[0], p[1])),
                st.sampled_from(THREADS),
                st.text("abc ", min_size=1, max_size=8),
            ),
        ),
        st.floats(0, 400),  # seconds since the previous event
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None)
@given(traffic=steps)
def test_the_plots_hold_the_guards_numbers(traffic: list[tuple[Any, float]]) -> None:
    clock = Clock()
    guard = Guard(policy(), clock=clock)
    dashboard = Dashboard(guard, clock=clock)
    seen: list[tuple[float, str]] = []
    charged: Counter[str] = Counter()
    messages: Counter[tuple[str, str]] = Counter()
    for event, wait in traffic:
        clock.now += wait
        d = guard.check(event)
        seen.append((clock.now, expected_series(event, d)))
        if isinstance(event, ToolCall) and not d.denied:
            charged[event.thread_id or ""] += 1
        if isinstance(event, AgentMessage):
            messages[(event.sender, event.recipient)] += 1
    plots = TestClient(dashboard.app, base_url=BASE).get("/api/state").json()["state"]["plots"]
    dashboard.close()

    timeline = plots["timeline"]
    step, points = timeline["step"], timeline["points"]
    first, last = min(t for t, _ in seen), max(t for t, _ in seen)
    assert step in STEPS or step % 86400 == 0
    assert (last - first) / step < MAX_BUCKETS
    smaller = [s for s in STEPS if s < step]
    assert not smaller or (last - first) / smaller[-1] >= MAX_BUCKETS  # the finest that fits
    base = math.floor(first / step)
    assert len(points) == math.floor(last / step) - base + 1
    assert [p["t"] for p in points] == [(base + i) * step for i in range(len(points))]
    expect = [dict.fromkeys(timeline["series"], 0) for _ in points]
    for at, series in seen:
        expect[math.floor(at / step) - base][series] += 1
    assert [{k: p[k] for k in timeline["series"]} for p in points] == expect

    used = {
        row["thread"]: {b["id"]: (b["used"], b["limit"]) for b in row["budgets"]}
        for row in plots["budgets"]
    }
    called = {e.thread_id for e, _ in traffic if isinstance(e, ToolCall)}
    assert used == {t: {"calls-per-thread": (charged[t or ""], LIMIT)} for t in called}

    graph = plots["messages"]
    assert {(e["from"], e["to"]): e["count"] for e in graph["edges"]} == dict(messages)
    assert {n["id"] for n in graph["nodes"]} == {a for pair in messages for a in pair}
    assert all(n["alarm"] is None for n in graph["nodes"])  # no cascade monitor here


def test_a_cascade_trip_marks_its_agents_and_their_edges(tmp_path: Path) -> None:
    """Read from an audit log by a dashboard over the store alone (the policy given for the
    budget plot): the planner and coder loop trips the cycle detector; both are marked, the
    culprit as such, their edges too, and the held message counts as held."""
    store = SQLiteStore(tmp_path / "guard.db")
    audit = AuditLog(str(tmp_path / "audit.db"))
    guard = Guard(policy(), store=store, audit=audit, cascade=CascadeMonitor())
    guard.check(AgentMessage("tester", "planner", "all green", thread_id="t-9", id="m0"))
    plan = (
        "Plan: refactor the billing module, then run the full test suite, then ask the coder "
        "to review the refactor of the billing module again before merging."
    )
    sent: Counter[tuple[str, str]] = Counter()
    held = 0
    for i in range(1, 14):
        pair = ("planner", "coder") if i % 2 else ("coder", "planner")
        d = guard.check(AgentMessage(*pair, plan, thread_id="t-7", id=f"m{i}"))
        sent[pair] += 1
        if not d.allowed:
            held += 1
            break
    assert held == 1
    (trip,) = guard.trips()
    dashboard = Dashboard(store, audit=AuditLog(str(tmp_path / "audit.db")), policy=policy())
    graph = TestClient(dashboard.app, base_url=BASE).get("/api/state").json()["state"]["plots"]
    dashboard.close()
    graph = graph["messages"]
    marks = {n["id"]: (n["alarm"], n["signals"]) for n in graph["nodes"]}
    assert marks[trip.culprit] == ("culprit", [trip.signal])
    for agent in {"planner", "coder"} - {trip.culprit}:
        assert marks[agent] == ("involved", [trip.signal])
    assert marks["tester"] == (None, [])
    edges = {(e["from"], e["to"]): e for e in graph["edges"]}
    assert {k: e["count"] for k, e in edges.items()} == {**sent, ("tester", "planner"): 1}
    assert sum(e["held"] for e in edges.values()) == held
    assert edges[("planner", "coder")]["alarm"]
    assert edges[("coder", "planner")]["alarm"]
    assert not edges[("tester", "planner")]["alarm"]
    audit.close()
