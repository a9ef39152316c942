"""RedisStore beyond the shared contract, on real ``redis-server`` processes the tests start.

- many processes, each with its own connection, hammer one budget, one sliding window and
  one distinct-values set: no limit is passed and nothing is counted twice;
- faults: the server killed, restarted on the same port, frozen (timeouts): the guard denies
  with a reason while it is away and decides again afterwards with the same store object;
- a differential test: generated operation sequences give the same answers as MemoryStore;
- push: subscriptions notice changes, losses and reconnects; the kill switch reaches a
  guard in another process;
- Redis Cluster: every script's keys hash to one slot;
- URLs: ``open_store``, ``create=False``, the CLI's ``--store``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.crc import key_slot
from redis_server import RedisServer, RedisServerError, redis_server

from guardrails_plugin import Budget, Controls, Guard, Policy, ToolCall, allow
from guardrails_plugin._errors import StoreError
from guardrails_plugin._grants import EPOCH_KEY
from guardrails_plugin.controls import CONTROL_EPOCH
from guardrails_plugin.store import MemoryStore, Store, open_store
from guardrails_plugin.store.redis import RedisStore

ROOT = Path(__file__).resolve().parents[1]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll until ``condition()``; fail naming ``what`` after ``timeout`` (a liveness bound on a
    loaded machine, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.01)


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server of this test's own, which the test may kill, restart or freeze."""
    try:
        with redis_server() as server:
            yield server
            return
    except RedisServerError as exc:
        problem = str(exc)
    reason = f"no Redis server for tests: {problem}"
    if os.environ.get("GUARDRAILS_REQUIRE_REDIS") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


