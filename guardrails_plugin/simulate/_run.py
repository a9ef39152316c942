"""Running a scenario's shards: in this process, on local worker processes, or as Ray tasks.

The shards are fixed by the scenario (``shards:``), each with its own seed, so how they
are scheduled never changes what they find: the reports are merged in shard order, and
``simulate(s, workers=1)``, ``simulate(s, workers=4)`` and ``simulate(s, ray="local")``
give equal reports. Ray is optional (``pip install 'guardrails-plugin[ray]'``) and only
this package imports it.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from .._errors import GuardrailsError
from ..store import Store, open_store
from ._engine import Shard, split
from ._report import SimulationReport
from ._scenario import Scenario, ScenarioError

__all__ = ["progress_bar", "simulate"]

Progress = Callable[[int], None]


def simulate(
    scenario: Scenario,
    *,
    seed: int | None = None,
    interactions: int | None = None,
    workers: int = 1,
    ray: str | None = None,
    store: str | None = None,
    progress: Progress | None = None,
    fidelity: str = "engine",
) -> SimulationReport:
    """Run ``scenario`` and report what the guard did to its traffic.

    ``seed`` and ``interactions`` override the scenario's. ``workers`` runs the shards on
    that many local processes; ``ray`` (an address, or ``"local"`` for a new local
    instance; an instance already initialised in this process is used as is) runs them as
    Ray tasks. ``store`` is a store URL (``redis://...``, ``sqlite:///path``,
    ``postgresql://...``): every shard keeps its state there, under a key prefix of its
    own (default: an in-memory store per shard). ``progress`` is called with the number of
    interactions done since its last call. ``fidelity="graph"`` runs the runs through real
    LangGraph graphs and the guard's LangGraph adapters instead of straight into the
    engine (needs the langgraph extra; far slower: for thousands of interactions).

    >>> from guardrails_plugin.simulate import Scenario, simulate
    >>> s = Scenario.from_dict({
    ...     "policy": {"rules": [{"allow": "search"}]},
    ...     "roles": {"worker": {"count": 2, "entry": 1, "tools": {"search": {}}}},
    ...     "interactions": 200, "shards": 2,
    ... })
    >>> report = simulate(s)
    >>> report.interactions, report.false_positives
    (200, 0)
    """
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, found {workers}")
    if fidelity not in ("engine", "graph"):
        raise ValueError(f"fidelity must be 'engine' or 'graph', found {fidelity!r}")
    changes: dict[str, Any] = {}
    if seed is not None:
        changes["seed"] = seed
    if interactions is not None:
        changes["interactions"] = interactions
    if changes:
        scenario = scenario.replace(**changes)
    if store is not None:
        _check_store(store)
    counts = split(scenario.interactions, scenario.shards)
    prefix = f"sim/{uuid.uuid4().hex[:12]}/" if store is not None else ""
    start = time.perf_counter()
    if ray is not None:
        reports = _on_ray(scenario, counts, ray, store, prefix, progress, fidelity)
        how = f"ray {ray}"
    elif workers > 1 and scenario.shards > 1:
        reports = _on_processes(scenario, counts, workers, store, prefix, progress, fidelity)
        how = f"{workers} processes"
    else:
        reports = [
            _shard(scenario, i, n, store, prefix, progress, fidelity) for i, n in enumerate(counts)
        ]
        how = "1 process"
    merged = SimulationReport(
        scenario=scenario.name,
        seed=scenario.seed,
        policy=reports[0].policy if reports else "",
        bucket=reports[0].bucket if reports else 1.0,
    )
    for r in reports:
        merged.merge(r)
    merged.seconds = time.perf_counter() - start
    merged.workers = how
    return merged


def _check_store(url: str) -> None:
    try:
        opened = open_store(url)
    except (ValueError, GuardrailsError) as exc:
        raise ScenarioError(f"--store: {exc}") from None
    opened.close()


def _shard(
    scenario: Scenario,
    index: int,
    n: int,
    store: str | None,
    prefix: str,
    progress: Progress | None,
    fidelity: str = "engine",
) -> SimulationReport:
    opened: Store | None = open_store(store) if store is not None else None
    try:
        return run_shard(
            scenario,
            index,
            n,
            store=opened,
            prefix=f"{prefix}s{index}/" if prefix else "",
            progress=progress,
            fidelity=fidelity,
        )
    finally:
        if opened is not None:
            opened.close()


def run_shard(
    scenario: Scenario,
    shard: int,
    interactions: int,
    *,
    store: Store | None = None,
    prefix: str = "",
    progress: Progress | None = None,
    fidelity: str = "engine",
) -> SimulationReport:
    """Simulate shard ``shard`` of ``scenario`` for ``interactions`` guard events;
    ``fidelity="graph"`` runs it through LangGraph graphs (``GraphShard``, imported only
    then: it needs LangGraph)."""
    kind: type[Shard] = Shard
    if fidelity == "graph":
        from ._graph import GraphShard

        kind = GraphShard
    elif fidelity != "engine":
        raise ValueError(f"fidelity must be 'engine' or 'graph', found {fidelity!r}")
    return kind(scenario, shard, interactions, store=store, prefix=prefix, progress=progress).run()


def _shard_task(
    data: dict[str, Any],
    index: int,
    n: int,
    store: str | None,
    prefix: str,
    queue: Any = None,
    fidelity: str = "engine",
) -> SimulationReport:
    """One shard in a worker process (local or Ray): the scenario rebuilt from its data."""
    scenario = Scenario.from_dict(data, source=f"<{data.get('name', 'scenario')}>")
    tell = None if queue is None else queue.put
    return _shard(scenario, index, n, store, prefix, tell, fidelity)


def _on_processes(
    scenario: Scenario,
    counts: list[int],
    workers: int,
    store: str | None,
    prefix: str,
    progress: Progress | None,
    fidelity: str,
) -> list[SimulationReport]:
    import concurrent.futures
    import multiprocessing
    import queue as queues

    data = scenario.to_dict()
    manager = multiprocessing.Manager() if progress is not None else None
    q = manager.Queue() if manager is not None else None
    try:
        with concurrent.futures.ProcessPoolExecutor(max_workers=min(workers, len(counts))) as pool:
            futures = [
                pool.submit(_shard_task, data, i, n, store, prefix, q, fidelity)
                for i, n in enumerate(counts)
            ]
            if q is not None and progress is not None:
                pending = set(futures)
                while pending:
                    _, pending = concurrent.futures.wait(pending, timeout=0.2)
                    while True:
                        try:
                            progress(q.get_nowait())
                        except queues.Empty:
                            break
            return [f.result() for f in futures]
    finally:
        if manager is not None:
            manager.shutdown()


def _on_ray(
    scenario: Scenario,
    counts: list[int],
    address: str,
    store: str | None,
    prefix: str,
    progress: Progress | None,
    fidelity: str,
) -> list[SimulationReport]:
    try:
        import ray
    except ImportError:
        raise ScenarioError("--ray needs Ray: pip install 'guardrails-plugin[ray]'") from None
    started = False
    if not ray.is_initialized():
        if address not in ("local", "auto"):
            _probe(address)
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        started = True
    try:
        task = ray.remote(_shard_task)
        data = scenario.to_dict()
        refs = [
            task.remote(data, i, n, store, prefix, None, fidelity) for i, n in enumerate(counts)
        ]
        if progress is not None:
            sizes = dict(zip(refs, counts, strict=True))
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    progress(sizes[ref])
        return list(ray.get(refs))
    finally:
        if started:
            ray.shutdown()


def _probe(address: str) -> None:
    """Fail fast, in one line, when nothing answers at a Ray address (``ray.init`` retries
    for minutes, logging as it goes)."""
    import socket

    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ScenarioError(
            f"--ray: expected local, auto, HOST:PORT or ray://HOST:PORT, found {address!r}"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise ScenarioError(f"--ray: nothing answers at {address}: {exc.strerror or exc}") from None


def progress_bar(total: int, *, quiet: bool = False) -> tuple[Progress | None, Callable[[], None]]:
    """A progress callback for ``simulate`` and a function that closes it: tqdm on standard
    error when it is a terminal (a plain line when tqdm is missing); nothing when it is
    not a terminal or ``quiet``."""
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    try:
        from tqdm import tqdm
    except ImportError:
        done = [0]
        last = [0.0]

        def line(n: int) -> None:
            done[0] += n
            now = time.monotonic()
            if now - last[0] >= 0.5 or done[0] >= total:
                last[0] = now
                print(f"\r{done[0]:,}/{total:,} interactions", end="", file=sys.stderr, flush=True)

        def end() -> None:
            print(file=sys.stderr)

        return line, end
    bar = tqdm(total=total, unit=" interactions", unit_scale=True, file=sys.stderr, leave=False)
    return bar.update, bar.close


def _cpus() -> int:
    return os.cpu_count() or 1
