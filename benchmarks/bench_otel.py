"""Overhead of OTelListener: per ``Guard.check``, and per tool-call step of a real agent.

Run:  python benchmarks/bench_otel.py [--quick] [--rounds 15] [--batch 2000] [--agent-rounds 10]

1. ``Guard.check`` on the allow path (the 100-rule policy of bench_middleware.py), variants
   interleaved batch after batch: no listener; OTelListener on the bare API (no SDK installed
   or configured: the global providers are the API's no-op proxies), as events and as spans;
   OTelListener on the SDK (in-memory span exporter through a SimpleSpanProcessor, in-memory
   metric reader), as events on a recording parent span and as spans. µs per check, median
   (min-max) over rounds, and the difference to no listener.
2. A real ``create_agent`` agent (scripted model, 10 tool-call steps a run), interleaved whole
   runs (see BENCHMARKING.md): GuardMiddleware alone, with OTelListener on the bare API, with
   OTelListener on the SDK inside a parent span per run (the span's own cost is included). Any listener also makes the adapters
   record each tool result (``Guard.wants_results``), so the whole-run difference includes
   that; the listener's own share is measured in-process (time inside the listener / step).

The SDK providers are passed to the listener explicitly; the global providers are never set,
so the "bare API" variants stay no-op for the whole run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from importlib.metadata import version
from typing import Any

from bench_middleware import TimedGuardMiddleware, lookup, policy
from langchain.agents import create_agent
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guardrails_plugin import Decision, Event, Guard, ToolCall
from guardrails_plugin.otel import OTelListener
from guardrails_plugin.testing import ScriptedChatModel, tool_call


class Sdk:
    """SDK providers keeping everything in memory; ``clear`` drops the finished spans."""

    def __init__(self, max_events: int = 128) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(span_limits=SpanLimits(max_events=max_events))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        self.tracer = self.tracer_provider.get_tracer("bench")

    def listener(self, **options: Any) -> OTelListener:
        return OTelListener(self.tracer_provider, self.meter_provider, **options)

    def clear(self) -> None:
        self.exporter.clear()


class TimedListener:
    """A listener timing the one it wraps: wall clock (with GIL waits) and thread CPU time."""

    def __init__(self, inner: Callable[[Event, Decision], None]) -> None:
        self.inner = inner
        self.wall = self.cpu = 0.0
        self.calls = 0

    def __call__(self, event: Event, decision: Decision) -> None:
        w, c = time.perf_counter(), time.thread_time()
        self.inner(event, decision)
        self.cpu += time.thread_time() - c
        self.wall += time.perf_counter() - w
        self.calls += 1


def bench_check(rounds: int, batch: int) -> None:
    sdk = Sdk(max_events=batch)
    call = ToolCall("lookup", {"n": 42}, call_id="call_1", thread_id="t")
    variants: dict[str, tuple[Guard, Callable[[], Any]]] = {}

    def add(name: str, guard: Guard, parent: Callable[[], Any] | None = None) -> None:
        def run() -> float:
            check = guard.check
            if parent is None:
                t0 = time.perf_counter_ns()
                for _ in range(batch):
                    check(call)
                return (time.perf_counter_ns() - t0) / batch / 1000
            with parent():
                t0 = time.perf_counter_ns()
                for _ in range(batch):
                    check(call)
                elapsed = (time.perf_counter_ns() - t0) / batch / 1000
            sdk.clear()
            return elapsed

        variants[name] = (guard, run)

    def in_span() -> Any:
        return sdk.tracer.start_as_current_span("step")

    add("no listener", Guard(policy()))
    add("API only, events", Guard(policy(), listeners=[OTelListener()]))
    add("API only, spans", Guard(policy(), listeners=[OTelListener(spans=True)]))
    add("no listener, in SDK span", Guard(policy()), in_span)
    add("SDK, events", Guard(policy(), listeners=[sdk.listener()]), in_span)
    add("SDK, spans", Guard(policy(), listeners=[sdk.listener(spans=True)]), in_span)

    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _, run in variants.values():  # warm up
        run()
    for _ in range(rounds):
        for name, (_, run) in variants.items():
            samples[name].append(run())

    print(f"Guard.check, allow path, 100 rules; {rounds} rounds x {batch} checks per variant")
    base = statistics.median(samples["no listener"])
    print(f"{'variant':<26}{'us/check median':>16}{'min':>8}{'max':>8}{'vs none':>10}")
    for name, s in samples.items():
        med = statistics.median(s)
        print(f"{name:<26}{med:>16.2f}{min(s):>8.2f}{max(s):>8.2f}{med - base:>+9.2f}")
    print()


def bench_agent(rounds: int, runs: int, steps: int) -> None:
    sdk = Sdk()
    script = [tool_call("lookup", n=i) for i in range(steps)] + ["done"]
    model = ScriptedChatModel(script)
    api = TimedListener(OTelListener())
    with_sdk = TimedListener(sdk.listener())
    middlewares = {
        "guard": TimedGuardMiddleware(Guard(policy())),
        "guard + otel (API only)": TimedGuardMiddleware(Guard(policy(), listeners=[api])),
        "guard + otel (SDK)": TimedGuardMiddleware(Guard(policy(), listeners=[with_sdk])),
    }
    agents = {
        name: create_agent(model, [lookup], middleware=[mw]) for name, mw in middlewares.items()
    }
    traced = {"guard + otel (SDK)"}
    per_step: dict[str, list[float]] = {name: [] for name in agents}
    totals = dict.fromkeys(agents, 0.0)
    run_id = 0

    def run(name: str) -> float:
        nonlocal run_id
        run_id += 1
        model.calls = 0
        model.seen.clear()
        model.bound_tools.clear()
        t0 = time.perf_counter()
        # Only the SDK variant runs in a (recording) span: with none configured there is none.
        with sdk.tracer.start_as_current_span("agent run") if name in traced else nullcontext():
            out = agents[name].invoke(
                {"messages": [{"role": "user", "content": "go"}]},
                config={"configurable": {"thread_id": f"bench-{run_id}"}},
            )
        elapsed = time.perf_counter() - t0
        assert out["messages"][-1].content == "done", out["messages"][-1]
        sdk.clear()
        return elapsed

    for name in agents:  # warm up
        run(name)
    for mw in middlewares.values():
        mw.own_wall = mw.own_cpu = 0.0
    for listener in (api, with_sdk):
        listener.wall = listener.cpu = 0.0
        listener.calls = 0
    for _ in range(rounds):
        for name in agents:
            elapsed = sum(run(name) for _ in range(runs))
            totals[name] += elapsed
            per_step[name].append(elapsed / (runs * steps) * 1000)

    print(
        f"create_agent + GuardMiddleware; {rounds} rounds x {runs} runs x {steps} tool-call "
        "steps per variant; the SDK variant's runs each in an SDK span (its events land there)"
    )
    base = statistics.median(per_step["guard"])
    print(f"{'variant':<26}{'ms/step min':>12}{'median':>9}{'max':>9}{'vs guard':>10}")
    for name, s in per_step.items():
        med = statistics.median(s)
        print(f"{name:<26}{min(s):>12.3f}{med:>9.3f}{max(s):>9.3f}{med / base:>9.3f}x")
    n = rounds * runs * steps
    print("in-process, per tool-call step (CPU = the hook thread's CPU time):")
    print(f"  guard alone: CPU {middlewares['guard'].own_cpu / n * 1e6:.1f} us")
    for name, listener in (("API only", api), ("SDK", with_sdk)):
        variant = f"guard + otel ({name})"
        total = totals[variant]
        print(
            f"  {variant}: guard incl. listener CPU "
            f"{middlewares[variant].own_cpu / n * 1e6:.1f} us; listener alone CPU "
            f"{listener.cpu / n * 1e6:.1f} us, wall {listener.wall / n * 1e6:.1f} us "
            f"({listener.wall / total * 100:.2f}% of the step; "
            f"{listener.calls / n:.1f} decisions per step, "
            f"{listener.cpu / listener.calls * 1e6:.2f} us CPU each)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=2000, help="checks per batch")
    parser.add_argument("--agent-rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10, help="agent runs per variant per round")
    parser.add_argument("--steps", type=int, default=10, help="tool-call steps per run")
    opts = parser.parse_args()
    if opts.quick:
        opts.rounds, opts.batch, opts.agent_rounds, opts.runs = 3, 200, 2, 2

    print(
        f"opentelemetry-api {version('opentelemetry-api')}, "
        f"opentelemetry-sdk {version('opentelemetry-sdk')}, langchain {version('langchain')}, "
        f"langgraph {version('langgraph')}, python {platform.python_version()}, "
        f"{os.cpu_count()} cores, {platform.machine()}\n"
    )
    bench_check(opts.rounds, opts.batch)
    bench_agent(opts.agent_rounds, opts.runs, opts.steps)


if __name__ == "__main__":
    main()
