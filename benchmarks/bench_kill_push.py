"""Kill switch across processes on a shared server: from the flag set to the guard's kill.

Run:  python benchmarks/bench_kill_push.py [--workers 4] [--rounds 40] [--step-ms 1]
                                           [--modes push,poll,sqlite,pg-push,pg-poll]
                                           [--url redis://...]

N worker processes each run a ``Guard`` on the store and check one tool call every
``--step-ms`` milliseconds (an agent's step, much shortened). Each round the operator (this
process) waits a random 50-150 ms, then ``Controls(store).kill(thread=...)`` for the thread
the workers check; each worker reports ``time.time()`` at the first check that comes back as
the kill (``RunKilled`` in an adapter). Latency = that time minus the time ``kill`` was
called (so it includes writing the flag and the epoch; the median time ``kill`` itself took is
printed beside): p50 / p99 / max over workers x rounds, same machine clock.

Modes: ``push``: RedisStore, the guard subscribed to the kill switch's counter (no store read
per step while the subscription is alive); ``poll``: RedisStore with push switched off (one
counter read per step, the fallback); ``sqlite``: a SQLite file (one read per step);
``pg-push`` and ``pg-poll``: the same two on PostgresStore (LISTEN/NOTIFY), a throwaway
cluster with ``synchronous_commit=on``. Store
reads per step are printed too (``push`` should show almost none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from guardrails_plugin import Controls, Guard, Policy, ToolCall, allow  # noqa: E402
from guardrails_plugin.store import Store, Subscription, open_store  # noqa: E402
from guardrails_plugin.store.postgres import PostgresStore  # noqa: E402
from guardrails_plugin.store.redis import RedisStore  # noqa: E402


class PollingRedisStore(RedisStore):
    """RedisStore that never pushes: the guard reads the counter every step."""

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        return None


class PollingPostgresStore(PostgresStore):
    """PostgresStore that never pushes."""

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        return None


def open_for(mode: str, url: str) -> Store:
    if mode == "poll":
        return PollingRedisStore(url, create=False)
    if mode == "pg-poll":
        return PollingPostgresStore(url, create=False)
    return open_store(url, create=False)


def worker(mode: str, url: str, step: float) -> None:
    store = open_for(mode, url)
    reads = [0]
    real_total = store.total

    def counting_total(key: str, **kw: Any) -> float:
        reads[0] += 1
        return real_total(key, **kw)

    store.total = counting_total  # type: ignore[method-assign]
    guard = Guard(Policy([allow("send")]), store=store)
    guard.check(ToolCall("send", {}, thread_id="warm-up"))
    sub = guard.controls.subscription
    while mode in ("push", "pg-push") and not (sub is not None and sub.alive):
        time.sleep(0.005)
    print("ready", flush=True)
    for line in sys.stdin:
        thread = line.strip()
        steps, reads[0] = 0, 0
        while True:
            decision = guard.check(ToolCall("send", {}, thread_id=thread))
            steps += 1
            if decision.rule == "kill-switch":
                seen = time.time()
                break
            time.sleep(step)
        print(json.dumps({"seen": seen, "reads_per_step": reads[0] / steps}), flush=True)


@contextlib.contextmanager
def server(mode: str, url: str | None) -> Iterator[str]:
    if mode == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/kill.db"
    elif mode.startswith("pg-"):
        from postgres_server import postgres_cluster

        with postgres_cluster(durable_commits=True, settings={"max_connections": "300"}) as c:
            yield c.url
    elif url:
        yield url
    else:
        from redis_server import redis_server

        with redis_server() as started:
            yield started.url


def run(mode: str, url: str, workers: int, rounds: int, step: float) -> dict[str, float]:
    store = open_store(url)  # creates it
    controls = Controls(store)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, url, repr(step)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"a worker failed to start ({mode})")
    latencies: list[float] = []
    kill_ms: list[float] = []
    reads: list[float] = []
    rng = random.Random(7)
    for n in range(rounds):
        thread = f"round-{n}"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(thread + "\n")
            proc.stdin.flush()
        time.sleep(rng.uniform(0.05, 0.15))
        called = time.time()
        controls.kill(thread=thread, reason="benchmark", by="bench_kill_push")
        kill_ms.append((time.time() - called) * 1000)
        for proc in procs:
            assert proc.stdout is not None
            report = json.loads(proc.stdout.readline())
            latencies.append((report["seen"] - called) * 1000)
            reads.append(report["reads_per_step"])
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)
    store.close()
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p99": latencies[int(0.99 * (len(latencies) - 1))],
        "max": latencies[-1],
        "min": latencies[0],
        "reads": statistics.mean(reads),
        "kill": statistics.median(kill_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--step-ms", type=float, default=1.0)
    parser.add_argument("--modes", default="push,poll,sqlite,pg-push,pg-poll")
    parser.add_argument("--url", help="a running Redis (default: a throwaway redis-server)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], float(args.worker[2]))
        return
    print(
        f"{args.workers} worker processes, {args.rounds} rounds, a check every "
        f"{args.step_ms:g} ms; ms from kill() called to the worker's kill decision"
    )
    print(
        f"{'mode':7} {'min':>7} {'p50':>7} {'p99':>7} {'max':>7} {'store reads/step':>17} "
        f"{'kill() ms':>10}"
    )
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        with server(mode, args.url) as url:
            r = run(mode, url, args.workers, args.rounds, args.step_ms / 1000)
        print(
            f"{mode:7} {r['min']:7.2f} {r['p50']:7.2f} {r['p99']:7.2f} {r['max']:7.2f} "
            f"{r['reads']:17.3f} {r['kill']:10.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
