"""Simulation throughput, engine-level: interactions per second, and the guard's share.

Run:  python benchmarks/bench_simulate.py [--interactions 100000] [--workers 1,2] [--ray]

The cookbook scenario (``cookbook/simulation.yaml``: ten agents, compromised ones,
injected instructions, a store outage, slow approvers), run to the given number of
interactions:

- ``simulate`` on 1 process and on each ``--workers`` count (wall clock, interactions/s);
- the same shards with the guard replaced by a stub that allows everything (the
  simulator's own loop: drawing arguments, building events, scheduling, bookkeeping), so
  the guard's share of the time is visible; with everything allowed the traffic differs
  (no run is stopped), so compare per interaction;
- ``--ray``: the shards as Ray tasks on a new local instance (its start-up included,
  then a second run on the warm instance).

CPU seconds are process time of this process (workers' time is not in it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from guardrails_plugin._decision import Decision, Effect  # noqa: E402
from guardrails_plugin.simulate import Scenario, simulate  # noqa: E402
from guardrails_plugin.simulate._engine import Shard, split  # noqa: E402

_ALLOW = Decision(Effect.ALLOW, "stub", "no guard")


class _NoGuard:
    """Allows every event, as fast as a call can be."""

    def check(self, event: Any) -> Decision:
        return _ALLOW

    def resolve(self, *args: Any, **kwargs: Any) -> Decision:
        return _ALLOW

    def expire(self, *args: Any, **kwargs: Any) -> Decision:
        return _ALLOW


def no_guard(scenario: Scenario) -> tuple[float, int]:
    """Wall seconds and interactions of the shards with the stub guard."""
    start = time.perf_counter()
    n = 0
    for i, count in enumerate(split(scenario.interactions, scenario.shards)):
        shard = Shard(scenario, i, count)
        stub = _NoGuard()
        shard.guards = dict.fromkeys(shard.guards, stub)  # type: ignore[arg-type]
        n += shard.run().interactions
    return time.perf_counter() - start, n


def timed(scenario: Scenario, **options: Any) -> tuple[float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    report = simulate(scenario, **options)
    return time.perf_counter() - wall, time.process_time() - cpu, report.interactions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--workers", default="2", help="comma-separated worker counts")
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--ray", action="store_true")
    args = parser.parse_args()
    scenario = Scenario.from_yaml(ROOT / "cookbook" / "simulation.yaml").replace(
        interactions=args.interactions, shards=args.shards
    )
    simulate(scenario.replace(interactions=2_000))  # warm imports and caches
    rows = []
    wall, cpu, n = timed(scenario)
    rows.append(("simulate, 1 process", wall, cpu, n))
    base = wall / n
    for w in [int(x) for x in args.workers.split(",") if x]:
        if w > 1:
            wall, cpu, n = timed(scenario, workers=w)
            rows.append((f"simulate, {w} processes", wall, cpu, n))
    nog_wall, nog_n = no_guard(scenario)
    rows.append(("stub guard (the simulator alone), 1 process", nog_wall, nog_wall, nog_n))
    if args.ray:
        import ray

        wall, cpu, n = timed(scenario, ray="local")
        rows.append(("ray local, with start-up", wall, cpu, n))
        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            timed(scenario.replace(interactions=2_000), ray="local")
            wall, cpu, n = timed(scenario, ray="local")
            rows.append(("ray local, warm instance", wall, cpu, n))
        finally:
            ray.shutdown()
    print(f"{'run':<46} {'interactions':>12} {'wall s':>8} {'int/s':>9} {'µs/int':>8}")
    for name, wall, _cpu, n in rows:
        print(f"{name:<46} {n:>12,} {wall:>8.2f} {n / wall:>9,.0f} {1e6 * wall / n:>8.1f}")
    share = 1 - (nog_wall / nog_n) / base
    print(f"the guard's share of a simulated interaction (1 process): {100 * share:.0f}%")


if __name__ == "__main__":
    main()
