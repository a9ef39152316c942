"""Finding the default rollback target reads what it needs only, whatever the history's length.

``Recovery.rollback(config)`` without ``to=`` used to list every checkpoint of the thread
(each saver loading every state: quadratic for a message list). Now it walks parent links
from the violation back to a safe point, one checkpoint row at a time, without loading a
state, then loads the target's snapshot alone.

- Property: on generated histories (forks, checkpoints gone, violations with or without a
  known checkpoint, earlier rollbacks), the new walk chooses exactly what the old listing
  chose, or fails with the same message. The old algorithm is kept here as the oracle.
- Real graphs (``MessagesState``, ``InMemorySaver``, ``SqliteSaver``, ``PostgresSaver`` and
  their async twins): the number of values the saver deserializes while choosing the
  target, and while rolling back, is the same at 25 and at 205 checkpoints, and nothing is
  listed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

from guardrails_plugin import MemoryStore
from guardrails_plugin.langgraph import Recovery
from guardrails_plugin.langgraph._recovery import _choose_target, _Path
from guardrails_plugin.rollback import (
    Compensations,
    Journal,
    RollbackError,
    RollbackRecord,
    SafePoint,
    Violation,
)

# -- the old choice, kept as the oracle ------------------------------------------------------


def old_choice(
    thread: str,
    parents: Mapping[str, str | None],
    safe_points: Sequence[SafePoint],
    violations: Sequence[Violation],
    rollbacks: Sequence[RollbackRecord],
) -> tuple[str, str, Violation]:
    if not parents:
        raise RollbackError(f"thread {thread!r} has no checkpoints: nothing to roll back")
    restored = [record for record in rollbacks if record.restored]
    since = restored[-1].id if restored else ""
    open_violations = [violation for violation in violations if violation.id > since]
    if not open_violations:
        after = f" since the rollback {since} to checkpoint {restored[-1].target}" if since else ""
        raise RollbackError(
            f"thread {thread!r} has no violation recorded{after}: nothing to roll back to; "
            "pass to=<checkpoint id> to return to a checkpoint of your choice"
        )
    first = open_violations[0]
    candidates = [point for point in safe_points if point.checkpoint_id in parents]
    if first.checkpoint_id is not None and first.checkpoint_id in parents:
        path: set[str] = set()
        current: str | None = first.checkpoint_id
        while current is not None and current in parents and current not in path:
            path.add(current)
            current = parents[current]
        candidates = [point for point in candidates if point.checkpoint_id in path]
    elif first.checkpoint_id is not None:
        candidates = [point for point in candidates if point.checkpoint_id <= first.checkpoint_id]
    else:
        candidates = [point for point in candidates if point.at <= first.at]
    what = f"violation of rule {first.rule!r} ({first.reason}) at checkpoint {first.checkpoint_id}"
    if not candidates:
        saved = sum(point.checkpoint_id in parents for point in safe_points)
        hint = (
            " (none of them is in the checkpointer's history: a graph run with "
            "durability='exit' saves no checkpoint between its steps)"
            if safe_points and not saved
            else ""
        )
        raise RollbackError(
            f"thread {thread!r}: no safe point at or before the {what}; "
            f"{len(safe_points)} safe point(s) recorded{hint}; "
            "pass to=<checkpoint id> to choose a checkpoint"
        )
    point = max(candidates, key=lambda point: point.checkpoint_id)
    return point.checkpoint_id, f"last safe point before the {what}", first


def new_choice(
    thread: str,
    parents: Mapping[str, str | None],
    safe_points: Sequence[SafePoint],
    violations: Sequence[Violation],
    rollbacks: Sequence[RollbackRecord],
    asked: list[str],
) -> tuple[str, str, Violation]:
    flow = _choose_target(thread, safe_points, violations, rollbacks)
    try:
        ask = next(flow)
        while True:
            if ask is None:
                reply: Any = bool(parents)
            elif isinstance(ask, _Path):
                reply = []
                current: str | None = ask.start
                while current in parents and current not in {c for c, _ in reply}:
                    reply.append((current, parents[current]))
                    asked.append(current)
                    if current in ask.stops:
                        break
                    current = parents[current]
            else:
                asked.append(ask.checkpoint_id)
                reply = (
                    (True, parents[ask.checkpoint_id])
                    if ask.checkpoint_id in parents
                    else (
                        False,
                        None,
                    )
                )
            ask = flow.send(reply)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """Checkpoints in creation order (ids sort by time), each the child of the previous one
    or, now and then, of an older one (a fork: a rollback or time travel); some recorded
    checkpoints are gone from the saver; safe points, violations and rollbacks refer to
    existing, gone or no checkpoints."""
    n = draw(st.integers(0, 30))
    ids = [f"c{i:03d}" for i in range(n + 5)]  # the last five never saved (or deleted)
    parents: dict[str, str | None] = {}
    for i in range(n):
        if i == 0:
            parents[ids[i]] = None
        elif draw(st.integers(0, 4)) == 0:
            parents[ids[i]] = ids[draw(st.integers(0, i - 1))]
        else:
            parents[ids[i]] = ids[i - 1]
    gone = draw(st.sets(st.sampled_from(ids[:n]), max_size=3)) if n else set()
    for cid in gone:
        del parents[cid]  # a checkpoint its children still name as parent
    some_id = st.sampled_from(ids)
    safe_ids = draw(st.lists(some_id, max_size=8, unique=True))
    safe = [SafePoint("t", cid, at=float(ids.index(cid))) for cid in sorted(safe_ids)]
    violations = [
        Violation(
            "t",
            draw(st.one_of(st.none(), some_id)),
            rule="r",
            reason=f"v{k}",
            at=draw(st.floats(0, n + 5)),
            id=f"{k * 10:05d}",
        )
        for k in range(draw(st.integers(0, 4)))
    ]
    rollbacks = [
        RollbackRecord(f"{k * 10 + 5:05d}", "t", "c000", "r", restored=draw(st.booleans()))
        for k in range(draw(st.integers(0, 3)))
    ]
    return {"parents": parents, "safe": safe, "violations": violations, "rollbacks": rollbacks}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_the_walk_chooses_what_the_full_listing_chose(h: dict[str, Any]) -> None:
    args = (h["parents"], h["safe"], h["violations"], h["rollbacks"])
    try:
        expected: Any = old_choice("t", *args)
    except RollbackError as exc:
        expected = str(exc)
    asked: list[str] = []
    try:
        found: Any = new_choice("t", *args, asked)
    except RollbackError as exc:
        found = str(exc)
    assert found == expected
    if not isinstance(found, str):  # on success it asked only about its way back
        assert len(asked) <= len(h["parents"]) + len(h["safe"]) + 1


def test_the_walk_asks_about_the_few_checkpoints_between_violation_and_safe_point() -> None:
    ids = [f"c{i:05d}" for i in range(5000)]
    parents = {cid: (ids[i - 1] if i else None) for i, cid in enumerate(ids)}
    safe = [SafePoint("t", ids[4990])]
    violation = Violation("t", ids[4993], rule="r", reason="late", id="00001")
    asked: list[str] = []
    chosen, _, _ = new_choice("t", parents, safe, [violation], [], asked)
    assert chosen == ids[4990]
    assert asked == [ids[4993], ids[4992], ids[4991], ids[4990]]


# -- real graphs: what the saver deserializes -------------------------------------------------


class CountingSerde:
    """The saver's serializer, counting the values it loads."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.loads = 0

    def loads_typed(self, data: Any) -> Any:
        self.loads += 1
        return self.inner.loads_typed(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class NoListing(Exception):
    pass


def counted(saver: Any) -> CountingSerde:
    serde = CountingSerde(saver.serde)
    saver.serde = serde

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NoListing("the target search listed the history")

    saver.list = refuse
    saver.alist = refuse
    return serde


class Chat(MessagesState):
    limit: int


def chat_graph_with_limit(saver: Any) -> Any:
    def step(state: Chat) -> dict[str, Any]:
        i = len(state["messages"])
        return {"messages": [AIMessage(f"step {i}: " + "the ledger matches. " * 20, id=f"m{i}")]}

    def more(state: Chat) -> str:
        return END if len(state["messages"]) > state["limit"] else "step"

    builder = StateGraph(Chat)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)
    return builder.compile(checkpointer=saver)


