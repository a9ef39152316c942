"""A guarded run that moves between workers: LangGraph's ``PostgresSaver`` holds the graph,
``PostgresStore`` the guard's state. Worker A stops at an approval and is killed (SIGKILL);
workers B (and C, racing B) take the run over. The approval, the done-ledger and the budget
carry over: the tool runs once, the budget of one email is charged once. And a worker
killed inside the tool (after the done-ledger's claim, before the result is recorded)
leaves a call that no later worker runs again."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import postgres_graph_worker as app
import pytest
from langgraph.checkpoint.postgres import PostgresSaver

from guardrails_plugin import ToolCallDenied
from guardrails_plugin.langgraph import answer, approval_requests

HERE = Path(__file__).parent
FORK = multiprocessing.get_context("fork")


def start_a(mode: str, url: str, schema: str, thread: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "postgres_graph_worker.py"), mode, url, schema, thread],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


@pytest.fixture
def schema(postgres_url: str) -> str:
    name = f"g_{uuid.uuid4().hex[:12]}"
    app.prepare(postgres_url, name)
    return name


def _resume(url: str, schema: str, thread: str, barrier: Any, out: str) -> None:
    """Worker B (or C): approve the pending call and resume the thread."""
    with PostgresSaver.from_conn_string(url) as saver:
        graph, _ = app.graph(url, schema, saver, "ask", ["sent it"])
        cfg = app.config(thread)
        interrupts = graph.get_state(cfg).interrupts
        barrier.wait()
        result = graph.invoke(answer(interrupts, True), cfg)
        Path(out).write_text(str(result["messages"][-1].content))


def test_an_approval_taken_over_after_the_worker_was_killed_runs_once(
    postgres_url: str, schema: str, tmp_path: Path
) -> None:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    a = start_a("ask", postgres_url, schema, thread)
    try:
        assert a.stdout is not None
        call_id = a.stdout.readline().strip()
        assert call_id == "c-1", a.stderr.read() if a.stderr else ""
    finally:
        a.send_signal(signal.SIGKILL)
        a.wait(30)
    assert a.returncode == -signal.SIGKILL
    assert app.side_effects(postgres_url, schema) == 0

    # B sees the pending approval A left, from the database alone.
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        graph, _ = app.graph(postgres_url, schema, saver, "ask", [])
        (pending,) = approval_requests(graph, app.config(thread))
        assert pending.call_id == "c-1"

    # B and C approve and resume at the same moment: one of them runs the tool.
    barrier = FORK.Barrier(2)
    outs = [tmp_path / "b.txt", tmp_path / "c.txt"]
    workers = [
        FORK.Process(target=_resume, args=(postgres_url, schema, thread, barrier, str(out)))
        for out in outs
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    assert app.side_effects(postgres_url, schema) == 1
    # Both finished with the one result: the racer waited for the claim holder's.
    assert [out.read_text() for out in outs] == ["sent it", "sent it"]

    with PostgresSaver.from_conn_string(postgres_url) as saver:
        graph, guard = app.graph(postgres_url, schema, saver, "ask", ["again"])
        cfg = app.config(thread)
        assert not graph.get_state(cfg).next  # the run is over
        graph.invoke(None, cfg)  # resuming it again runs nothing
        assert app.side_effects(postgres_url, schema) == 1
        # The budget (one email in all) was charged exactly once, by whichever worker.
        assert guard.store.total("budget/emails/global") == 1.0


def test_a_worker_killed_between_the_claim_and_the_record_is_not_run_again(
    postgres_url: str, schema: str
) -> None:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    a = start_a("die-in-tool", postgres_url, schema, thread)
    a.wait(120)
    assert a.returncode == -signal.SIGKILL, a.stderr.read() if a.stderr else ""
    assert app.side_effects(postgres_url, schema) == 1  # the tool ran, nothing recorded it

    with PostgresSaver.from_conn_string(postgres_url) as saver:
        graph, _ = app.graph(postgres_url, schema, saver, "die-in-tool", ["done"])
        cfg = app.config(thread)
        assert graph.get_state(cfg).next == ("tools",)  # the step is still to do
        with pytest.raises(ToolCallDenied, match="exactly-once") as refused:
            graph.invoke(None, cfg)  # refused as in doubt: the tool may have run
        assert "may have run" in str(refused.value)
        assert app.side_effects(postgres_url, schema) == 1  # never a second email
