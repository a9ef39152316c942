"""Detection quality on generated scenarios: every cascade kind and benign pattern of
``tests/cascade_scenarios.py``, every shape, tuning and held-out seeds, with the defaults
(``CascadeMonitor()``, ``Breaker()``).

Run:  python benchmarks/bench_cascade_scenarios.py [--seeds held-out|tuning|A-B]
      [--modes causal,fallback] [--rows]

Prints, per kind and shape, how many runs were flagged in time (cascades) or tripped
(benign), and the median number of messages from onset to the first flag; ``--rows``
prints every run (onset, first flag, signal, verdict). To compare another version of the
package on the same scenarios, run this script with ``PYTHONPATH`` pointing at it (the
generator only needs ``Guard``, ``CascadeMonitor`` and the events).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import cascade_scenarios as cs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="held-out")
    ap.add_argument("--modes", default="causal,fallback")
    ap.add_argument("--rows", action="store_true")
    args = ap.parse_args()
    if args.seeds == "held-out":
        seeds = cs.HELD_OUT_SEEDS
    elif args.seeds == "tuning":
        seeds = cs.TUNING_SEEDS
    else:
        try:
            low, high = (int(x) for x in args.seeds.split("-"))
        except ValueError:
            sys.exit(f"error: --seeds: expected held-out, tuning or A-B, got {args.seeds!r}")
        seeds = range(low, high)
    modes = args.modes.split(",")
    started = time.time()
    rows: list[cs.Outcome] = []
    for mode in modes:
        for kind in cs.KINDS:
            for shape in cs.SHAPES:
                for seed in seeds:
                    outcome, _, _ = cs.play(cs.generate(kind, shape, seed), mode, record=False)
                    rows.append(outcome)
    import guardrails_plugin

    print(
        f"{len(rows)} runs: seeds {seeds.start}-{seeds.stop - 1}, modes {', '.join(modes)}; "
        f"package {Path(guardrails_plugin.__file__).parent}; {time.time() - started:.0f} s"
    )
    for mode in modes:
        print(f"\n## mode: {mode}")
        print(f"{'kind':<14}" + "".join(f"{s:>12}" for s in cs.SHAPES) + f"{'lag':>8}")
        for kind in cs.KINDS:
            cells = []
            lags: list[int] = []
            for shape in cs.SHAPES:
                mine = [
                    r for r in rows if r.mode == mode and r.scenario.startswith(f"{kind}/{shape}/")
                ]
                good = sum(r.verdict == "ok" for r in mine)
                cells.append(f"{good}/{len(mine)}")
                lags += [
                    r.flagged - r.onset
                    for r in mine
                    if r.flagged is not None and r.onset is not None and kind in cs.CASCADES
                ]
            lag = f"{statistics.median(lags):.0f}" if lags else "-"
            print(f"{kind:<14}" + "".join(f"{c:>12}" for c in cells) + f"{lag:>8}")
        bad: dict[str, int] = defaultdict(int)
        for r in rows:
            if r.mode == mode and r.verdict != "ok":
                bad[r.verdict] += 1
        print("not ok: " + (", ".join(f"{v} {k}" for k, v in sorted(bad.items())) or "none"))
    if args.rows:
        print()
        for line in cs.table(rows):
            print(line)


if __name__ == "__main__":
    main()
