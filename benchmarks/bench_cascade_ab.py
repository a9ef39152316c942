"""The cascade monitor's cost per message, this tree against another, in the same run.

Run:  python benchmarks/bench_cascade_ab.py --other DIR [--messages 3000] [--rounds 5]
      [--traffic team|relay] [--instructions]

``DIR`` holds another version of the package (``git archive main guardrails_plugin | tar -x
-C DIR``). The machines here are shared and their speed swings several-fold with the load,
so an absolute figure measured today says little against one measured yesterday: this
script feeds the same messages (``bench_cascade.Traffic``: N = 100 agents, 50 threads, with
causal parents and generations) to ``CascadeMonitor()`` (each tree's defaults) in child
processes, alternating A B A B ..., and reports each one's median µs per message per round
and their ratio: the median wall-clock µs of one ``observe`` call, and the CPU time of
the loop (``time.thread_time``: what the process itself spent, preemption by the other
processes on the machine left out) per message, the figure to compare. The children run
in an empty directory, so that the tree in the current directory cannot shadow ``DIR``.

``--traffic relay`` is the worst case for ``Cycles``, which reads a message's facts only
when it repeats a hand-off of its causal chain: the same texts, but every thread is one
chain relayed round a ring of three agents (each message the parent of the next), so from
the fourth message on every message repeats a hand-off and is read.

``--instructions`` counts instructions instead (callgrind; valgrind must be on the PATH):
each tree's child feeds the monitor the same 200 messages of warm-up, then ``--messages``
more (1,000 is plenty), and the same run with none measured is subtracted, so start-up
and warm-up cancel out (``PYTHONHASHSEED=0``, ``gc.freeze()`` after the warm-up). The
child imports only ``guardrails_plugin.cascade`` (the package's ``__init__`` is skipped:
no adapter, no framework import), so a run takes seconds. Deterministic: the figure to
compare on a loaded machine.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _callgrind import instructions  # this directory is on sys.path when run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import gc, pickle, statistics, sys, time
from guardrails_plugin import AgentMessage
from guardrails_plugin.cascade import CascadeMonitor
rows = pickle.load(open(sys.argv[1], "rb"))
messages = [AgentMessage(*r[:4], **r[4]) for r in rows]
monitor = CascadeMonitor()
for m in messages[:200]:
    monitor.observe(m)
gc.collect()
gc.freeze()
ns = []
perf = time.perf_counter_ns
observe = monitor.observe
cpu0 = time.thread_time_ns()
for m in messages[200:]:
    t0 = perf()
    observe(m)
    ns.append(perf() - t0)
cpu = (time.thread_time_ns() - cpu0) / len(ns) / 1000
print(statistics.median(ns) / 1000, cpu)
"""

# ``--instructions``: the same feed, only ``guardrails_plugin.cascade`` imported (the
# package's ``__init__`` and its adapters skipped), ``argv[3]`` messages measured.
COUNT = r"""
import gc, pickle, sys, types
package = types.ModuleType("guardrails_plugin")
package.__path__ = [sys.argv[2] + "/guardrails_plugin"]
sys.modules["guardrails_plugin"] = package
from guardrails_plugin._events import AgentMessage
from guardrails_plugin.cascade import CascadeMonitor
rows = pickle.load(open(sys.argv[1], "rb"))
messages = [AgentMessage(*r[:4], **r[4]) for r in rows]
monitor = CascadeMonitor()
for m in messages[:200]:
    monitor.observe(m)
gc.collect()
gc.freeze()
for m in messages[200 : 200 + int(sys.argv[3])]:
    monitor.observe(m)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", required=True, help="directory holding another guardrails_plugin")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--traffic", choices=("team", "relay"), default="team")
    ap.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    args = ap.parse_args()
    other = Path(args.other).resolve()
    if not (other / "guardrails_plugin").is_dir():
        sys.exit(f"error: {other} holds no guardrails_plugin directory")
    sys.path.insert(0, str(HERE))
    from bench_cascade import Traffic

    traffic = Traffic(100, 50, seed=7)
    rows = []
    last: dict[str | None, tuple[str, int]] = {}  # relay: thread -> its last (id, count)
    for _ in range(args.messages + 200):
        _, m = next(traffic)
        causal = {"id": m.id, "parent": m.parent, "generation": m.generation, "step": m.step}
        sender, recipient = m.sender, m.recipient
        if args.traffic == "relay":
            parent, n = last.get(m.thread_id, (None, -1))
            n += 1
            sender, recipient = f"agent-{n % 3}", f"agent-{(n + 1) % 3}"
            causal = {"id": m.id, "parent": parent, "generation": n, "step": n}
            last[m.thread_id] = (str(m.id), n)
        rows.append((sender, recipient, m.content, m.thread_id, {"path": m.path, **causal}))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "traffic.pickle"
        data.write_bytes(pickle.dumps(rows))
        trees = {"this": ROOT, "other": other}
        if args.instructions:
            _count(trees, data, args, tmp)
            return
        got: dict[str, list[tuple[float, float]]] = {k: [] for k in trees}
        started = time.time()
        for _ in range(args.rounds):
            for name, tree in trees.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(data)],
                    env=env,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                med, mean = map(float, out.stdout.split())
                got[name].append((med, mean))
    print(
        f"{args.messages} messages (after 200 of warm-up) per run, {args.traffic} traffic, "
        f"{'100 agents' if args.traffic == 'team' else 'rings of 3 agents'}, 50 threads, "
        f"{args.rounds} rounds A B A B ...; python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {time.time() - started:.0f} s"
    )
    print(f"{'tree':<8}{'CPU µs per message, per round':<44}{'CPU':>8}{'median':>8}")
    for name, runs in got.items():
        cpus = " ".join(f"{c:6.1f}" for _, c in runs)
        print(
            f"{name:<8}{cpus:<44}{statistics.median(c for _, c in runs):8.1f}"
            f"{statistics.median(m for m, _ in runs):8.1f}"
        )
    ratios = [a[1] / b[1] for a, b in zip(got["this"], got["other"], strict=True)]
    print(f"CPU this / other, per round: {' '.join(f'{r:.2f}' for r in ratios)}")


def _count(trees: dict[str, Path], data: Path, args: argparse.Namespace, cwd: str) -> None:
    """``--instructions``: instructions per message of each tree, measured minus empty."""
    if shutil.which("valgrind") is None:
        sys.exit("error: --instructions needs valgrind on the PATH")
    got = {}
    for name, tree in trees.items():
        runs = [
            instructions(COUNT, str(data), str(tree), str(n), cwd=cwd) for n in (args.messages, 0)
        ]
        got[name] = (runs[0] - runs[1]) / args.messages
    print(
        f"{args.messages} messages (after 200 of warm-up), {args.traffic} traffic, "
        f"python {sys.version.split()[0]}, callgrind, PYTHONHASHSEED=0"
    )
    for name, value in got.items():
        print(f"{name:<8}{value / 1000:8.1f}k instructions per message")
    print(f"this / other: {got['this'] / got['other']:.3f}")


if __name__ == "__main__":
    main()
