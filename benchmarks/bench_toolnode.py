"""Overhead of GuardedToolNode per tool-call step of a LangGraph graph, vs a bare ToolNode.

Run:  python benchmarks/bench_toolnode.py [--rounds 20] [--runs 10] [--steps 10]

The graph: ``StateGraph(MessagesState)``, an agent node (a ``ScriptedChatModel`` bound to the
tools) -> ``tools_condition`` -> a tool node -> agent. Three tool nodes, interleaved round
after round (see BENCHMARKING.md):

- A ``ToolNode(tools)``, bare;
- B ``ToolNode(tools, wrap_tool_call=noop, awrap_tool_call=anoop)``: the framework's floor
  for any wrapper (the guard is one);
- C ``GuardedToolNode(tools, guard)``: ~100 rules, a scoped allow for the tool, a calls
  budget, the in-memory store.

Three scenarios: no checkpointer; ``InMemorySaver`` (the guard then writes a done-ledger
entry per call); ``InMemorySaver`` with 3 parallel calls per step. Besides the whole-run
ratios, the guard's own share is measured in-process (wall and thread CPU time): time
inside ``GuardedToolNode._wrap`` minus the time inside ``execute`` (the tool), plus time
inside ``GuardedToolNode._func`` minus the time inside ``ToolNode._func`` (where a step with
several calls is decided up front), divided by the guarded graph's step time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench_langgraph import agent_graph, fmt, lookup, policy, reset, versions
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime

import guardrails_plugin.langgraph._drivers as drivers_module
import guardrails_plugin.langgraph._gate as gate_module
import guardrails_plugin.langgraph._ledger as ledger_module
from guardrails_plugin import Guard
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.testing import ScriptedChatModel, tool_call


def noop(request: Any, execute: Callable[[Any], Any]) -> Any:
    return execute(request)


async def anoop(request: Any, execute: Callable[[Any], Awaitable[Any]]) -> Any:
    return await execute(request)


class _TimedToolNode(ToolNode):
    """Sits between GuardedToolNode and ToolNode in the MRO of TimedGuardedToolNode, so
    that GuardedToolNode's ``super()._func(...)`` (the bare node's work) is timed."""

    inner_wall = inner_cpu = 0.0

    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        try:
            return super()._func(input, config, runtime)
        finally:
            self.inner_wall += time.perf_counter() - w
            self.inner_cpu += time.thread_time() - c


class TimedGuardedToolNode(GuardedToolNode, _TimedToolNode):
    """GuardedToolNode timing its own work, wall clock and thread CPU time:
    ``_wrap`` (one call: decide, done-ledger, record) minus ``execute`` (the tool), and
    ``_func`` (parse, the up-front decisions of a step with several calls) minus
    ``ToolNode._func``. ``_wrap`` runs on the ToolNode's executor threads, ``_func`` on the
    node's thread: thread CPU times are taken and subtracted on the same thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()  # _wrap runs on several threads at once
        self.zero()

    def zero(self) -> None:
        self.inner_wall = self.inner_cpu = 0.0
        self.wrap_wall = self.wrap_cpu = 0.0
        self.func_wall = self.func_cpu = 0.0

    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        w, c = time.perf_counter(), time.thread_time()
        inner_w, inner_c = self.inner_wall, self.inner_cpu
        try:
            return super()._func(input, config, runtime)
        finally:
            wall = time.perf_counter() - w - (self.inner_wall - inner_w)
            cpu = time.thread_time() - c - (self.inner_cpu - inner_c)
            self.func_wall += wall
            self.func_cpu += cpu

    def _wrap(self, request: Any, execute: Callable[[Any], Any]) -> Any:
        inner_wall = inner_cpu = 0.0

        def timed_execute(req: Any) -> Any:
            nonlocal inner_wall, inner_cpu
            w, c = time.perf_counter(), time.thread_time()
            try:
                return execute(req)
            finally:
                inner_wall += time.perf_counter() - w
                inner_cpu += time.thread_time() - c

        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return super()._wrap(request, timed_execute)
        finally:
            wall = time.perf_counter() - w0 - inner_wall
            cpu = time.thread_time() - c0 - inner_cpu
            with self.lock:
                self.wrap_wall += wall
                self.wrap_cpu += cpu

    @property
    def own(self) -> tuple[float, float]:
        return self.wrap_wall + self.func_wall, self.wrap_cpu + self.func_cpu


