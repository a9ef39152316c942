"""The audit log's costs: append throughput, the latency it adds to a decision, verify time.

Run:  python benchmarks/bench_audit.py [--quick] [--dir DIR]

1. **Append throughput** (records per second) of ``AuditLog.decision`` — redaction, sealing
   (canonical JSON + SHA-256), the locked write — for SQLite (WAL, ``synchronous=NORMAL``),
   SQLite durable (``FULL``: an fsync per commit), JSON Lines (no fsync) and JSON Lines
   durable (``fdatasync`` per record). Rounds of appends, min / median / max over rounds.
2. **Latency added to a decision**: ``Guard.check(ToolCall(...))`` on the allow path (the
   100-rule policy of ``bench_decisions.py``, in-memory store) without a listener, and with
   ``listeners=[AuditLog(...)]`` for each sink, interleaved batch after batch (A B C ... A B
   C ...) in the same run; µs per decision (median over batches), the ratio to the bare
   guard and the µs the audit adds.
3. **Verify time per 100,000 records**, both sinks: a clean log (the streaming pass), and
   the same log with one record edited (streaming pass + the diagnosing pass).

Files go to a temporary directory (``--dir`` to pick the disk: durable figures are only as
meaningful as the file system's fsync; tmpfs makes them free).
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_decisions import policy_with

from guardrails_plugin import Decision, Effect, Guard, ToolCall
from guardrails_plugin.audit import AuditLog, JSONLAuditSink, SQLiteAuditSink

CALL = ToolCall(
    "transfer",
    {"amount": 250, "path": "/srv/data/in/../out/x.csv", "note": "monthly settlement"},
    agent="payments",
    thread_id="ticket-42",
    call_id="call_1",
)
DECISION = Decision(Effect.ALLOW, "transfer", "within rule 'transfer'", tool="transfer")


def fmt(values: list[float], digits: int = 1) -> str:
    return (
        f"{min(values):.{digits}f} / {statistics.median(values):.{digits}f} / "
        f"{max(values):.{digits}f}"
    )


def sinks(folder: Path) -> dict[str, Callable[[str], AuditLog]]:
    """Fresh logs of each kind, by label; the argument names the file."""
    return {
        "SQLite (WAL, NORMAL)": lambda n: AuditLog(SQLiteAuditSink(folder / f"{n}.db")),
        "SQLite durable (FULL)": lambda n: AuditLog(
            SQLiteAuditSink(folder / f"{n}-d.db", durable=True)
        ),
        "JSON Lines": lambda n: AuditLog(JSONLAuditSink(folder / f"{n}.jsonl")),
        "JSON Lines durable (fdatasync)": lambda n: AuditLog(
            JSONLAuditSink(folder / f"{n}-d.jsonl", durable=True)
        ),
    }


def throughput(folder: Path, rounds: int, per_round: int) -> None:
    print("1. append throughput, AuditLog.decision(ToolCall, Decision), records/s")
    print(f"   {rounds} rounds; min / median / max over rounds\n")
    print(f"   {'sink':<32}{'records/s':>28}   {'µs per record (median)':>22}")
    for label, make in sinks(folder).items():
        n = per_round if "durable" not in label else max(20, per_round // 20)
        log = make("throughput")
        for _ in range(50):
            log.decision(CALL, DECISION)
        rates = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(n):
                log.decision(CALL, DECISION)
            rates.append(n / (time.perf_counter() - t0))
        assert log.verify().ok
        log.close()
        us = 1e6 / statistics.median(rates)
        print(f"   {label:<32}{fmt(rates, 0):>28}   {us:>22.1f}   ({n} per round)")
    sys.stdout.flush()


def latency(folder: Path, rounds: int, per_batch: int) -> None:
    policy = policy_with(100)
    plain = Guard(policy)
    logs = {label: make("latency") for label, make in sinks(folder).items()}
    variants: dict[str, Guard] = {"Guard.check, no listener": plain}
    for label, log in logs.items():
        variants[f"+ AuditLog, {label}"] = Guard(policy, listeners=[log])
    assert all(g.check(CALL).allowed for g in variants.values())
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for label, guard in variants.items():
            n = per_batch if "durable" not in label else max(5, per_batch // 20)
            if r == 0:
                for _ in range(n):  # warm up
                    guard.check(CALL)
            t0 = time.perf_counter_ns()
            for _ in range(n):
                guard.check(CALL)
            samples[label].append((time.perf_counter_ns() - t0) / n / 1000)
    print(
        f"\n2. latency the audit adds to a decision: Guard.check, allow path, 100 rules, "
        f"memory store;\n   {rounds} interleaved rounds x {per_batch} decisions per variant "
        f"(durable: {max(5, per_batch // 20)}); µs per decision\n"
    )
    base = statistics.median(samples["Guard.check, no listener"])
    print(f"   {'variant':<50}{'min / median / max µs':>26}{'ratio':>8}{'added µs':>10}")
    for label, values in samples.items():
        med = statistics.median(values)
        print(f"   {label:<50}{fmt(values, 2):>26}{med / base:>7.2f}x{med - base:>10.1f}")
    for log in logs.values():
        assert log.verify().ok
        log.close()
    sys.stdout.flush()


def verify_time(folder: Path, n: int) -> None:
    print(f"\n3. verify time, logs of {n} records, scaled to 100,000 records")
    print(f"   {'sink':<14}{'clean (s / 100k)':>18}{'one record edited (s / 100k)':>32}")
    for label, path in (("SQLite", folder / "verify.db"), ("JSON Lines", folder / "verify.jsonl")):
        log = (
            AuditLog(path)
            if label == "SQLite"
            else AuditLog(JSONLAuditSink(path, rotate_bytes=None))
        )
        for _ in range(n):
            log.decision(CALL, DECISION)
        t0 = time.perf_counter()
        report = log.verify()
        clean = time.perf_counter() - t0
        assert report.ok
        assert report.records == n
        edit_at = n // 2
        if label == "SQLite":
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("UPDATE guardrails_audit SET outcome = 'deny' WHERE seq = ?", (edit_at,))
            conn.close()
        else:
            data = path.read_bytes().split(b"\n")
            data[edit_at - 1] = data[edit_at - 1].replace(b'"outcome":"allow"', b'"outcome":"deny"')
            path.write_bytes(b"\n".join(data))
        t0 = time.perf_counter()
        report = log.verify()
        tampered = time.perf_counter() - t0
        assert [(p.kind, p.seq) for p in report.problems] == [("edited", edit_at)], str(report)
        log.close()
        scale = 100_000 / n
        print(f"   {label:<14}{clean * scale:>18.2f}{tampered * scale:>32.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (a few seconds)")
    parser.add_argument("--dir", default=None, help="where to write the logs (default: a temp dir)")
    opts = parser.parse_args()
    rounds, per_round = (3, 500) if opts.quick else (9, 4000)
    lat_rounds, per_batch = (5, 200) if opts.quick else (25, 1000)
    verify_n = 5_000 if opts.quick else 100_000
    print(
        f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} cores, {platform.machine()}\n"
    )
    with tempfile.TemporaryDirectory(dir=opts.dir) as tmp:
        folder = Path(tmp)
        throughput(folder, rounds, per_round)
        latency(folder, lat_rounds, per_batch)
        verify_time(folder, verify_n)


if __name__ == "__main__":
    main()
