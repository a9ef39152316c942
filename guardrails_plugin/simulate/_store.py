"""The store a simulated shard uses: a real backend, its keys in the shard's own namespace,
failing on purpose during a store outage."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import StoreError
from ..store import Store, Subscription


class ShardStore(Store):
    """``inner`` with every key under ``prefix`` (so shards sharing one Redis or SQLite
    store never see each other's budgets, flags or trips, and reports stay deterministic),
    raising ``StoreError`` while ``clock()`` is inside ``outage`` (``(start, end)``
    simulated seconds): the fault the guard must fail closed on. ``failures`` counts the
    operations refused."""

    def __init__(
        self,
        inner: Store,
        prefix: str = "",
        *,
        clock: Callable[[], float] = lambda: 0.0,
        outage: tuple[float, float] | None = None,
    ) -> None:
        self.inner = inner
        self.prefix = prefix
        self.clock = clock
        self.outage = outage
        self.failures = 0

    def __repr__(self) -> str:
        return f"ShardStore({self.inner!r}, prefix={self.prefix!r})"

    def _up(self) -> None:
        if self.outage is not None:
            now = self.clock()
            if self.outage[0] <= now < self.outage[1]:
                self.failures += 1
                raise StoreError(f"simulated store outage (t={now:g}s)")

    def charge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        self._up()
        return self.inner.charge(self.prefix + key, amount, limit, window=window, now=now)

    def total(self, key: str, *, window: float | None = None, now: float | None = None) -> float:
        self._up()
        return self.inner.total(self.prefix + key, window=window, now=now)

    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        self._up()
        return self.inner.add_members(self.prefix + key, members, limit)

    def remove_members(self, key: str, members: Iterable[str]) -> None:
        self._up()
        self.inner.remove_members(self.prefix + key, members)

    def members(self, key: str) -> frozenset[str]:
        self._up()
        return self.inner.members(self.prefix + key)

    def get(self, key: str) -> Any:
        self._up()
        return self.inner.get(self.prefix + key)

    def put(self, key: str, value: Any) -> None:
        self._up()
        self.inner.put(self.prefix + key, value)

    def delete(self, key: str) -> bool:
        self._up()
        return self.inner.delete(self.prefix + key)

    def put_if(self, key: str, value: Any, *, expected: Any) -> bool:
        self._up()
        return self.inner.put_if(self.prefix + key, value, expected=expected)

    def scan(self, prefix: str) -> Mapping[str, Any]:
        self._up()
        cut = len(self.prefix)
        return {k[cut:]: v for k, v in self.inner.scan(self.prefix + prefix).items()}

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        # No push: an outage must reach every read, and a subscription would skip them.
        return None

    def close(self) -> None:
        self.inner.close()
