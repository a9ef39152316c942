"""Decision latency on the allow path: 1, 10, 100 and 1000 rules, and each scope kind.

Run:  python benchmarks/bench_decisions.py [--quick] [--delegation]

``--delegation`` runs only the part on delegated grants: a check under a delegated grant
(charged to the delegate's and the delegators' budgets) against the same check made by the
delegator itself, in the same run.

Reports median / p10 / p90 microseconds per ``Guard.check`` (in-memory store) and per
``Policy.evaluate`` (rules alone), each over many batches. A decision on the allow path is
the guard's hot path: every tool call of every agent goes through it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from guardrails_plugin import Budget, Guard, Policy, ToolCall, allow, deny
from guardrails_plugin.scopes import Emails, Number, OneOf, Paths, Pattern, Shell, Sql, Urls


def bench(fn: Callable[[], Any], *, batches: int, per_batch: int) -> tuple[float, float, float]:
    for _ in range(per_batch):  # warm up caches (compiled buckets, parsers)
        fn()
    samples = []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(per_batch):
            fn()
        samples.append((time.perf_counter_ns() - t0) / per_batch / 1000)
    samples.sort()
    q = statistics.quantiles(samples, n=10)
    return statistics.median(samples), q[0], q[-1]


def policy_with(n_rules: int) -> Policy:
    """n rules about other tools (exact names, globs, scoped), the target rule last."""
    rules = []
    for i in range(n_rules - 1):
        kind = i % 4
        if kind == 0:
            rules.append(allow(f"tool_{i}", args={"n": Number(ge=0, le=i)}))
        elif kind == 1:
            rules.append(deny(f"danger_{i}_*"))
        elif kind == 2:
            rules.append(allow(f"tool_{i}", agents=f"team_{i}_*"))
        else:
            rules.append(allow(f"other_{i}", args={"mode": OneOf(["a", "b"])}))
    rules.append(
        allow(
            "transfer",
            args={
                "amount": Number(gt=0, le=1000),
                "path": Paths(["/srv/data"], resolve_symlinks=False),
            },
        )
    )
    return Policy(rules)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer batches (a smoke run)")
    parser.add_argument("--delegation", action="store_true", help="only delegated grants")
    opts = parser.parse_args()
    batches, per_batch = (20, 200) if opts.quick else (60, 1000)
    if opts.delegation:
        delegation(batches, per_batch)
        return

    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}; "
        f"{batches} batches x {per_batch} decisions; microseconds per decision\n"
    )

    print("allow path vs number of rules (scopes: number + path normalization, no filesystem)")
    print(f"{'rules':>6}  {'check median':>12}  {'p10':>6}  {'p90':>6}  {'evaluate median':>15}")
    call = ToolCall("transfer", {"amount": 250, "path": "/srv/data/in/../out/x.csv"}, thread_id="t")
    for n in (1, 10, 100, 1000):
        policy = policy_with(n)
        guard = Guard(policy)
        assert guard.check(call).allowed, guard.check(call)
        med, p10, p90 = bench(lambda g=guard: g.check(call), batches=batches, per_batch=per_batch)
        emed, _, _ = bench(lambda p=policy: p.evaluate(call), batches=batches, per_batch=per_batch)
        print(f"{n:>6}  {med:>12.2f}  {p10:>6.2f}  {p90:>6.2f}  {emed:>15.2f}")

    print(
        "\nallow path per scope kind (one rule, Guard.check, in-memory store; the same value "
        "each time, so parse caches hit)"
    )
    tmp = tempfile.mkdtemp()
    os.makedirs(os.path.join(tmp, "data", "in"), exist_ok=True)
    cases: list[tuple[str, Any, Any]] = [
        ("name only", None, None),
        ("number", Number(gt=0, le=1000), 250),
        ("one_of", OneOf(["eu", "us", "apac"]), "eu"),
        ("pattern", Pattern(r"[A-Z]{3}-\d{4}"), "ABC-1234"),
        (
            "path (normalize only)",
            Paths(["/srv/data"], resolve_symlinks=False),
            "/srv/data/a/../b.txt",
        ),
        (
            "path (realpath)",
            Paths([os.path.join(tmp, "data")]),
            os.path.join(tmp, "data", "in", "x.txt"),
        ),
        (
            "url (WHATWG, ada)",
            Urls(["api.example.com", "*.example.org"]),
            "https://api.example.com/v1/items?q=1",
        ),
        (
            "email (RFC 5322)",
            Emails(domains=["example.com"]),
            "Alice <alice@example.com>, bob@example.com",
        ),
        ("shell (bashlex)", Shell(["ls", "grep"], allow_pipes=True), "ls -la /srv | grep report"),
        (
            "sql (sqlglot)",
            Sql(["orders", "customers"]),
            "SELECT o.id FROM orders o JOIN customers c ON o.c = c.id",
        ),
    ]
    print(f"{'scope':<24}{'median':>8}  {'p10':>7}  {'p90':>7}")
    for label, scope, value in cases:
        args = {} if scope is None else {"v": scope}
        guard = Guard(Policy([allow("tool", args=args)]))
        c = ToolCall("tool", {} if scope is None else {"v": value}, thread_id="t")
        assert guard.check(c).allowed, (label, guard.check(c).reason)
        n_batches = (
            batches if label not in ("shell (bashlex)", "sql (sqlglot)") else max(10, batches // 4)
        )
        n_per = (
            per_batch
            if label not in ("shell (bashlex)", "sql (sqlglot)")
            else max(50, per_batch // 10)
        )
        med, p10, p90 = bench(lambda g=guard, c=c: g.check(c), batches=n_batches, per_batch=n_per)
        print(f"{label:<24}{med:>8.2f}  {p10:>7.2f}  {p90:>7.2f}")

    print("\nparser-backed scopes on values never seen before (parse caches defeated)")
    fresh: list[tuple[str, Any, Callable[[int], str]]] = [
        (
            "url (WHATWG, ada)",
            Urls(["*.example.com"]),
            lambda i: f"https://h{i}.example.com/p?q={i}",
        ),
        (
            "email (RFC 5322)",
            Emails(domains=["example.com"]),
            lambda i: f"User {i} <u{i}@example.com>",
        ),
        (
            "shell (bashlex)",
            Shell(["ls", "grep"], allow_pipes=True),
            lambda i: f"ls -la /srv/{i} | grep r{i}",
        ),
        (
            "sql (sqlglot)",
            Sql(["orders", "customers"]),
            lambda i: f"SELECT o.id FROM orders o JOIN customers c ON o.c = c.id WHERE o.id = {i}",
        ),
    ]
    print(f"{'scope':<24}{'median':>8}  {'p10':>7}  {'p90':>7}")
    for label, scope, make in fresh:
        guard = Guard(Policy([allow("tool", args={"v": scope})]))
        counter = iter(range(10**9))
        calls = [ToolCall("tool", {"v": make(i)}, thread_id="t") for i in range(5000)]
        assert all(guard.check(c).allowed for c in calls[:3])

        def one(g: Guard = guard, calls: list[ToolCall] = calls, counter: Any = counter) -> Any:
            return g.check(calls[next(counter) % 5000])

        med, p10, p90 = bench(one, batches=10, per_batch=100)
        print(f"{label:<24}{med:>8.2f}  {p10:>7.2f}  {p90:>7.2f}")

    print("\nbudgets on the allow path (100 rules + one call budget)")
    policy = Policy(policy_with(100).rules, budgets=[Budget.calls(10**12, tools="transfer")])
    guard = Guard(policy)
    med, p10, p90 = bench(lambda: guard.check(call), batches=batches, per_batch=per_batch)
    print(f"{'memory store':<24}{med:>8.2f}  {p10:>7.2f}  {p90:>7.2f}")
    from guardrails_plugin import SQLiteStore

    sguard = Guard(policy, store=SQLiteStore(os.path.join(tmp, "b.db")))
    med, p10, p90 = bench(
        lambda: sguard.check(call),
        batches=max(10, batches // 4),
        per_batch=max(50, per_batch // 10),
    )
    print(f"{'sqlite store (WAL)':<24}{med:>8.2f}  {p10:>7.2f}  {p90:>7.2f}")
    sys.stdout.flush()


def delegation(batches: int, per_batch: int) -> None:
    """A check under a delegated grant against the delegator's own check, same run: with no
    budget (the second evaluation that tells whether the grant is needed), with one budget
    per agent (the delegate's and the delegator's partitions charged), along a chain."""
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.machine()}; "
        f"{batches} batches x {per_batch} decisions; microseconds per decision, in-memory "
        "store, 100 rules\n"
    )
    rules = [*policy_with(100).rules[:-1], allow("transfer", agents="alice")]
    big = 10**12
    shapes = {
        "no budget": [],
        "1 budget per run+agent": [Budget.calls(big, tools="transfer", per=("run", "agent"))],
        "3 budgets (calls, sum, per agent)": [
            Budget.calls(big, tools="transfer", per=("run", "agent")),
            Budget.sum("amount", big, tools="transfer", agents="alice"),
            Budget.calls(big, tools="*", per="thread"),
        ],
    }
    args = {"amount": 250, "path": "/srv/data/x.csv"}
    print(
        f"{'budgets':<34}{'who':<28}{'min':>7}  {'median':>7}  {'max':>8}  "
        f"{'x min':>6}  {'x med':>6}"
    )
    for label, budgets in shapes.items():
        guard = Guard(Policy(rules, budgets=budgets))
        guard.delegate("alice", "bob", "transfer")
        guard.delegate("bob", "carol", "transfer")
        calls = {
            note: ToolCall("transfer", args, agent=a, run_id="r1", thread_id="t")
            for note, a in (
                ("alice (her own rule)", "alice"),
                ("bob (alice's grant)", "bob"),
                ("carol (chain of 2)", "carol"),
            )
        }
        for c in calls.values():
            assert guard.check(c).allowed, guard.check(c)
        samples: dict[str, list[float]] = {note: [] for note in calls}
        small = max(20, per_batch // 20)  # short batches, interleaved A B C A B C ...: a
        for _ in range(batches * 5):  # busy machine slows all three alike
            for note, c in calls.items():
                t0 = time.perf_counter_ns()
                for _ in range(small):
                    guard.check(c)
                samples[note].append((time.perf_counter_ns() - t0) / small / 1000)
        base = statistics.median(samples["alice (her own rule)"])
        low = min(samples["alice (her own rule)"])
        for note, got in samples.items():
            med, least = statistics.median(got), min(got)
            print(
                f"{label:<34}{note:<28}{least:>7.2f}  {med:>7.2f}  {max(got):>8.2f}  "
                f"{least / low:>6.2f}  {med / base:>6.2f}"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
