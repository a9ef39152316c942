"""A rollback killed with SIGKILL, at many points, finishes on the next run: every effect
undone exactly once, newest first, and the state restored.

Each rollback runs in a child process (``rollback_worker.rollback_in_child``) that opens
everything from disk: the SQLite checkpointer and the journal's ``SQLiteStore`` share
``graph.db``; the world is files and a SQLite table. Most children are forked from this
process, which has LangGraph imported already (a fresh interpreter takes seconds to import
it); one is a fresh ``python rollback_worker.py`` to show nothing is carried in memory.
Compensations sleep a few milliseconds, log each call to ``undo.log`` and mark their key in
the world's ``undone`` table (``INSERT OR IGNORE``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rollback_worker
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from rollback_worker import LIMITS, World, action, build_graph, rollback_in_child

from guardrails_plugin.langgraph._recovery import Recovery
from guardrails_plugin.rollback import EffectStatus, Journal
from guardrails_plugin.store import SQLiteStore

N = 20
FORK = multiprocessing.get_context("fork")
WORKER = Path(rollback_worker.__file__)


@dataclass
class Scene:
    """A finished run of ``keep`` plus N effects, a violation at the end, ready to roll back."""

    root: Path
    thread: str
    target: str
    target_values: dict[str, Any]
    keys: list[str]  # the N effects to undo, oldest first
    keep: str  # the effect from before the safe point

    @property
    def world(self) -> World:
        return World(self.root)

    @property
    def config(self) -> RunnableConfig:
        return {"configurable": {"thread_id": self.thread}, **LIMITS}


@contextmanager
def opened(root: Path) -> Iterator[tuple[World, Journal, Recovery]]:
    world = World(root)
    db = sqlite3.connect(root / "graph.db", check_same_thread=False, isolation_level=None)
    store = SQLiteStore(root / "graph.db")
    journal = Journal(store)
    compensations = world.compensations()
    graph = build_graph(world, journal, compensations, SqliteSaver(db))
    try:
        yield world, journal, Recovery(graph, journal, compensations)
    finally:
        store.close()
        db.close()


def make_scene(root: Path, tool: str = "insert_row") -> Scene:
    """Step 0 writes keep.txt; step 1 is the last safe point; the last step violates."""
    script = [action("keep", "write_file", path="keep.txt", text="kept")]
    for i in range(N):
        value = {"value": str(i)} if tool == "insert_row" else {"amount": float(i)}
        args = {"id": f"e{i:02d}", **value}
        script.append(
            action(
                f"e{i:02d}",
                tool,
                risky=i == 0,
                violates="late-rule" if i == N - 1 else None,
                **args,
            )
        )
    thread = f"crash-{uuid.uuid4()}"
    config: RunnableConfig = {"configurable": {"thread_id": thread}, **LIMITS}
    with opened(root) as (_, journal, recovery):
        recovery.graph.invoke({"todo": script}, config)
        target = recovery.target(config)
        state = recovery.graph.get_state(
            {"configurable": {"thread_id": thread, "checkpoint_id": target}}
        )
        effects = journal.effects(thread)
    assert [e.call_id for e in effects] == ["keep"] + [f"e{i:02d}" for i in range(N)]
    return Scene(
        root, thread, target, dict(state.values), [e.key for e in effects[1:]], effects[0].key
    )


def logged(scene: Scene) -> list[str]:
    """The keys of every undo call so far, in order."""
    return [key for key, _, _ in scene.world.invocations()]


def run_child(scene: Scene, kill: str = "none", at: int = 0, *, kill_after: int = 0) -> str | None:
    """Roll back in a forked child: it kills itself at ``kill``/``at`` (its ``at``-th undo
    call), or the parent kills it once it logged ``kill_after`` undo calls (the child hangs
    in that call, so that a busy machine cannot let it run past). Returns the last key
    called, the one in flight when it died."""
    before = len(logged(scene))
    if kill_after:
        kill, at = "stall", kill_after
    child = FORK.Process(target=rollback_in_child, args=(str(scene.root), scene.thread, kill, at))
    child.start()
    if kill_after:
        deadline = time.monotonic() + 20
        while len(logged(scene)) < before + kill_after and child.is_alive():
            assert time.monotonic() < deadline, "the child never got that far"
            time.sleep(0.0005)
        os.kill(child.pid or 0, signal.SIGKILL)
    child.join(20)
    assert child.exitcode == -signal.SIGKILL, f"child was not killed: exit code {child.exitcode}"
    calls = logged(scene)
    return calls[-1] if calls else None


def assert_finished(scene: Scene, in_flight: set[str | None], must_repeat: set[str]) -> None:
    """Every effect undone exactly once, newest first; only keys in flight at a kill were
    called twice; the journal agrees; the state is the safe point's."""
    world = scene.world
    calls = logged(scene)
    assert world.undone_keys() == sorted(scene.keys)
    assert world.rows() == []
    assert world.file_names() == ["keep.txt"]
    assert calls == sorted(calls, reverse=True), "not newest first"
    assert list(dict.fromkeys(calls)) == scene.keys[::-1]
    repeated = {key for key, times in Counter(calls).items() if times > 1}
    assert max(Counter(calls).values()) <= 2
    assert must_repeat <= repeated <= in_flight
    with opened(scene.root) as (_, journal, recovery):
        effects = {e.key: e for e in journal.effects(scene.thread)}
        assert {effects[key].status for key in scene.keys} == {EffectStatus.UNDONE}
        assert effects[scene.keep].status is EffectStatus.DONE
        assert {key for key in scene.keys if effects[key].attempts == 2} == repeated
        state = recovery.graph.get_state(scene.config)
        assert state.values == scene.target_values
        assert state.values["done"] == ["keep"]
        last = recovery.rollbacks(scene.config)[0]
        assert last.ok
        assert last.target == scene.target