class Scenario:
    """One graph shape, three tool nodes (A bare, B no-op wrapper, C guarded)."""

    def __init__(self, name: str, steps: int, calls: int, checkpointer: bool) -> None:
        self.name = name
        self.steps = steps
        self.calls = calls
        turns: list[Any] = []
        for i in range(steps):
            batch = [tool_call("lookup", n=i * calls + j) for j in range(calls)]
            turns.append(batch if calls > 1 else batch[0])
        self.model = ScriptedChatModel([*turns, "done"])
        self.guarded = TimedGuardedToolNode([lookup], Guard(policy()))
        nodes = {
            "A bare ToolNode": ToolNode([lookup]),
            "B no-op wrapper": ToolNode([lookup], wrap_tool_call=noop, awrap_tool_call=anoop),
            "C GuardedToolNode": self.guarded,
        }
        self.graphs = {
            variant: agent_graph(
                self.model, [lookup], node, InMemorySaver() if checkpointer else None
            )
            for variant, node in nodes.items()
        }
        self.checkpointer = checkpointer
        self.per_step: dict[str, list[float]] = {v: [] for v in self.graphs}
        self.total_c = 0.0
        self.run_id = 0

    def run(self, variant: str) -> float:
        self.run_id += 1
        reset(self.model)
        config = {
            "configurable": {"thread_id": f"{self.name}-{self.run_id}"},
            "recursion_limit": 4 * self.steps + 10,
        }
        t0 = time.perf_counter()
        out = self.graphs[variant].invoke(
            {"messages": [{"role": "user", "content": "go"}]}, config=config
        )
        elapsed = time.perf_counter() - t0
        assert out["messages"][-1].content == "done", out["messages"][-1]
        assert len(out["messages"]) == 2 + self.steps * (1 + self.calls), len(out["messages"])
        return elapsed

    def round(self, runs: int) -> None:
        for variant in self.graphs:
            elapsed = sum(self.run(variant) for _ in range(runs))
            self.per_step[variant].append(elapsed / (runs * self.steps) * 1000)
            if variant.startswith("C"):
                self.total_c += elapsed

    def report(self, rounds: int, runs: int) -> None:
        calls = f", {self.calls} parallel calls per step" if self.calls > 1 else ""
        print(f"\n## {self.name}{calls}")
        print(f"{'variant':<20}{'ms/step min / median / max':>30}{'median vs A':>13}")
        med = {v: statistics.median(s) for v, s in self.per_step.items()}
        a, b, c = med.values()
        for variant, samples in self.per_step.items():
            print(f"{variant:<20}{fmt(samples):>30}{med[variant] / a:>12.3f}x")
        ratios = {
            "C/A": [c_ / a_ for a_, c_ in zip(*self._cols("A", "C"), strict=True)],
            "B/A": [b_ / a_ for a_, b_ in zip(*self._cols("A", "B"), strict=True)],
            "C/B": [c_ / b_ for b_, c_ in zip(*self._cols("B", "C"), strict=True)],
        }
        print("per-round ratios, min / median / max:")
        for name, values in ratios.items():
            print(f"  {name}: {fmt(values)}   (ratio of medians {_ratio(name, a, b, c):.3f})")
        steps = rounds * runs * self.steps
        own_wall, own_cpu = self.guarded.own
        g = self.guarded
        print(
            "guard's own share of the guarded step, in-process:\n"
            f"  thread CPU time: {own_cpu / self.total_c * 100:.2f}% "
            f"({own_cpu / steps * 1e6:.1f} us per step; _wrap {g.wrap_cpu / steps * 1e6:.1f}, "
            f"_func {g.func_cpu / steps * 1e6:.1f})\n"
            f"  wall clock:      {own_wall / self.total_c * 100:.2f}% "
            f"({own_wall / steps * 1e6:.1f} us per step; _wrap {g.wrap_wall / steps * 1e6:.1f}, "
            f"_func {g.func_wall / steps * 1e6:.1f})\n"
            f"  vs the bare step (A median {a * 1000:.0f} us): thread CPU "
            f"{own_cpu / steps * 1e3 / a * 100:.2f}%"
        )
        if self.checkpointer:
            ledger = len(self.guarded.guard.store.scan("done/"))
            print(f"  done-ledger entries left in the guard's store: {ledger}")

    def _cols(self, x: str, y: str) -> tuple[list[float], list[float]]:
        (kx,) = [k for k in self.per_step if k.startswith(x)]
        (ky,) = [k for k in self.per_step if k.startswith(y)]
        return self.per_step[kx], self.per_step[ky]


