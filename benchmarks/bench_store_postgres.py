"""PostgresStore under the guard: decisions per second from 1, 4 and 16 processes, the latency
of one budgeted decision, and how fast a kill reaches workers in other processes.

Run:  python benchmarks/bench_store_postgres.py [--url postgresql://...] [--seconds 2]
      [--latency-calls 2000] [--kills 30] [--kill-workers 4]

Without ``--url`` it starts a throwaway cluster on loopback (tests/postgres_server.py, with
``synchronous_commit=on``: every decision's charge is a durable commit, as in production).

1. **Throughput.** N processes (1, 4, 16) each run ``Guard.check`` on a tool call with a
   budget (``Budget.calls`` per thread, a sliding-window ``rate`` per agent, both counted in
   the store) for ``--seconds``; decisions/s is the sum. The same on ``MemoryStore`` (each
   process its own: the floor, no sharing) and ``SQLiteStore`` (one file: the one-machine
   store), interleaved in one run. Client CPU per decision is each process's CPU time over
   its decisions.
2. **Latency.** One process, ``--latency-calls`` budgeted decisions, rounds interleaved
   memory / sqlite / postgres; p50 and p99 of each decision's wall time.
3. **Kill switch.** ``--kill-workers`` processes each check a guarded step every millisecond
   on their own ``PostgresStore`` (subscribed to the kill switch: no per-step store read).
   ``--kills`` times, an operator process calls ``Controls.kill()`` and every worker reports
   when its check first answered ``kill-switch``; latency = that time minus the time the
   operator *called* ``kill()`` (one machine clock; an upper bound: it includes the flag's
   own two commits). Then ``resume()`` and wait for every worker to run again.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from guardrails_plugin import (
    Budget,
    Controls,
    Guard,
    MemoryStore,
    Policy,
    SQLiteStore,
    ToolCall,
    allow,
    rate,
)
from guardrails_plugin.store import Store
from guardrails_plugin.store.postgres import PostgresStore

FORK = multiprocessing.get_context("fork")


def policy() -> Policy:
    return Policy(
        [allow("lookup")],
        budgets=[
            Budget.calls(10**9, tools="lookup", per="thread"),
            rate(10**9, seconds=60, tools="lookup", per="agent"),
        ],
    )


def open_kind(kind: str, url: str, schema: str, folder: str) -> Store:
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(os.path.join(folder, "bench.db"))
    return PostgresStore(url, schema=schema, pool_size=2)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. throughput ----------------------------------------------------------------------------


def _throughput_worker(
    kind: str, url: str, schema: str, folder: str, seconds: float, barrier: Any, out: Any
) -> None:
    store = open_kind(kind, url, schema, folder)
    guard = Guard(policy(), store=store)
    me = os.getpid()
    call = ToolCall("lookup", {"q": "x"}, agent=f"a{me % 4}", thread_id=f"t{me}")
    guard.check(call)  # connections open, caches warm
    barrier.wait()
    cpu0, t0, n = time.process_time(), time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        guard.check(call)
        n += 1
    out.put((n, time.perf_counter() - t0, time.process_time() - cpu0))
    store.close()


def throughput(
    kind: str, procs: int, url: str, schema: str, folder: str, seconds: float
) -> tuple[float, float]:
    barrier, out = FORK.Barrier(procs), FORK.Queue()
    workers = [
        FORK.Process(
            target=_throughput_worker, args=(kind, url, schema, folder, seconds, barrier, out)
        )
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(60)
    decisions = sum(n for n, _, _ in results)
    rate_ = sum(n / wall for n, wall, _ in results)
    cpu_us = sum(cpu for _, _, cpu in results) / decisions * 1e6
    return rate_, cpu_us


# -- 2. latency -------------------------------------------------------------------------------


def latency(stores: dict[str, Store], calls: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {kind: [] for kind in stores}
    guards = {kind: Guard(policy(), store=store) for kind, store in stores.items()}
    call = ToolCall("lookup", {"q": "x"}, agent="lat", thread_id=f"lat-{uuid.uuid4().hex}")
    for guard in guards.values():
        for _ in range(50):
            guard.check(call)
    per_round = calls // rounds
    for _ in range(rounds):
        for kind, guard in guards.items():
            bucket = samples[kind]
            for _ in range(per_round):
                t0 = time.perf_counter()
                guard.check(call)
                bucket.append(time.perf_counter() - t0)
    return samples


# -- 3. kill switch ---------------------------------------------------------------------------


def _kill_worker(
    url: str, schema: str, step: float, ready: Any, out: Any, pushes: Any, stop: Any
) -> None:
    from guardrails_plugin.controls import CONTROL_EPOCH

    store = PostgresStore(url, schema=schema, pool_size=1)
    guard = Guard(Policy([allow("*")]), store=store)
    call = ToolCall("work", {}, agent="worker", thread_id=f"k{os.getpid()}")
    guard.check(call)
    # A second subscriber on the same listener, stamping when each push arrives.
    store.subscribe(CONTROL_EPOCH, lambda: pushes.put(time.time()))
    sub = guard.controls.subscription
    while sub is None or not sub.alive:
        time.sleep(0.01)
        guard.check(call)
        sub = guard.controls.subscription
    ready.put(os.getpid())
    killed = False
    while not stop.is_set():
        rule = guard.check(call).rule
        if rule == "kill-switch" and not killed:
            out.put(("killed", time.time()))
            killed = True
        elif rule != "kill-switch" and killed:
            out.put(("running", time.time()))
            killed = False
        time.sleep(step)
    store.close()


def kill_latency(
    url: str, schema: str, workers: int, kills: int, step: float
) -> tuple[list[float], list[float]]:
    """(kill() called -> RunKilled, kill() called -> push received), per worker per kill."""
    ready, out, pushes, stop = FORK.Queue(), FORK.Queue(), FORK.Queue(), FORK.Event()
    procs = [
        FORK.Process(target=_kill_worker, args=(url, schema, step, ready, out, pushes, stop))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    time.sleep(0.5)
    _drain(pushes)
    operator = Controls(PostgresStore(url, schema=schema, pool_size=1))
    killed: list[float] = []
    pushed: list[float] = []
    for _ in range(kills):
        time.sleep(random.uniform(0.05, 0.2))
        t0 = time.time()
        operator.kill(reason="benchmark", by="bench")
        for _ in procs:
            state, at = out.get(timeout=30)
            assert state == "killed"
            killed.append(at - t0)
        pushed.extend(at - t0 for at in _drain(pushes)[: len(procs)])
        operator.resume()
        for _ in procs:
            state, _ = out.get(timeout=30)
            assert state == "running"
        time.sleep(0.05)
        _drain(pushes)
    stop.set()
    for p in procs:
        p.join(30)
    operator.store.close()
    return killed, pushed


def _drain(queue: Any) -> list[float]:
    found = []
    while True:
        try:
            found.append(queue.get(timeout=0.02))
        except Exception:
            return found


# -- main -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="an existing database (default: a throwaway cluster)")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--latency-calls", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--kill-workers", type=int, default=4)
    parser.add_argument("--procs", default="1,4,16")
    parser.add_argument("--step-ms", type=float, default=5.0, help="kill workers' step period")
    args = parser.parse_args()
    import psycopg

    with ExitStack() as stack:
        url = args.url
        if url is None:
            from postgres_server import postgres_cluster

            url = stack.enter_context(postgres_cluster(durable_commits=True)).url
        folder = stack.enter_context(tempfile.TemporaryDirectory())
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        PostgresStore(url, schema=schema).close()
        SQLiteStore(os.path.join(folder, "bench.db")).close()
        print(
            f"python {sys.version.split()[0]}, psycopg {psycopg.__version__}, {os.cpu_count()} cores"
        )
        with psycopg.connect(url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            print(f"PostgreSQL {row[0] if row else '?'} on loopback; synchronous_commit=on")

        print(
            f"\n1. decisions/s (budget per thread + sliding-window rate per agent), {args.seconds:g} s each"
        )
        print(
            f"{'procs':>5}  {'memory':>18}  {'sqlite':>18}  {'postgres':>18}   (client CPU µs/decision)"
        )
        for procs in [int(p) for p in args.procs.split(",")]:
            cells = []
            for kind in ("memory", "sqlite", "postgres"):
                rate_, cpu = throughput(kind, procs, url, schema, folder, args.seconds)
                cells.append(f"{rate_:9.0f} ({cpu:5.0f})")
            print(f"{procs:>5}  " + "  ".join(f"{c:>18}" for c in cells))

        print(
            f"\n2. one budgeted Guard.check, one process, {args.latency_calls} calls per store, 10 rounds interleaved"
        )
        stores = {
            kind: open_kind(kind, url, schema, folder) for kind in ("memory", "sqlite", "postgres")
        }
        samples = latency(stores, args.latency_calls, 10)
        base = statistics.median(samples["memory"])
        for kind, bucket in samples.items():
            print(
                f"   {kind:8}  p50 {pct(bucket, 0.5) * 1e3:7.3f} ms   p99 {pct(bucket, 0.99) * 1e3:7.3f} ms"
                f"   (median {statistics.median(bucket) / base:5.1f}x memory)"
            )
        raw: list[float] = []
        with psycopg.connect(url, autocommit=True) as conn:
            for _ in range(args.latency_calls):
                t0 = time.perf_counter()
                conn.execute("SELECT 1").fetchall()
                raw.append(time.perf_counter() - t0)
        print(
            f"   psycopg   p50 {pct(raw, 0.5) * 1e3:7.3f} ms   p99 {pct(raw, 0.99) * 1e3:7.3f} ms"
            "   (one bare SELECT 1 round trip: the floor of one store operation)"
        )
        for store in stores.values():
            store.close()

        print(
            f"\n3. kill switch: {args.kill_workers} worker processes, a guarded step every "
            f"{args.step_ms:g} ms, {args.kills} kills (from the operator's kill() call)"
        )
        killed, pushed = kill_latency(
            url, schema, args.kill_workers, args.kills, args.step_ms / 1000
        )
        for what, lat in (("push received", pushed), ("RunKilled", killed)):
            print(
                f"   {what:14} n={len(lat)}  p50 {pct(lat, 0.5) * 1e3:6.1f} ms"
                f"   p99 {pct(lat, 0.99) * 1e3:6.1f} ms   max {max(lat) * 1e3:6.1f} ms"
            )


if __name__ == "__main__":
    main()
