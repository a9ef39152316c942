"""One rollback of a thread at a time, across threads and processes: a claim in the store.

A rollback claims its thread with the store's compare-and-set (``Store.put_if`` with
``expected=None``): of several rollbacks racing for one thread, exactly one gets the claim;
the others are told who holds it and do nothing. The claim is released when the rollback
ends, however it ends.

A claim must not outlive a rollback that crashed (a process killed in the middle cannot
release it). Two ways out, either one enough to take a claim over:

- **The holder's process is gone.** The claim names its process (pid) and machine (host
  name, boot id and pid namespace, so that two containers or two boots of one host are
  never taken for the same machine). A rollback on the same machine whose ``os.kill(pid,
  0)`` finds no such process takes the claim over at once. A reused pid makes a dead
  holder look alive; the lease below still ends its claim.
- **The lease ran out.** The claim holds until ``expires_at``: ``lease`` seconds after its
  holder last renewed it. The holder renews it (a compare-and-set, so it also learns
  whether it still holds it) before each compensation once a third of the lease has passed,
  and stops if it lost it. Across machines, this relies on clocks agreeing to well within
  the lease. A compensation that runs longer than the lease can be overtaken: the next
  rollback then finds its effect ``undoing``, as after a crash, and runs it again only if
  it is idempotent (else marks it ``in_doubt`` for ``Journal.settle``).

A takeover is itself a compare-and-set against the stale claim it read, so of two
rollbacks taking over one dead claim, one wins.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from .._errors import RollbackError, StoreError
from ..store import Store

DEFAULT_LEASE = 120.0
"""Seconds a rollback's claim on its thread holds without renewal (see the module doc)."""

_Op = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class ClaimHolder:
    """Who holds (or held) a thread's rollback claim, as written in the store."""

    owner: str
    pid: int
    host: str
    machine: str
    since: float
    expires_at: float

    def to_json(self) -> dict[str, Any]:
        """The holder as a JSON document (kept in the claim)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> ClaimHolder | None:
        """The holder, or ``None`` when ``doc`` is not a claim this code wrote."""
        if not isinstance(doc, Mapping) or set(doc) != {f.name for f in dataclasses.fields(cls)}:
            return None
        try:
            holder = cls(
                owner=doc["owner"],
                pid=doc["pid"],
                host=doc["host"],
                machine=doc["machine"],
                since=float(doc["since"]),
                expires_at=float(doc["expires_at"]),
            )
        except (TypeError, ValueError):
            return None
        if not all(isinstance(v, str) for v in (holder.owner, holder.host, holder.machine)):
            return None
        if not isinstance(holder.pid, int) or isinstance(holder.pid, bool):
            return None
        return holder

    def describe(self) -> str:
        """One line for people: which process holds the claim, since when, until when."""
        return (
            f"process {self.pid} on {self.host}, since {self.since:.3f}, "
            f"its lease running until {self.expires_at:.3f}"
        )


class RollbackBusy(RollbackError):
    """Another rollback holds the thread, so this one did not start (raised by
    ``Journal.claim_rollback`` and ``undo_effects``; ``Recovery.rollback`` returns a report
    saying so instead). ``holder`` is who, or ``None`` when the claim is unreadable."""

    def __init__(self, thread_id: str, key: str, holder: ClaimHolder | None) -> None:
        self.thread_id = thread_id
        self.key = key
        self.holder = holder
        super().__init__(busy_message(thread_id, key, holder))


def busy_message(thread_id: str, key: str, holder: ClaimHolder | None) -> str:
    if holder is None:
        return (
            f"another rollback may hold thread {thread_id!r}: the claim at {key!r} is not "
            "readable; delete that key once you are sure no rollback of the thread runs"
        )
    return (
        f"another rollback holds thread {thread_id!r} ({holder.describe()}); nothing was "
        "done: run it again once that one has finished"
    )


@cache
def machine_id() -> str:
    """This machine as a claim names it: host name, boot id, pid namespace (where known)."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as f:
                parts.append(f.read().strip())
        except OSError:
            parts.append("-")
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        parts.append("-")
    return "|".join(parts)


def process_gone(pid: int) -> bool:
    """True only when this machine certainly has no process ``pid``."""
    if sys.platform == "win32" or pid <= 0:
        return False  # no cheap, certain check: rely on the lease
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: it exists, under another user
        return False
    return False


