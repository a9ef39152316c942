"""Exactly once across attempts at one answer: the ``openai`` loop adapter (``GuardedTools``)
stopped part way through an answer (the kill switch set by a tool, ``on_deny="raise"``, a tool
that crashes the process's flow, a cancelled task, two threads at once) and the app retrying
the same answer (the same object, or the answer read again from what it stored). Generated
answers and fault schedules; the oracle counts what the tool bodies really did."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from guardrails_plugin import (
    Decision,
    Effect,
    Event,
    Guard,
    Policy,
    RunKilled,
    RunPaused,
    ToolCall,
    ToolCallDenied,
    allow,
)
from guardrails_plugin.openai import GuardedTools
from guardrails_plugin.scopes import Number

THREAD = "t-retry"


class Crash(BaseException):
    """What stops an attempt inside a tool and is not the tool's own error (an interrupt)."""


def answer(api: str, calls: list[tuple[str, str, str]], answer_id: str = "ans-1") -> Any:
    """A Chat Completions or Responses answer making ``calls`` (id, name, argument text)."""
    if api == "chat":
        return ChatCompletion.model_validate(
            {
                "id": answer_id,
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": i,
                                    "type": "function",
                                    "function": {"name": n, "arguments": a},
                                }
                                for i, n, a in calls
                            ],
                        },
                    }
                ],
            }
        )
    return Response.model_validate(
        {
            "id": answer_id,
            "object": "response",
            "created_at": 0,
            "model": "m",
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "output": [
                {"type": "function_call", "id": f"fc-{i}", "call_id": i, "name": n, "arguments": a}
                for i, n, a in calls
            ],
        }
    )


class World:
    """The tools, and what their bodies did: ``runs[n]`` counts runs of the call numbered n."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.runs: dict[int, int] = {}
        self.crash_once: set[int] = set()
        self.lock = threading.Lock()

    def _ran(self, n: int) -> None:
        with self.lock:
            self.runs[n] = self.runs.get(n, 0) + 1

    def tools(self) -> list[Any]:
        def write(n: int) -> str:
            """Write record n."""
            self._ran(n)
            time.sleep(0.001)
            return f"wrote {n}"

        def stop(n: int) -> str:
            """Ends the run (an operator's kill lands while it runs)."""
            self._ran(n)
            self.guard.controls.kill(thread=THREAD, reason="operator")
            return f"stopped {n}"

        def crash(n: int) -> str:
            """Is interrupted while it runs, the first time."""
            self._ran(n)
            if n in self.crash_once:
                self.crash_once.discard(n)
                raise Crash(n)
            return f"survived {n}"

        return [write, stop, crash]


def _policy() -> Policy:
    return Policy([allow("write", args={"n": Number(ge=0)}), allow("stop"), allow("crash")])


kinds = st.sampled_from(["write", "write", "write", "denied", "stop", "crash"])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=st.lists(kinds, min_size=1, max_size=6),
    api=st.sampled_from(["chat", "responses"]),
    on_deny=st.sampled_from(["message", "raise"]),
    reread=st.booleans(),
    driver=st.sampled_from(["run", "arun"]),
)
def test_retrying_an_answer_runs_no_call_twice(
    plan: list[str], api: str, on_deny: str, reread: bool, driver: str
) -> None:
    seen: list[tuple[Event, Decision]] = []
    guard = Guard(_policy(), listeners=[lambda e, d: seen.append((e, d))])
    world = World(guard)
    calls = []
    for n, kind in enumerate(plan):
        name = "write" if kind == "denied" else kind
        value = -1 - n if kind == "denied" else n
        calls.append((f"call_{n}", name, f'{{"n": {value}}}'))
        if kind == "crash":
            world.crash_once.add(n)
    tools = GuardedTools(guard, world.tools(), thread_id=THREAD, on_deny=on_deny)  # type: ignore[arg-type]
    first = answer(api, calls)

    outputs = None
    for attempt in range(len(plan) + 2):
        # the app retries the answer it has (or reads it again from what it stored)
        current = type(first).model_validate(first.model_dump()) if reread and attempt else first
        try:
            outputs = tools.run(current) if driver == "run" else asyncio.run(tools.arun(current))
            break
        except (RunKilled, RunPaused) as exc:
            event(f"stopped: {type(exc).__name__}")
            guard.controls.resume(thread=THREAD)
        except ToolCallDenied:
            event("denied, raised")
        except Crash:
            event("crashed in a tool")

    # I2: no body ran twice, whatever the attempts
    assert all(count == 1 for count in world.runs.values()), world.runs
    # I1: every run had a decision allowing exactly its arguments
    allowed = [
        dict(e.args) for e, d in seen if isinstance(e, ToolCall) and d.effect is Effect.ALLOW
    ]
    for n in world.runs:
        assert {"n": n} in allowed
    if outputs is None:
        # on_deny="raise" with a call denied (by the policy, or as in doubt after a crash):
        # every attempt raises there, and the app gives up
        assert on_deny == "raise"
        assert "denied" in plan or "crash" in plan
        return
    assert [o.call_id for o in outputs.outcomes] == [c[0] for c in calls]
    for n, (kind, outcome) in enumerate(zip(plan, outputs.outcomes, strict=True)):
        if kind == "denied":
            assert not outcome.ran
            assert outcome.decision.rule != "exactly-once"
        elif kind == "crash":
            # it started and never finished: in doubt, so not run again
            assert world.runs[n] == 1
            assert not outcome.ran
            assert outcome.decision.rule == "exactly-once"
        else:
            assert world.runs[n] == 1
            assert outcome.ran
            assert outcome.output.endswith(str(n))


