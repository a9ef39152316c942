"""The default audit sink: a SQLite file in WAL mode, shared by local processes.

Each append is one ``BEGIN IMMEDIATE`` transaction: take the file's write lock, read the
head (last ``seq`` and ``hash``, kept in ``guardrails_audit_meta``), insert the record
chained to it, move the head, commit. Writers in any number of processes therefore build
one linear chain, and a crash (even SIGKILL) leaves either the whole record or nothing.
``durable=True`` sets ``synchronous=FULL``: a commit survives the machine losing power,
at the price of an fsync per record; the default ``NORMAL`` survives a crashed process.

The head kept in the meta table lets ``verify`` see records removed from the end, and rows
inserted behind the log's back. ``prune`` deletes old rows and moves the anchor (where the
remaining chain starts) in the same transaction, a few thousand rows at a time: appends go
on in between (a million rows in one transaction would hold the lock for seconds), and the
WAL stays small. Space freed is reused by new records; the file does not shrink (``VACUUM``
shrinks it). Tables are prefixed ``guardrails_audit``,
so the file may be shared with other data. Rows are ordinary columns: ``sqlite3 audit.db
"SELECT seq, kind, outcome, agent, tool, rule FROM guardrails_audit"`` reads them.

Opening a log that exists writes nothing: a reader with read access only (an auditor) can
read and verify it, and need not wait while a writer holds the lock. A log no process has
open (no ``-wal`` file) in a folder the reader cannot write is read as an immutable file,
the one way SQLite reads a WAL database there.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator

from ._base import (
    START,
    AuditError,
    Entry,
    Link,
    Snapshot,
    check_prune_args,
    prune_draft,
)
from ._records import AuditRecord, Draft
from ._sql import COLUMNS, PRUNE_BATCH, SqlReading, entries

__all__ = ["SQLiteAuditSink"]

SCHEMA_VERSION = "1"

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS guardrails_audit (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        outcome TEXT NOT NULL,
        agent TEXT,
        tool TEXT,
        args TEXT,
        rule TEXT,
        reason TEXT NOT NULL,
        run_id TEXT,
        thread_id TEXT,
        checkpoint_id TEXT,
        approver TEXT,
        policy TEXT,
        detail TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS guardrails_audit_meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
)

# Connections a forked child inherited: SQLite forbids using them there (see SQLiteStore).
_INHERITED: list[sqlite3.Connection] = []


class SQLiteAuditSink(SqlReading):
    """Audit records in a SQLite file (created if missing). ``timeout``: seconds to wait for
    another process's write lock before an append raises ``AuditError``."""

    def __init__(
        self, path: str | os.PathLike[str], *, durable: bool = False, timeout: float = 10.0
    ) -> None:
        self.path = os.fspath(path)
        self.durable = durable
        self.timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._immutable = False  # read-only, nobody writing: see the module docstring
        self._db: sqlite3.Connection | None = self._connect()
        at_fork = getattr(os, "register_at_fork", None)  # not on Windows
        if at_fork is not None:
            at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def __repr__(self) -> str:
        flags = ", durable=True" if self.durable else ""
        return f"SQLiteAuditSink({self.path!r}{flags}){' (closed)' if self._closed else ''}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            db, self._db = self._db, None
        if db is not None:
            db.close()

    # -- writing --------------------------------------------------------------------------

    def append(self, draft: Draft) -> AuditRecord:
        with self._transaction("append a record") as db:
            return self._append_in(db, draft)

    def _append_in(self, db: sqlite3.Connection, draft: Draft) -> AuditRecord:
        """Append ``draft`` inside the caller's transaction."""
        j = draft.json
        seq, prev = _link(db, "head")
        record, _ = draft.seal(seq + 1, prev)
        db.execute(
            f"INSERT INTO guardrails_audit ({COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.seq,
                record.at,
                record.kind,
                record.outcome,
                record.agent,
                record.tool,
                None if record.args is None else j["args"],
                record.rule,
                record.reason,
                record.run_id,
                record.thread_id,
                record.checkpoint_id,
                record.approver,
                record.policy,
                j["detail"],
                record.prev,
                record.hash,
            ),
        )
        _set_link(db, "head", (record.seq, record.hash))
        return record

    def prune(self, *, keep_last: int | None = None, before: float | None = None) -> int:
        check_prune_args(keep_last, before)
        with self._transaction("prune") as db:
            head_seq, _ = _link(db, "head")
            if keep_last is not None:
                cut = head_seq - keep_last
            else:
                # The longest run of records, oldest first, all stamped before ``before``.
                row = db.execute(
                    "SELECT min(seq) FROM guardrails_audit WHERE at >= ?", (before,)
                ).fetchone()
                cut = head_seq if row[0] is None else row[0] - 1
            if cut > _link(db, "anchor")[0]:
                target = self._cut_at(db, cut)  # checked before anything is deleted
                self._append_in(db, prune_draft(target, time.time()))
        removed = 0
        while True:  # a batch per transaction: see the module docstring
            with self._transaction("prune") as db:
                anchor_seq, _ = _link(db, "anchor")
                if cut <= anchor_seq:  # done (or another process pruned further)
                    return removed
                # The batch ends at the PRUNE_BATCH-th row after the anchor, or at the cut.
                row = db.execute(
                    "SELECT seq, hash FROM guardrails_audit WHERE seq > ? AND seq < ? "
                    "ORDER BY seq LIMIT 1 OFFSET ?",
                    (anchor_seq, cut, PRUNE_BATCH - 1),
                ).fetchone()
                end = (int(row[0]), str(row[1])) if row is not None else self._cut_at(db, cut)
                removed += db.execute(
                    "DELETE FROM guardrails_audit WHERE seq <= ?", (end[0],)
                ).rowcount
                _set_link(db, "anchor", end)

    def _cut_at(self, db: sqlite3.Connection, cut: int) -> Link:
        """The link of the record ``prune`` cuts after (the new anchor)."""
        found = _hash_at(db, cut)
        if found is None:
            raise AuditError(
                f"{self.path}: cannot prune up to seq {cut}: that record is missing "
                "(run `guardrails-plugin audit verify`)"
            )
        return cut, found

    # -- reading --------------------------------------------------------------------------

    def head(self) -> Link:
        with self._statement("read the head") as db:
            return _link(db, "head")

    _MARK = "?"
    _table = "guardrails_audit"

    def snapshot(self) -> Snapshot:
        return _SQLiteSnapshot(self)

    # -- connection -----------------------------------------------------------------------

    def _connection(self, *, check_same_thread: bool = True) -> sqlite3.Connection:
        if self._immutable:
            uri = pathlib.Path(self.path).absolute().as_uri() + "?mode=ro&immutable=1"
            return sqlite3.connect(
                uri,
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=check_same_thread,
            )
        return sqlite3.connect(
            self.path,
            timeout=self.timeout,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )

    def _connect(self) -> sqlite3.Connection:
        try:
            db = self._connection(check_same_thread=False)
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {self.path!r}: cannot open the database: {exc}") from exc
        try:
            db.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
            version = _schema_version(db)
            if version is None:  # a new log: set it up (an existing one is only read)
                db.execute("PRAGMA journal_mode = WAL")
                db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _SCHEMA:
                        db.execute(statement)
                    db.executemany(
                        "INSERT OR IGNORE INTO guardrails_audit_meta (name, value) VALUES (?, ?)",
                        [
                            ("schema_version", SCHEMA_VERSION),
                            ("head", _text(START)),
                            ("anchor", _text(START)),
                        ],
                    )
                    version = _schema_version(db)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            db.close()
            if not self._immutable and _closed_and_read_only(self.path, exc):
                self._immutable = True
                return self._connect()
            raise AuditError(f"audit log {self.path!r}: cannot set up the database: {exc}") from exc
        if version != SCHEMA_VERSION:
            db.close()
            raise AuditError(
                f"audit log {self.path!r}: holds audit schema version {version!r}; this version "
                f"of guardrails-plugin reads version {SCHEMA_VERSION}"
            )
        return db

    def _open(self, operation: str) -> sqlite3.Connection:
        if self._db is None:
            if self._closed:
                raise AuditError(f"{self!r}: cannot {operation}: the log is closed")
            self._db = self._connect()
        return self._db

    @contextlib.contextmanager
    def _statement(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._open(operation)
            try:
                yield db
            except sqlite3.Error as exc:
                raise self._error(operation, exc) from exc

    @contextlib.contextmanager
    def _transaction(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._open(operation)
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
                raise self._error(operation, exc) from exc

    def _error(self, operation: str, exc: sqlite3.Error) -> AuditError:
        hint = ""
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            hint = f" (another process held the write lock for over {self.timeout} s)"
        elif self._immutable:
            hint = " (opened read-only: this process may not write to its folder)"
        return AuditError(f"audit log {self.path!r}: cannot {operation}: {exc}{hint}")

    def _forget_connection(self) -> None:
        self._lock = threading.Lock()
        if self._db is not None:
            _INHERITED.append(self._db)
            self._db = None


class _SQLiteSnapshot(Snapshot):
    """A read transaction on a connection of its own: one consistent view of rows and meta,
    which never blocks writers (WAL)."""

    def __init__(self, sink: SQLiteAuditSink) -> None:
        self.name = sink.path
        try:
            self._db = sink._connection()
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {sink.path!r}: cannot read it: {exc}") from exc
        try:
            self._db.execute("BEGIN")
            self.head: Link | None = _link(self._db, "head")
            self.anchor = _link(self._db, "anchor")
        except (sqlite3.Error, AuditError) as exc:
            self._db.close()
            raise AuditError(f"audit log {sink.path!r}: cannot read it: {exc}") from exc

    def entries(self) -> Iterator[Entry]:
        cursor = self._db.execute(f"SELECT {COLUMNS} FROM guardrails_audit ORDER BY seq")
        yield from entries(self.name, cursor)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("COMMIT")
        self._db.close()


def _closed_and_read_only(path: str, exc: sqlite3.Error) -> bool:
    """SQLite cannot read a WAL log it may not write, unless told the file cannot change:
    true when no process has it open (no ``-wal`` file) and this one may not write there."""
    return (
        "readonly" in str(exc)
        and os.path.isfile(path)
        and not os.path.exists(path + "-wal")
        and not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)
    )


def _schema_version(db: sqlite3.Connection) -> str | None:
    """The audit schema version the file holds; None when it holds no audit log yet."""
    try:
        row = db.execute(
            "SELECT value FROM guardrails_audit_meta WHERE name = 'schema_version'"
        ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else str(row[0])


def _link(db: sqlite3.Connection, name: str) -> Link:
    row = db.execute("SELECT value FROM guardrails_audit_meta WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise AuditError(f"the audit meta table has no {name!r} row")
    seq, _, digest = str(row[0]).partition(" ")
    try:
        return int(seq), digest
    except ValueError:
        raise AuditError(f"the audit meta table's {name!r} row is unreadable: {row[0]!r}") from None


def _hash_at(db: sqlite3.Connection, seq: int) -> str | None:
    row = db.execute("SELECT hash FROM guardrails_audit WHERE seq = ?", (seq,)).fetchone()
    return None if row is None else str(row[0])


def _set_link(db: sqlite3.Connection, name: str, link: Link) -> None:
    db.execute("UPDATE guardrails_audit_meta SET value = ? WHERE name = ?", (_text(link), name))


def _text(link: Link) -> str:
    return f"{link[0]} {link[1]}"


def _after_fork(sink: weakref.ref[SQLiteAuditSink]) -> None:
    alive = sink()
    if alive is not None:
        alive._forget_connection()