# -- many processes -------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, random, sys, time
    from guardrails_plugin.store.redis import RedisStore
    url, me, rounds, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    store = RedisStore(url, create=False)
    while store.get("go") is None:
        time.sleep(0.001)
    out = {"budget": [], "rate": 0, "added": []}
    for i in range(rounds):
        amount = rng.choice([0.25, 0.5, 1.0, 1.75, 2.0])
        if store.charge("budget", amount, limit=60.0):
            out["budget"].append(amount)
        if store.charge("rate", 1, limit=90, window=3600, now=time.time()):
            out["rate"] += 1
        wanted = [f"w{me}-{i}", f"shared-{rng.randrange(8)}"]
        added = store.add_members("recipients", wanted, limit=70)
        if added is not None:
            out["added"].extend(added)
    print(json.dumps(out))
    """
)


def test_many_processes_never_pass_a_limit_nor_count_twice(redis_url: str) -> None:
    store = RedisStore(redis_url)
    workers, rounds = 8, 40
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, str(i), str(rounds), str(1000 + i)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for i in range(workers)
    ]
    time.sleep(0.5)  # let them connect, so that they start together
    store.put("go", True)
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0
        results.append(json.loads(out))

    charged = [a for r in results for a in r["budget"]]
    assert sum(charged) == store.total("budget")  # every accepted charge counted, once
    assert 60.0 - 2.0 < store.total("budget") <= 60.0  # filled, never passed
    assert sum(r["rate"] for r in results) == 90 == store.total("rate", window=3600)
    added = [m for r in results for m in r["added"]]
    assert len(added) == len(set(added))  # no member reported new twice
    assert set(added) == store.members("recipients")
    assert 69 <= len(added) <= 70


# -- faults ---------------------------------------------------------------------------------


def guard_on(store: Store, limit: int = 1000) -> Guard:
    return Guard(Policy([allow("send")], budgets=[Budget.calls(limit, tools="send")]), store=store)


def call(n: int = 0) -> ToolCall:
    return ToolCall("send", {"n": n}, thread_id="t1")


def test_server_killed_and_restarted_denies_meanwhile_then_decides_again(
    own_server: RedisServer,
) -> None:
    store = RedisStore(own_server.url, timeout=0.5, connect_timeout=0.5)
    guard = guard_on(store, limit=3)
    assert guard.check(call()).effect == "allow"
    own_server.stop()
    for _ in range(3):
        down = guard.check(call())
        assert down.effect == "deny"
        assert down.rule == "store-error"
        assert "Redis store" in down.reason
        assert "unreachable" in down.reason
    with pytest.raises(StoreError, match="unreachable"):
        store.charge("k", 1, limit=1)
    own_server.start()  # same port; no persistence, so it comes back empty
    assert guard.check(call()).effect == "allow"  # the same store object reconnected
    assert store.total("k") == 0.0
    assert guard.check(call()).effect == "allow"
    assert guard.check(call()).effect == "allow"
    assert guard.check(call()).effect == "deny"  # the budget of 3 counts again


async def test_async_verbs_fail_closed_and_reconnect(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, timeout=0.5, connect_timeout=0.5)
    guard = guard_on(store, limit=5)
    assert (await guard.acheck(call())).effect == "allow"
    own_server.stop()
    down = await guard.acheck(call())
    assert down.effect == "deny"
    assert "Redis store" in down.reason
    with pytest.raises(StoreError):
        await store.aput("doc", 1)
    own_server.start()
    assert (await guard.acheck(call())).effect == "allow"
    assert await store.atotal("k") == 0.0


def test_frozen_server_times_out_as_a_deny_and_recovers(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, timeout=0.3, connect_timeout=0.3)
    guard = guard_on(store, limit=100)
    decisions = [guard.check(call())]
    assert decisions[0].effect == "allow"
    own_server.pause()
    try:
        decisions.append(guard.check(call()))
        assert decisions[-1].effect == "deny"
        assert "timed out" in decisions[-1].reason
    finally:
        own_server.resume()

    def decided() -> bool:
        decisions.append(guard.check(call()))
        return decisions[-1].effect == "allow"

    wait_for(decided, "decisions after the freeze")
    # Every allowed call was charged; a charge whose answer timed out may have been applied
    # too (over-counted, never lost).
    allowed = sum(d.effect == "allow" for d in decisions)
    timed_out = sum("timed out" in d.reason for d in decisions)
    (key,) = _budget_keys(store)
    assert allowed <= store.total(key) <= allowed + timed_out


def _budget_keys(store: RedisStore) -> list[str]:
    prefix = (store.prefix + "c:").encode()
    return [
        k[len(prefix) :].decode()
        for k in store._client.keys(prefix + b"*")
        if k[len(prefix) :].startswith(b"budget/")
    ]


def test_no_charge_is_lost_when_the_server_dies_mid_run(own_server: RedisServer) -> None:
    """Threads charge while the server is killed and restarted: every charge reported as
    done after the restart is in the total (the restarted server starts empty)."""
    store = RedisStore(own_server.url, timeout=0.5, connect_timeout=0.5)
    done_after: list[int] = []
    errors: list[str] = []
    restarted = threading.Event()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            after = restarted.is_set()
            try:
                if store.charge("budget", 1, limit=10**9) and after:
                    done_after.append(1)
            except StoreError as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    own_server.stop()
    time.sleep(0.3)
    own_server.start()
    restarted.set()
    wait_for(lambda: len(done_after) > 50, "charges after the restart")
    stop.set()
    for t in threads:
        t.join()
    assert errors  # the outage was seen
    assert all("Redis store" in e for e in errors)
    assert store.total("budget") >= len(done_after)


# -- differential: RedisStore against MemoryStore ---------------------------------------------

KEYS = st.sampled_from(["a", "{tag}", "ü"]) | st.sampled_from(["", "x}y{", "b/c"])
AMOUNTS = st.sampled_from([0.0, 0.1, 0.25, 1.0, 2.5, -0.1, -1.0, 1e-9, 7.3, 0.7]) | st.floats(
    -5, 5, allow_nan=False
)
LIMITS = st.sampled_from([0.0, 1.0, 3.3, 5.0, 10.0, float("inf"), float("nan"), -1.0])
MEMBERS = st.lists(st.sampled_from(["m1", "m2", "m3", "ü", "", "a b", "{x}"]), max_size=4)
DOCS = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 0.5, "s", "ü"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("abc"), inner),
    max_leaves=6,
)
COUNTER_OPS = st.one_of(
    st.tuples(st.just("charge"), KEYS, AMOUNTS, LIMITS),
    st.tuples(st.just("charge_window"), KEYS, AMOUNTS, LIMITS, st.integers(0, 30)),
    st.tuples(st.just("total"), KEYS),
    st.tuples(st.just("total_window"), KEYS, st.integers(0, 30)),
)
OPS = COUNTER_OPS | st.one_of(  # counters and windows (where rounding could differ): half
    st.tuples(st.just("add_members"), KEYS, MEMBERS, st.none() | st.integers(0, 4)),
    st.tuples(st.just("remove_members"), KEYS, MEMBERS),
    st.tuples(st.just("members"), KEYS),
    st.tuples(st.just("put"), KEYS, DOCS),
    st.tuples(st.just("get"), KEYS),
    st.tuples(st.just("delete"), KEYS),
    st.tuples(st.just("put_if"), KEYS, st.none() | DOCS, st.none() | DOCS),
    st.tuples(st.just("scan"), st.sampled_from(["", "a", "b/", "{", "ü", "z"])),
)


def apply(store: Store, op: tuple[Any, ...], clock: list[float]) -> Any:
    name, *args = op
    if name == "charge":
        return store.charge(args[0], args[1], args[2])
    if name == "charge_window":
        clock[0] += args[3] / 10  # time moves forward by 0-3 s; the window is 10 s
        return store.charge(args[0], args[1], args[2], window=10, now=clock[0])
    if name == "total":
        return store.total(args[0])
    if name == "total_window":
        return store.total(args[0], window=10, now=clock[0] + args[1] / 10)
    if name == "add_members":
        return store.add_members(args[0], args[1], args[2])
    if name == "remove_members":
        return store.remove_members(args[0], args[1])
    if name == "members":
        return store.members(args[0])
    if name == "put":
        return store.put(args[0], args[1])
    if name == "get":
        return store.get(args[0])
    if name == "delete":
        return store.delete(args[0])
    if name == "put_if":
        return store.put_if(args[0], args[1], expected=args[2])
    assert name == "scan"
    return dict(store.scan(args[0]))


def _same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and JSON values compared by their JSON text (1 != 1.0)."""
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(
        b, sort_keys=True, default=repr
    )


