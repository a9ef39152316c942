"""The contract every audit sink keeps: append one record to the chain, read records back,
hand the verifier a consistent snapshot, prune old records behind an anchor."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from .._errors import GuardrailsError
from ._records import GENESIS, AuditRecord, Draft

__all__ = ["AuditError", "AuditSink", "Entry", "Snapshot"]

Link = tuple[int, str]
"""A place in the chain: a record's ``seq`` and ``hash`` (``(0, GENESIS)`` before the first)."""

START: Link = (0, GENESIS)


class AuditError(GuardrailsError):
    """The audit log could not be written or read (the message says which file and why).

    A guard whose listener raises this stops the step: no decision goes unrecorded.
    """


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored record as the verifier sees it, where it was found, or why it could not be
    read. ``torn``: the final line of a JSON Lines log lacks its newline (a crash while
    writing it)."""

    where: str
    record: AuditRecord | None = None
    problem: str = ""
    seq: int | None = None
    torn: bool = False


class Snapshot(abc.ABC):
    """A consistent view of a log for the verifier: its anchor, the head the sink keeps (if
    it keeps one), and the stored entries in storage order (iterable more than once)."""

    anchor: Link
    head: Link | None
    name: str

    @abc.abstractmethod
    def entries(self) -> Iterator[Entry]:
        """The stored records in storage order, from the start each time."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the snapshot holds."""

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AuditSink(abc.ABC):
    """Where records go. Each backend is a module of its own (``sqlite``, ``jsonl``).

    ``append`` is the one write: under a lock every process honours, read the last link,
    seal the draft after it, store it, and only then let the next writer in.
    """

    path: str
    durable: bool

    @abc.abstractmethod
    def append(self, draft: Draft) -> AuditRecord:
        """Seal ``draft`` as the next record of the chain and store it; return it."""

    @abc.abstractmethod
    def records(
        self,
        since_seq: int | None = None,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> Iterator[AuditRecord]:
        """Stored records with ``seq > since_seq`` matching the filters, oldest first.
        ``AuditError`` for a record that cannot be read (run ``verify``)."""

    @abc.abstractmethod
    def last(
        self,
        n: int,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> list[AuditRecord]:
        """The last ``n`` records matching the filters, oldest first."""

    @abc.abstractmethod
    def head(self) -> Link:
        """The last record's ``(seq, hash)``; the anchor when there is none."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """A consistent view for the verifier (close it, or use it as a context manager)."""

    @abc.abstractmethod
    def prune(self, *, keep_last: int | None = None, before: float | None = None) -> int:
        """Remove the oldest records (all but the last ``keep_last``, or those older than
        ``before``), keeping the link the rest starts from as the anchor. Before removing
        anything, append a ``prune_draft`` naming that anchor (under the same lock as the
        cut is chosen), so the chain itself says where it may start. Returns how many
        records were removed."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release files and connections; safe to call twice."""


def matches(record: AuditRecord, kind: str | None, thread: str | None, agent: str | None) -> bool:
    """Whether ``record`` passes the ``iter`` / ``tail`` filters."""
    return (
        (kind is None or record.kind == kind)
        and (thread is None or record.thread_id == thread)
        and (agent is None or record.agent == agent)
    )


PRUNE = "prune"
"""The kind of the record a prune appends to the chain before it removes anything."""


def prune_draft(anchor: Link, at: float) -> Draft:
    """The record a prune appends: the anchor (``seq``, ``hash``) the remaining chain will
    start from. The verifier accepts a moved anchor only when a record like this, on the
    chain after it, names it: removing the oldest records and moving the anchor behind the
    log's back would also need a record forged into the chain."""
    seq, digest = anchor
    return Draft(
        at=at,
        kind=PRUNE,
        outcome=PRUNE,
        reason=f"records up to seq {seq} pruned",
        detail={"anchor": [seq, digest]},
    )


def pruned_to(record: AuditRecord) -> Link | None:
    """The anchor a prune record names; None for any other record (or a malformed one)."""
    if record.kind != PRUNE:
        return None
    link = record.detail.get("anchor")
    if (
        isinstance(link, list | tuple)
        and len(link) == 2
        and type(link[0]) is int
        and isinstance(link[1], str)
    ):
        return link[0], link[1]
    return None


def check_prune_args(keep_last: int | None, before: float | None) -> None:
    if (keep_last is None) == (before is None):
        raise ValueError("prune needs keep_last=N or before=timestamp (one of them)")
    if keep_last is not None and (not isinstance(keep_last, int) or keep_last < 0):
        raise ValueError(f"keep_last must be a non-negative integer, found {keep_last!r}")