def stale(holder: ClaimHolder | None, now: float) -> bool:
    """Whether ``holder``'s claim may be taken over: its lease ran out, or its process is
    gone from this machine. An unreadable claim is never stale (fail closed)."""
    if holder is None:
        return False
    if now >= holder.expires_at:
        return True
    return holder.machine == machine_id() and holder.pid != os.getpid() and process_gone(holder.pid)


class RollbackClaim:
    """A rollback's hold on one thread: renew it while working, release it when done.

    Made by ``Journal.claim_rollback``; use it as a context manager (``with`` / ``async
    with``) or call ``release``. ``renew`` says whether the claim is still held.
    """

    def __init__(
        self,
        store: Store,
        key: str,
        thread_id: str,
        holder: ClaimHolder,
        lease: float,
        clock: Callable[[], float],
        took_over: ClaimHolder | None = None,
    ) -> None:
        self.store = store
        self.key = key
        self.thread_id = thread_id
        self.holder = holder
        self.lease = lease
        self.clock = clock
        self.took_over = took_over
        """The crashed (or expired) rollback whose claim this one took over, if any."""
        self.lost = False
        self._renewed_at = holder.since

    def __repr__(self) -> str:
        return f"RollbackClaim({self.thread_id!r}, {self.holder.describe()})"

    def _renewal(self) -> ClaimHolder | None:
        now = self.clock()
        if self.lost or now - self._renewed_at < self.lease / 3:
            return None
        return dataclasses.replace(self.holder, expires_at=now + self.lease)

    def _renewed(self, new: ClaimHolder, ok: bool) -> bool:
        if ok:
            self.holder = new
            self._renewed_at = self.clock()
        else:
            self.lost = True
        return ok

    def renew(self) -> bool:
        """Extend the lease if a third of it has passed; ``False`` once the claim is lost."""
        new = self._renewal()
        if new is None:
            return not self.lost
        ok = self.store.put_if(self.key, new.to_json(), expected=self.holder.to_json())
        return self._renewed(new, ok)

    async def arenew(self) -> bool:
        new = self._renewal()
        if new is None:
            return not self.lost
        ok = await self.store.aput_if(self.key, new.to_json(), expected=self.holder.to_json())
        return self._renewed(new, ok)

    def release(self) -> None:
        """Give the claim back (only if still held: never another rollback's claim)."""
        if not self.lost:
            self.store.put_if(self.key, None, expected=self.holder.to_json())
            self.lost = True

    async def arelease(self) -> None:
        if not self.lost:
            await self.store.aput_if(self.key, None, expected=self.holder.to_json())
            self.lost = True

    def lost_problem(self) -> str:
        """The problem a rollback reports when it lost its claim to another."""
        return (
            f"the rollback lost its claim on thread {self.thread_id!r} (its lease of "
            f"{self.lease:g} s ran out and another rollback took the thread over); it stopped"
        )

    # Leaving a ``with`` block releases the claim; a store that fails then does not replace
    # the block's outcome (a finished rollback's report, or the error that stopped it): the
    # claim stays until its lease runs out, which only delays the next rollback.

    def __enter__(self) -> RollbackClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        except StoreError:
            self.lost = True

    async def __aenter__(self) -> RollbackClaim:
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.arelease()
        except StoreError:
            self.lost = True


def claim_flow(key: str, now: float, lease: float) -> Generator[_Op, Any, Any]:
    """Claim ``key``: ``(ClaimHolder mine, taken-over holder or None)``, or the current
    holder's ``("busy", holder or None)``. Yields ``("put_if", (key, value, expected))``
    and ``("get", (key,))``."""
    mine = ClaimHolder(
        owner=uuid.uuid4().hex,
        pid=os.getpid(),
        host=socket.gethostname(),
        machine=machine_id(),
        since=now,
        expires_at=now + lease,
    )
    held: Any = None
    for _ in range(5):  # a holder that releases between our put_if and get: try again
        if (yield ("put_if", (key, mine.to_json(), None))):
            return mine, None
        held = yield ("get", (key,))
        if held is None:
            continue
        holder = ClaimHolder.from_json(held)
        if not stale(holder, now):
            return "busy", holder
        if (yield ("put_if", (key, mine.to_json(), held))):
            return mine, holder
    return "busy", ClaimHolder.from_json(held)
