"""Overhead of GuardMiddleware per tool-call step of a real ``create_agent`` agent.

Run:  python benchmarks/bench_middleware.py [--rounds 15] [--runs 20] [--steps 10]

Method (see BENCHMARKING.md): interleaved rounds of whole runs — the bare agent, the agent
with a no-op middleware of the same kind (the framework's own floor for adding any
middleware), the agent with LangChain's own ``ToolCallLimitMiddleware`` (the nearest
feature: a per-run tool-call budget), the agent with GuardMiddleware — medians with min/max,
in wall time and in process CPU time (all threads; steadier on a loaded machine), and the
ratios of each to the bare agent and of the guard to ``ToolCallLimitMiddleware``, per round
(same load) and of the medians; and the guard's own share of the step, measured in-process:
time spent inside the guard's calls divided by step time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, ToolCallLimitMiddleware
from langchain_core.tools import tool
from langgraph.prebuilt.tool_node import ToolNode

# The time inside the tool hook's handler is read in LangGraph's tool executor, patched here
# before the guard is imported: a timing wrapper around the handler would be code between the
# guard and the tool, which makes the guard check the call at the tool (a cost a plain agent
# does not pay). Patched first, the executor is still LangGraph's own to the guard.
_INSIDE = threading.local()
_execute_tool_sync = ToolNode._execute_tool_sync


def _timed_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
    spent: list[float] | None = getattr(_INSIDE, "spent", None)
    if spent is None:
        return _execute_tool_sync(self, *args, **kwargs)
    w, c = time.perf_counter(), time.thread_time()
    try:
        return _execute_tool_sync(self, *args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - w
        spent[1] += time.thread_time() - c


ToolNode._execute_tool_sync = _timed_execute  # type: ignore[method-assign]

from guardrails_plugin import Budget, Guard, Policy, allow, deny  # noqa: E402
from guardrails_plugin.langchain import GuardMiddleware  # noqa: E402
from guardrails_plugin.scopes import Number, OneOf  # noqa: E402
from guardrails_plugin.testing import ScriptedChatModel, tool_call  # noqa: E402


@tool
def lookup(n: int) -> str:
    """Look a number up."""
    return f"value {n}"


class NoopMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Same hooks as the guard, doing nothing: the framework's cost of a middleware."""

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return handler(request)

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return handler(request)


def policy() -> Policy:
    rules = [allow(f"tool_{i}", args={"n": Number(le=i)}) for i in range(60)]
    rules += [deny(f"danger_{i}_*") for i in range(20)]
    rules += [allow(f"other_{i}", args={"m": OneOf(["a", "b"])}) for i in range(19)]
    rules.append(allow("lookup", args={"n": Number(ge=0, le=10_000)}))
    return Policy(rules, budgets=[Budget.calls(10**9, tools="lookup", per="run")])