def breakdown(scenario: Scenario, runs: int) -> None:
    """Thread CPU time of the guard's parts inside the graph: each gate flow a driver runs
    (by the flow's name), ``locate`` (the call and its place in the graph, from the request)
    and ``apply``. Diagnostic: it patches private names of the gate's modules in this process, and
    each timed part adds ~1.5 us of timer calls."""
    spent: dict[str, float] = {}
    count: dict[str, int] = {}
    lock = threading.Lock()

    def note(name: str, cpu: float) -> None:
        with lock:
            spent[name] = spent.get(name, 0.0) + cpu
            count[name] = count.get(name, 0) + 1

    driver_run = drivers_module._Driver.run

    def run(self: Any, flow: Any) -> Any:
        c = time.thread_time()
        try:
            return driver_run(self, flow)
        finally:
            note(
                f"{type(self).__name__.lstrip('_')}: {flow.gi_code.co_name}", time.thread_time() - c
            )

    def timing(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            c = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                note(name, time.thread_time() - c)

        return timed

    drivers_module._Driver.run = run  # type: ignore[method-assign]
    for module, name in (
        (gate_module, "locate"),
        (gate_module, "apply"),
        (ledger_module, "tool_results"),
        (ledger_module, "_dumps"),
    ):
        setattr(module, name, timing(name, getattr(module, name)))
    variant = "C GuardedToolNode"
    for _ in range(5):
        scenario.run(variant)
    spent.clear()
    count.clear()
    scenario.guarded.zero()
    for _ in range(runs):
        scenario.run(variant)
    n = runs * scenario.steps
    print(
        f"{versions()}\n{scenario.name}, {scenario.calls} call(s) per step: {runs} runs x "
        f"{scenario.steps} steps; guard's own thread CPU {scenario.guarded.own[1] / n * 1e6:.1f} "
        "us per step, of which:"
    )
    for name in sorted(spent, key=lambda k: -spent[k]):
        print(f"  {name:<28}{spent[name] / n * 1e6:8.1f} us/step  ({count[name] / n:.0f} per step)")


def _ratio(name: str, a: float, b: float, c: float) -> float:
    return {"C/A": c / a, "B/A": b / a, "C/B": c / b}[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10, help="graph runs per variant per round")
    parser.add_argument("--steps", type=int, default=10, help="tool-call steps per run")
    parser.add_argument(
        "--breakdown",
        choices=["none", "memory", "parallel"],
        help="instead of timing: the guard's parts in one scenario (thread CPU per step)",
    )
    parser.add_argument(
        "--profile",
        choices=["none", "memory", "parallel"],
        help="instead of timing: cProfile the guarded graph of one scenario, print the top",
    )
    opts = parser.parse_args()

    scenarios = {
        "none": Scenario("no checkpointer", opts.steps, 1, checkpointer=False),
        "memory": Scenario("InMemorySaver", opts.steps, 1, checkpointer=True),
        "parallel": Scenario("InMemorySaver", opts.steps, 3, checkpointer=True),
    }
    if opts.breakdown:
        breakdown(scenarios[opts.breakdown], opts.rounds * opts.runs)
        return
    if opts.profile:
        scenario = scenarios[opts.profile]
        variant = "C GuardedToolNode"
        scenario.run(variant)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(opts.rounds * opts.runs):
            scenario.run(variant)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return

    for scenario in scenarios.values():  # warm up
        for variant in scenario.graphs:
            scenario.run(variant)
        scenario.guarded.zero()
    for _ in range(opts.rounds):
        for scenario in scenarios.values():
            scenario.round(opts.runs)

    print(
        f"{versions()}\n{opts.rounds} rounds x {opts.runs} runs x {opts.steps} tool-call steps "
        "per variant and scenario; variants interleaved (A B C A B C ...)"
    )
    for scenario in scenarios.values():
        scenario.report(opts.rounds, opts.runs)


if __name__ == "__main__":
    main()
