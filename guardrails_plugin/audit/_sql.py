"""What the SQL audit logs (``SQLiteAuditSink``, ``PostgresAuditSink``) share: the columns,
reading a row back into a record, the reader's filters and its batched reads.

The two backends differ in how they connect, lock and set up their tables, and in the
parameter mark of their driver (``?`` for sqlite3, ``%s`` for psycopg); ``SqlReading`` is
written once over those differences.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from ._base import AuditError, AuditSink, Entry
from ._records import AuditRecord

COLUMNS = (
    "seq, at, kind, outcome, agent, tool, args, rule, reason, run_id, thread_id, "
    "checkpoint_id, approver, policy, detail, prev, hash"
)
"""The audit table's columns, in the order rows are written and read."""
NAMES = tuple(c.strip() for c in COLUMNS.split(","))
BATCH = 500
"""Rows read per statement: readers hold no lock while their caller works on a batch."""
PRUNE_BATCH = 5000
"""Rows deleted per transaction when pruning."""


def row_record(row: tuple[Any, ...]) -> AuditRecord:
    """The record a row holds; ``ValueError`` when a JSON column does not parse."""
    doc = dict(zip(NAMES, row, strict=True))
    for name in ("args", "detail"):
        text = doc[name]
        if text is not None:
            try:
                doc[name] = json.loads(text)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"column {name!r} holds invalid JSON: {exc}") from exc
    return AuditRecord.from_doc(doc)


def entries(name: str, rows: Iterable[tuple[Any, ...]]) -> Iterator[Entry]:
    """A snapshot's entries: each row's record, or the reason it cannot be read."""
    for row in rows:
        where = f"{name}, seq {row[0]}"
        try:
            yield Entry(where, row_record(row))
        except ValueError as exc:
            yield Entry(where, problem=f"unreadable record: {exc}", seq=row[0])


class SqlReading(AuditSink):
    """``records`` and ``last`` over a SQL audit table, for a backend that supplies its
    parameter mark, its table's name and a ``_statement`` context (its locked connection,
    driver errors turned into ``AuditError``)."""

    _MARK: ClassVar[str]
    path: str

    @property
    @abc.abstractmethod
    def _table(self) -> str:
        """The audit table's name as SQL (quoted or qualified as the backend needs)."""

    @abc.abstractmethod
    def _statement(self, operation: str) -> AbstractContextManager[Any]:
        """The backend's connection, held for one statement."""

    def _filters(
        self, kind: str | None, thread: str | None, agent: str | None
    ) -> tuple[str, list[str]]:
        where, params = "", []
        for column, value in (("kind", kind), ("thread_id", thread), ("agent", agent)):
            if value is not None:
                where += f" AND {column} = {self._MARK}"
                params.append(value)
        return where, params

    def records(
        self,
        since_seq: int | None = None,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> Iterator[AuditRecord]:
        where, params = self._filters(kind, thread, agent)
        after = -1 if since_seq is None else since_seq
        while True:
            # A batch at a time: the lock is not held while the caller works on the records.
            with self._statement("read records") as db:
                rows = db.execute(
                    f"SELECT {COLUMNS} FROM {self._table} WHERE seq > {self._MARK}{where}"
                    f" ORDER BY seq LIMIT {BATCH}",
                    (after, *params),
                ).fetchall()
            for row in rows:
                yield self._record(row)
            if len(rows) < BATCH:
                return
            after = rows[-1][0]

    def last(
        self,
        n: int,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> list[AuditRecord]:
        if n <= 0:
            return []
        where, params = self._filters(kind, thread, agent)
        with self._statement("read records") as db:
            rows = db.execute(
                f"SELECT {COLUMNS} FROM {self._table} WHERE 1 = 1{where}"
                f" ORDER BY seq DESC LIMIT {self._MARK}",
                (*params, n),
            ).fetchall()
        return [self._record(row) for row in reversed(rows)]

    def _record(self, row: tuple[Any, ...]) -> AuditRecord:
        try:
            return row_record(row)
        except ValueError as exc:
            raise AuditError(
                f"{self.path}, seq {row[0]}: unreadable record ({exc}); "
                "run `guardrails-plugin audit verify`"
            ) from exc
