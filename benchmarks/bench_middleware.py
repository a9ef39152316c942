"""Overhead of GuardMiddleware per tool-call step of a real ``create_agent`` agent.

Run:  python benchmarks/bench_middleware.py [--rounds 15] [--runs 20] [--steps 10]

Method (see BENCHMARKING.md): interleaved A/B/C rounds of whole runs — the bare agent, the
agent with a no-op middleware of the same kind (the framework's own floor for adding any
middleware), the agent with GuardMiddleware — medians with min/max; and the guard's own share
of the step, measured in-process: time spent inside the guard's calls divided by step time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.tools import tool

from guardrails_plugin import Budget, Guard, Policy, allow, deny
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.scopes import Number, OneOf
from guardrails_plugin.testing import ScriptedChatModel, tool_call


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


class Timed:
    """Accumulates time spent inside selected guard methods."""

    def __init__(self, guard: Guard) -> None:
        self.total = 0.0
        for name in ("decide", "record", "visible_tools"):
            setattr(guard, name, self._wrap(getattr(guard, name)))

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - t0

        return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=20, help="agent runs per variant per round")
    parser.add_argument("--steps", type=int, default=10, help="tool-call steps per run")
    opts = parser.parse_args()

    script = [tool_call("lookup", n=i) for i in range(opts.steps)] + ["done"]
    model = ScriptedChatModel(script)
    guard = Guard(policy())
    timer = Timed(guard)
    agents = {
        "bare": create_agent(model, [lookup]),
        "noop middleware": create_agent(model, [lookup], middleware=[NoopMiddleware()]),
        "GuardMiddleware": create_agent(model, [lookup], middleware=[GuardMiddleware(guard)]),
    }
    totals = dict.fromkeys(agents, 0.0)
    per_step: dict[str, list[float]] = {name: [] for name in agents}
    run_id = 0

    def run(agent: Any) -> float:
        nonlocal run_id
        run_id += 1
        model.calls = 0
        model.seen.clear()
        model.bound_tools.clear()
        t0 = time.perf_counter()
        out = agent.invoke(
            {"messages": [{"role": "user", "content": "go"}]},
            config={"configurable": {"thread_id": f"bench-{run_id}"}},
        )
        elapsed = time.perf_counter() - t0
        assert out["messages"][-1].content == "done", out["messages"][-1]
        return elapsed

    for agent in agents.values():  # warm up
        run(agent)
    timer.total = 0.0
    for _ in range(opts.rounds):
        for name, agent in agents.items():
            elapsed = sum(run(agent) for _ in range(opts.runs))
            totals[name] += elapsed
            per_step[name].append(elapsed / (opts.runs * opts.steps) * 1000)

    print(
        f"langchain {version('langchain')}, langgraph {version('langgraph')}, "
        f"python {platform.python_version()}, {os.cpu_count()} cores; "
        f"{opts.rounds} rounds x {opts.runs} runs x {opts.steps} tool-call steps per variant\n"
    )
    bare = statistics.median(per_step["bare"])
    print(f"{'variant':<18}{'ms/step min':>12}{'median':>9}{'max':>9}{'vs bare':>9}")
    for name, samples in per_step.items():
        med = statistics.median(samples)
        print(f"{name:<18}{min(samples):>12.3f}{med:>9.3f}{max(samples):>9.3f}{med / bare:>8.3f}x")
    noop = statistics.median(per_step["noop middleware"])
    guarded = statistics.median(per_step["GuardMiddleware"])
    print(f"\nGuardMiddleware vs no-op middleware (median): {guarded / noop:.3f}x")
    share = timer.total / totals["GuardMiddleware"]
    per_call = timer.total / (opts.rounds * opts.runs * opts.steps) * 1e6
    print(
        f"guard's own share of the guarded step (in-process): {share * 100:.2f}% "
        f"({per_call:.1f} us of guard work per tool-call step: decide + record + tool filter)"
    )


if __name__ == "__main__":
    main()