def test_a_new_answer_reusing_call_ids_is_decided_and_run_again() -> None:
    """Models that number call ids per answer are not mistaken for retries: another answer
    (another id) with the same call ids and arguments runs again."""
    guard = Guard(_policy())
    world = World(guard)
    tools = GuardedTools(guard, world.tools(), thread_id=THREAD)
    calls = [("call_0", "write", '{"n": 0}')]
    for api in ("chat", "responses"):
        for k in range(3):
            out = tools.run(answer(api, calls, answer_id=f"{api}-{k}"))
            assert out.outcomes[0].ran
    assert world.runs == {0: 6}
    # the same answer again: its output, not a second run
    again = tools.run(answer("chat", calls, answer_id="chat-2"))
    assert again.outcomes[0].ran
    assert again[0]["content"] == "wrote 0"
    assert world.runs == {0: 6}


@pytest.mark.parametrize("threads", [2, 4])
def test_threads_running_one_answer_at_once_run_each_call_once(threads: int) -> None:
    guard = Guard(_policy())
    world = World(guard)
    tools = GuardedTools(guard, world.tools(), thread_id=THREAD)
    shared = answer("chat", [(f"c{n}", "write", f'{{"n": {n}}}') for n in range(6)])
    results: list[Any] = []
    start = threading.Barrier(threads)

    def attempt() -> None:
        start.wait()
        results.append(tools.run(shared))

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert world.runs == dict.fromkeys(range(6), 1)
    for out in results:  # each call: the output of its one run, or refused as taken
        for outcome in out.outcomes:
            assert outcome.ran or outcome.decision.rule == "exactly-once"


@pytest.mark.parametrize("sync_tool", [True, False])
def test_a_cancelled_attempt_leaves_the_started_call_taken(sync_tool: bool) -> None:
    guard = Guard(Policy([allow("slow"), allow("write", args={"n": Number(ge=0)})]))
    started = threading.Event()
    release = threading.Event()
    runs: list[int] = []

    if sync_tool:

        def slow(n: int) -> str:
            runs.append(n)
            started.set()
            release.wait(5)
            return "slow done"

    else:

        async def slow(n: int) -> str:  # type: ignore[misc]
            runs.append(n)
            started.set()
            await asyncio.sleep(5)
            return "slow done"

    def write(n: int) -> str:
        runs.append(n)
        return "wrote"

    tools = GuardedTools(guard, [slow, write], thread_id=THREAD)
    shared = answer("responses", [("c0", "write", '{"n": 0}'), ("c1", "slow", '{"n": 1}')])

    async def main() -> Any:
        task = asyncio.create_task(tools.arun(shared))
        while not started.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()  # a sync tool's thread goes on and finishes: it ran
        return await tools.arun(shared)

    out = asyncio.run(main())
    assert runs == [0, 1]
    first, second = out.outcomes
    assert first.ran
    assert first.output == "wrote"
    assert not second.ran
    assert second.decision.rule == "exactly-once"
    assert "may have run already" in second.output


def test_a_result_that_could_not_be_recorded_is_not_shown_on_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The result record (taint, result budgets) fails once after the tool ran: the retry
    neither runs the tool again nor shows the model the unrecorded output."""
    guard = Guard(_policy())
    world = World(guard)
    tools = GuardedTools(guard, world.tools(), thread_id=THREAD)
    failures = [OSError("audit disk full")]

    def record(event: Any) -> Any:
        if failures:
            raise failures.pop()
        return Guard.record(guard, event)

    monkeypatch.setattr(guard, "wants_results", lambda agent, tool: True)
    monkeypatch.setattr(guard, "record", record)
    shared = answer("chat", [("c0", "write", '{"n": 0}'), ("c1", "write", '{"n": 1}')])
    with pytest.raises(OSError, match="disk full"):
        tools.run(shared)
    out = tools.run(shared)
    assert world.runs == {0: 1, 1: 1}
    first, second = out.outcomes
    assert not first.ran
    assert first.decision.rule == "exactly-once"
    assert "wrote 0" not in first.output
    assert second.ran
    assert second.output == "wrote 1"
