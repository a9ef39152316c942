"""``Policy.lint`` at 1,000 to 50,000 rules: linear, against the pairwise definition.

Run:  python benchmarks/bench_lint.py [--quick]

The policies mix what real ones hold: allow rules on exact tool names (some for named
agents), ask rules, outright denies on exact names and on prefix globs (``danger_12_*``),
scoped denies, and a few wildcard-first globs (``*_admin``), which the index cannot look up
by prefix. Each size is linted ``--rounds`` times (median, min, max, in seconds); the
pairwise check (every rule against every other, as lint first did it) is timed in the same
run up to ``--pairwise-max`` rules, and the ratio of the two is printed. "per rule" shows
growth: flat means linear. ``--yaml`` also times reading the largest policy from a file
(``Policy.from_yaml``, what ``guardrails-plugin lint`` does before linting).

``--cli`` times ``guardrails-plugin lint FILE`` end to end, in a fresh process per run
(start-up and imports, strict YAML reading, building the rules, printing the compiled
policy, lint) at 1,000, 8,000 and 50,000 rules: wall time and the process's CPU time
(user + system, from ``resource.getrusage``; on a shared machine wall time includes
waiting for a core). The same run times ``python -c "import guardrails_plugin.cli"`` as
the fixed cost every command pays.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import yaml

from guardrails_plugin import Policy, allow, ask, deny
from guardrails_plugin.policy import RuleEffect
from guardrails_plugin.scopes import Number


def policy_of(n: int) -> Policy:
    rules = []
    for i in range(n):
        kind = i % 10
        if kind in (0, 1, 2):
            rules.append(allow(f"tool_{i}", id=f"r{i}"))
        elif kind == 3:
            rules.append(allow(f"danger_{i - 3}_read", agents=f"team_{i % 7}", id=f"r{i}"))
        elif kind == 4:
            rules.append(ask(f"send_{i}", id=f"r{i}"))
        elif kind == 5:
            rules.append(deny(f"danger_{i - 5}_*", id=f"r{i}"))
        elif kind == 6:
            rules.append(deny(f"tool_{i - 6}", agents=f"team_{i % 7}", id=f"r{i}"))
        elif kind == 7:
            rules.append(deny(f"pay_{i}", args={"amount": Number(gt=100)}, id=f"r{i}"))
        elif kind == 8:
            rules.append(allow(f"user_{i}_admin", id=f"r{i}"))
        else:
            tool = f"*_admin_{i // 1000}" if i % 1000 == 9 else f"other_{i}"
            rules.append(deny(tool, id=f"r{i}"))
    return Policy(rules)


def pairwise(policy: Policy) -> list[str]:
    """The definition, quadratic: every allow / ask rule against every other rule."""
    warnings = []
    rules = policy.rules
    for i, r in enumerate(rules):
        if r.effect is RuleEffect.DENY:
            continue
        for d in rules[:i] + rules[i + 1 :]:
            if (
                d.effect is RuleEffect.DENY
                and d.unconditional
                and all(d._tools.covers(t) for t in r.tools)
                and all(d._agents.covers(a) for a in r.agents)
            ):
                warnings.append(f"rule {r.id!r} can never apply: rule {d.id!r} denies it outright")
                break
    return warnings


def timed(fn: Callable[[], object], rounds: int) -> tuple[list[float], object]:
    samples = []
    result: object = None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - t0)
    return samples, result


def run_cli(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one fresh ``python`` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_cli(rounds: int) -> None:
    print(f"# guardrails-plugin lint FILE end to end, fresh process, {rounds} rounds (median)")
    print(f"{'rules':>7} {'file MB':>8} {'wall':>8} {'CPU':>8} {'CPU per rule':>13}")
    base = [run_cli(["-c", "import guardrails_plugin.cli"]) for _ in range(rounds)]
    print(
        f"{'import':>7} {'-':>8} {statistics.median(w for w, _ in base):>7.2f}s "
        f"{statistics.median(c for _, c in base):>7.2f}s {'-':>13}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1000, 8000, 50000):
            path = os.path.join(tmp, f"policy-{n}.yaml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.dump(policy_of(n).to_dict(), f, Dumper=yaml.CSafeDumper, sort_keys=False)
            runs = [run_cli(["-m", "guardrails_plugin.cli", "lint", path]) for _ in range(rounds)]
            cpu = statistics.median(c for _, c in runs)
            print(
                f"{n:>7} {os.path.getsize(path) / 1e6:>8.1f} "
                f"{statistics.median(w for w, _ in runs):>7.2f}s {cpu:>7.2f}s "
                f"{cpu / n * 1e6:>11.1f}us"
            )
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 8,000, 2 rounds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairwise-max", type=int, default=4000)
    parser.add_argument("--yaml", action="store_true", help="also time Policy.from_yaml")
    parser.add_argument(
        "--cli", action="store_true", help="only time `guardrails-plugin lint FILE` end to end"
    )
    args = parser.parse_args()
    if args.cli:
        bench_cli(2 if args.quick else min(args.rounds, 3))
        return
    sizes = [1000, 2000, 4000, 8000] if args.quick else [1000, 2000, 4000, 8000, 20000, 50000]
    rounds = 2 if args.quick else args.rounds
    print(
        f"# Policy.lint: python {platform.python_version()}, {os.cpu_count()} cores, {rounds} rounds"
    )
    print(f"{'rules':>7} {'lint median':>12} {'min':>8} {'max':>8} {'per rule':>10} "
          f"{'pairwise':>10} {'ratio':>8} warnings")  # fmt: skip
    for n in sizes:
        policy = policy_of(n)
        samples, found = timed(policy.lint, rounds)
        median = statistics.median(samples)
        line = (
            f"{n:>7} {median:>11.3f}s {min(samples):>7.3f}s {max(samples):>7.3f}s "
            f"{median / n * 1e6:>8.1f}us"
        )
        if n <= args.pairwise_max:
            slow, expected = timed(lambda p=policy: pairwise(p), 1)
            assert found == expected + [w for w in found if w.startswith("budget")]
            line += f" {slow[0]:>9.3f}s {slow[0] / median:>7.0f}x"
        else:
            line += f" {'-':>10} {'-':>8}"
        print(f"{line} {len(found)}")  # type: ignore[arg-type]
        sys.stdout.flush()
    if args.yaml:
        n = sizes[-1]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "policy.yaml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.dump(policy_of(n).to_dict(), f, Dumper=yaml.CSafeDumper, sort_keys=False)
            samples, _ = timed(lambda: Policy.from_yaml(path), min(rounds, 3))
        print(f"# Policy.from_yaml of {n} rules: median {statistics.median(samples):.3f}s")


if __name__ == "__main__":
    main()
