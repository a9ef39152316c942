"""The one-machine store: a SQLite file that several processes share.

WAL mode lets readers proceed while one process writes; every read-then-write operation
(``charge``, ``add_members``) runs in a ``BEGIN IMMEDIATE`` transaction, which takes the
file's write lock before reading, so a check and the add it allows are one atomic step
across processes. Waiting for that lock is bounded by ``timeout``; past it the operation
raises ``StoreError``. Commits use ``synchronous=NORMAL``: they survive the process
crashing, but the last ones may be lost if the machine loses power.

One connection per store object, shared by its threads under a lock (SQLite serializes
writers anyway). After ``fork()`` the child opens a connection of its own, as SQLite
requires. The tables are prefixed ``guardrails_``, so the file may be shared with other
data (a LangGraph checkpoint database, say).

The file a store opened is the file it keeps using: before an operation the store checks
that its path still names the same file (device and inode, one ``stat``), at most every
``recheck`` seconds (0.05 by default: a ``stat`` can cost a quarter of a store operation),
and always before reconnecting. If the file was deleted or replaced (``rm guard.db``, a restore copied over it), the store would otherwise
go on in a file nobody else sees, and a kill or a budget written to the new file would never
reach it; instead every operation raises ``StoreError`` saying so, and the guard denies
(fail closed). ``create=False`` opens only an existing store (the operator's commands use
it, so a mistyped path is an error, not a new empty store).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pathlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping

from .._errors import StoreError
from ._base import JSON, Store
from ._codec import (
    check_amount,
    check_window,
    decode_document,
    encode_document,
    same_document,
    unique_members,
)

__all__ = ["SQLiteStore"]

SCHEMA_VERSION = 1

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS guardrails_meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS guardrails_counters (
        key TEXT PRIMARY KEY,
        value REAL NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS guardrails_windows (
        key TEXT PRIMARY KEY,
        total REAL NOT NULL,
        entries INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS guardrails_window_entries (
        key TEXT NOT NULL,
        ts REAL NOT NULL,
        amount REAL NOT NULL
    )
    """,
    """
    CREATE INDEX IF NOT EXISTS guardrails_window_entries_key_ts
        ON guardrails_window_entries (key, ts)
    """,
    """
    CREATE TABLE IF NOT EXISTS guardrails_members (
        key TEXT NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (key, member)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS guardrails_documents (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
)

# Connections a forked child inherited. SQLite forbids using them in the child, and closing
# them there could disturb the parent's locks, so the child keeps them, untouched, for good.
_INHERITED: list[sqlite3.Connection] = []


class SQLiteStore(Store):
    """Budgets, rates, sets and documents in a SQLite file shared by local processes.

    ``path`` is a file (created if missing, unless ``create=False``: then it must exist and
    hold a guardrails store) or ``":memory:"`` for a private database that lives as long as
    the store (a forked child starts an empty one). ``timeout`` is how many seconds to wait
    for another process's write lock. ``recheck``: seconds between checks that the path
    still names the file the store opened (0: before every operation).
    A window counts every amount stamped after ``now - window``, including any stamped after
    ``now`` by a caller that read its clock later but committed first (so racing processes
    cannot together pass a limit). Charging prunes entries older than the window it is
    charged with, so use one window length per key.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        create: bool = True,
        recheck: float = 0.05,
    ) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        self.create = create
        self.recheck = recheck
        self._checked = time.monotonic()
        self._lock = threading.Lock()
        self._closed = False
        self._identity: tuple[int, int] | None = None
        self._connection: sqlite3.Connection | None = self._connect()
        if self.path not in ("", ":memory:"):
            self._identity = self._file_identity("open")
        if hasattr(os, "register_at_fork"):  # not on Windows
            os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def __repr__(self) -> str:
        state = " (closed)" if self._closed else ""
        return f"SQLiteStore({self.path!r}){state}"

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards. Safe to call twice."""
        with self._lock:
            self._closed = True
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

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
        check_amount(amount)
        if window is not None:
            return self._charge_window(key, amount, limit, window, now)
        with self._transaction("charge", key) as db:
            row = db.execute("SELECT value FROM guardrails_counters WHERE key = ?", (key,))
            found = row.fetchone()
            total = (0.0 if found is None else found[0]) + amount
            if not (amount < 0 or total <= limit):
                return False
            db.execute(
                "INSERT INTO guardrails_counters (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, total),
            )
            return True

    def _charge_window(
        self, key: str, amount: float, limit: float, window: float, now: float | None
    ) -> bool:
        check_window(window)
        with self._transaction("charge", key) as db:
            if now is None:
                now = time.time()  # read holding the write lock: stamps follow commit order
            cutoff = now - window
            found = db.execute(
                "SELECT total, entries FROM guardrails_windows WHERE key = ?", (key,)
            ).fetchone()
            total, entries = (0.0, 0) if found is None else found
            if entries:
                expired, expired_sum = db.execute(
                    "SELECT count(*), total(amount) FROM guardrails_window_entries"
                    " WHERE key = ? AND ts <= ?",
                    (key, cutoff),
                ).fetchone()
                if expired:
                    db.execute(
                        "DELETE FROM guardrails_window_entries WHERE key = ? AND ts <= ?",
                        (key, cutoff),
                    )
                    entries -= expired
                    total = total - expired_sum if entries else 0.0
            allowed = amount < 0 or total + amount <= limit
            if allowed and amount:
                db.execute(
                    "INSERT INTO guardrails_window_entries (key, ts, amount) VALUES (?, ?, ?)",
                    (key, now, amount),
                )
                total += amount
                entries += 1
            if not entries:
                db.execute("DELETE FROM guardrails_windows WHERE key = ?", (key,))
            elif found is None or (total, entries) != tuple(found):
                db.execute(
                    "INSERT INTO guardrails_windows (key, total, entries) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE"
                    " SET total = excluded.total, entries = excluded.entries",
                    (key, total, entries),
                )
            return allowed

    def total(self, key: str, *, window: float | None = None, now: float | None = None) -> float:
        if window is None:
            with self._statement("read total of", key) as db:
                row = db.execute("SELECT value FROM guardrails_counters WHERE key = ?", (key,))
                found = row.fetchone()
                return 0.0 if found is None else float(found[0])
        check_window(window)
        if now is None:
            now = time.time()
        with self._statement("read total of", key) as db:
            # One statement, so one snapshot: the running sum less what has aged out unpruned.
            found = db.execute(
                "SELECT w.total, w.entries, old.n, old.amount FROM guardrails_windows AS w,"
                " (SELECT count(*) AS n, total(amount) AS amount"
                "  FROM guardrails_window_entries WHERE key = :key AND ts <= :cutoff) AS old"
                " WHERE w.key = :key",
                {"key": key, "cutoff": now - window},
            ).fetchone()
        if found is None:
            return 0.0
        total, entries, expired, expired_sum = found
        return float(total - expired_sum) if entries > expired else 0.0

    # -- sets -----------------------------------------------------------------------------

    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        wanted = unique_members(members)
        with self._transaction("add members to", key) as db:
            new = tuple(
                member
                for member in wanted
                if db.execute(
                    "SELECT 1 FROM guardrails_members WHERE key = ? AND member = ?", (key, member)
                ).fetchone()
                is None
            )
            if limit is not None:
                row = db.execute("SELECT count(*) FROM guardrails_members WHERE key = ?", (key,))
                if not row.fetchone()[0] + len(new) <= limit:
                    return None
            db.executemany(
                "INSERT INTO guardrails_members (key, member) VALUES (?, ?)",
                [(key, member) for member in new],
            )
            return new

    def remove_members(self, key: str, members: Iterable[str]) -> None:
        unwanted = unique_members(members)
        with self._transaction("remove members from", key) as db:
            db.executemany(
                "DELETE FROM guardrails_members WHERE key = ? AND member = ?",
                [(key, member) for member in unwanted],
            )

    def members(self, key: str) -> frozenset[str]:
        with self._statement("read members of", key) as db:
            rows = db.execute("SELECT member FROM guardrails_members WHERE key = ?", (key,))
            return frozenset(member for (member,) in rows)

    # -- documents ------------------------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._statement("get document", key) as db:
            row = db.execute("SELECT value FROM guardrails_documents WHERE key = ?", (key,))
            found = row.fetchone()
        return None if found is None else decode_document(key, found[0], repr(self))

    def put(self, key: str, value: JSON) -> None:
        text = encode_document(key, value)
        with self._statement("put document", key) as db:
            db.execute(
                "INSERT INTO guardrails_documents (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

    def delete(self, key: str) -> bool:
        with self._statement("delete document", key) as db:
            return db.execute("DELETE FROM guardrails_documents WHERE key = ?", (key,)).rowcount > 0

    def put_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        text = None if value is None else encode_document(key, value)
        encode_document(key, expected)  # a non-JSON ``expected`` is a caller's error
        with self._transaction("compare and set document", key) as db:
            row = db.execute(
                "SELECT value FROM guardrails_documents WHERE key = ?", (key,)
            ).fetchone()
            found = None if row is None else decode_document(key, row[0], repr(self))
            if not same_document(found, expected):
                return False
            if text is None:
                db.execute("DELETE FROM guardrails_documents WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO guardrails_documents (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, text),
                )
            return True

    def scan(self, prefix: str) -> Mapping[str, JSON]:
        found: list[tuple[str, str]] = []
        with self._statement("scan documents with prefix", prefix) as db:
            # Keys sharing a prefix sort together from the prefix on (BINARY collation
            # compares UTF-8 bytes: code point order), so stop at the first that differs.
            rows = db.execute(
                "SELECT key, value FROM guardrails_documents WHERE key >= ? ORDER BY key",
                (prefix,),
            )
            try:
                for key, value in rows:
                    if not key.startswith(prefix):
                        break
                    found.append((key, value))
            finally:
                rows.close()  # an unfinished SELECT would keep its snapshot open
        return {key: decode_document(key, value, repr(self)) for key, value in found}

    # -- async twins: run in a worker thread, so waiting for another process's lock ------
    # -- never blocks the event loop -----------------------------------------------------

    async def acharge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        return await asyncio.to_thread(self.charge, key, amount, limit, window=window, now=now)

    async def atotal(
        self, key: str, *, window: float | None = None, now: float | None = None
    ) -> float:
        return await asyncio.to_thread(self.total, key, window=window, now=now)

    async def aadd_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        return await asyncio.to_thread(self.add_members, key, members, limit)

    async def aremove_members(self, key: str, members: Iterable[str]) -> None:
        await asyncio.to_thread(self.remove_members, key, members)

    async def amembers(self, key: str) -> frozenset[str]:
        return await asyncio.to_thread(self.members, key)

    async def aget(self, key: str) -> JSON | None:
        return await asyncio.to_thread(self.get, key)

    async def aput(self, key: str, value: JSON) -> None:
        await asyncio.to_thread(self.put, key, value)

    async def adelete(self, key: str) -> bool:
        return await asyncio.to_thread(self.delete, key)

    async def aput_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        return await asyncio.to_thread(self.put_if, key, value, expected=expected)

    async def ascan(self, prefix: str) -> Mapping[str, JSON]:
        return await asyncio.to_thread(self.scan, prefix)

    # -- connection -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.create and self.path not in ("", ":memory:"):
            return self._connect_existing()
        try:
            db = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {self.path!r}: cannot open the database: {exc}"
            ) from exc
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO guardrails_meta (name, value)"
                    " VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                (version,) = db.execute(
                    "SELECT value FROM guardrails_meta WHERE name = 'schema_version'"
                ).fetchone()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(
                f"SQLite store {self.path!r}: cannot set up the database: {exc}"
            ) from exc
        if version != str(SCHEMA_VERSION):
            db.close()
            raise StoreError(
                f"SQLite store {self.path!r}: holds guardrails schema version {version!r}; "
                f"this version of guardrails-plugin reads version {SCHEMA_VERSION}"
            )
        return db

    def _connect_existing(self) -> sqlite3.Connection:
        """A connection to the store already at ``path``; never creates a file or a table."""
        if not os.path.isfile(self.path):
            what = "is not a file" if os.path.exists(self.path) else "does not exist"
            raise StoreError(f"SQLite store {self.path!r}: {what}")
        uri = pathlib.Path(self.path).absolute().as_uri() + "?mode=rw"
        try:
            db = sqlite3.connect(
                uri,
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(
                f"SQLite store {self.path!r}: cannot open the database: {exc}"
            ) from exc
        try:
            found = db.execute(
                "SELECT value FROM guardrails_meta WHERE name = 'schema_version'"
            ).fetchone()
            db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            db.close()
            problem = (
                "holds no guardrails store (no guardrails tables)"
                if "no such table" in str(exc)
                else f"cannot read the database: {exc}"
            )
            raise StoreError(f"SQLite store {self.path!r}: {problem}") from exc
        if found is None or found[0] != str(SCHEMA_VERSION):
            db.close()
            version = None if found is None else found[0]
            raise StoreError(
                f"SQLite store {self.path!r}: holds guardrails schema version {version!r}; "
                f"this version of guardrails-plugin reads version {SCHEMA_VERSION}"
            )
        return db

    def _file_identity(self, operation: str) -> tuple[int, int]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreError(
                f"SQLite store {self.path!r}: cannot {operation}: the database file was "
                "deleted while the store was open; refusing to go on in a file no other "
                "process sees"
            ) from None
        except OSError as exc:
            raise StoreError(
                f"SQLite store {self.path!r}: cannot {operation}: cannot stat the database "
                f"file: {exc.strerror or exc}"
            ) from None
        return (st.st_dev, st.st_ino)

    def _open(self, operation: str, key: str) -> sqlite3.Connection:
        """The connection, reopened after a fork, its file checked to be the one this store
        opened; call with the lock held."""
        if self._closed:
            raise StoreError(f"{self!r}: cannot {operation} {key!r}: the store is closed")
        now = time.monotonic()
        if self._identity is not None and (
            self._connection is None or now - self._checked >= self.recheck
        ):
            found = self._file_identity(f"{operation} {key!r}")
            if found != self._identity:
                raise StoreError(
                    f"SQLite store {self.path!r}: cannot {operation} {key!r}: the database "
                    "file was replaced by another one while the store was open (device or "
                    "inode changed); refusing to go on in a file no other process sees"
                )
            self._checked = now
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    @contextlib.contextmanager
    def _statement(self, operation: str, key: str) -> Iterator[sqlite3.Connection]:
        """The connection for single statements, each atomic on its own (autocommit)."""
        with self._lock:
            db = self._open(operation, key)
            try:
                yield db
            except sqlite3.Error as exc:
                raise self._error(operation, key, exc) from exc

    @contextlib.contextmanager
    def _transaction(self, operation: str, key: str) -> Iterator[sqlite3.Connection]:
        """The connection inside ``BEGIN IMMEDIATE``: committed on exit, rolled back on error."""
        with self._lock:
            db = self._open(operation, key)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error(operation, key, exc) from exc

    def _error(self, operation: str, key: str, exc: sqlite3.Error) -> StoreError:
        hint = ""
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            hint = f" (another process held the write lock for over {self.timeout} s)"
        return StoreError(f"SQLite store {self.path!r}: cannot {operation} {key!r}: {exc}{hint}")

    def _forget_connection(self) -> None:
        """In a forked child: drop the parent's connection and lock, reconnect on next use."""
        self._lock = threading.Lock()
        if self._connection is not None:
            _INHERITED.append(self._connection)
            self._connection = None


def _after_fork(store: weakref.ref[SQLiteStore]) -> None:
    alive = store()
    if alive is not None:
        alive._forget_connection()
