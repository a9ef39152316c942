"""PostgresStore on real PostgreSQL servers: many processes, server faults, and a generated
differential against MemoryStore (the conformance suite runs too: tests/test_store_conformance.py).

- Eight processes, each with its own connections, hammer one budget, one rate window and one
  distinct-values set, directly and through a Guard: no limit is passed, and every grant a
  process was told about is counted exactly once.
- The cluster is stopped (as if it crashed) and started again under a running store: every
  verb fails with ``StoreError`` while it is down, the guard denies with ``store-error``,
  and the same store object works again afterwards; no acknowledged charge is lost.
- A server too slow (a lock held elsewhere past ``statement_timeout``) fails closed too.
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import postgres_worker
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from postgres_server import PostgresCluster

from guardrails_plugin import Budget, Effect, Guard, Policy, StoreError, ToolCall, allow
from guardrails_plugin.store import MemoryStore, open_store
from guardrails_plugin.store.postgres import PostgresStore

FORK = multiprocessing.get_context("fork")


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(postgres_url, schema=new_schema())
    yield s
    s.close()


# -- many processes -------------------------------------------------------------------------


def test_eight_processes_never_pass_a_limit_nor_count_twice(
    postgres_url: str, tmp_path: Path
) -> None:
    schema = new_schema()
    PostgresStore(postgres_url, schema=schema).close()
    processes, rounds = 8, 25
    barrier = FORK.Barrier(processes)
    outs = [tmp_path / f"p{i}.json" for i in range(processes)]
    workers = [
        FORK.Process(
            target=postgres_worker.hammer,
            args=(postgres_url, schema, f"p{i}", rounds, barrier, str(outs[i])),
        )
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
        assert w.exitcode == 0
    granted = [json.loads(out.read_text()) for out in outs]
    store = PostgresStore(postgres_url, schema=schema, create=False)
    try:
        # 200 attempts at each: exactly the limit granted, and the store counted each once.
        assert sum(len(g["budget"]) for g in granted) == 50 == store.total("budget")
        assert sum(len(g["rate"]) for g in granted) == 40
        assert store.total("rate", window=3600) == 40
        added = [m for g in granted for batch in g["set"] for m in batch]
        assert len(added) == len(set(added))  # no member reported new twice
        assert set(added) == store.members("recipients")
        assert len(added) == 30
        # The same through the Guard's budgets (calls 37, rate 23 per hour, distinct 11).
        assert sum(len(g["pay"]) for g in granted) == 23
        mailed = [m for g in granted for m in g["mail"]]
        assert len(mailed) == len(set(mailed)) == 11
    finally:
        store.close()


def test_processes_opening_a_new_store_at_once_all_succeed(postgres_url: str) -> None:
    schema = new_schema()
    barrier = FORK.Barrier(8)
    workers = [
        FORK.Process(target=_open_at_once, args=(postgres_url, schema, barrier)) for _ in range(8)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    store = PostgresStore(postgres_url, schema=schema, create=False)
    assert store.total("opened") == 8.0
    store.close()


def _open_at_once(url: str, schema: str, barrier: Any) -> None:
    barrier.wait()
    store = PostgresStore(url, schema=schema)
    assert store.charge("opened", 1, limit=100)
    store.close()


# -- faults ---------------------------------------------------------------------------------


def _guard(store: PostgresStore) -> Guard:
    return Guard(
        Policy([allow("pay")], budgets=[Budget.calls(1000, tools="pay", per="global")]), store=store
    )


def _pay(guard: Guard) -> Any:
    return guard.check(ToolCall("pay", {}, agent="a", thread_id="t"))


def _every_verb(store: PostgresStore) -> list[Any]:
    return [
        lambda: store.charge("k", 1, limit=10),
        lambda: store.charge("r", 1, limit=10, window=60),
        lambda: store.total("k"),
        lambda: store.total("r", window=60),
        lambda: store.add_members("s", ["a"], limit=3),
        lambda: store.remove_members("s", ["a"]),
        lambda: store.members("s"),
        lambda: store.get("d"),
        lambda: store.put("d", 1),
        lambda: store.delete("d"),
        lambda: store.put_if("d", 2, expected=None),
        lambda: store.scan(""),
    ]


def test_a_stopped_server_fails_every_verb_closed_and_a_restart_needs_no_new_store(
    postgres_cluster_own: PostgresCluster,
) -> None:
    cluster = postgres_cluster_own
    store = PostgresStore(cluster.url, timeout=1.0, statement_timeout=1.0)
    guard = _guard(store)
    assert store.charge("k", 1, limit=10)
    assert _pay(guard).effect is Effect.ALLOW
    cluster.stop()
    for verb in _every_verb(store):
        with pytest.raises(StoreError, match="PostgresStore"):
            verb()
    decision = _pay(guard)
    assert decision.effect is Effect.DENY
    assert decision.rule == "store-error"
    assert "PostgresStore" in decision.reason
    cluster.start()
    results = []
    for _ in range(3):  # the pool may hand out one connection that died with the server
        try:
            results.append(store.charge("k", 1, limit=10))
            break
        except StoreError:
            continue
    assert results == [True]
    assert store.total("k") == 2.0
    assert _pay(guard).effect is Effect.ALLOW
    store.close()


async def test_a_stopped_server_fails_async_verbs_closed_too(
    postgres_cluster_own: PostgresCluster,
) -> None:
    cluster = postgres_cluster_own
    store = PostgresStore(cluster.url, timeout=1.0, statement_timeout=1.0)
    assert await store.acharge("k", 1, limit=10)
    cluster.stop()
    with pytest.raises(StoreError):
        await store.acharge("k", 1, limit=10)
    with pytest.raises(StoreError):
        await store.aget("d")
    decision = await _guard(store).acheck(ToolCall("pay", {}, agent="a", thread_id="t"))
    assert decision.rule == "store-error"
    cluster.start()
    for _ in range(3):
        try:
            assert await store.acharge("k", 1, limit=10)
            break
        except StoreError:
            continue
    assert await store.atotal("k") == 2.0
    await store.aclose()


def test_no_acknowledged_charge_is_lost_across_a_crash_and_restart(
    postgres_cluster_own: PostgresCluster,
) -> None:
    cluster = postgres_cluster_own
    store = PostgresStore(cluster.url, timeout=1.0, statement_timeout=1.0)
    acknowledged, failed = [0], [0]
    stop = threading.Event()

    def charge() -> None:
        while not stop.is_set():
            try:
                if store.charge("budget", 1, limit=1e9):
                    acknowledged[0] += 1
            except StoreError:
                failed[0] += 1
                time.sleep(0.01)

    threads = [threading.Thread(target=charge) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    cluster.stop()  # immediate: the server dies mid-statement
    time.sleep(0.5)
    cluster.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join()
    total = store.total("budget")
    assert failed[0] > 0
    assert acknowledged[0] > 0
    # Every charge a caller was told of survived the crash; a charge that failed with the
    # server may or may not have counted (its commit may have landed): never fewer than told.
    assert acknowledged[0] <= total <= acknowledged[0] + failed[0]
    store.close()


def test_a_server_too_slow_fails_closed(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, schema=new_schema(), statement_timeout=0.3)
    guard = Guard(
        Policy([allow("pay")], budgets=[Budget.distinct("to", 5, tools="pay", per="global")]),
        store=store,
    )
    assert store.charge("k", 1, limit=10)
    with psycopg.connect(postgres_url) as blocker:
        # Another worker holds the counter row: this charge must wait for it, too long.
        blocker.execute(f'SELECT * FROM "{store.schema}".guardrails_counters FOR UPDATE')
        with pytest.raises(StoreError, match="too long"):
            store.charge("k", 1, limit=10)
        # And the distinct set's lock, held by a stuck transaction elsewhere.
        blocker.execute(
            "SELECT pg_advisory_xact_lock(%s)", (store._lock_id(b"set", _budget_key(store)),)
        )
        decision = guard.check(ToolCall("pay", {"to": "x"}, agent="a", thread_id="t"))
        assert decision.effect is Effect.DENY
        assert decision.rule == "store-error"
        blocker.rollback()
    assert store.charge("k", 1, limit=10)
    assert store.total("k") == 2.0
    assert (
        guard.check(ToolCall("pay", {"to": "x"}, agent="a", thread_id="t")).effect is Effect.ALLOW
    )
    store.close()


def _budget_key(store: PostgresStore) -> bytes:
    """The key the guard's distinct budget uses, found by letting it charge once elsewhere."""
    probe = MemoryStore()
    Guard(
        Policy([allow("pay")], budgets=[Budget.distinct("to", 5, tools="pay", per="global")]),
        store=probe,
    ).check(ToolCall("pay", {"to": "probe"}, agent="a", thread_id="t"))
    keys = [k for k in probe._sets if probe._sets[k] == {"probe"}]
    assert len(keys) == 1
    return keys[0].encode()