_EXAMPLE = iter(range(10**9))


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(OPS, max_size=40))
def test_redis_answers_like_memory(redis_url: str, ops: list[tuple[Any, ...]]) -> None:
    redis_store = RedisStore(redis_url, prefix=f"diff{next(_EXAMPLE)}:")
    memory = MemoryStore()
    clocks = ([1000.0], [1000.0])
    try:
        for op in ops:
            expected = apply(memory, op, clocks[0])
            found = apply(redis_store, op, clocks[1])
            if isinstance(expected, frozenset):
                assert found == expected, op
            else:
                assert _same(found, expected), (op, found, expected)
    finally:
        redis_store.close()


# -- push -----------------------------------------------------------------------------------


def test_subscription_notifies_changes_and_survives_a_restart(own_server: RedisServer) -> None:
    listener = RedisStore(own_server.url, timeout=0.5, connect_timeout=0.5, ping_interval=0.2)
    writer = RedisStore(own_server.url)
    calls: list[float] = []
    sub = listener.subscribe("control/epoch", lambda: calls.append(time.monotonic()))
    assert sub is not None
    wait_for(lambda: sub.alive, "the subscription")
    base = len(calls)
    assert base >= 1  # called once when the subscription was confirmed
    writer.charge("control/epoch", 1, limit=float("inf"))
    wait_for(lambda: len(calls) > base, "a notification")
    n = len(calls)
    writer.charge("other", 1, limit=float("inf"))  # another key: no notification for this one
    writer.put("control/epoch-doc", 1)
    writer.charge("control/epoch", 1, limit=float("inf"))
    wait_for(lambda: len(calls) > n, "the second notification")
    assert len(calls) == n + 1

    own_server.stop()
    wait_for(lambda: not sub.alive, "the subscription to notice the server is gone")
    before = len(calls)  # read before the restart: the reconnect may call back at once
    own_server.start()
    wait_for(lambda: sub.alive, "the subscription to come back")
    assert len(calls) > before  # the re-read after a reconnect
    sub.close()
    assert not sub.alive
    listener.close()


