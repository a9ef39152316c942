"""The many-workers audit sink: one hash chain in PostgreSQL, appended by every process.

Each append is one transaction: lock the chain's head row (``SELECT ... FOR UPDATE`` on the
``head`` row of ``guardrails_audit_meta``), seal the record after it, insert it, move the
head, commit. The row lock is held until the commit, so appends from any number of workers
on any number of hosts queue on it and build one linear chain: two records can never name
the same ``prev``. A worker killed mid-append leaves the whole record or nothing (the
server rolls its transaction back), and the lock goes with its connection.

The head kept in the meta table lets ``verify`` see records removed from the end; ``prune``
moves the anchor in the transactions that delete, a few thousand rows at a time, as the
SQLite sink does. ``durable=True`` asks for ``synchronous_commit = on`` for the sink's
appends (a commit then waits for its WAL to reach disk, whatever the server's default).

Strings are stored as ``text``, which cannot hold NUL: a record carrying one (in an agent
or tool name, a reason) cannot be stored and raises ``AuditError`` (the guard then denies).
Arguments and details are stored as their JSON text, which escapes NUL.

``PostgresAuditSink(url)`` sets the tables up if missing (under an advisory lock, so
several workers may start at once); ``create=False`` (what the reading commands use) opens
only a log that exists. Tables are named ``prefix`` + ``audit`` and ``audit_meta`` (default
``guardrails_``), in ``schema`` if given.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg

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
from ._sql import BATCH, COLUMNS, PRUNE_BATCH, SqlReading, entries

__all__ = ["PostgresAuditSink"]

SCHEMA_VERSION = "1"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}\Z")
_SETUP_LOCK = 0x67726161  # pg_advisory_lock id held while creating the tables
_INHERITED: list[Any] = []  # connections a forked child inherited: never used, never closed


class PostgresAuditSink(SqlReading):
    """Audit records in PostgreSQL. ``url``: a libpq URL (``postgresql://user@host/db``;
    ``?schema=NAME`` picks the schema). ``timeout``: seconds to connect, and to wait for
    another worker's append (the head row's lock) before an append raises ``AuditError``."""

    def __init__(
        self,
        url: str,
        *,
        durable: bool = False,
        timeout: float = 10.0,
        create: bool = True,
        schema: str | None = None,
        prefix: str = "guardrails_",
    ) -> None:
        url, schema = _split_schema(url, schema)
        if schema is not None and not _NAME.match(schema):
            raise ValueError(f"schema must match {_NAME.pattern}, found {schema!r}")
        if not _NAME.match(prefix):
            raise ValueError(f"table prefix must match {_NAME.pattern}, found {prefix!r}")
        self.url = url
        self.path = _redacted(url) + (f"?schema={schema}" if schema else "")
        self.durable = durable
        self.timeout = timeout
        self.schema = schema
        self.prefix = prefix
        t = f'"{schema}".{prefix}' if schema else prefix
        self._log, self._meta = f"{t}audit", f"{t}audit_meta"
        self._lock = threading.Lock()
        self._closed = False
        self._db: psycopg.Connection[Any] | None = None
        self._db = self._connect(create)
        at_fork = getattr(os, "register_at_fork", None)
        if at_fork is not None:
            at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def __repr__(self) -> str:
        flags = ", durable=True" if self.durable else ""
        return f"PostgresAuditSink({self.path!r}{flags}){' (closed)' if self._closed else ''}"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.close()

    # -- writing --------------------------------------------------------------------------

    def append(self, draft: Draft) -> AuditRecord:
        with self._transaction("append a record") as db:
            return self._append_in(db, draft)

    def _append_in(self, db: psycopg.Connection[Any], draft: Draft) -> AuditRecord:
        """Append ``draft`` inside the caller's transaction (holding the head row's lock)."""
        j = draft.json
        seq, prev = self._link(db, "head", lock=True)
        record, _ = draft.seal(seq + 1, prev)
        db.execute(
            f"INSERT INTO {self._log} ({COLUMNS}) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        self._set_link(db, "head", (record.seq, record.hash))
        return record

    def prune(self, *, keep_last: int | None = None, before: float | None = None) -> int:
        check_prune_args(keep_last, before)
        with self._transaction("prune") as db:
            head_seq, _ = self._link(db, "head", lock=True)
            if keep_last is not None:
                cut = head_seq - keep_last
            else:
                row = db.execute(
                    f"SELECT min(seq) FROM {self._log} WHERE at >= %s",
                    (before,),
                ).fetchone()
                cut = head_seq if row is None or row[0] is None else int(row[0]) - 1
            if cut > self._link(db, "anchor")[0]:
                target = self._cut_at(db, cut)
                self._append_in(db, prune_draft(target, time.time()))
        removed = 0
        while True:
            with self._transaction("prune") as db:
                self._link(db, "head", lock=True)  # one pruner at a time, between appends
                anchor_seq, _ = self._link(db, "anchor")
                if cut <= anchor_seq:
                    return removed
                row = db.execute(
                    f"SELECT seq, hash FROM {self._log} WHERE seq > %s AND seq < %s "
                    "ORDER BY seq LIMIT 1 OFFSET %s",
                    (anchor_seq, cut, PRUNE_BATCH - 1),
                ).fetchone()
                end = (int(row[0]), str(row[1])) if row is not None else self._cut_at(db, cut)
                cursor = db.execute(
                    f"DELETE FROM {self._log} WHERE seq <= %s",
                    (end[0],),
                )
                removed += cursor.rowcount
                self._set_link(db, "anchor", end)

    def _cut_at(self, db: psycopg.Connection[Any], cut: int) -> Link:
        row = db.execute(
            f"SELECT hash FROM {self._log} WHERE seq = %s",
            (cut,),
        ).fetchone()
        if row is None:
            raise AuditError(
                f"{self.path}: cannot prune up to seq {cut}: that record is missing "
                "(run `guardrails-plugin audit verify`)"
            )
        return cut, str(row[0])

    # -- reading --------------------------------------------------------------------------

    def head(self) -> Link:
        with self._statement("read the head") as db:
            return self._link(db, "head")

    _MARK = "%s"

    @property
    def _table(self) -> str:
        return self._log

    def snapshot(self) -> Snapshot:
        return _PostgresSnapshot(self)

    # -- connection -----------------------------------------------------------------------

    def _new_connection(self) -> psycopg.Connection[Any]:
        timeout_ms = int(self.timeout * 1000)
        options = f"-c lock_timeout={timeout_ms} -c statement_timeout={timeout_ms}"
        if self.durable:
            options += " -c synchronous_commit=on"
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=max(2, int(self.timeout)),
            options=options,
        )

    def _connect(self, create: bool) -> psycopg.Connection[Any]:
        try:
            db = self._new_connection()
        except psycopg.Error as exc:
            raise AuditError(f"audit log {self.path!r}: cannot connect: {_first(exc)}") from exc
        try:
            version = self._version(db)
            if version is None and create:
                db.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
                try:
                    with db.transaction():
                        version = self._version(db)
                        if version is None:
                            self._create(db)
                            version = SCHEMA_VERSION
                finally:
                    db.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        except psycopg.Error as exc:
            db.close()
            raise AuditError(
                f"audit log {self.path!r}: cannot set up the database: {_first(exc)}"
            ) from exc
        if version is None:
            db.close()
            raise AuditError(f"audit log {self.path!r}: holds no audit log (no {self._log} table)")
        if version != SCHEMA_VERSION:
            db.close()
            raise AuditError(
                f"audit log {self.path!r}: holds audit schema version {version!r}; this version "
                f"of guardrails-plugin reads version {SCHEMA_VERSION}"
            )
        return db

    def _create(self, db: psycopg.Connection[Any]) -> None:
        if self.schema:
            db.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._log} ("
            " seq bigint PRIMARY KEY, at double precision NOT NULL, kind text NOT NULL,"
            " outcome text NOT NULL, agent text, tool text, args text, rule text,"
            " reason text NOT NULL, run_id text, thread_id text, checkpoint_id text,"
            " approver text, policy text, detail text NOT NULL, prev text NOT NULL,"
            " hash text NOT NULL)"
        )
        db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._meta} ( name text PRIMARY KEY, value text NOT NULL)"
        )
        db.execute(
            f"INSERT INTO {self._meta} (name, value) VALUES"
            " ('schema_version', %s), ('head', %s), ('anchor', %s)"
            " ON CONFLICT (name) DO NOTHING",
            (SCHEMA_VERSION, _text(START), _text(START)),
        )

    def _version(self, db: psycopg.Connection[Any]) -> str | None:
        found = db.execute("SELECT to_regclass(%s)", (self._meta,)).fetchone()
        if found is None or found[0] is None:
            return None
        row = db.execute(f"SELECT value FROM {self._meta} WHERE name = 'schema_version'").fetchone()
        return None if row is None else str(row[0])

    def _link(self, db: psycopg.Connection[Any], name: str, *, lock: bool = False) -> Link:
        row = db.execute(
            f"SELECT value FROM {self._meta} WHERE name = %s" + (" FOR UPDATE" if lock else ""),
            (name,),
        ).fetchone()
        if row is None:
            raise AuditError(f"the audit meta table has no {name!r} row")
        seq, _, digest = str(row[0]).partition(" ")
        try:
            return int(seq), digest
        except ValueError:
            raise AuditError(
                f"the audit meta table's {name!r} row is unreadable: {row[0]!r}"
            ) from None

    def _set_link(self, db: psycopg.Connection[Any], name: str, link: Link) -> None:
        db.execute(
            f"UPDATE {self._meta} SET value = %s WHERE name = %s",
            (_text(link), name),
        )

    def _open(self, operation: str) -> psycopg.Connection[Any]:
        if self._closed:
            raise AuditError(f"{self!r}: cannot {operation}: the log is closed")
        if self._db is None or self._db.closed or self._db.broken:
            self._db = self._connect(create=False)
        return self._db

    @contextlib.contextmanager
    def _statement(self, operation: str) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            db = self._open(operation)
            try:
                yield db
            except psycopg.Error as exc:
                raise self._error(operation, exc) from exc

    @contextlib.contextmanager
    def _transaction(self, operation: str) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            db = self._open(operation)
            try:
                with db.transaction():
                    yield db
            except psycopg.Error as exc:
                raise self._error(operation, exc) from exc

    def _error(self, operation: str, exc: psycopg.Error) -> AuditError:
        hint = ""
        if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
            hint = f" (waited over {self.timeout} s: another worker held the chain's head)"
        return AuditError(f"audit log {self.path!r}: cannot {operation}: {_first(exc)}{hint}")

    def _forget_connection(self) -> None:
        self._lock = threading.Lock()
        if self._db is not None:
            _INHERITED.append(self._db)
            self._db = None


class _PostgresSnapshot(Snapshot):
    """A read-only REPEATABLE READ transaction on a connection of its own: rows, head and
    anchor as of one moment; appends go on meanwhile."""

    def __init__(self, sink: PostgresAuditSink) -> None:
        self.name = sink.path
        self._sink = sink
        try:
            self._db = sink._new_connection()
        except psycopg.Error as exc:
            raise AuditError(f"audit log {sink.path!r}: cannot read it: {_first(exc)}") from exc
        try:
            self._db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.head: Link | None = sink._link(self._db, "head")
            self.anchor = sink._link(self._db, "anchor")
        except (psycopg.Error, AuditError) as exc:
            self._db.close()
            raise AuditError(f"audit log {sink.path!r}: cannot read it: {exc}") from exc

    def entries(self) -> Iterator[Entry]:
        after = None
        while True:  # in batches, keyed on seq: constant memory, one snapshot throughout
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM {self._sink._log}"
                + ("" if after is None else " WHERE seq > %s")
                + f" ORDER BY seq LIMIT {BATCH}",
                () if after is None else (after,),
            ).fetchall()
            yield from entries(self.name, rows)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self._db.execute("COMMIT")
        self._db.close()


def _text(link: Link) -> str:
    return f"{link[0]} {link[1]}"


def _first(exc: psycopg.Error) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def _split_schema(url: str, schema: str | None) -> tuple[str, str | None]:
    """``url`` without a ``schema=NAME`` query parameter (ours, not libpq's), and the name."""
    base, sep, query = url.partition("?")
    if not sep:
        return url, schema
    kept = []
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if name == "schema":
            schema = value
        elif part:
            kept.append(part)
    return base + ("?" + "&".join(kept) if kept else ""), schema


def _redacted(url: str) -> str:
    """``url`` without its password."""
    return re.sub(
        r"(://[^:/@]*):[^@/]*@", r"\1:***@", re.sub(r"password=[^&]*", "password=***", url)
    )


def _after_fork(sink: weakref.ref[PostgresAuditSink]) -> None:
    alive = sink()
    if alive is not None:
        alive._forget_connection()
