"""The in-process store: dictionaries behind one lock.

The default backend, and the one on the hot path of every decision when agents share a
process: a plain ``charge`` is a dictionary update under a ``threading.Lock``. State is
neither persisted nor shared with other processes (a forked child gets its own copy); use
``SQLiteStore`` for that.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from math import isfinite

from ._base import JSON, Store
from ._codec import (
    check_amount,
    check_window,
    decode_document,
    encode_document,
    same_document,
    unique_members,
)

__all__ = ["MemoryStore"]


class _Window:
    """One sliding window: entries ``(timestamp, amount)`` sorted by time, and their sum.

    Entries older than the window are dropped from the left as they are met, so each is
    removed once: amortized O(1) per charge. Stamps mostly arrive in order; one that does
    not (a refund stamped with its charge's time, a caller that read the clock just before
    another) is put in its place, a short walk from the right.
    """

    __slots__ = ("entries", "sum")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, float]] = deque()
        self.sum = 0.0

    def total(self, now: float, window: float) -> float:
        """The sum of amounts stamped after ``now - window``, forgetting older ones."""
        cutoff = now - window
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            self.sum -= entries.popleft()[1]
        if not entries:
            self.sum = 0.0  # drop any rounding left by the subtractions
        return self.sum

    def add(self, stamp: float, amount: float) -> None:
        entries = self.entries
        if not entries or entries[-1][0] <= stamp:
            entries.append((stamp, amount))
        else:
            index = len(entries)
            while index > 0 and entries[index - 1][0] > stamp:
                index -= 1
            entries.insert(index, (stamp, amount))
        self.sum += amount


class MemoryStore(Store):
    """Budgets, rates, sets and documents in this process's memory, safe across threads.

    A window counts every amount stamped after ``now - window``, including any stamped after
    ``now`` by a caller that read its clock later but reached the store first (so racing
    callers cannot together pass a limit). Entries are forgotten once older than the window
    they were last read with, so use one window length per key.

    >>> store = MemoryStore()
    >>> store.charge("calls/run-1", 1, limit=2), store.charge("calls/run-1", 2, limit=2)
    (True, False)
    >>> store.total("calls/run-1")
    1.0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._windows: dict[str, _Window] = {}
        self._sets: dict[str, set[str]] = {}
        self._documents: dict[str, str] = {}  # JSON text: every get is a fresh copy
        self._keys: list[str] = []  # document keys, sorted: a prefix scan is a range

    def __repr__(self) -> str:
        return (
            f"MemoryStore(counters={len(self._counters)}, windows={len(self._windows)}, "
            f"sets={len(self._sets)}, documents={len(self._documents)})"
        )

    # -- counters and windows -------------------------------------------------------------

    def charge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        if not isfinite(amount):
            check_amount(amount)  # raises, with the message
        if window is not None:
            return self._charge_window(key, amount, limit, window, now)
        with self._lock:
            total = self._counters.get(key, 0.0) + amount
            if amount < 0 or total <= limit:
                self._counters[key] = total
                return True
            return False

    def _charge_window(
        self, key: str, amount: float, limit: float, window: float, now: float | None
    ) -> bool:
        check_window(window)
        with self._lock:
            if now is None:
                now = time.time()  # read under the lock: stamps follow the order of charges
            entries = self._windows.get(key)
            if entries is None:
                entries = self._windows[key] = _Window()
            allowed = amount < 0 or entries.total(now, window) + amount <= limit
            if allowed and amount:
                entries.add(now, amount)
            if not entries.entries:
                del self._windows[key]
            return allowed

    def total(self, key: str, *, window: float | None = None, now: float | None = None) -> float:
        if window is None:
            with self._lock:
                return float(self._counters.get(key, 0.0))
        check_window(window)
        if now is None:
            now = time.time()
        with self._lock:
            entries = self._windows.get(key)
            if entries is None:
                return 0.0
            total = entries.total(now, window)
            if not entries.entries:
                del self._windows[key]
            return float(total)

    # -- sets -----------------------------------------------------------------------------

    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        wanted = unique_members(members)
        with self._lock:
            current = self._sets.get(key)
            if current is None:
                current = set()
            new = tuple(member for member in wanted if member not in current)
            if limit is not None and not len(current) + len(new) <= limit:
                return None
            if new:
                current.update(new)
                self._sets[key] = current
            return new

    def remove_members(self, key: str, members: Iterable[str]) -> None:
        unwanted = unique_members(members)
        with self._lock:
            current = self._sets.get(key)
            if current is None:
                return
            current.difference_update(unwanted)
            if not current:
                del self._sets[key]

    def members(self, key: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._sets.get(key, ()))

    # -- documents ------------------------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._lock:
            text = self._documents.get(key)
        return None if text is None else decode_document(key, text, "memory store")

    def put(self, key: str, value: JSON) -> None:
        text = encode_document(key, value)
        with self._lock:
            if key not in self._documents:
                bisect.insort(self._keys, key)
            self._documents[key] = text

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._delete(key)

    def _delete(self, key: str) -> bool:
        if self._documents.pop(key, None) is None:
            return False
        del self._keys[bisect.bisect_left(self._keys, key)]
        return True

    def put_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        text = None if value is None else encode_document(key, value)
        encode_document(key, expected)  # a non-JSON ``expected`` is a caller's error
        with self._lock:
            current = self._documents.get(key)
            found = None if current is None else decode_document(key, current, "memory store")
            if not same_document(found, expected):
                return False
            if text is None:
                self._delete(key)
            else:
                if key not in self._documents:
                    bisect.insort(self._keys, key)
                self._documents[key] = text
            return True

    def scan(self, prefix: str) -> Mapping[str, JSON]:
        with self._lock:
            keys = self._keys
            found = []
            for i in range(bisect.bisect_left(keys, prefix), len(keys)):
                k = keys[i]
                if not k.startswith(prefix):
                    break
                found.append((k, self._documents[k]))
        return {k: decode_document(k, v, "memory store") for k, v in found}
