"""Shared stores under load: decisions per second from 1, 4 and 16 processes, and the latency
of one budgeted decision, per store, beside the in-memory store in the same run.

Run:  python benchmarks/bench_stores.py [--stores memory,sqlite,redis,postgres] [--seconds 3]
                                        [--procs 1,4,16] [--decisions 5000]
                                        [--url redis=redis://127.0.0.1:6379/0]

A decision is a real ``Guard.check`` of one tool call under a policy with one rule and one
call budget (``Budget.calls(10**12, tools="send")``): per decision, one kill-switch check and
one budget charge in the store. Latency: ``--decisions`` checks one after another in this
process, each timed (p50, p99, max in microseconds) plus CPU time per decision. Throughput:
N worker processes, each with its own store object and connection, all checking against the
same budget for ``--seconds``, released together once all are connected; decisions per
second summed over them (each measures its own seconds).

A store without ``--url`` gets a throwaway one: a SQLite file in a temporary directory, a
``redis-server`` on a free loopback port (tests/redis_server.py), a PostgreSQL cluster on
one (tests/postgres_server.py, ``synchronous_commit=on``). The memory store is per
process (nothing shared): it is the floor, not a competitor. Add a store by adding an
entry to ``STORES`` (name -> a context manager yielding its URL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the throwaway servers the tests use

from guardrails_plugin import Budget, Guard, Policy, ToolCall, allow  # noqa: E402
from guardrails_plugin.store import open_store  # noqa: E402


@contextlib.contextmanager
def _memory() -> Iterator[str]:
    yield "memory://"


@contextlib.contextmanager
def _sqlite() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/bench.db"


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    from redis_server import redis_server

    with redis_server() as server:
        yield server.url


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    from postgres_server import postgres_cluster

    # Commits acknowledged once their WAL is written, as a production server does by default.
    # Room for 16 workers' pools and listeners (the test clusters allow 50 connections).
    with postgres_cluster(durable_commits=True, settings={"max_connections": "300"}) as cluster:
        yield cluster.url


STORES: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "redis": _redis,
    "postgres": _postgres,
}


def guard_for(url: str) -> Guard:
    policy = Policy([allow("send")], budgets=[Budget.calls(10**12, tools="send")])
    return Guard(policy, store=open_store(url))


CALL = ToolCall("send", {"to": "x"}, thread_id="bench")


def latency(url: str, n: int) -> dict[str, float]:
    guard = guard_for(url)
    for _ in range(min(n, 500)):  # warm up: connections, scripts, caches
        guard.check(CALL)
    samples = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        decision = guard.check(CALL)
        samples.append((time.perf_counter_ns() - t0) / 1000)
        assert decision.effect == "allow", decision
    cpu = (time.process_time() - cpu0) / n * 1e6
    samples.sort()
    guard.controls.close()
    return {
        "p50": statistics.median(samples),
        "p99": samples[int(0.99 * (len(samples) - 1))],
        "max": samples[-1],
        "cpu": cpu,
    }


def worker(url: str, seconds: float) -> None:
    """One throughput process: connect, say ready, wait for "go", check for ``seconds``."""
    guard = guard_for(url)
    guard.check(CALL)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0, t0 = time.process_time(), time.perf_counter()
    end = t0 + seconds
    count = 0
    while time.perf_counter() < end:
        for _ in range(20):
            guard.check(CALL)
        count += 20
    elapsed = time.perf_counter() - t0
    print(json.dumps({"rate": count / elapsed, "cpu": (time.process_time() - cpu0) / count}))


def throughput(url: str, procs: int, seconds: float) -> tuple[float, float]:
    """Decisions per second summed over ``procs`` processes; CPU µs per decision."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, repr(seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(procs)
    ]
    for child in children:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "ready":
            raise SystemExit(f"a worker failed to start on {url}")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    results = []
    for child in children:
        out, _ = child.communicate(timeout=seconds + 120)
        if child.returncode != 0:
            raise SystemExit(f"a worker failed on {url}")
        results.append(json.loads(out))
    cpu = statistics.mean(r["cpu"] for r in results) * 1e6
    return sum(r["rate"] for r in results), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--procs", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--url", action="append", default=[], help="NAME=URL of a running store")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], float(args.worker[1]))
        return
    urls = dict(item.split("=", 1) for item in args.url)
    names = [s.strip() for s in args.stores.split(",") if s.strip()]
    procs = [int(p) for p in args.procs.split(",")]
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} cores; one rule + one call "
        f"budget; latency over {args.decisions} decisions; throughput over {args.seconds} s"
    )
    print(
        f"{'store':8} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>9} {'cpu µs':>7} "
        + " ".join(f"{f'{p} proc/s':>11}" for p in procs)
        + "   (cpu µs per decision in the workers)"
    )
    for name in names:
        with contextlib.ExitStack() as stack:
            url = urls.get(name) or stack.enter_context(STORES[name]())
            lat = latency(url, args.decisions)
            rates = [throughput(url, p, args.seconds) for p in procs]
            print(
                f"{name:8} {lat['p50']:8.1f} {lat['p99']:8.1f} {lat['max']:9.1f} {lat['cpu']:7.1f} "
                + " ".join(f"{r:11.0f}" for r, _ in rates)
                + "   ("
                + ", ".join(f"{c:.0f}" for _, c in rates)
                + ")",
                flush=True,
            )


if __name__ == "__main__":
    main()
