"""Replay: recorded traffic re-decided by a candidate policy.

The oracle is the live guard. Generated traffic is run through a real ``Guard`` with an
``AuditLog`` (SQLite or JSON Lines) under policy A, and again, live, under policy B. Then:

- replaying A's log with A reproduces every recorded decision (budgets run out at the same
  calls: the recorded times drive the clock);
- replaying A's log with B reports exactly the calls whose live decision differs between
  A and B, per rule and per agent, and B's live budget denials.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from guardrails_plugin import Guard, Policy, ToolCall, ToolResult
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.replay import (
    Change,
    RecordedCall,
    RecordedResult,
    ReplayError,
    from_audit,
    from_checkpoints,
    from_jsonl,
    open_source,
    replay,
)

TOOLS = ("read_file", "send_email", "fetch_url", "refund", "delete_file")
AGENTS = ("support", "billing", "scout")
THREADS = ("t-1", "t-2", "t-3")


# -- generated policies and traffic ------------------------------------------------------------


def _rule(effect: str, tool: str, i: int, draw: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"id": f"{effect}-{tool}-{i}", effect: tool}
    if draw(st.booleans()):
        rule["agents"] = sorted(draw(st.sets(st.sampled_from(AGENTS), min_size=1)))
    if tool == "refund" and draw(st.booleans()):
        rule["args"] = {"amount": {"number": {"gt": 0, "le": draw(st.sampled_from([50, 200]))}}}
    if tool == "read_file" and draw(st.booleans()):
        rule["args"] = {"path": {"path": {"roots": ["/srv/data"]}}}
    if tool == "send_email" and draw(st.booleans()):
        rule["args"] = {"to": {"email": {"domains": ["example.com"]}}}
    return rule


@st.composite
def policies(draw: Any) -> dict[str, Any]:
    rules = []
    for i, name in enumerate(draw(st.lists(st.sampled_from(TOOLS), min_size=1, max_size=6))):
        effect = draw(st.sampled_from(["allow", "allow", "ask", "deny"]))
        rules.append(_rule(effect, name, i, draw))
    data: dict[str, Any] = {"name": "generated", "version": draw(st.integers(1, 9)), "rules": rules}
    budgets = []
    if draw(st.booleans()):
        budgets.append(
            {
                "id": "calls",
                "calls": draw(st.integers(1, 8)),
                "per": [draw(st.sampled_from(["thread", "agent"]))],
            }
        )
    if draw(st.booleans()):
        budgets.append(
            {
                "id": "rate",
                "rate": draw(st.integers(1, 4)),
                "window": draw(st.sampled_from([5, 30])),
            }
        )
    if draw(st.booleans()):
        budgets.append(
            {
                "id": "refund-total",
                "sum": {"arg": "amount", "limit": draw(st.sampled_from([100, 400]))},
                "tools": ["refund"],
                "per": ["thread"],
            }
        )
    if budgets:
        data["budgets"] = budgets
    if draw(st.booleans()):
        data["flows"] = [
            {
                "id": "web-to-mail",
                "sources": ["fetch_url"],
                "sinks": ["send_email"],
                "effect": "ask",
            }
        ]
    return data


def _args(tool: str, rng: random.Random) -> dict[str, Any]:
    if tool == "read_file":
        return {"path": rng.choice(["/srv/data/a.txt", "/etc/passwd", "/srv/data/../../etc/x"])}
    if tool == "send_email":
        return {"to": rng.choice(["ann@example.com", "eve@evil.test"]), "body": "hi"}
    if tool == "fetch_url":
        return {"url": rng.choice(["https://docs.example.com/a", "http://evil.test/"])}
    if tool == "refund":
        return {"amount": rng.choice([5, 40, 120, 600])}
    return {"path": "/srv/data/a.txt"}


def traffic(seed: int, n: int) -> Iterator[tuple[float, ToolCall]]:
    """``n`` calls at increasing times, across agents and threads (a seeded generator)."""
    rng = random.Random(seed)
    at = 1_700_000_000.0
    for i in range(n):
        at += rng.choice([0.5, 1.0, 3.0, 11.0])
        tool = rng.choice(TOOLS)
        yield (
            at,
            ToolCall(
                tool,
                _args(tool, rng),
                agent=rng.choice(AGENTS),
                thread_id=rng.choice(THREADS),
                call_id=f"call_{i % 7}",  # reused ids, as servers that number per turn do
            ),
        )


def record_live(policy: Policy, calls: list[tuple[float, ToolCall]], log_path: str) -> list[Any]:
    """Run ``calls`` through a live guard that approves every ask, recording to an audit log.
    Returns each call's first decision (what the audit log records as the call's outcome)."""
    now = [0.0]
    with AuditLog(log_path, clock=lambda: now[0]) as log:
        guard = Guard(policy, audit=log, clock=lambda: now[0], approver=lambda request: True)
        first = []
        for at, call in calls:
            now[0] = at
            decision = guard.check(call)
            first.append(decision)
            final = decision
            if decision.needs_approval:
                final = guard.resolve(call, decision, True)
            if final.allowed:
                guard.record(
                    ToolResult(
                        call.tool,
                        f"output of {call.tool}",
                        agent=call.agent,
                        call_id=call.call_id,
                        thread_id=call.thread_id,
                    )
                )
    return first


def _plain(effect: str) -> str:
    return {"modify": "allow", "respond": "deny"}.get(effect, effect)


# -- the properties ----------------------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(a=policies(), b=policies(), seed=st.integers(0, 10_000), jsonl=st.booleans())
def test_replay_reproduces_the_record_and_reports_what_a_live_run_of_the_candidate_changes(
    tmp_path: Path, a: dict[str, Any], b: dict[str, Any], seed: int, jsonl: bool
) -> None:
    pa, pb = Policy.from_dict(a), Policy.from_dict(b)
    calls = list(traffic(seed, 60))
    suffix = uuid.uuid4().hex
    log_a = str(tmp_path / (f"a-{suffix}.jsonl" if jsonl else f"a-{suffix}.db"))
    live_a = record_live(pa, calls, log_a)
    live_b = record_live(pb, calls, str(tmp_path / f"b-{suffix}.db"))

    same = replay(pa, from_audit(log_a))
    assert same.calls == len(calls)
    assert same.changes[Change.UNCHANGED] == len(calls), same
    assert same.changed == 0
    assert same.outcomes == Counter(_plain(str(d.effect)) for d in live_a)

    other = replay(pb, from_audit(log_a), examples=1_000)
    expected: Counter[Change] = Counter()
    by_rule: Counter[tuple[str, Change]] = Counter()
    for da, db in zip(live_a, live_b, strict=True):
        old, new = _plain(str(da.effect)), _plain(str(db.effect))
        change = (
            Change.UNCHANGED
            if old == new
            else Change.NEWLY_DENIED
            if new == "deny"
            else Change.NEWLY_ASKED
            if new == "ask"
            else Change.NEWLY_ALLOWED
        )
        expected[change] += 1
        if change is not Change.UNCHANGED:
            by_rule[(db.rule, change)] += 1
    assert +other.changes == +expected
    assert (
        Counter({(r, c): n for r, row in other.by_rule.items() for c, n in row.items() if n})
        == by_rule
    )
    budget_first = {}
    for i, d in enumerate(live_b, 1):
        if d.kind == "budget":
            budget_first.setdefault(d.rule, i)
    assert {k: v.first_call for k, v in other.budgets.items()} == budget_first
    # every kept example is a call whose decision changed, with both decisions named
    for change, kept in other.examples.items():
        assert len(kept) == expected[change]
        for e in kept:
            assert e.recorded is not None
            assert _plain(e.now) != _plain(e.recorded)


def test_replay_is_deterministic_and_its_report_round_trips_as_json(tmp_path: Path) -> None:
    policy = Policy.from_yaml(str(Path(__file__).parent.parent / "cookbook" / "policy.yaml"))
    calls = list(traffic(7, 300))
    log = str(tmp_path / "audit.db")
    record_live(Policy.from_dict({"rules": [{"allow": "*"}]}), calls, log)
    one = replay(policy, from_audit(log))
    two = replay(policy, from_audit(log))
    assert one.to_dict() == two.to_dict()
    assert json.loads(one.to_json()) == one.to_dict()
    assert one.changes[Change.NEWLY_DENIED] > 0  # the cookbook policy is stricter than allow-all
    assert "newly denied" in str(one)
    assert repr(one).startswith("ReplayReport(")


def test_a_result_reaches_the_guard_only_when_the_candidate_lets_its_call_run() -> None:
    flows = {
        "rules": [{"allow": "fetch_url"}, {"allow": "send_email"}],
        "flows": [{"id": "web-to-mail", "sources": ["fetch_url"], "sinks": ["send_email"]}],
    }
    recorded = [
        RecordedCall(
            "fetch_url", {"url": "https://x"}, call_id="c1", thread_id="t", outcome="allow"
        ),
        RecordedResult("c1", "untrusted page", thread_id="t"),
        RecordedCall("send_email", {"to": "a@b.c"}, call_id="c2", thread_id="t", outcome="allow"),
    ]
    tainted = replay(Policy.from_dict(flows), recorded)
    assert tainted.changes[Change.NEWLY_ASKED] == 1  # the flow asks before the sink
    assert tainted.by_rule["web-to-mail"][Change.NEWLY_ASKED] == 1
    blocked = dict(flows, rules=[{"deny": "fetch_url"}, {"allow": "send_email"}])
    clean = replay(Policy.from_dict(blocked), recorded)
    # the fetch is denied now, so its result never taints the run: the mail goes out
    assert clean.changes[Change.NEWLY_DENIED] == 1
    assert [e.tool for e in clean.examples[Change.NEWLY_DENIED]] == ["fetch_url"]
    assert clean.outcomes["allow"] == 1
    assert clean.outcomes["deny"] == 1


def test_asks_can_be_denied_so_they_do_not_spend_budgets() -> None:
    policy = Policy.from_dict(
        {"rules": [{"ask": "refund"}], "budgets": [{"id": "two", "calls": 2, "tools": ["refund"]}]}
    )
    calls = [RecordedCall("refund", {"amount": 1}, outcome="allow") for _ in range(4)]
    approved = replay(policy, calls)
    assert approved.budgets["two"].first_call == 3
    assert approved.budgets["two"].denied == 2
    denied = replay(policy, calls, asks="deny")
    assert denied.budgets == {}
    assert denied.changes[Change.NEWLY_ASKED] == 4


# -- sources -----------------------------------------------------------------------------------


def test_jsonl_calls_and_results(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    lines = [
        {
            "tool": "fetch_url",
            "args": {"url": "https://x"},
            "call_id": "c1",
            "at": "2026-01-01T00:00:00Z",
        },
        {"type": "result", "call_id": "c1", "content": "page"},
        {
            "tool": "send_email",
            "args": {"to": "a@b.c"},
            "outcome": "deny",
            "rule": "r",
            "at": 1.5e9,
        },
        {},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines[:3]) + "\n\n")
    got = list(from_jsonl(path))
    assert [type(x).__name__ for x in got] == ["RecordedCall", "RecordedResult", "RecordedCall"]
    assert got[0].at == 1767225600.0
    assert got[2].outcome == "deny"
    assert got[0].where.endswith(":1")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"args": {}}', "'tool' is required"),
        ('{"tool": "x", "args": "rm -rf /"}', "'args' must be an object"),
        ('{"tool": "x", "argz": {}}', "unknown keys in a call: argz"),
        ('{"tool": "x", "outcome": "maybe"}', "'outcome' must be one of"),
        ('{"tool": "x", "at": "yesterday"}', "'at' must be a number"),
        ('{"tool": "x", "at": NaN}', "'at' must be finite"),
        ('{"type": "result", "content": "x"}', "'call_id' is required"),
        ('{"type": "event", "tool": "x"}', "'type' must be 'call' or 'result'"),
    ],
)
def test_a_bad_line_stops_the_replay_and_names_the_line(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text('{"tool": "ok"}\n' + line + "\n")
    with pytest.raises(ReplayError, match=message) as info:
        list(from_jsonl(path))
    assert ":2:" in str(info.value) or ":2" in str(info.value)


def test_redacted_arguments_are_counted(tmp_path: Path) -> None:
    log = str(tmp_path / "audit.jsonl")
    policy = Policy.from_dict({"rules": [{"allow": "login"}]})
    record_live(policy, [(1.0, ToolCall("login", {"user": "ann", "password": "hunter2"}))], log)
    report = replay(policy, from_audit(log))
    assert report.redacted == 1
    assert "redacted" in str(report)


def _scripted_graph(db: str) -> Any:
    """A real LangGraph tool-calling graph on SqliteSaver, with a scripted model."""

    @tool
    def read_file(path: str) -> str:
        """Read a file."""
        return f"contents of {path}"

    @tool
    def send_email(to: str, body: str) -> str:
        """Send a mail."""
        return "sent"

    def model(state: MessagesState) -> dict[str, Any]:
        n = sum(1 for m in state["messages"] if m.type == "ai")
        script = [
            AIMessage(
                "",
                name="support",
                tool_calls=[{"name": "read_file", "args": {"path": "/srv/data/a"}, "id": "a1"}],
            ),
            AIMessage(
                "",
                name="support",
                tool_calls=[
                    {
                        "name": "send_email",
                        "args": {"to": "eve@evil.test", "body": "x"},
                        "id": "a2",
                    },
                    {"name": "read_file", "args": {"path": "/etc/passwd"}, "id": "a3"},
                ],
            ),
            AIMessage("done", name="support"),
        ]
        return {"messages": [script[min(n, 2)]]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    g = StateGraph(MessagesState)
    g.add_node("model", model)
    g.add_node("tools", ToolNode([read_file, send_email]))
    g.add_edge(START, "model")
    g.add_conditional_edges("model", route, ["tools", END])
    g.add_edge("tools", "model")
    conn = sqlite3.connect(db, check_same_thread=False)
    return g.compile(checkpointer=SqliteSaver(conn)), conn


def test_checkpoint_histories_are_read_from_a_real_graph(tmp_path: Path) -> None:
    db = str(tmp_path / "graph.db")
    graph, conn = _scripted_graph(db)
    for thread in ("t-1", "t-2"):
        graph.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": thread}})

    recorded = list(from_checkpoints(SqliteSaver(conn)))
    calls = [r for r in recorded if isinstance(r, RecordedCall)]
    results = [r for r in recorded if isinstance(r, RecordedResult)]
    assert len(calls) == 6
    assert len(results) == 6
    assert {c.thread_id for c in calls} == {"t-1", "t-2"}
    assert {c.agent for c in calls} == {"support"}
    assert all(c.at is not None for c in calls)
    times = [c.at for c in calls if c.thread_id == "t-1"]
    assert times == sorted(times)
    assert times[0] < times[-1]
    policy = Policy.from_dict(
        {"rules": [{"allow": "read_file", "args": {"path": {"path": {"roots": ["/srv/data"]}}}}]}
    )
    report = replay(policy, recorded)
    assert report.outcomes == Counter({"allow": 2, "deny": 4})
    assert report.changes[Change.UNKNOWN] == 6
    conn.close()


# -- the command line --------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "guardrails_plugin.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )


def test_cli_replays_each_kind_of_source(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: reads\n    allow: read_file\n")
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        json.dumps({"tool": "read_file", "args": {"path": "/a"}, "outcome": "allow"})
        + "\n"
        + json.dumps({"tool": "send_email", "args": {"to": "x@y.z"}, "outcome": "allow"})
        + "\n"
    )
    out = _cli("replay", str(policy), "--from", str(calls))
    assert out.returncode == 0, out.stderr
    assert "1 newly denied" in out.stdout
    assert "send_email" in out.stdout
    out = _cli("replay", str(policy), "--from", f"calls:{calls}", "--json", "--fail-on-change")
    assert out.returncode == 4
    assert json.loads(out.stdout)["changes"]["newly denied"] == 1

    log = str(tmp_path / "audit.db")
    record_live(Policy.from_dict({"rules": [{"allow": "*"}]}), list(traffic(3, 20)), log)
    out = _cli("replay", str(policy), "--from", log, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["calls"] == 20

    db = str(tmp_path / "graph.db")
    graph, conn = _scripted_graph(db)
    graph.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": "t-9"}})
    conn.close()
    for source in (db, f"checkpoints:sqlite:///{db}"):
        out = _cli("replay", str(policy), "--from", source, "--thread", "t-9", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["outcomes"] == {"allow": 2, "deny": 1}


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.jsonl", "no recorded traffic at"),
        ("calls:missing.jsonl", "cannot read"),
        ("bad.jsonl", "bad.jsonl:1: not JSON"),
        ("store.db", "holds neither an audit log nor LangGraph checkpoints"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, source: str, message: str) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules: []\n")
    (tmp_path / "bad.jsonl").write_text("{oops\n")

    sqlite3.connect(tmp_path / "store.db").execute("CREATE TABLE kv (k TEXT)").connection.commit()
    out = subprocess.run(
        [sys.executable, "-m", "guardrails_plugin.cli", "replay", str(policy), "--from", source],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("error:"), out.stderr
    assert message in lines[0], out.stderr


# -- memory ------------------------------------------------------------------------------------


def _stream(n: int) -> Iterator[RecordedCall]:
    for at, call in traffic(11, n):
        yield RecordedCall(
            call.tool, call.args, agent=call.agent, thread_id=call.thread_id, at=at, outcome="allow"
        )


def test_memory_stays_flat_in_the_length_of_the_history() -> None:
    policy = Policy.from_dict(
        {
            "rules": [{"allow": "*"}, {"deny": "delete_file"}],
            "budgets": [
                {"id": "rate", "rate": 3, "window": 30},
                {"id": "calls", "calls": 500, "per": ["thread"]},
            ],
        }
    )

    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            report = replay(policy, _stream(n))
            assert report.calls == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(2_000), peak(20_000)
    assert large < small * 1.5, (small, large)


# -- what the red team found ---------------------------------------------------------------------


def test_a_shadow_log_replayed_with_its_policy_is_unchanged(tmp_path: Path) -> None:
    policy = Policy.from_dict({"rules": [{"id": "reads", "allow": "read_file"}]})
    log = str(tmp_path / "audit.db")
    with AuditLog(log) as audit:
        guard = Guard(policy, mode="shadow", audit=audit)
        guard.check(ToolCall("read_file", {"path": "/a"}, call_id="c1"))
        guard.check(ToolCall("rm", {"path": "/"}, call_id="c2"))
    report = replay(policy, from_audit(log))
    assert report.changes[Change.UNCHANGED] == 2
    assert report.changed == 0


def test_operator_decisions_are_not_compared_with_the_policy(tmp_path: Path) -> None:
    policy = Policy.from_dict({"rules": [{"allow": "*"}]})
    log = str(tmp_path / "audit.db")
    with AuditLog(log) as audit:
        guard = Guard(policy, audit=audit)
        guard.controls.kill(thread="t", reason="runaway")
        assert guard.check(ToolCall("read_file", {}, thread_id="t", call_id="c1")).denied
    report = replay(policy, from_audit(log))
    assert report.calls == 1
    assert report.changes[Change.UNKNOWN] == 1
    assert report.changed == 0


def test_a_missing_audit_log_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ReplayError, match="no audit log"):
        list(open_source(f"audit:{missing}"))
    assert not missing.exists()


def test_a_result_without_its_run_reaches_the_latest_call_of_its_id(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    lines = [
        {
            "tool": "fetch_url",
            "args": {},
            "call_id": "c1",
            "thread_id": "t",
            "run_id": "r",
            "outcome": "allow",
        },
        {"type": "result", "call_id": "c1", "thread_id": "t", "content": "page"},
        {
            "tool": "send_email",
            "args": {},
            "call_id": "c2",
            "thread_id": "t",
            "run_id": "r",
            "outcome": "ask",
        },
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    policy = Policy.from_dict(
        {
            "rules": [{"allow": "fetch_url"}, {"allow": "send_email"}],
            "flows": [{"id": "web-to-mail", "sources": ["fetch_url"], "sinks": ["send_email"]}],
        }
    )
    report = replay(policy, from_jsonl(path))
    assert report.changes[Change.UNCHANGED] == 2  # the taint reached the mail: asked, as then
    assert report.unmatched_results == 0


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"tool": "x", "at": 1' + "0" * 400 + "}", "'at' is too large"),
        (
            '{"tool": "x", "args": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
            "nested too deeply",
        ),
    ],
)
def test_extreme_lines_are_named_too(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ReplayError, match=message):
        list(from_jsonl(path))


def test_a_thread_with_no_checkpoints_is_an_error(tmp_path: Path) -> None:
    db = str(tmp_path / "graph.db")
    graph, conn = _scripted_graph(db)
    graph.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": "t-1"}})
    with pytest.raises(ReplayError, match="no checkpoints with messages for thread 'nope'"):
        list(from_checkpoints(SqliteSaver(conn), ["nope"]))
    conn.close()
