"""Detection quality on the generated scenarios run through real LangGraph graphs:
every cascade kind and benign pattern of ``tests/cascade_scenarios.py`` in every shape,
through each wiring of ``tests/cascade_graph_scenarios.py`` (``guard_node`` with ``Send``
from nodes or from a routing function, ``CascadeWatcher`` on plain nodes, the team as a
nested subgraph), with the defaults (``CascadeMonitor()``, ``Breaker()``).

Run:  python benchmarks/bench_cascade_graph_scenarios.py [--seeds A-B] [--wirings ...]
      [--kinds ...] [--rows]

Prints, per kind and wiring, how many runs were flagged in time with the harm contained
(cascades) or tripped (benign), the median number of messages from onset to the first flag,
and every run that is not ok; ``--rows`` prints every run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import warnings
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import cascade_graph_scenarios as cgs
import cascade_scenarios as cs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="4002-4003")
    ap.add_argument("--wirings", default=",".join(cgs.WIRINGS))
    ap.add_argument("--kinds", default=",".join(cs.KINDS))
    ap.add_argument("--rows", action="store_true")
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = range(int(lo), int(hi or lo) + 1)
    warnings.filterwarnings("ignore")
    groups: dict[tuple[str, str], list[cs.Outcome]] = defaultdict(list)
    for wiring in args.wirings.split(","):
        for kind in args.kinds.split(","):
            for shape in cs.SHAPES:
                for seed in seeds:
                    outcome, *_ = cgs.play_graph(cs.generate(kind, shape, seed), wiring)
                    groups[(kind, wiring)].append(outcome)
    print(f"seeds {seeds.start}-{seeds.stop - 1}, shapes {', '.join(cs.SHAPES)}")
    print(f"{'kind':14} {'wiring':8} {'runs':>4} {'ok':>4} {'onset->flag (median)':>21}")
    bad = []
    for (kind, wiring), rows in groups.items():
        ok = sum(r.verdict == "ok" for r in rows)
        lags = [r.flagged - r.onset for r in rows if r.flagged is not None and r.onset is not None]
        lag = f"{statistics.median(lags):g}" if lags else "-"
        print(f"{kind:14} {wiring:8} {len(rows):>4} {ok:>4} {lag:>21}")
        bad += [r for r in rows if r.verdict != "ok"]
    every = [r for rows in groups.values() for r in rows]
    print(f"{len(every)} runs, {len(bad)} not ok")
    for line in cs.table(every if args.rows else bad)[:-1]:
        print(line)


if __name__ == "__main__":
    main()