def test_rollback_killed_at_many_points_finishes_exactly_once(tmp_path: Path) -> None:
    scene = make_scene(tmp_path)
    in_flight: set[str | None] = set()
    must_repeat: set[str] = set()

    # Each child first reruns the undo its predecessor left in flight (if the journal says
    # "undoing"), then goes on; it is killed at its second call or later, so that no key is
    # in flight at two kills and each kill can add at most one call, to one key.
    in_flight.add(run_child(scene, kill_after=3))  # killed from outside, mid-undo
    in_flight.add(run_child(scene, kill_after=4))
    # Dies after an undo did its work, before the journal heard: that undo must run again.
    repeated = run_child(scene, "after_undo", at=2)
    assert repeated is not None
    in_flight.add(repeated)
    must_repeat.add(repeated)
    # Dies after logging an undo call, before it did anything.
    in_flight.add(run_child(scene, "before_undo", at=2))
    in_flight.add(run_child(scene, kill_after=3))
    assert len(scene.world.undone_keys()) < N

    run_child(scene, "before_restore")  # every effect undone, the state not yet restored
    assert scene.world.undone_keys() == sorted(scene.keys)
    with opened(scene.root) as (_, _, recovery):
        assert recovery.graph.get_state(scene.config).values["done"] != ["keep"]
    run_child(scene, "before_record")  # state restored, the rollback not yet recorded

    with opened(scene.root) as (_, _, recovery):
        report = recovery.rollback(scene.config)
    assert report.ok, str(report)
    assert report.target == scene.target
    assert report.undo.undone == ()  # nothing left to undo: nothing undone twice
    assert_finished(scene, in_flight, must_repeat)


def test_rollback_killed_in_a_fresh_interpreter_is_finished_by_another_process(
    tmp_path: Path,
) -> None:
    scene = make_scene(tmp_path)
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), str(scene.root), scene.thread],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while len(logged(scene)) < 5 and worker.poll() is None:
        assert time.monotonic() < deadline, "the worker never got that far"
        time.sleep(0.001)
    worker.send_signal(signal.SIGKILL)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == -signal.SIGKILL, err.decode()
    killed_in = logged(scene)[-1]

    run_child(scene, "before_record")  # a second process finishes the undo and the restore
    with opened(scene.root) as (_, _, recovery):
        assert recovery.rollback(scene.config).ok
    assert_finished(scene, {killed_in}, set())


def test_killed_non_idempotent_undo_is_in_doubt_not_repeated(tmp_path: Path) -> None:
    scene = make_scene(tmp_path, tool="charge")
    in_doubt = run_child(scene, "after_undo", at=3)  # refunded, the journal never heard
    assert in_doubt is not None
    refunds = scene.world.refunds()
    assert len(refunds) == 3

    with opened(scene.root) as (world, journal, recovery):
        report = recovery.rollback(scene.config)
        assert not report.ok
        assert not report.restored
        assert [e.key for e in report.undo.in_doubt] == [in_doubt]
        assert len(report.undo.not_attempted) == N - 3
        assert world.refunds() == refunds  # not refunded twice
        journal.settle(scene.thread, in_doubt, undone=True, note="refund found at the bank")
        finished = recovery.rollback(scene.config)
    assert finished.ok, str(finished)
    calls = logged(scene)
    assert Counter(calls)[in_doubt] == 1
    assert sorted(scene.world.refunds()) == sorted(f"e{i:02d}" for i in range(N))
    assert calls == scene.keys[::-1]
