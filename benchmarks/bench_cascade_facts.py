"""The cost of one ``facts()`` call on a text it has not read before, this tree against another.

Run:  python benchmarks/bench_cascade_facts.py --other DIR [--texts 600] [--rounds 9]
      [--chars 1000] [--instructions]

``DIR`` holds another version of the package (``/path/to/checkout`` or ``git archive main
guardrails_plugin | tar -x -C DIR``). The texts are the relay traffic of
``bench_cascade_ab.py`` (``bench_cascade.Traffic``, seed 7): each message's first 1,000
characters (``--chars``; 0: whole messages, 1,206 characters on average, up to ~4,000, as
a tree that reads more than 1,000 characters reads them), all different, so every call misses the text cache, as on relay traffic. Each
tree's ``_facts.py`` is loaded on its own (no package import: nothing else runs), the token
cache is warmed on the other texts first, and the calls are timed in child processes that
alternate A B A B ... (``time.thread_time``: the process's own CPU, preemption left out).

``--instructions`` counts instructions instead, with callgrind (valgrind must be on the
PATH): deterministic (``PYTHONHASHSEED=0``, ``gc.freeze()`` after the warm-up), the same
run with no call subtracted, so interpreter start-up and the warm-up cancel out. It is the
figure to trust on a shared machine; a run takes about a minute per tree.
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
from pathlib import Path

from _callgrind import instructions  # this directory is on sys.path when run

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHILD = r"""
import gc, importlib.util, pickle, sys, time
spec = importlib.util.spec_from_file_location("facts", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
facts = module.facts
texts = pickle.load(open(sys.argv[2], "rb"))
held_out, count = int(sys.argv[3]), int(sys.argv[4])
for text in texts[held_out:]:
    facts(text)
module._BY_TEXT.clear()
gc.collect()
gc.freeze()
measured = texts[:count]
cpu0 = time.thread_time_ns()
for text in measured:
    facts(text)
print((time.thread_time_ns() - cpu0) / max(count, 1) / 1000)
"""


def _texts(count: int, chars: int) -> list[str]:
    sys.path.insert(0, str(HERE))
    from bench_cascade import Traffic

    traffic = Traffic(100, 50, seed=7)
    texts = [next(traffic)[1].content for _ in range(count + 2_000)]
    return [t[:chars] for t in texts] if chars else texts


def _instructions(source: Path, data: Path, count: int, cwd: str) -> float:
    # The warm-up is the same in both runs (every text after the first ``count``).
    def run(n: int) -> int:
        return instructions(CHILD, str(source), str(data), str(count), str(n), cwd=cwd)

    return (run(count) - run(0)) / count


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--other", required=True, help="directory holding another guardrails_plugin")
    ap.add_argument("--texts", type=int, default=600, help="texts timed per round")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--chars", type=int, default=1_000, help="characters of each text (0: all)")
    ap.add_argument("--instructions", action="store_true", help="count instructions (callgrind)")
    args = ap.parse_args()
    if args.texts < 1 or args.chars < 0:
        sys.exit("error: --texts must be at least 1 and --chars at least 0")
    trees = {"this": ROOT, "other": Path(args.other).resolve()}
    sources = {k: v / "guardrails_plugin" / "cascade" / "_facts.py" for k, v in trees.items()}
    for name, source in sources.items():
        if not source.is_file():
            sys.exit(f"error: {trees[name]} holds no guardrails_plugin/cascade/_facts.py")
    if args.instructions and shutil.which("valgrind") is None:
        sys.exit("error: --instructions needs valgrind on the PATH")
    texts = _texts(args.texts, args.chars)
    ascii_share = sum(t.isascii() for t in texts[: args.texts]) / args.texts
    mean_chars = statistics.mean(len(t) for t in texts[: args.texts])
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "texts.pickle"
        data.write_bytes(pickle.dumps(texts))
        print(
            f"{args.texts} relay texts ({f'first {args.chars:,}' if args.chars else 'all'} "
            f"characters, {mean_chars:.0f} on average, "
            f"{ascii_share:.0%} ASCII), each read once, text cache missed; python "
            f"{sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}"
        )
        if args.instructions:
            got = {k: _instructions(s, data, args.texts, tmp) for k, s in sources.items()}
            for name, value in got.items():
                print(f"{name:<8}{value / 1000:8.1f}k instructions per call")
            print(f"this / other: {got['this'] / got['other']:.2f}")
            return
        runs: dict[str, list[float]] = {k: [] for k in sources}
        for _ in range(args.rounds):
            for name, source in sources.items():
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(source), str(data), *[str(args.texts)] * 2],
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs[name].append(float(out.stdout))
    print(f"{'tree':<8}{'CPU µs per call, per round':<64}{'median':>8}")
    for name, values in runs.items():
        per_round = " ".join(f"{v:6.1f}" for v in values)
        print(f"{name:<8}{per_round:<64}{statistics.median(values):8.1f}")
    ratios = [a / b for a, b in zip(runs["this"], runs["other"], strict=True)]
    print(f"CPU this / other, per round: {' '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