class TimedGuardMiddleware(GuardMiddleware):
    """GuardMiddleware, timing its own work: hook time minus the time inside ``handler``
    (the model, or LangGraph's tool executor running the tool). Kept twice: wall clock
    (includes waiting for the GIL while LangGraph's other threads run) and the hook thread's
    CPU time (the guard's own work)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.own_wall = 0.0
        self.own_cpu = 0.0

    def _timed(self, hook: Callable[..., Any], request: Any, handler: Callable[[Any], Any]) -> Any:
        inner_wall = inner_cpu = 0.0

        def timed_handler(req: Any) -> Any:
            nonlocal inner_wall, inner_cpu
            w, c = time.perf_counter(), time.thread_time()
            try:
                return handler(req)
            finally:
                inner_wall += time.perf_counter() - w
                inner_cpu += time.thread_time() - c

        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return hook(request, timed_handler)
        finally:
            self.own_wall += time.perf_counter() - w0 - inner_wall
            self.own_cpu += time.thread_time() - c0 - inner_cpu

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        # the handler as LangGraph gave it; the time inside it read in the executor
        spent = _INSIDE.spent = [0.0, 0.0]
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return super().wrap_tool_call(request, handler)
        finally:
            _INSIDE.spent = None
            self.own_wall += time.perf_counter() - w0 - spent[0]
            self.own_cpu += time.thread_time() - c0 - spent[1]

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return self._timed(super().wrap_model_call, request, handler)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20, help="agent runs per variant per round")
    parser.add_argument("--steps", type=int, default=10, help="tool-call steps per run")
    opts = parser.parse_args()

    script = [tool_call("lookup", n=i) for i in range(opts.steps)] + ["done"]
    model = ScriptedChatModel(script)
    guarded = TimedGuardMiddleware(Guard(policy()))
    limit = ToolCallLimitMiddleware(tool_name="lookup", run_limit=10**9)
    agents = {
        "bare": create_agent(model, [lookup]),
        "noop middleware": create_agent(model, [lookup], middleware=[NoopMiddleware()]),
        "ToolCallLimit": create_agent(model, [lookup], middleware=[limit]),
        "GuardMiddleware": create_agent(model, [lookup], middleware=[guarded]),
    }
    totals = dict.fromkeys(agents, 0.0)
    per_step: dict[str, list[float]] = {name: [] for name in agents}
    cpu_step: dict[str, list[float]] = {name: [] for name in agents}
    run_id = 0

    def run(agent: Any) -> tuple[float, float]:
        nonlocal run_id
        run_id += 1
        model.calls = 0
        model.seen.clear()
        model.bound_tools.clear()
        t0, c0 = time.perf_counter(), time.process_time()
        out = agent.invoke(
            {"messages": [{"role": "user", "content": "go"}]},
            config={"configurable": {"thread_id": f"bench-{run_id}"}},
        )
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert out["messages"][-1].content == "done", out["messages"][-1]
        return elapsed, cpu

    for agent in agents.values():  # warm up
        run(agent)
    guarded.own_wall = guarded.own_cpu = 0.0
    per_run = opts.runs * opts.steps
    for _ in range(opts.rounds):
        for name, agent in agents.items():
            timings = [run(agent) for _ in range(opts.runs)]
            elapsed = sum(t[0] for t in timings)
            totals[name] += elapsed
            per_step[name].append(elapsed / per_run * 1000)
            cpu_step[name].append(sum(t[1] for t in timings) / per_run * 1000)

    print(
        f"langchain {version('langchain')}, langgraph {version('langgraph')}, "
        f"python {platform.python_version()}, {os.cpu_count()} cores; "
        f"{opts.rounds} rounds x {opts.runs} runs x {opts.steps} tool-call steps per variant\n"
    )
    for title, table in (("wall", per_step), ("process CPU", cpu_step)):
        bare = statistics.median(table["bare"])
        print(f"{title + ', ms/step':<22}{'min':>8}{'median':>9}{'max':>9}{'vs bare':>9}")
        for name, samples in table.items():
            med = statistics.median(samples)
            print(
                f"{name:<22}{min(samples):>8.3f}{med:>9.3f}{max(samples):>9.3f}{med / bare:>8.3f}x"
            )
        guard, noop, tcl = (
            table["GuardMiddleware"],
            table["noop middleware"],
            table["ToolCallLimit"],
        )
        rounds = [g / t for g, t in zip(guard, tcl, strict=True)]
        print(
            f"  GuardMiddleware vs no-op middleware (medians): "
            f"{statistics.median(guard) / statistics.median(noop):.3f}x\n"
            f"  GuardMiddleware vs ToolCallLimitMiddleware (medians): "
            f"{statistics.median(guard) / statistics.median(tcl):.3f}x; "
            f"per round min / median / max: {min(rounds):.3f} / "
            f"{statistics.median(rounds):.3f} / {max(rounds):.3f}\n"
        )
    steps = opts.rounds * per_run
    total = totals["GuardMiddleware"]
    print(
        "guard's own share of the guarded step, in-process (hook time minus handler time):\n"
        f"  CPU time of the hook thread: {guarded.own_cpu / total * 100:.2f}% "
        f"({guarded.own_cpu / steps * 1e6:.1f} us per tool-call step)\n"
        f"  wall clock (adds GIL waits): {guarded.own_wall / total * 100:.2f}% "
        f"({guarded.own_wall / steps * 1e6:.1f} us per tool-call step)\n"
        "  (per step: decide + record + tool filter + translation, model and tool hooks)"
    )


if __name__ == "__main__":
    main()
