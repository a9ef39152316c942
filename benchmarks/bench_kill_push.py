"""Kill switch across processes on a pushing store: from an operator's ``kill()`` to
``RunKilled`` in every worker, and to the push reaching each worker.

Run:  python benchmarks/bench_kill_push.py [--stores postgres,redis] [--kills 30]
      [--workers 4] [--step-ms 5] [--url postgres=postgresql://...]

``--workers`` processes each check a guarded step every ``--step-ms`` milliseconds on a store
of their own (``open_store(url)``: its own connections). The guard subscribes to the kill
switch (``Store.subscribe``: PostgreSQL LISTEN/NOTIFY, Redis pub/sub), so a step reads no
flag from the store while the subscription is alive; each worker also subscribes a second
callback that stamps when each push arrives. ``--kills`` times, after a random 50-200 ms,
an operator process calls ``Controls.kill()``; latency = when a worker's check first
answered ``kill-switch`` (or its push arrived) minus when the operator *called* ``kill()``
(one machine clock; an upper bound: it includes the flag's own commits). Then ``resume()``
and every worker must run again before the next kill.

Without ``--url`` each store gets a throwaway server on loopback (tests/postgres_server.py
with ``synchronous_commit=on``; tests/redis_server.py).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from guardrails_plugin import Controls, Guard, Policy, ToolCall, allow
from guardrails_plugin.controls import CONTROL_EPOCH
from guardrails_plugin.store import open_store

FORK = multiprocessing.get_context("fork")


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    from postgres_server import postgres_cluster

    with postgres_cluster(durable_commits=True, settings={"max_connections": "300"}) as c:
        yield f"{c.url}?schema=k_{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def _redis() -> Iterator[str]:
    from redis_server import redis_server

    with redis_server() as server:
        yield server.url


STORES: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
    "postgres": _postgres,
    "redis": _redis,
}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _kill_worker(url: str, step: float, ready: Any, out: Any, pushes: Any, stop: Any) -> None:
    store = open_store(url)
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
    url: str, workers: int, kills: int, step: float
) -> tuple[list[float], list[float]]:
    """(kill() called -> RunKilled, kill() called -> push received), per worker per kill."""
    ready, out, pushes, stop = FORK.Queue(), FORK.Queue(), FORK.Queue(), FORK.Event()
    procs = [
        FORK.Process(target=_kill_worker, args=(url, step, ready, out, pushes, stop))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=60)
    time.sleep(0.5)
    _drain(pushes)
    operator = Controls(open_store(url))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--step-ms", type=float, default=5.0)
    parser.add_argument("--url", action="append", default=[], help="NAME=URL of a running store")
    args = parser.parse_args()
    urls = dict(item.split("=", 1) for item in args.url)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores; {args.workers} worker "
        f"processes, a guarded step every {args.step_ms:g} ms, {args.kills} kills each"
    )
    for name in [s.strip() for s in args.stores.split(",") if s.strip()]:
        with contextlib.ExitStack() as stack:
            url = urls.get(name) or stack.enter_context(STORES[name]())
            open_store(url).close()  # set up once, before the workers race to
            killed, pushed = kill_latency(url, args.workers, args.kills, args.step_ms / 1000)
            for what, lat in (("push received", pushed), ("RunKilled", killed)):
                print(
                    f"{name:9} {what:14} n={len(lat):4}  p50 {pct(lat, 0.5) * 1e3:6.1f} ms"
                    f"   p99 {pct(lat, 0.99) * 1e3:6.1f} ms   max {max(lat) * 1e3:6.1f} ms",
                    flush=True,
                )


if __name__ == "__main__":
    main()
