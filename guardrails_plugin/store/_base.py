"""The contract every store keeps: a handful of atomic operations.

Everything the guard must share between agents, threads and processes lives behind this
interface: budget counters, rate windows, distinct-member sets (recipients, taint labels),
and small JSON documents (grants, control flags). Each backend (memory, SQLite, later
Redis) implements the sync verbs; the async twins, ``a``-prefixed, default to the sync ones
and a backend with real async I/O overrides them.

Every operation is atomic with respect to every other caller of the same store, in this
process and (for shared backends) in others.

A shared backend may also *push*: ``subscribe(key, callback)`` calls ``callback()`` whenever
counter or document ``key`` changes, so a reader that caches what it derived from the key
(the kill switch's flags) need not re-read it per step. Push is optional (``None`` from the
base class) and never the only line of defence: while the ``Subscription`` is not
``alive`` the reader must read the key itself, as if there were no push.
"""

from __future__ import annotations

import abc
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["Store", "Subscription", "Watch"]

JSON = Any


class Subscription:
    """A store's push channel for one key, as ``Store.subscribe`` returns it.

    ``alive`` is True only while the channel is connected and subscribed: every change of
    the key made from then on reaches the callback. It is False before the first
    subscription is confirmed, while the connection is lost, after ``close()`` and in a
    forked child (the child has no listening thread), so a reader that sees it True may
    skip its own read and must read otherwise. A backend sets ``alive`` from its listening
    thread: False as soon as it sees the connection fail; and each time a (re)subscription
    is confirmed, it first calls the callback once and *then* sets ``alive`` True, so that a
    change made while the channel was down is read, even by a reader that never saw it down.
    """

    def __init__(self, key: str, on_close: Callable[[], None] | None = None) -> None:
        self.key = key
        self._alive = False
        self._closed = False
        self._pid = os.getpid()
        self._on_close = on_close
        self._lock = threading.Lock()

    @property
    def alive(self) -> bool:
        """Whether notifications arrive now (False while the connection is lost, after
        ``close``, and in a forked child, which must subscribe anew)."""
        return self._alive and not self._closed and os.getpid() == self._pid

    @alive.setter
    def alive(self, value: bool) -> None:
        self._alive = value

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def close(self) -> None:
        """Stop listening; ``alive`` is False from now on. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            on_close, self._on_close = self._on_close, None
        if on_close is not None and os.getpid() == self._pid:
            on_close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "alive" if self.alive else "not alive"
        return f"Subscription({self.key!r}, {state})"


class Store(abc.ABC):
    """Shared, atomic state for budgets, rates, sets and documents."""

    # -- counters and windows -------------------------------------------------------------

    @abc.abstractmethod
    def charge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Add ``amount`` to counter ``key`` if the result stays ``<= limit``; say whether it did.

        With ``window`` (seconds) the counter is a sliding window: amounts stamped after
        ``now - window`` count (including any stamped later than ``now`` by a racing caller,
        so that two callers cannot both squeeze under the limit), and ``now`` (defaults to
        the time read inside the store's lock) stamps this one. Use one window length per key. A negative ``amount`` (a refund) is always recorded; with a window, pass the
        original ``now`` so that the refund ages out together with the charge it cancels.
        """

    @abc.abstractmethod
    def total(self, key: str, *, window: float | None = None, now: float | None = None) -> float:
        """The current value of counter ``key`` (0 when absent), windowed like ``charge``."""

    # -- sets -----------------------------------------------------------------------------

    @abc.abstractmethod
    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        """Add ``members`` to set ``key`` if its size stays ``<= limit``.

        Returns the members that were newly added (possibly empty), or ``None`` when adding
        them would exceed ``limit`` (then nothing is added).
        """

    @abc.abstractmethod
    def remove_members(self, key: str, members: Iterable[str]) -> None:
        """Remove ``members`` from set ``key`` (absent ones are ignored)."""

    @abc.abstractmethod
    def members(self, key: str) -> frozenset[str]:
        """The members of set ``key`` (empty when absent)."""

    # -- documents ------------------------------------------------------------------------

    @abc.abstractmethod
    def get(self, key: str) -> JSON | None:
        """The JSON document stored at ``key``, or ``None``."""

    @abc.abstractmethod
    def put(self, key: str, value: JSON) -> None:
        """Store a JSON-serializable document at ``key`` (replacing any)."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Delete the document at ``key``; say whether there was one."""

    @abc.abstractmethod
    def put_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        """Compare and set: replace the document at ``key`` only if it equals ``expected``.

        ``expected=None`` means "only if there is no document" (a claim: of several callers
        racing to put the same key, exactly one succeeds). ``value=None`` deletes the
        document (a release that succeeds only for whoever still holds the claim). Documents
        compare as JSON values (``{"a": 1, "b": 2} == {"b": 2, "a": 1}``). Says whether the
        document was replaced; atomic across every caller of the store.
        """

    @abc.abstractmethod
    def scan(self, prefix: str) -> Mapping[str, JSON]:
        """Every document whose key starts with ``prefix``, by key."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default does nothing."""

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        """Call ``callback()`` (from a background thread) whenever counter or document
        ``key`` changes; ``None`` when this backend cannot push (the default).

        Must not block: the channel connects in the background (``alive`` is False until
        then). The callback must be quick and must not raise; it also runs after each
        (re)subscription is confirmed (see ``Subscription``). Notifications may be merged or spurious,
        never missed while ``alive`` is True.
        """
        return None

    # -- async twins ----------------------------------------------------------------------

    async def acharge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        return self.charge(key, amount, limit, window=window, now=now)

    async def atotal(
        self, key: str, *, window: float | None = None, now: float | None = None
    ) -> float:
        return self.total(key, window=window, now=now)

    async def aadd_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        return self.add_members(key, members, limit)

    async def aremove_members(self, key: str, members: Iterable[str]) -> None:
        self.remove_members(key, members)

    async def amembers(self, key: str) -> frozenset[str]:
        return self.members(key)

    async def aget(self, key: str) -> JSON | None:
        return self.get(key)

    async def aput(self, key: str, value: JSON) -> None:
        self.put(key, value)

    async def adelete(self, key: str) -> bool:
        return self.delete(key)

    async def aput_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        return self.put_if(key, value, expected=expected)

    async def ascan(self, prefix: str) -> Mapping[str, JSON]:
        return self.scan(prefix)