# -- generated: the same answers as MemoryStore ----------------------------------------------

KEYS = st.sampled_from(["a", "a/b", "ab", "b", "\x00", "é", ""])
MEMBERS = st.lists(st.sampled_from(["x", "y", "z", "", "\x00"]), max_size=4)
DOCS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.5, 1.0])
    | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=6,
)
OPS = st.one_of(
    st.tuples(st.just("charge"), KEYS, st.integers(-3, 5), st.integers(-1, 8)),
    st.tuples(
        st.just("charge_window"), KEYS, st.integers(-3, 5), st.integers(-1, 8), st.integers(0, 7)
    ),
    st.tuples(st.just("total"), KEYS),
    st.tuples(st.just("total_window"), KEYS, st.integers(0, 7)),
    st.tuples(st.just("add"), KEYS, MEMBERS, st.none() | st.integers(0, 5)),
    st.tuples(st.just("remove"), KEYS, MEMBERS),
    st.tuples(st.just("members"), KEYS),
    st.tuples(st.just("put"), KEYS, DOCS),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("put_if"), KEYS, st.none() | DOCS, st.none() | DOCS),
    st.tuples(st.just("scan"), st.sampled_from(["", "a", "a/", "\x00", "é", "z"])),
)


@pytest.fixture(scope="module")
def shared_store(postgres_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(postgres_url, schema=new_schema())
    yield s
    s.close()


def _apply(store: Any, ns: str, op: tuple[Any, ...], clock: list[float]) -> Any:
    name, key = op[0], ns + op[1]
    if name == "charge":
        return store.charge(key, op[2], limit=op[3])
    if name == "charge_window":
        clock[0] += op[4]  # time only moves forward: both stores forget what aged out
        return store.charge(key, op[2], limit=op[3], window=10, now=clock[0])
    if name == "total":
        return store.total(key)
    if name == "total_window":
        clock[0] += op[2]
        return store.total(key, window=10, now=clock[0])
    if name == "add":
        return store.add_members(key, op[2], op[3])
    if name == "remove":
        return store.remove_members(key, op[2])
    if name == "members":
        return store.members(key)
    if name == "put":
        return store.put(key, op[2])
    if name == "get":
        return store.get(key)
    if name == "delete":
        return store.delete(key)
    if name == "put_if":
        return store.put_if(key, op[2], expected=op[3])
    assert name == "scan"
    return {k[len(ns) :]: v for k, v in store.scan(ns + op[1]).items()}


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, max_size=25))
def test_postgres_answers_as_memory_does(
    shared_store: PostgresStore, ops: list[tuple[Any, ...]]
) -> None:
    ns = f"{uuid.uuid4().hex}/"  # a fresh key space per example on the one shared store
    memory = MemoryStore()
    clocks = ([1000.0], [1000.0])
    for op in ops:
        want = _apply(memory, ns, op, clocks[0])
        got = _apply(shared_store, ns, op, clocks[1])
        assert got == want, op
        assert type(got) is type(want), op


