"""The cost of ``Storms`` per message, this tree against another, in instructions.

Run:  python benchmarks/bench_cascade_storms.py --other DIR [--messages 6000]

``DIR`` holds another version of the package. Only the signal's tracker is timed
(``Storms().track().observe``), on causal traffic whose messages are built beforehand:

- ``team``: one tree per task, 1-3 deliveries a generation for 6-12 generations (busy
  teams, loops, relays: the quick path, no generation reaches ``min_packets``);
- ``wide``: map-reduce phases of 8-40 separate deliveries, funnelled through one reducer
  message (every message of a wide generation runs the growth test);
- ``storm``: deliveries multiplying by 2-4 every 1-4 generations, a new tree once one
  trips or reaches 60 deliveries in a generation.

Each task is its own tree (its first message's sender at its own step).

Counted with callgrind (valgrind on the PATH): ``PYTHONHASHSEED=0``, the same run with no
message observed subtracted (interpreter start-up, imports and building the traffic cancel
out), per message. Deterministic, so one run per tree is enough on a shared machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from _callgrind import instructions  # this directory is on sys.path when run

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import gc, random, sys
sys.path.insert(0, sys.argv[1])
from guardrails_plugin import AgentMessage
from guardrails_plugin.cascade import Storms
from guardrails_plugin.cascade._signals import Observed

kind, total, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
msgs = []
n = 0

def emit(tree, widths):
    global n
    level = [None]
    for g, width in enumerate(widths):
        nxt = []
        for i in range(width):
            n += 1
            mid = f"m{n}"
            msgs.append(AgentMessage(f"a{g}", f"a{g + 1}", "x", thread_id="t", id=mid,
                                     parent=level[i % len(level)], generation=g,
                                     step=100 * tree + g))
            nxt.append(mid)
        level = nxt or level

t = 0
while len(msgs) < total:
    t += 1
    if kind == "team":
        emit(t, [rng.randint(1, 3) for _ in range(rng.randint(6, 12))])
    elif kind == "wide":
        widths = []
        for _ in range(rng.randint(1, 3)):
            w = rng.randint(8, 40)
            widths += [w, w, 1]
        emit(t, widths)
    else:
        k, p = rng.randint(2, 4), rng.randint(1, 4)
        widths = []
        for g in range(40):
            w = k ** (1 + g // p)
            if w > 60:
                break
            widths.append(w)
        emit(t, widths)
tracker = Storms().track()
seen = [Observed(m, i, "t") for i, m in enumerate(msgs[:total])]
gc.collect()
gc.freeze()
observe = tracker.observe
for s in seen[:count]:
    observe(s)
"""


def _instructions(tree: Path, kind: str, total: int, count: int) -> int:
    return instructions(CHILD, str(tree), kind, str(total), str(count))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", required=True, help="directory holding another guardrails_plugin")
    ap.add_argument("--messages", type=int, default=6000)
    ap.add_argument("--kinds", default="team,wide,storm")
    args = ap.parse_args()
    if args.messages < 1:
        sys.exit("error: --messages must be at least 1")
    if shutil.which("valgrind") is None:
        sys.exit("error: this benchmark needs valgrind on the PATH")
    trees = {"this": ROOT, "other": Path(args.other).resolve()}
    for tree in trees.values():
        if not (tree / "guardrails_plugin" / "cascade" / "_storms.py").is_file():
            sys.exit(f"error: {tree} holds no guardrails_plugin/cascade/_storms.py")
    print(f"{args.messages} messages per traffic kind; instructions per observe (callgrind)")
    print(f"{'traffic':<8}{'this':>10}{'other':>10}{'this/other':>12}")
    for kind in args.kinds.split(","):
        got = {}
        for name, tree in trees.items():
            full = _instructions(tree, kind, args.messages, args.messages)
            empty = _instructions(tree, kind, args.messages, 0)
            got[name] = (full - empty) / args.messages
        ratio = got["this"] / got["other"]
        print(f"{kind:<8}{got['this']:>10.0f}{got['other']:>10.0f}{ratio:>12.2f}")


if __name__ == "__main__":
    main()
