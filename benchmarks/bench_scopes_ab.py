"""Cost of the parser-backed scopes on never-seen values: this tree against another one.

Run:  python benchmarks/bench_scopes_ab.py --base /path/to/other/checkout [--rounds 6]

``--base`` is a directory holding another version of the ``guardrails_plugin`` package (for
instance ``git worktree add /tmp/base main`` or ``git archive main guardrails_plugin | tar -x
-C /tmp/base``). Each round runs the same measurement in a fresh process for the base, then
for this tree (interleaved, so both see the same machine load), and reports per scope the
median over rounds of the per-round medians, in microseconds of thread CPU time per
``check`` (less disturbed by other processes than wall time), and the ratio this/base.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

MEASURE = r"""
import os, statistics, sys, tempfile, time
from guardrails_plugin.scopes import Emails, Paths, Shell, Sql, Text, Urls
tmp = tempfile.mkdtemp()
text = Text(urls=Urls(["example.com", "*.example.com"]), emails=Emails(domains=["example.com"]))
prose = ("Hi Ann, thanks for the notes from meeting {i}. The figures for the third quarter "
         "look fine to me; I moved two items to next week and asked Bob to check the totals. "
         "Let us talk on Monday at 10:30 about the plan (and the budget, 1.5 times last year's).")
os.makedirs(tmp + "/data/in")
cases = [
    ("url", Urls(["*.example.com"]), lambda i: f"https://h{i}.example.com/p?q={i}"),
    ("email", Emails(domains=["example.com"]), lambda i: f"User {i} <u{i}@example.com>"),
    ("shell", Shell(["ls", "grep"], allow_pipes=True), lambda i: f"ls -la /srv/{i} | grep r{i}"),
    ("shell, tar (options read)", Shell(["tar"]),
     lambda i: f"tar -czf /tmp/b{i}.tgz --exclude='*.o' -C /srv/{i} ."),
    ("shell, find -exec + xargs git", Shell(["find", "ls", "xargs", "git"], allow_pipes=True),
     lambda i: f"find /srv/{i} -name '*.log' -exec ls -l {{}} + | xargs -n 1 git log -1"),
    ("sql", Sql(["orders", "customers"]),
     lambda i: f"SELECT o.id FROM orders o JOIN customers c ON o.c = c.id WHERE o.id = {i}"),
    ("sql postgres + functions", Sql(["orders", "customers"], dialect="postgres"),
     lambda i: f"SELECT o.id, lower(c.name), count(*) FROM orders o JOIN customers c "
     f"ON o.c = c.id WHERE o.id = {i} GROUP BY 1, 2"),
    ("path write (realpath)", Paths([tmp + "/data"], access="write"),
     lambda i: f"{tmp}/data/in/x{i}.txt"),
    ("text, plain (no links)", text, lambda i: prose.format(i=i)),
    ("text, markdown with links", text,
     lambda i: prose.format(i=i) + f" Slides: [deck](https://docs.example.com/d/{i}), "
     f"notes at www.example.com/n{i} or ask ann{i}@example.com."),
]
round_ = int(sys.argv[1])
for name, scope, make in cases:
    values = [make(round_ * 100000 + i) for i in range(1200)]
    for value in values[:200]:
        scope.check(value)
    samples = []
    for batch in range(10):
        t0 = time.thread_time_ns()
        for value in values[200 + batch * 100 : 300 + batch * 100]:
            scope.check(value)
        samples.append((time.thread_time_ns() - t0) / 100 / 1000)
    print(f"{name}\t{statistics.median(samples):.2f}")
"""


def measure(tree: Path, round_: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(round_)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: measuring {tree} failed: {done.stderr.strip().splitlines()[-1]}")
    return {name: float(us) for name, us in (line.split("\t") for line in done.stdout.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="another checkout's root")
    parser.add_argument("--rounds", type=int, default=6)
    opts = parser.parse_args()
    if not (opts.base / "guardrails_plugin" / "__init__.py").is_file():
        raise SystemExit(f"error: {opts.base} holds no guardrails_plugin package")
    base: dict[str, list[float]] = {}
    this: dict[str, list[float]] = {}
    for round_ in range(opts.rounds):
        for tree, into in ((opts.base, base), (HERE, this)):
            for name, us in measure(tree, round_).items():
                into.setdefault(name, []).append(us)
    print(f"{os.cpu_count()} cores, {opts.rounds} interleaved rounds; thread CPU µs per check")
    print(f"{'scope (never-seen values)':<28}{'base':>9}{'this':>9}{'ratio':>8}")
    for name, samples in this.items():
        b, t = statistics.median(base[name]), statistics.median(samples)
        print(f"{name:<28}{b:>9.1f}{t:>9.1f}{t / b:>8.2f}")


if __name__ == "__main__":
    main()
