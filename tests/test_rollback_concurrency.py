"""Two rollbacks of one thread at once: compensations run exactly once, the loser is told.

Each rollback claims its thread in the journal's store (an atomic ``put_if``); one that finds
it claimed returns a ``busy`` report at once and touches nothing. Raced here, many times,
between two threads and between two processes, with ``SqliteSaver`` and ``PostgresSaver`` (a
real throwaway PostgreSQL server): every compensation call appends a line to the world's
invocation log (``O_APPEND``, shared by the processes), which must name each effect once.

The races are generated: per round, from a seeded generator, the number of effects, the
tools (idempotent row inserts, non-idempotent charges), whether the rollback names its
target, and a start skew between the two rollbacks. A deterministic case holds the first
rollback inside a compensation while the second one runs, so the overlap is certain; others
cover a crashed holder (its process gone, its lease run out), a lost lease, an unreadable
claim, and ``undo_effects`` on its own.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from rollback_worker import LIMITS, World, action, build_graph

from guardrails_plugin import MemoryStore, SQLiteStore, StoreError
from guardrails_plugin.langgraph import Recovery
from guardrails_plugin.rollback import (
    ClaimHolder,
    EffectStatus,
    Journal,
    RollbackBusy,
    RollbackError,
    undo_effects,
)
from guardrails_plugin.rollback._claim import machine_id

FORK = multiprocessing.get_context("fork")
SEED = 20261207
KINDS = ["sqlite", "postgres"]


@dataclass(frozen=True)
class Round:
    """One generated race."""

    effects: int
    tools: tuple[str, ...]
    named_target: bool
    skew: float  # seconds the second rollback starts after the first (negative: before)


def rounds(seed: int, count: int) -> list[Round]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        n = rng.randint(1, 5)
        tools = tuple(rng.choice(["insert_row", "charge"]) for _ in range(n))
        out.append(Round(n, tools, rng.random() < 0.5, rng.uniform(-0.004, 0.004)))
    return out


# -- opening a scene (in this process, in a thread, in a child process) -----------------------


@contextmanager
def opened(
    root: Path,
    kind: str,
    url: str | None,
    *,
    undo_delay: float = 0.002,
    lease: float = 120.0,
    setup: bool = False,
) -> Iterator[tuple[World, Journal, Recovery]]:
    """Everything opened from ``root`` (and the Postgres ``url``) on connections of its own,
    as a second process or a second user would."""
    with ExitStack() as stack:
        world = World(root, undo_delay=undo_delay)
        if kind == "sqlite":
            db = sqlite3.connect(root / "graph.db", check_same_thread=False, isolation_level=None)
            stack.callback(db.close)
            saver: Any = SqliteSaver(db)
            store = SQLiteStore(root / "graph.db")  # the journal shares the checkpointer's file
        else:
            from langgraph.checkpoint.postgres import PostgresSaver

            assert url is not None
            saver = stack.enter_context(PostgresSaver.from_conn_string(url))
            if setup:  # once, before any race (migrations are not safe to race)
                saver.setup()
            store = SQLiteStore(root / "journal.db")
        stack.callback(store.close)
        journal = Journal(store)
        compensations = world.compensations()
        graph = build_graph(world, journal, compensations, saver)
        yield world, journal, Recovery(graph, journal, compensations, lease=lease)


def make_scene(root: Path, kind: str, url: str | None, tools: tuple[str, ...]) -> dict[str, Any]:
    """A finished run: a kept write, then one effect per tool (the first one risky, the last
    one a violation). Returns the config, the target and the effect keys to undo."""
    script = [action("keep", "write_file", path="keep.txt", text="kept")]
    for i, tool in enumerate(tools):
        args = {"id": f"{uuid.uuid4().hex[:8]}-{i}"}
        args.update({"value": str(i)} if tool == "insert_row" else {"amount": float(i + 1)})
        violates = "late-rule" if i == len(tools) - 1 else None
        script.append(action(f"e{i}", tool, risky=i == 0, violates=violates, **args))
    config: RunnableConfig = {"configurable": {"thread_id": f"race-{uuid.uuid4()}"}, **LIMITS}
    with opened(root, kind, url, setup=True) as (_, journal, recovery):
        recovery.graph.invoke({"todo": script}, config)
        target = recovery.target(config)
        keys = [e.key for e in journal.effects(config["configurable"]["thread_id"])][1:]
        values = dict(recovery.graph.get_state(_at(config, target)).values)
    return {"config": config, "target": target, "keys": keys, "values": values}


def _at(config: RunnableConfig, checkpoint: str) -> RunnableConfig:
    thread = config["configurable"]["thread_id"]
    return {"configurable": {"thread_id": thread, "checkpoint_id": checkpoint}}


def outcome(report: Any) -> tuple[str, int, bool]:
    """What a rollback said: (kind, effects it undid, ok)."""
    if isinstance(report, RollbackError):
        return "error", 0, False
    return ("busy" if report.busy else "ran"), len(report.undo.undone), report.ok


def roll(root: Path, kind: str, url: str | None, scene: dict[str, Any], to: bool) -> Any:
    with opened(root, kind, url) as (_, _, recovery):
        try:
            return recovery.rollback(scene["config"], to=scene["target"] if to else None)
        except RollbackError as exc:  # nothing left to roll back: the other one did it
            return exc


def check_exactly_once(
    root: Path, kind: str, url: str | None, scene: dict[str, Any], results: list[Any]
) -> None:
    world = World(root)
    calls = Counter(key for key, _, _ in world.invocations())
    keys = scene["keys"]
    assert calls == Counter(keys), "a compensation ran twice, or not at all"
    assert world.undone_keys() == sorted(keys)
    assert world.rows() == []
    outcomes = [outcome(r) for r in results]
    winners = [o for o in outcomes if o == ("ran", len(keys), True)]
    assert len(winners) == 1, outcomes  # one rollback did the work, and said so
    for kind_, undone, ok in outcomes:
        if (kind_, undone, ok) in winners:
            continue
        # The loser either found the thread busy (and said so, not ok) or came after the
        # winner: nothing left to undo (to=) or no violation left to roll back (no to=).
        assert (kind_, undone) in {("busy", 0), ("ran", 0), ("error", 0)}, outcomes
        if kind_ == "busy":
            assert not ok
    with opened(root, kind, url) as (_, journal, recovery):
        thread = scene["config"]["configurable"]["thread_id"]
        statuses = {e.key: e.status for e in journal.effects(thread)}
        assert {statuses[k] for k in keys} == {EffectStatus.UNDONE}
        assert recovery.graph.get_state(scene["config"]).values == scene["values"]
        assert journal.store.scan(journal._claim_key(thread)) == {}  # released


def backend_url(kind: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("postgres_url") if kind == "postgres" else None


# -- the certain overlap ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_rollback_started_while_another_undoes_is_told_the_thread_is_busy(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = backend_url(kind, request)
    scene = make_scene(tmp_path, kind, url, ("insert_row", "charge", "insert_row"))
    second: list[Any] = []

    with opened(tmp_path, kind, url) as (world, _, recovery):

        def meanwhile(effect: Any) -> None:  # inside the first rollback's first compensation
            if not second:
                other = threading.Thread(
                    target=lambda: second.append(roll(tmp_path, kind, url, scene, True))
                )
                other.start()
                other.join(60)

        world.before_undo = meanwhile
        first = recovery.rollback(scene["config"])

    assert first.ok, str(first)
    [busy] = second
    assert busy.busy
    assert not busy.ok
    assert busy.holder is not None
    assert busy.holder.pid == os.getpid()
    assert busy.undo.undone == ()
    assert busy.new_checkpoint_id is None
    assert "another rollback holds thread" in str(busy)
    assert "NOT STARTED" in str(busy)
    check_exactly_once(tmp_path, kind, url, scene, [first, busy])


# -- generated races: two threads ---------------------------------------------------------------


def _race_thread(
    start: threading.Barrier,
    results: list[Any],
    slot: int,
    delay: float,
    root: Path,
    kind: str,
    url: str | None,
    scene: dict[str, Any],
    to: bool,
) -> None:
    start.wait()
    time.sleep(delay)
    results[slot] = roll(root, kind, url, scene, to)


@pytest.mark.parametrize("kind", KINDS)
def test_two_threads_rolling_back_one_thread_undo_each_effect_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = backend_url(kind, request)
    seen: Counter[str] = Counter()
    for i, r in enumerate(rounds(SEED, 12)):
        root = tmp_path / f"round-{i}"
        root.mkdir()
        scene = make_scene(root, kind, url, r.tools)
        results: list[Any] = [None, None]
        start = threading.Barrier(2)
        workers = [
            threading.Thread(
                target=_race_thread,
                args=(start, results, slot, delay, root, kind, url, scene, r.named_target),
            )
            for slot, delay in enumerate((max(0.0, -r.skew), max(0.0, r.skew)))
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        check_exactly_once(root, kind, url, scene, results)
        seen.update(o[0] for o in map(outcome, results))
    assert seen["ran"] >= 12  # every round had its winner


async def test_two_async_rollbacks_in_one_event_loop_undo_each_effect_once(
    tmp_path: Path,
) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    for i, r in enumerate(rounds(SEED + 1, 8)):
        root = tmp_path / f"round-{i}"
        root.mkdir()
        scene = make_scene(root, "sqlite", None, r.tools)
        world = World(root, undo_delay=0.002)
        store = SQLiteStore(root / "graph.db")
        journal = Journal(store)
        compensations = world.compensations(asynchronous=True)
        async with AsyncSqliteSaver.from_conn_string(str(root / "graph.db")) as saver:
            graph = build_graph(world, journal, compensations, saver, asynchronous=True)
            recovery = Recovery(graph, journal, compensations)
            to = scene["target"] if r.named_target else None

            async def one(
                recovery: Recovery = recovery, to: str | None = to, config: Any = scene["config"]
            ) -> Any:
                try:
                    return await recovery.arollback(config, to=to)
                except RollbackError as exc:
                    return exc

            results = await asyncio.gather(one(), one())
        store.close()
        check_exactly_once(root, "sqlite", None, scene, list(results))
        assert sorted(outcome(x)[0] for x in results) == ["busy", "ran"]  # one event loop:
        # the first claims before the second asks, and holds the thread while it awaits


# -- generated races: two processes -------------------------------------------------------------


def _child(
    root: str, kind: str, url: str | None, scene: dict[str, Any], to: bool, delay: float, q: Any
) -> None:
    barrier, queue = q
    try:
        with opened(Path(root), kind, url) as (_, _, recovery):
            barrier.wait(30)
            time.sleep(delay)
            try:
                report = recovery.rollback(scene["config"], to=scene["target"] if to else None)
                queue.put(outcome(report))
            except RollbackError:
                queue.put(("error", 0, False))
    except BaseException as exc:  # tell the parent, whatever it was
        queue.put(("crash", repr(exc), False))
        raise


@pytest.mark.parametrize("kind", KINDS)
def test_two_processes_rolling_back_one_thread_undo_each_effect_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = backend_url(kind, request)
    seen: Counter[str] = Counter()
    for i, r in enumerate(rounds(SEED + 2, 10)):
        root = tmp_path / f"round-{i}"
        root.mkdir()
        scene = make_scene(root, kind, url, r.tools)
        barrier, queue = FORK.Barrier(2), FORK.Queue()
        children = [
            FORK.Process(
                target=_child,
                args=(str(root), kind, url, scene, r.named_target, delay, (barrier, queue)),
            )
            for delay in (max(0.0, -r.skew), max(0.0, r.skew))
        ]
        for child in children:
            child.start()
        results = [queue.get(timeout=120) for _ in children]
        for child in children:
            child.join(60)
            assert child.exitcode == 0, results
        assert all(o[0] != "crash" for o in results), results
        world = World(root)
        calls = Counter(key for key, _, _ in world.invocations())
        assert calls == Counter(scene["keys"]), (results, calls)
        winners = [o for o in results if o == ("ran", len(scene["keys"]), True)]
        assert len(winners) == 1, results
        assert all(
            o in winners or o[:2] in {("busy", 0), ("ran", 0), ("error", 0)} for o in results
        )
        seen.update(o[0] for o in results)
        with opened(root, kind, url) as (_, _, recovery):
            assert recovery.graph.get_state(scene["config"]).values == scene["values"]


# -- a holder that crashed, a lease that ran out, a claim nobody can read -----------------------


def _claim_and_die(root: str, thread: str) -> None:
    journal = Journal(SQLiteStore(Path(root) / "graph.db"))
    journal.claim_rollback(thread)
    os.kill(os.getpid(), signal.SIGKILL)


def test_the_claim_of_a_rollback_whose_process_died_is_taken_over(tmp_path: Path) -> None:
    scene = make_scene(tmp_path, "sqlite", None, ("insert_row", "charge"))
    thread = scene["config"]["configurable"]["thread_id"]
    child = FORK.Process(target=_claim_and_die, args=(str(tmp_path), thread))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    with opened(tmp_path, "sqlite", None) as (_, journal, recovery):
        [(_, left)] = journal.store.scan(journal._claim_key(thread)).items()
        assert ClaimHolder.from_json(left).pid == child.pid  # type: ignore[union-attr]
        report = recovery.rollback(scene["config"])
    assert report.ok, str(report)
    check_exactly_once(tmp_path, "sqlite", None, scene, [report])


def foreign_claim(journal: Journal, thread: str, expires_at: float) -> dict[str, Any]:
    """A claim held by a live process on another machine (nothing here can check it)."""
    holder = ClaimHolder("other", 1, "elsewhere", "elsewhere|boot|ns", 0.0, expires_at)
    doc = holder.to_json()
    assert journal.store.put_if(journal._claim_key(thread), doc, expected=None)
    return doc


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def memory_scene(
    root: Path, clock: Clock, lease: float = 60.0
) -> tuple[World, Journal, Recovery, Any]:
    world = World(root)
    journal = Journal(MemoryStore(), clock=clock)
    compensations = world.compensations()
    graph = build_graph(world, journal, compensations, InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t-claim"}, **LIMITS}
    script = [action(f"e{i}", "insert_row", risky=i == 0, id=f"r{i}", value="v") for i in range(3)]
    script[-1]["violates"] = "late-rule"
    graph.invoke({"todo": script}, config)
    return world, journal, Recovery(graph, journal, compensations, lease=lease), config


def test_a_live_claim_from_another_machine_holds_until_its_lease_runs_out(tmp_path: Path) -> None:
    clock = Clock()
    world, journal, recovery, config = memory_scene(tmp_path, clock)
    foreign_claim(journal, "t-claim", expires_at=clock.now + 30)

    busy = recovery.rollback(config)
    assert busy.busy
    assert not busy.ok
    assert busy.holder is not None
    assert busy.holder.host == "elsewhere"
    assert world.invocations() == []
    with pytest.raises(RollbackBusy, match="another rollback holds thread 't-claim'"):
        undo_effects(journal, recovery.compensations, "t-claim", after_checkpoint=None)

    clock.now += 30  # the lease ran out: its holder is taken for crashed
    report = recovery.rollback(config)
    assert report.ok, str(report)
    assert len(world.invocations()) == 3


@pytest.mark.parametrize("doc", [{"owner": "x"}, "held", [1, 2], {"pid": "1"}])
def test_an_unreadable_claim_keeps_the_thread_closed(doc: Any, tmp_path: Path) -> None:
    clock = Clock()
    world, journal, recovery, config = memory_scene(tmp_path, clock)
    journal.store.put(journal._claim_key("t-claim"), doc)
    clock.now += 10**9  # no lease can be read, so none runs out
    report = recovery.rollback(config)
    assert report.busy
    assert report.holder is None
    assert "not readable" in str(report)
    assert world.invocations() == []


def test_a_rollback_that_outlived_its_lease_stops_and_does_not_restore(tmp_path: Path) -> None:
    clock = Clock()
    world, journal, recovery, config = memory_scene(tmp_path, clock, lease=60.0)
    taken: list[Any] = []

    def stall(effect: Any) -> None:  # the first compensation takes longer than the lease
        if not taken:
            clock.now += 61
            taken.append(journal.claim_rollback("t-claim", lease=60.0))

    world.before_undo = stall
    report = recovery.rollback(config)

    assert not report.ok
    assert not report.restored
    assert len(report.undo.undone) == 1
    assert len(report.undo.not_attempted) == 2
    assert "lost its claim" in str(report)
    assert len(world.invocations()) == 1  # it ran nothing after it lost the claim
    [other] = taken
    assert other.took_over is not None  # the expired claim was taken over
    other.release()

    world.before_undo = None
    finished = recovery.rollback(config)
    assert finished.ok, str(finished)
    assert Counter(key for key, _, _ in world.invocations()).most_common(1)[0][1] == 1


def test_a_claim_is_renewed_while_the_undo_goes_on(tmp_path: Path) -> None:
    clock = Clock()
    world, journal, recovery, config = memory_scene(tmp_path, clock, lease=60.0)
    expiries: list[float] = []

    def tick(effect: Any) -> None:  # each compensation takes half a lease
        doc = journal.store.get(journal._claim_key("t-claim"))
        expiries.append(ClaimHolder.from_json(doc).expires_at)  # type: ignore[union-attr]
        clock.now += 30

    world.before_undo = tick
    report = recovery.rollback(config)
    assert report.ok, str(report)
    assert expiries == sorted(expiries)
    assert expiries[-1] > expiries[0]
    assert journal.store.get(journal._claim_key("t-claim")) is None


def test_a_claim_names_this_machine_and_process() -> None:
    journal = Journal(MemoryStore())
    with journal.claim_rollback("t") as claim:
        assert claim.holder.pid == os.getpid()
        assert claim.holder.machine == machine_id()
        with pytest.raises(RollbackBusy):
            journal.claim_rollback("t")
        with journal.claim_rollback("another thread"):
            pass
    with journal.claim_rollback("t"):  # released
        pass
    with pytest.raises(ValueError, match="lease"):
        journal.claim_rollback("t", lease=0)


class ReleaseFails(MemoryStore):
    """A store that fails exactly when a claim is released."""

    def put_if(self, key: str, value: Any, *, expected: Any) -> bool:
        if value is None:
            raise StoreError("the store went away")
        return super().put_if(key, value, expected=expected)


def test_a_release_the_store_refuses_keeps_the_report_and_the_thread_closed_until_the_lease(
    tmp_path: Path,
) -> None:
    clock = Clock()
    world, journal, recovery, config = memory_scene(tmp_path, clock)
    recovery.journal = journal = Journal(ReleaseFails(), clock=clock)
    graph = build_graph(world, journal, recovery.compensations, InMemorySaver())
    recovery.graph = graph
    script = [action(f"e{i}", "insert_row", risky=i == 0, id=f"x{i}", value="v") for i in range(2)]
    script[-1]["violates"] = "late-rule"
    graph.invoke({"todo": script}, config)

    report = recovery.rollback(config, to=recovery.safe_points(config)[-1].checkpoint_id)
    assert report.ok, str(report)  # the rollback's outcome stands
    assert journal.store.get(journal._claim_key("t-claim")) is not None  # still claimed
    assert recovery.rollback(config).busy
    clock.now += 60  # its lease ran out
    again = recovery.rollback(config, to=report.target)
    assert not again.busy
    assert again.undo.undone == ()  # nothing undone twice
