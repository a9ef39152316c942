"""The kill switch on a store that pushes changes (``Store.subscribe``).

While the subscription is alive a check reads nothing and re-reads the flags only when
notified; while it is down every check reads the counter, and after it comes back the flags
are read once more (a change made while it was down was never notified). The store here is a
``MemoryStore`` whose push channel the test connects, drops and reconnects at will, and which
can lose notifications while down; generated sequences of operator actions, drops,
reconnects and checks are compared against a fresh read of the flags (the oracle: no cache).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from guardrails_plugin import Controls
from guardrails_plugin.controls import CONTROL_EPOCH
from guardrails_plugin.store import MemoryStore, Store, Subscription


class PushingStore(MemoryStore):
    """A MemoryStore that notifies subscribers of a changed counter or document, through a
    channel that can be dropped (notifications lost) and reconnected; it counts reads."""

    def __init__(self) -> None:
        super().__init__()
        self.connected = True
        self.subscriptions: list[tuple[Subscription, Callable[[], None]]] = []
        self.reads = 0

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        sub = Subscription(key)
        self.subscriptions.append((sub, callback))
        if self.connected:
            callback()
            sub.alive = True
        return sub

    def drop(self) -> None:
        self.connected = False
        for sub, _ in self.subscriptions:
            sub.alive = False

    def reconnect(self) -> None:
        self.connected = True
        for sub, callback in self.subscriptions:
            if not sub.closed:
                callback()  # the contract: notify once, then alive
                sub.alive = True

    def _changed(self, key: str) -> None:
        if self.connected:
            for sub, callback in self.subscriptions:
                if sub.key == key and not sub.closed:
                    callback()

    def charge(self, key: str, amount: float, limit: float, **kw: Any) -> bool:
        done = super().charge(key, amount, limit, **kw)
        self._changed(key)
        return done

    def put(self, key: str, value: Any) -> None:
        super().put(key, value)
        self._changed(key)

    def delete(self, key: str) -> bool:
        done = super().delete(key)
        self._changed(key)
        return done

    def total(self, key: str, **kw: Any) -> float:
        self.reads += 1
        return super().total(key, **kw)

    def scan(self, prefix: str) -> Mapping[str, Any]:
        self.reads += 1
        return super().scan(prefix)

    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        return super().add_members(key, members, limit)


def check(controls: Controls, agent: str = "a", thread: str | None = "t") -> Any:
    decision = controls._run(controls.flow(agent, thread))
    return None if decision is None else (decision.rule, decision.reason)


def test_store_without_push_reads_the_counter_every_step() -> None:
    store = MemoryStore()
    assert Store.subscribe(store, CONTROL_EPOCH, lambda: None) is None
    controls = Controls(store)
    assert check(controls) is None
    assert controls.subscription is None


def test_alive_subscription_skips_reads_until_notified() -> None:
    store = PushingStore()
    guard_side, operator = Controls(store), Controls(store)
    assert check(guard_side) is None
    sub = guard_side.subscription
    assert sub is not None
    assert sub.alive
    before = store.reads
    for _ in range(5):
        assert check(guard_side) is None
    assert store.reads == before  # nothing read while quiet
    operator.kill(agent="a", reason="runaway")
    assert check(guard_side) is not None
    assert check(guard_side)[0] == "kill-switch"


def test_change_lost_while_down_is_read_after_reconnect_even_unseen() -> None:
    """The drop and the reconnect both happen between two checks: the guard never sees the
    subscription down, and still reads the flag set meanwhile."""
    store = PushingStore()
    guard_side, operator = Controls(store), Controls(store)
    assert check(guard_side) is None
    store.drop()
    operator.kill(reason="lost notification")
    store.reconnect()
    assert check(guard_side) is not None


def test_down_subscription_reads_every_step() -> None:
    store = PushingStore()
    guard_side = Controls(store)
    check(guard_side)
    store.drop()
    before = store.reads
    for _ in range(3):
        check(guard_side)
    assert store.reads - before >= 3


def test_failed_read_is_retried_at_the_next_check() -> None:
    """A notified change whose read failed is read at the next check, not forgotten."""
    store = PushingStore()
    guard_side, operator = Controls(store), Controls(store)
    check(guard_side)
    operator.kill(reason="x")
    real_scan = store.scan

    def failing_scan(prefix: str) -> Mapping[str, Any]:
        raise RuntimeError("store down")

    store.scan = failing_scan  # type: ignore[method-assign]
    with contextlib.suppress(RuntimeError):
        check(guard_side)
    store.scan = real_scan  # type: ignore[method-assign]
    assert check(guard_side) is not None


def test_closed_controls_read_again_and_forked_subscription_is_not_alive() -> None:
    store = PushingStore()
    guard_side = Controls(store)
    check(guard_side)
    sub = guard_side.subscription
    assert sub is not None
    guard_side.close()
    assert not sub.alive
    assert sub.closed
    sub2 = Subscription("k")
    sub2.alive = True
    sub2._pid = os.getpid() + 1  # as seen from a forked child
    assert not sub2.alive


class PushMachine(RuleBasedStateMachine):
    """Operator actions, channel drops and reconnects, checks: a check always agrees with a
    fresh read, and reads nothing when alive and nothing changed since its last read."""

    def __init__(self) -> None:
        super().__init__()
        self.store = PushingStore()
        self.guard_side = Controls(self.store)
        self.operator = Controls(self.store)
        self.quiet = False  # nothing changed and the channel stayed up since the last check

    @rule(
        verb=st.sampled_from(["kill", "pause", "resume"]),
        level=st.sampled_from(["global", "agent", "thread"]),
    )
    def operate(self, verb: str, level: str) -> None:
        target = {"global": {}, "agent": {"agent": "a"}, "thread": {"thread": "t"}}[level]
        getattr(self.operator, verb)(**target)
        self.quiet = False

    @rule()
    def drop(self) -> None:
        self.store.drop()
        self.quiet = False

    @rule()
    def reconnect(self) -> None:
        self.store.reconnect()
        self.quiet = False

    @rule(agent=st.sampled_from(["a", "b"]), thread=st.sampled_from(["t", "u", None]))
    def check(self, agent: str, thread: str | None) -> None:
        before = self.store.reads
        found = check(self.guard_side, agent, thread)
        read = self.store.reads - before
        truth = check(Controls(MemoryStoreView(self.store)), agent, thread)
        assert found == truth
        sub = self.guard_side.subscription
        if self.quiet and sub is not None and sub.alive:
            assert read == 0
        self.quiet = True

    @invariant()
    def subscription_alive_only_when_connected(self) -> None:
        sub = self.guard_side.subscription
        if sub is not None and sub.alive:
            assert self.store.connected


class MemoryStoreView(MemoryStore):
    """A read-only view of another MemoryStore's state that cannot push (the oracle)."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner

    def total(self, key: str, **kw: Any) -> float:
        return MemoryStore.total(self.inner, key, **kw)

    def scan(self, prefix: str) -> Mapping[str, Any]:
        return MemoryStore.scan(self.inner, prefix)


TestPushMachine = PushMachine.TestCase
TestPushMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