async def test_async_verbs_answer_as_the_sync_ones(store: PostgresStore) -> None:
    # Many at once on one event loop: the async pool serves them concurrently.
    results = await asyncio.gather(*(store.acharge("k", 1, limit=20) for _ in range(40)))
    assert results.count(True) == 20
    assert store.total("k") == 20.0
    added = await asyncio.gather(*(store.aadd_members("s", [f"m{i}"], limit=7) for i in range(20)))
    assert sum(a is not None for a in added) == 7
    assert len(await store.amembers("s")) == 7
    await store.aclose()


# -- opening ----------------------------------------------------------------------------------


def test_open_store_understands_postgres_urls(postgres_url: str) -> None:
    schema = new_schema()
    for scheme in ("postgresql", "postgres"):
        url = postgres_url.replace("postgresql", scheme, 1) + f"?schema={schema}&application_name=x"
        store = open_store(url)
        assert isinstance(store, PostgresStore)
        assert store.schema == schema
        store.charge("k", 1, limit=5)
        store.close()
    store = open_store(postgres_url + f"?schema={schema}", create=False)
    assert store.total("k") == 2.0
    store.close()


def test_create_false_refuses_a_database_without_a_store(postgres_url: str) -> None:
    schema = new_schema()
    with pytest.raises(StoreError, match="holds no guardrails store"):
        open_store(postgres_url + f"?schema={schema}", create=False)
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # nothing was created
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchone() is None


def test_an_unreachable_server_is_a_store_error_naming_no_password() -> None:
    with pytest.raises(StoreError, match="cannot open") as caught:
        PostgresStore("postgresql://me:s3cret@127.0.0.1:1/db", timeout=1.0)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("bad", ["", "Upper", "a-b", "x;drop", "1abc", 'q"'])