def record_thread(graph: Any, journal: Journal, thread: str, steps: int) -> str:
    """Run ``steps`` steps; a safe point before step 1, a violation at the last step's
    checkpoint. Returns the expected target."""
    config = {"configurable": {"thread_id": thread}, "recursion_limit": steps + 10}
    run = {"messages": [{"role": "user", "content": "go"}], "limit": steps}
    made = list(graph.stream(run, config, stream_mode="checkpoints"))
    ids = [e["config"]["configurable"]["checkpoint_id"] for e in made if e["next"] == ["step"]]
    assert len(made) == steps + 2
    journal.mark_safe_point(thread, ids[0], reason="risky")
    journal.mark_safe_point(thread, ids[steps // 2], reason="risky")
    journal.mark_violation(thread, ids[-1], rule="late-rule", reason="bad")
    return ids[steps // 2]


@contextmanager
def sync_saver(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
    elif kind == "sqlite":
        db = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
        try:
            yield SqliteSaver(db)
        finally:
            db.close()
    else:
        from langgraph.checkpoint.postgres import PostgresSaver

        with PostgresSaver.from_conn_string(request.getfixturevalue("postgres_url")) as saver:
            saver.setup()
            yield saver


@asynccontextmanager
async def async_saver(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    if kind == "memory":
        yield InMemorySaver()
    elif kind == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(str(tmp_path / "graph.db")) as saver:
            yield saver
    else:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        url = request.getfixturevalue("postgres_url")
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver


KINDS = ["memory", "sqlite", "postgres"]


@pytest.mark.parametrize("kind", KINDS)
def test_choosing_the_target_loads_as_much_at_205_checkpoints_as_at_25(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with sync_saver(kind, tmp_path, request) as saver:
        graph = chat_graph_with_limit(saver)
        journal = Journal(MemoryStore())
        recovery = Recovery(graph, journal, Compensations())
        loads: dict[int, int] = {}
        for steps in (23, 203):
            thread = f"{kind}-{tmp_path.name}-{steps}"
            expected = record_thread(graph, journal, thread, steps)
            serde = counted(saver)
            config = {"configurable": {"thread_id": thread}}
            assert recovery.target(config) == expected
            loads[steps] = serde.loads
            report = recovery.rollback(config)
            assert report.ok, str(report)
            assert report.target == expected
            saver.serde = serde.inner
            del saver.list, saver.alist
        assert loads[23] == loads[203]  # one snapshot, whatever the history's length
        assert loads[23] > 0


@pytest.mark.parametrize("kind", KINDS)
async def test_async_choosing_the_target_loads_as_much_at_205_checkpoints_as_at_25(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with async_saver(kind, tmp_path, request) as saver:
        graph = chat_graph_with_limit(saver)
        journal = Journal(MemoryStore())
        recovery = Recovery(graph, journal, Compensations())
        loads: dict[int, int] = {}
        for steps in (23, 203):
            thread = f"a-{kind}-{tmp_path.name}-{steps}"
            config = {"configurable": {"thread_id": thread}, "recursion_limit": steps + 10}
            run = {"messages": [{"role": "user", "content": "go"}], "limit": steps}
            made = [e async for e in graph.astream(run, config, stream_mode="checkpoints")]
            ids = [
                e["config"]["configurable"]["checkpoint_id"] for e in made if e["next"] == ["step"]
            ]
            journal.mark_safe_point(thread, ids[0], reason="risky")
            journal.mark_violation(thread, ids[-1], rule="late-rule", reason="bad")
            serde = counted(saver)
            assert await recovery.atarget(config) == ids[0]
            loads[steps] = serde.loads
            assert [p.checkpoint_id for p in await recovery.asafe_points(config)] == [ids[0]]
            report = await recovery.arollback(config)
            assert report.ok, str(report)
            saver.serde = serde.inner
            del saver.list, saver.alist
        assert loads[23] == loads[203]
        assert loads[23] > 0


def test_a_thread_without_checkpoints_is_still_named_as_such() -> None:
    graph = chat_graph_with_limit(InMemorySaver())
    journal = Journal(MemoryStore())
    journal.mark_violation("empty", None, rule="r", reason="x")
    recovery = Recovery(graph, journal, Compensations())
    with pytest.raises(RollbackError, match="'empty' has no checkpoints"):
        recovery.target({"configurable": {"thread_id": "empty"}})


# -- the parent links each saver gives, against its own full listing ---------------------------


def forked_history(graph: Any, thread: str) -> None:
    """A thread with branches: runs, two returns to older checkpoints, runs on from each."""
    config = {"configurable": {"thread_id": thread}, "recursion_limit": 100}
    list(graph.stream({"messages": [], "limit": 6}, config, stream_mode="checkpoints"))
    history = list(graph.get_state_history(config))
    for back in (history[3], history[5]):
        graph.update_state(back.config, None, as_node="__copy__")
        graph.invoke({"messages": [], "limit": 9}, config)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("generic", [False, True])
def test_parent_links_agree_with_the_savers_own_listing(
    kind: str, generic: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    import random

    from guardrails_plugin.langgraph._links import ParentLinks

    with sync_saver(kind, tmp_path, request) as saver:
        graph = chat_graph_with_limit(saver)
        thread = f"links-{kind}-{generic}-{tmp_path.name}"
        forked_history(graph, thread)
        listed = {
            t.config["configurable"]["checkpoint_id"]: (
                t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None
            )
            for t in saver.list({"configurable": {"thread_id": thread, "checkpoint_ns": ""}})
        }
        links = ParentLinks(saver, thread)
        if generic:
            links.kind = "generic"  # what any other saver gets: get_tuple
        rng = random.Random(len(listed))
        ids = sorted(listed)
        assert links.parent("1f000000-0000-6000-8000-000000000000") == (False, None)
        assert links.path("1f000000-0000-6000-8000-000000000000", frozenset()) == []
        assert links.any()
        assert not ParentLinks(saver, thread + "-none").any()
        for _ in range(40):
            start = rng.choice(ids)
            stops = frozenset(rng.sample(ids, rng.randint(0, 4)))
            expected = []
            current: str | None = start
            while current is not None:
                expected.append((current, listed[current]))
                if current in stops:
                    break
                current = listed[current]
            assert links.path(start, stops) == expected
            assert links.parent(start) == (True, listed[start])
