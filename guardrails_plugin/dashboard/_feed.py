"""Where the live decision stream comes from: an audit log, a guard in this process, or
nowhere.

Each source hands out decision documents in the audit log's shape (``AuditRecord.to_doc()``:
``seq``, ``at``, ``kind``, ``outcome``, ``agent``, ``tool``, ``args``, ``rule``, ``reason``,
``thread_id``, ``approver``, ...), oldest first, each with a ``seq`` that only grows.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from .._approvals import _jsonable
from .._decision import Decision
from .._events import Event
from ..audit._log import decision_fields
from ..audit._redact import Redactor

MAX_BUFFERED = 2000
"""Decisions a guard in this process keeps for the page (the audit log keeps them all)."""


class Feed(Protocol):
    """A source of decision documents."""

    name: str

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` decisions, oldest first."""
        ...

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` decisions after ``seq``, oldest first."""
        ...


class AuditSource(Protocol):
    """What the dashboard needs of ``guardrails_plugin.audit.AuditLog``."""

    def iter(self, since_seq: int | None = None) -> Iterator[Any]: ...

    def tail(self, n: int) -> Any: ...


class NoFeed:
    """No audit log and no guard in this process: the stream stays empty."""

    name = "none"

    def tail(self, n: int) -> list[dict[str, Any]]:
        return []

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return []


class AuditFeed:
    """Decisions read from an audit log (another process may be writing it)."""

    name = "audit"

    def __init__(self, log: AuditSource) -> None:
        self.log = log

    def tail(self, n: int) -> list[dict[str, Any]]:
        return [_doc(r) for r in self.log.tail(n)]

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        return [_doc(r) for r in itertools.islice(self.log.iter(since_seq=seq), limit)]


class GuardFeed:
    """A guard listener that keeps the last decisions of this process in memory.

    ``Dashboard(guard)`` registers one, so a dashboard running next to the agents shows
    their decisions without an audit log.
    """

    name = "guard"

    def __init__(
        self, maxlen: int = MAX_BUFFERED, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.clock = clock
        self._docs: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0
        self._lock = threading.Lock()

    def __call__(self, event: Event, decision: Decision) -> None:
        doc = decision_doc(event, decision, self.clock())
        with self._lock:
            self._seq += 1
            doc["seq"] = self._seq
            self._docs.append(doc)

    def tail(self, n: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._docs)[-n:] if n > 0 else []

    def since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            if not self._docs or self._docs[-1]["seq"] <= seq:
                return []
            return [d for d in self._docs if d["seq"] > seq][:limit]


def decision_doc(event: Event, decision: Decision, at: float) -> dict[str, Any]:
    """One decision in the shape ``AuditLog.decision`` records it (the same mapping and the
    same redaction; no hash chain: it never leaves this process but for the page)."""
    fields = decision_fields(event, decision)
    redact = _REDACT
    args = fields["args"]
    return {
        "seq": 0,
        "at": at,
        **fields,
        "args": None if args is None else _jsonable(redact(dict(args))),
        "reason": redact(str(fields["reason"])),
        "detail": _jsonable(redact(dict(fields["detail"]))),
    }


_REDACT = Redactor()


def _doc(record: Any) -> dict[str, Any]:
    doc = record.to_doc() if hasattr(record, "to_doc") else record
    if not isinstance(doc, Mapping):
        raise TypeError(f"the audit log gave {type(record).__name__}, not a record")
    return dict(doc)