class Watch:
    """Whether what a reader cached from one key is still current, by push when it can.

    The reader's loop::

        if not watch.current():            # subscribes on first use (again after a fork)
            generation = watch.reading()
            ... read the key (and what it guards) from the store ...
            watch.read(generation)         # only once the read succeeded
        ... use the cache ...

    ``current()`` is True only while the store's subscription is alive and nothing was
    notified since the last successful read; without push (the store returns ``None``) it
    is always False, so the reader reads every time, as without a watch. A subscription
    seen down counts as a change (read again once it is back); a notification arriving
    during a read makes the next check read again. ``changed()`` marks this process's own
    writes, seen at once without waiting for the push. ``on_change`` runs on every
    notification, from the store's thread (drop a cache that must be rebuilt in full).
    """

    def __init__(self, store: Store, key: str, on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.key = key
        self._on_change = on_change
        self._subscription: Subscription | None = None
        self._pid: int | None = None
        self._generations = itertools.count(1)
        self._changed = 0
        self._read = -1

    def __repr__(self) -> str:
        return f"Watch({self.key!r}, {self._subscription!r})"

    @property
    def subscription(self) -> Subscription | None:
        """The store's subscription this watch listens on (``None`` before the first
        ``current()``, and on a store that cannot push)."""
        return self._subscription

    def current(self) -> bool:
        """Whether the last successful read is still current: the subscription is alive
        and nothing was notified since (subscribes on first use, and anew after a fork)."""
        sub = self._subscription
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._subscription = sub = self.store.subscribe(self.key, _notifier(weakref.ref(self)))
            if sub is not None:
                weakref.finalize(self, sub.close)
        if sub is None:
            return False
        if not sub.alive:
            self.changed()  # whatever was missed meanwhile: read again once it is back
            return False
        return self._read == self._changed

    def reading(self) -> int:
        """The generation a read starting now will be current for."""
        return self._changed

    def read(self, generation: int) -> None:
        """A read that started at ``generation`` succeeded."""
        self._read = generation

    def changed(self) -> None:
        """The key changed (a notification, or a write of this process)."""
        self._changed = next(self._generations)

    def close(self) -> None:
        """Close the subscription, if any; the reader reads every time from now on."""
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.close()

    def _notified(self) -> None:
        if self._on_change is not None:
            self._on_change()
        self.changed()


def _notifier(watch: weakref.ref[Watch]) -> Callable[[], None]:
    """The push callback; holds the watch weakly, so a subscription never keeps a reader
    alive."""

    def notified() -> None:
        alive = watch()
        if alive is not None:
            alive._notified()

    return notified
