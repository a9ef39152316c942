"""The contract every store keeps: a handful of atomic operations.

Everything the guard must share between agents, threads and processes lives behind this
interface: budget counters, rate windows, distinct-member sets (recipients, taint labels),
and small JSON documents (grants, control flags). Each backend (memory, SQLite, later
Redis) implements the sync verbs; the async twins, ``a``-prefixed, default to the sync ones
and a backend with real async I/O overrides them.

Every operation is atomic with respect to every other caller of the same store, in this
process and (for shared backends) in others.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Store"]

JSON = Any


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