def test_frozen_server_makes_the_subscription_not_alive(own_server: RedisServer) -> None:
    listener = RedisStore(own_server.url, timeout=0.3, connect_timeout=0.3, ping_interval=0.2)
    sub = listener.subscribe("k", lambda: None)
    assert sub is not None
    wait_for(lambda: sub.alive, "the subscription")
    own_server.pause()
    try:
        wait_for(lambda: not sub.alive, "the ping to go unanswered")
    finally:
        own_server.resume()
    wait_for(lambda: sub.alive, "the subscription back after the freeze")
    listener.close()
    assert not sub.alive


def test_kill_switch_with_push_reads_nothing_per_step_and_sees_a_kill(redis_url: str) -> None:
    store = RedisStore(redis_url)
    guard = guard_on(store)
    assert guard.check(call()).effect == "allow"
    sub = guard.controls.subscription
    assert sub is not None
    wait_for(lambda: sub.alive, "the guard's subscription")
    guard.check(call())  # the read after the confirmation
    reads: list[str] = []
    real_total = store.total

    def counting_total(key: str, **kw: Any) -> float:
        reads.append(key)
        return real_total(key, **kw)

    store.total = counting_total  # type: ignore[method-assign]
    for _ in range(5):
        assert guard.check(call()).effect == "allow"
    assert CONTROL_EPOCH not in reads
    assert EPOCH_KEY not in reads  # the grants' epoch is pushed too
    Controls(RedisStore(redis_url)).kill(reason="stop it", by="ops")  # another store object
    wait_for(lambda: guard.check(call()).effect == "deny", "the kill to reach the guard")
    assert "killed by an operator" in guard.check(call()).reason


def test_grant_revoked_by_another_guard_reaches_this_one(redis_url: str) -> None:
    here = Guard(Policy([]), store=RedisStore(redis_url))
    there = Guard(Policy([]), store=RedisStore(redis_url))
    grant = there.grant(call().agent, "send")
    wait_for(lambda: here.check(call()).effect == "allow", "the grant to reach the guard")
    sub = here._grant_watch.subscription
    assert sub is not None
    wait_for(lambda: sub.alive, "the grants subscription")
    assert here.check(call()).effect == "allow"
    there.revoke(grant)
    wait_for(lambda: here.check(call()).effect == "deny", "the revocation to reach the guard")


def test_kill_set_around_a_restart_is_never_missed(own_server: RedisServer) -> None:
    """The server restarts; an operator kills before the guard's subscription is back. The
    guard must deny (by reading while not alive, or by the re-read after reconnecting)."""
    store = RedisStore(own_server.url, timeout=0.5, connect_timeout=0.5, ping_interval=0.2)
    guard = guard_on(store)
    assert guard.check(call()).effect == "allow"
    sub = guard.controls.subscription
    assert sub is not None
    wait_for(lambda: sub.alive, "the guard's subscription")
    own_server.stop()
    own_server.start()
    Controls(RedisStore(own_server.url)).kill(reason="after restart")
    assert guard.check(call()).effect == "deny"