def test_schema_and_prefix_must_be_plain_names(bad: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://127.0.0.1:1/db", schema=bad)
    with pytest.raises(ValueError, match="prefix"):
        PostgresStore("postgresql://127.0.0.1:1/db", prefix=bad)


def test_prefixes_keep_two_stores_apart_in_one_schema(postgres_url: str) -> None:
    schema = new_schema()
    one = PostgresStore(postgres_url, schema=schema, prefix="one_")
    two = PostgresStore(postgres_url, schema=schema, prefix="two_")
    one.charge("k", 3, limit=10)
    one.put("d", 1)
    assert (two.total("k"), two.get("d")) == (0.0, None)
    one.close()
    two.close()


# -- push: LISTEN/NOTIFY ---------------------------------------------------------------------


def _wait(condition: Any, what: str, seconds: float = 10.0) -> None:
    """Wait for ``condition()`` (a bound on a hang, not a timing claim)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class Calls:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.n += 1


def test_a_committed_change_is_pushed_to_subscribers_in_other_processes(
    postgres_url: str,
) -> None:
    schema = new_schema()
    listener = PostgresStore(postgres_url, schema=schema)
    writer = PostgresStore(postgres_url, schema=schema)  # connections of its own
    calls = Calls()
    sub = listener.subscribe("control/epoch", calls)
    assert sub is not None
    _wait(lambda: sub.alive, "the subscription")
    assert calls.n == 1  # the first confirmation: read once
    for change in (
        lambda: writer.charge("control/epoch", 1, limit=math.inf),
        lambda: writer.charge("control/epoch", 1, limit=math.inf, window=None),
    ):
        before = calls.n
        change()
        _wait(lambda b=before: calls.n > b, "a notification")
    doc_calls = Calls()
    doc_sub = listener.subscribe("control/flag/global:*", doc_calls)
    assert doc_sub is not None
    _wait(lambda: doc_sub.alive, "the document subscription")
    for change in (
        lambda: writer.put("control/flag/global:*", {"state": "killed"}),
        lambda: writer.put_if("control/flag/global:*", None, expected={"state": "killed"}),
    ):
        before = doc_calls.n
        change()
        _wait(lambda b=before: doc_calls.n > b, "a document notification")
    sub.close()
    assert not sub.alive
    doc_sub.close()
    listener.close()
    writer.close()


def test_a_change_is_announced_when_its_transaction_commits_not_before(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url, schema=new_schema())
    calls = Calls()
    sub = store.subscribe("k", calls)
    assert sub is not None
    _wait(lambda: sub.alive, "the subscription")
    seen = calls.n
    with psycopg.connect(postgres_url) as conn:  # a transaction left open
        conn.execute(
            f'INSERT INTO "{store.schema}".guardrails_counters (key, value) VALUES (%s, 1)', (b"k",)
        )
        time.sleep(0.3)
        assert calls.n == seen  # not committed: nothing to read yet
        conn.commit()
    _wait(lambda: calls.n > seen, "the notification after the commit")
    store.close()


def test_a_lost_listener_connection_is_not_alive_then_reconnects_and_reads_once(
    postgres_url: str,
) -> None:
    store = PostgresStore(postgres_url, schema=new_schema())
    calls = Calls()
    sub = store.subscribe("k", calls)
    assert sub is not None
    _wait(lambda: sub.alive, "the subscription")
    seen = calls.n
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'guardrails-listener'"
        )
    # (a reconnect can be quicker than a poll of ``alive``: wait for its effect instead)
    _wait(lambda: calls.n > seen and sub.alive, "the subscription to come back and re-read")
    store.close()


def test_the_guard_sees_a_kill_pushed_from_another_process_and_fails_closed_while_down(
    postgres_cluster_own: PostgresCluster,
) -> None:
    from guardrails_plugin import Controls

    cluster = postgres_cluster_own
    store = PostgresStore(cluster.url, timeout=1.0, statement_timeout=1.0)
    guard = Guard(Policy([allow("*")]), store=store)
    call = ToolCall("work", {}, agent="a", thread_id="t")
    assert guard.check(call).effect is Effect.ALLOW  # subscribes
    sub = guard.controls.subscription
    assert sub is not None
    _wait(lambda: sub.alive, "the guard's subscription")
    operator = PostgresStore(cluster.url)
    Controls(operator).kill(reason="stop everything", by="ops")
    _wait(lambda: guard.check(call).rule == "kill-switch", "the kill to arrive")
    Controls(operator).resume()
    _wait(lambda: guard.check(call).effect is Effect.ALLOW, "the resume to arrive")
    operator.close()
    cluster.stop()
    _wait(lambda: not sub.alive, "the subscription to notice the server is gone")
    assert guard.check(call).rule == "store-error"  # reads again, and cannot: deny
    cluster.start()
    operator = PostgresStore(cluster.url)
    Controls(operator).kill(agent="a", by="ops")  # set while the listener may still be away
    _wait(lambda: guard.check(call).rule == "kill-switch", "the kill after the restart")
    operator.close()
    store.close()
