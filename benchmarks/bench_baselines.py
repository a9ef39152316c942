"""Behaviour baselines: what the anomaly signal costs per call, and what it catches.

Run:  python benchmarks/bench_baselines.py [--cost-only | --eval-only] [--train 10] [--test 20]

Cost: the calls of generated honest runs (``Population``: agents with habitual tools and
destinations, free-text arguments) decided by ``Guard.check`` with an allow-all policy:
without a monitor, with ``CascadeMonitor([Anomaly(baseline)])``, with the default signals,
and with the default signals plus ``Anomaly``; beside them the signal's own scoring
(``Anomaly.novelties``) alone. CPU microseconds per call, the best of six passes, interleaved.

Detection (``--drift``, default 0.01: the share of honest calls that go somewhere of the
organisation's own never used before): a baseline learned from the honest runs of ``--train`` history seeds (100 runs
each), then the honest and compromised runs of ``--test`` held-out seeds (100 runs each,
per attack) through a ``Guard`` with ``Anomaly(baseline)`` and the default breaker:
compromised runs caught, calls from the first bad call to the trip, bad calls let through
before it, false alarms per thousand honest runs; for three thresholds, and for smaller
training sets. Learning speed and the file's size come last.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator

from guardrails_plugin import Guard, Policy, ToolCall, allow
from guardrails_plugin.baselines import Anomaly, Population, evaluate, learn
from guardrails_plugin.baselines._habits import CATALOGUE
from guardrails_plugin.cascade import CascadeMonitor, default_signals
from guardrails_plugin.replay import RecordedCall


class Noop:
    """A signal that sees every call and does nothing: the monitor's own share."""

    name = "noop"
    every_call = True

    def track(self) -> Noop:
        return self

    def observe(self, seen: object) -> None:
        return None

    def observe_call(self, call: ToolCall, denied: bool, scope: str, index: int) -> None:
        return None


def cpu_per_call(fn: Callable[[ToolCall], object], calls: list[ToolCall]) -> float:
    t0 = time.process_time()
    for c in calls:
        fn(c)
    return (time.process_time() - t0) / len(calls) * 1e6


def cost(pop: Population, train: int) -> None:
    baseline = learn(pop.history(range(train), 100))
    runs = [run.calls for run in pop.honest(999, 400)]
    policy = Policy([allow(sorted(CATALOGUE))])
    print(f"cost: {sum(map(len, runs)):,} calls of 400 honest runs, {len(baseline.agents)} agents")
    anomaly = Anomaly(baseline)
    makers: list[tuple[str, Callable[[], CascadeMonitor | None]]] = [
        ("Guard.check, no monitor", lambda: None),
        ("Guard.check, CascadeMonitor([Anomaly])", lambda: CascadeMonitor([anomaly])),
        (
            "Guard.check, CascadeMonitor([a no-op every_call signal])",
            lambda: CascadeMonitor([Noop()]),
        ),
        ("Guard.check, default signals", lambda: CascadeMonitor()),
        (
            "Guard.check, default signals + Anomaly",
            lambda: CascadeMonitor([*default_signals(), anomaly]),
        ),
    ]
    # Each pass: a fresh guard and monitor, and calls of fresh threads (a scope the monitor
    # already knows would count the runs twice). Rows interleaved, the best pass of each: a
    # busy machine drifts less between the rows.
    results = {name: float("inf") for name, _ in makers}
    trips = 0
    for p in range(6):
        calls = [
            ToolCall(
                c.tool,
                c.args,
                agent=c.agent,
                thread_id=f"{c.thread_id}/{p}",
                call_id=f"{c.call_id}/{p}",
            )
            for run in runs
            for c in run
        ]
        for name, make in makers:
            guard = Guard(policy, cascade=make())
            results[name] = min(results[name], cpu_per_call(guard.check, calls))
            trips += len(guard.trips())
    bare = results["Guard.check, no monitor"]
    flat = [c for run in runs for c in run]
    alone = min(cpu_per_call(lambda c: anomaly.novelties(c, "", 1), flat) for _ in range(6))
    print(f"  {'Anomaly.novelties alone':<58} {alone:6.2f} µs/call")
    for name, us in results.items():
        print(f"  {name:<58} {us:6.2f} µs/call  ({us / bare:.2f}x Guard.check alone)")
    print(f"  (trips on these honest runs, all passes: {trips})")