KILL_WORKER = textwrap.dedent(
    """
    import sys, time
    from guardrails_plugin import Budget, Guard, Policy, ToolCall, allow
    from guardrails_plugin.store.redis import RedisStore
    store = RedisStore(sys.argv[1], create=False)
    guard = Guard(Policy([allow("send")]), store=store)
    guard.check(ToolCall("send", {}, thread_id="t"))
    while not guard.controls.subscription.alive:
        time.sleep(0.005)
    print("ready", flush=True)
    while guard.check(ToolCall("send", {}, thread_id="t")).effect == "allow":
        time.sleep(0.001)
    print(guard.check(ToolCall("send", {}, thread_id="t")).reason, flush=True)
    """
)


def test_kill_reaches_guards_in_other_processes(redis_url: str) -> None:
    RedisStore(redis_url)  # creates the store the workers open with create=False
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", KILL_WORKER, redis_url],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    Controls(RedisStore(redis_url)).kill(thread="t", reason="enough", by="ops")
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert "killed by an operator" in out
        assert "enough" in out


# -- Redis Cluster: one slot per script ---------------------------------------------------------


@given(st.text(max_size=12))
def test_every_script_touches_keys_of_one_slot(key: str) -> None:
    store = RedisStore.__new__(RedisStore)
    store.prefix = "guardrails:"
    entries, meta = store._window_keys(key)
    assert entries != meta
    assert key_slot(entries) == key_slot(meta)
    docs = RedisStore._doc_keys("guardrails:")
    assert len({key_slot(k) for k in docs}) == 1


@given(st.text(max_size=6), st.text(max_size=6))
def test_window_keys_of_different_keys_differ(a: str, b: str) -> None:
    store = RedisStore.__new__(RedisStore)
    store.prefix = "p:"
    if a != b:
        assert not set(store._window_keys(a)) & set(store._window_keys(b))


# -- opening ----------------------------------------------------------------------------------


def test_open_store_reads_redis_urls_and_create_false_needs_a_store(redis_url: str) -> None:
    with pytest.raises(StoreError, match="holds no guardrails store"):
        open_store(redis_url, create=False)
    made = open_store(redis_url)
    assert isinstance(made, RedisStore)
    assert "RedisStore('redis://127.0.0.1" in repr(made)
    made.put("k", 1)
    again = open_store(redis_url, create=False)
    assert again.get("k") == 1


@pytest.mark.parametrize("url", ["redis://", "redis:///0", "rediss://"])
def test_open_store_refuses_redis_urls_without_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="store URL"):
        open_store(url)


def test_unreachable_server_is_a_store_error_naming_it_without_password() -> None:
    with pytest.raises(StoreError, match=r"redis://user:\*\*\*@127\.0\.0\.1:1/0.*unreachable"):
        RedisStore("redis://user:secret@127.0.0.1:1/0", connect_timeout=0.5)


def test_prefix_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisStore("redis://127.0.0.1:1/0", prefix="{x}")


def test_other_schema_version_is_refused(redis_url: str) -> None:
    store = RedisStore(redis_url)
    store._client.hset(store._meta, "schema_version", "99")
    with pytest.raises(StoreError, match="schema version '99'"):
        RedisStore(redis_url)


def test_wrong_type_under_a_key_is_a_store_error(redis_url: str) -> None:
    store = RedisStore(redis_url)
    store._client.set(b"guardrails:s:k", b"not a set")
    with pytest.raises(StoreError, match="server error"):
        store.add_members("k", ["a"])
    with pytest.raises(StoreError):
        asyncio.run(store.amembers("k"))


def test_cli_acts_on_a_redis_store(redis_url: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "guardrails_plugin.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
            check=False,
        )

    refused = cli("flags", "--store", redis_url)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error:")
    assert "Traceback" not in refused.stderr
    assert cli("init", "--store", redis_url).returncode == 0
    assert cli("kill", "--store", redis_url, "--agent", "a", "--reason", "r").returncode == 0
    flags = cli("flags", "--store", redis_url)
    assert flags.returncode == 0
    assert "killed" in flags.stdout
    guard = guard_on(RedisStore(redis_url, create=False))
    decision = guard.check(ToolCall("send", {}, agent="a"))
    assert decision.effect == "deny"
    assert decision.rule == "kill-switch"
