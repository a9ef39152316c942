"""Workers sharing a guard through Redis, as real processes on a real ``redis-server``.

- the cookbook recipe: two worker processes, one fleet budget, never more than it allows;
- a run that moves between workers: process A runs a graph (checkpoints in SQLite, guard
  state in Redis) until a tool call waits for approval, and is killed (SIGKILL); process B
  builds the same app, approves and resumes. The tool runs once, the budget is charged once,
  and resuming again (also from two processes at once) runs nothing a second time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from guardrails_plugin import Guard, ToolCall
from guardrails_plugin.store.redis import RedisStore

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "redis_run_worker.py"
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_cookbook_two_workers_share_one_budget(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "cookbook" / "redis_workers.py"), "--store", redis_url],
        capture_output=True,
        text=True,
        env={k: v for k, v in ENV.items() if k != "OPENAI_API_KEY"},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    sent = [int(line.split()[3]) for line in done.stdout.splitlines() if line.startswith("worker")]
    assert len(sent) == 2
    assert sum(sent) == 6
    assert "sent in all: 6 (budget: 6 for the fleet)" in done.stdout


def _role(role: str, workdir: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), role, str(workdir), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _finish(process: subprocess.Popen[str]) -> dict[str, object]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def _outbox(workdir: Path) -> list[dict[str, object]]:
    path = workdir / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _interrupted_and_killed(workdir: Path, url: str) -> str:
    RedisStore(url)  # the store the workers open with create=False
    first = _role("ask", workdir, url)
    assert first.stdout is not None
    waiting = json.loads(first.stdout.readline())["waiting"]
    assert len(waiting) == 1
    first.kill()  # SIGKILL: no clean-up in the first worker
    first.wait(timeout=30)
    assert _outbox(workdir) == []
    return str(waiting[0])


def _budget_left_after_one_charge(url: str) -> None:
    """The fleet budget of 2 holds exactly one charge: one more call passes, the next not."""
    from redis_run_worker import POLICY

    guard = Guard(POLICY, store=RedisStore(url, create=False))
    assert guard.check(ToolCall("notify", {}, agent="assistant")).effect == "allow"
    over = guard.check(ToolCall("notify", {}, agent="assistant"))
    assert over.effect == "deny"
    assert over.kind == "budget"
    assert "2 of 2 calls used" in over.reason


def test_run_moves_to_another_worker_after_the_first_is_killed(
    redis_url: str, tmp_path: Path
) -> None:
    call_id = _interrupted_and_killed(tmp_path, redis_url)
    resumed = _finish(_role("resume", tmp_path, redis_url))
    assert resumed["answered"] == [call_id]
    assert resumed["last"] == "Ann has her mail."
    sent = _outbox(tmp_path)
    assert len(sent) == 1
    again = _finish(_role("resume", tmp_path, redis_url))  # a third worker: nothing waits
    assert again["answered"] == []
    assert len(_outbox(tmp_path)) == 1
    _budget_left_after_one_charge(redis_url)


def test_two_workers_resuming_the_same_approval_run_the_tool_once(
    redis_url: str, tmp_path: Path
) -> None:
    _interrupted_and_killed(tmp_path, redis_url)
    racers = [_role("resume", tmp_path, redis_url) for _ in range(2)]
    for racer in racers:
        racer.communicate(timeout=300)  # one of them may lose the checkpoint race and fail
    assert len(_outbox(tmp_path)) == 1
    _budget_left_after_one_charge(redis_url)


def test_dashboard_answers_an_approval_held_in_redis(redis_url: str) -> None:
    """The operator dashboard on a RedisStore: it lists what waits and resumes it once."""
    from test_dashboard import THREAD, App

    app = App(store=RedisStore(redis_url))
    try:
        (pending,) = app.state()["state"]["pending"]
        assert pending["thread_id"] == THREAD
        assert pending["call_id"] == "call-1"
        job = app.answer(answer="approve")
        assert job["status"] == "finished", job
        assert app.ran == [("send_email", {"to": "a@acme.com", "body": "hello"})]
        assert app.state()["state"]["pending"] == []
    finally:
        app.dashboard.close()