def detection(pop: Population, train: int, test: int) -> None:
    seeds = range(train)
    held_out = range(1000, 1000 + test)
    baseline = learn(pop.history(seeds, 100))
    print(
        f"\ndetection: baseline from {train * 100:,} honest runs (seeds 0..{train - 1}); "
        f"held out: {test * 100:,} runs per kind (seeds 1000..{999 + test})"
    )
    for threshold in (2.0, 3.0, 4.0):
        t0 = time.perf_counter()
        ev = evaluate(pop, baseline, held_out, runs=100, threshold=threshold)
        spent = time.perf_counter() - t0
        print(
            f"  threshold {threshold:g}: false alarms {ev.false_alarms_per_1000:.1f} per 1,000 honest runs "
            f"({ev.false_alarms}/{ev.honest_runs}); {spent:.0f} s"
        )
        for attack in ("spray", "single", "within"):
            lat = ev.latency.get(attack) or [0]
            through = ev.let_through.get(attack) or [0]
            print(
                f"    {attack:<7} caught {ev.caught_share(attack):6.1%} "
                f"({ev.caught.get(attack, 0)}/{ev.compromised.get(attack, 0)}); calls to trip "
                f"median {statistics.median(lat):g}, p90 {sorted(lat)[int(0.9 * (len(lat) - 1))]}; "
                f"bad calls let through median {statistics.median(through):g}"
            )
    print("  honest drift (threshold 3): the share of honest calls to a new destination")
    for drift in (0.0, 0.01, 0.03, 0.1):
        other = Population(pop.seed, drift=drift)
        ev = evaluate(
            other,
            learn(other.history(seeds, 100)),
            held_out[: max(1, test // 2)],
            runs=100,
            attacks=("spray", "single"),
        )
        print(
            f"    drift {drift:4.0%}: false alarms {ev.false_alarms_per_1000:5.1f} per 1,000 "
            f"({ev.false_alarms}/{ev.honest_runs}); spray caught {ev.caught_share('spray'):.1%}, "
            f"single caught {ev.caught_share('single'):.1%}"
        )
    print("  smaller training sets (threshold 3):")
    for runs in (100, 300, 1000):
        small = learn(pop.history(range(max(1, runs // 100)), min(runs, 100)))
        ev = evaluate(pop, small, held_out[: max(1, test // 2)], runs=100, attacks=("spray",))
        print(
            f"    {runs:>5} training runs: false alarms {ev.false_alarms_per_1000:.1f} per 1,000; "
            f"spray caught {ev.caught_share('spray'):.1%}"
        )


def learning(pop: Population) -> None:
    n = 0

    def counted() -> Iterator[RecordedCall]:
        nonlocal n
        for c in pop.history(range(50), 100):
            n += 1
            yield c

    history = list(counted())
    t0 = time.process_time()
    baseline = learn(history)
    spent = time.process_time() - t0
    size = len(baseline.to_json(indent=1))
    print(
        f"\nlearning: {n:,} calls in {spent:.2f} s CPU ({n / spent:,.0f} calls/s); "
        f"file {size / 1024:.0f} kB for {len(baseline.agents)} agents"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=10)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--drift", type=float, default=0.01, help="honest calls to new places")
    ap.add_argument("--cost-only", action="store_true")
    ap.add_argument("--eval-only", action="store_true")
    args = ap.parse_args()
    pop = Population(7, drift=args.drift)
    print(pop)
    if not args.eval_only:
        cost(pop, args.train)
    if not args.cost_only:
        detection(pop, args.train, args.test)
        learning(pop)


if __name__ == "__main__":
    main()
