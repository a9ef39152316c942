"""The many-hosts store: PostgreSQL, through psycopg 3 and its connection pools.

Why this file is long: one backend, whole — the schema and its server-side functions, the
ten verbs each built once for the sync and the async driver, the per-event-loop async pools,
the connection-failure handling that keeps the guard failing closed, and the LISTEN/NOTIFY
listener that pushes changes to subscribers. Splitting it would scatter one set of SQL
statements over several files that must change together.

Every verb is atomic on the server, in one statement sent in autocommit mode (so one
transaction), never a read-then-write from the client:

- ``charge`` (plain): ``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE value + amount <=
  limit RETURNING``: the row lock ``ON CONFLICT`` takes makes check and add one step.
- ``charge`` with a window and ``add_members`` with a limit read several rows (the window's
  running total and the entries aging out of it, the set's size), which no single-row lock
  covers. A window keeps its running total and entry count in a row of its own and prunes
  entries as they age (an index range on ``(key, ts)``): a charge costs the same whatever
  the window holds. They run as
  PL/pgSQL functions that first take a transaction-scoped advisory lock on the key
  (``pg_advisory_xact_lock``; the lock id is a 64-bit hash of the store's schema, tables and
  key, so a collision only serialises two unrelated keys). Each later statement of a
  volatile function takes a fresh snapshot in READ COMMITTED, so it sees everything the
  previous lock holder committed. Chosen over SERIALIZABLE because it never aborts: a
  serialization failure would need retries, and a retry after an ambiguous error could
  charge twice.
- ``put_if`` compares canonical JSON (sorted keys), kept beside each document as a SHA-256
  digest: ``UPDATE ... WHERE canon = $expected``. Not ``jsonb`` equality: ``jsonb`` cannot
  hold ``\\u0000`` and equates ``1`` with ``1.0``, which every other backend tells apart.
- Keys and members are ``bytea`` (UTF-8): ``text`` cannot hold NUL, and ``bytea`` orders by
  bytes, which for UTF-8 is code point order, so a prefix scan is one index range.

Default times (``now=None``) are the server's clock, read under the key's lock, so every
worker on every host stamps window entries with one clock.

The schema (``schema``, default the connection's ``search_path``; tables named ``prefix`` +
``counters`` etc., default ``guardrails_``) is created on open under an advisory lock, so
several processes may open a new database at once; ``create=False`` only opens a store that
exists (``StoreError`` otherwise).

Faults fail closed: a server that is down, restarting or slower than ``statement_timeout``
makes the verb raise ``StoreError`` (the guard denies, with the reason). A charge whose
commit was sent but not confirmed may have been recorded: it is never retried (it could
count twice), so a fault can over-count a budget, never under-count it. Broken connections
are dropped and the pool reconnects on later calls: no restart is needed.

``subscribe(key, callback)``: a trigger on the counters and documents tables sends
``NOTIFY`` (in the writing transaction, so delivered exactly when the change commits) for
keys someone subscribed to; a listener thread with a connection of its own calls the
callbacks. A lost connection marks the subscriptions not alive until it is back, then calls
each callback once, since changes made meanwhile were not announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from .._errors import StoreError
from ._base import JSON, Store, Subscription
from ._codec import check_amount, check_window, decode_document, encode_document, unique_members

__all__ = ["PostgresStore"]

SCHEMA_VERSION = "1"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}\Z")
_SETUP_LOCK = 0x67726473  # pg_advisory_xact_lock id held while creating the schema
_NO_LIMIT = -math.inf  # what a NaN limit means: PostgreSQL orders NaN above every number

_INHERITED: list[Any] = []  # pools a forked child inherited: never touched, never closed


def _key(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def _unkey(raw: bytes) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


def _limit(limit: float) -> float:
    return _NO_LIMIT if math.isnan(limit) else float(limit)


def _canon(value: JSON) -> bytes:
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, sort_keys=True)
    return hashlib.sha256(text.encode("ascii")).digest()


def _document(key: str, value: JSON) -> str:
    """The stored text: strict JSON, ASCII only (no NUL, no lone surrogate reaches the server)."""
    text = encode_document(key, value)  # validates, with the contract's error
    return text if text.isascii() else json.dumps(value, allow_nan=False, separators=(",", ":"))


_NULL = _canon(None)


@dataclass(frozen=True, slots=True)
class _Op:
    """One verb as one statement: what to send, and how to read the answer."""

    what: str  # "charge", "read total of", ...: the error says "cannot <what> <key>"
    key: str
    query: str
    params: tuple[Any, ...] | dict[str, Any]
    result: Callable[[list[tuple[Any, ...]]], Any]
    reads_only: bool = False  # safe to retry on a fresh connection


def _schema_statements(s: str, p: str) -> list[str]:
    """DDL for schema ``s`` (already quoted, with its dot, or "") and table prefix ``p``."""
    t = f"{s}{p}"
    return [
        f"CREATE TABLE IF NOT EXISTS {t}meta (name text PRIMARY KEY, value text NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {t}counters ("
        " key bytea PRIMARY KEY, value double precision NOT NULL)",
        # A window: its running total and entry count, and the entries (pruned as they age).
        f"CREATE TABLE IF NOT EXISTS {t}windows ("
        " key bytea PRIMARY KEY, total double precision NOT NULL, entries bigint NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {t}window_entries ("
        " key bytea NOT NULL, ts double precision NOT NULL, amount double precision NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS {p}window_entries_key_ts ON {t}window_entries (key, ts)",
        f"CREATE TABLE IF NOT EXISTS {t}members ("
        " key bytea NOT NULL, member bytea NOT NULL, PRIMARY KEY (key, member))",
        f"CREATE TABLE IF NOT EXISTS {t}documents ("
        " key bytea PRIMARY KEY, value text NOT NULL, canon bytea NOT NULL)",
        f"CREATE TABLE IF NOT EXISTS {t}watched (key bytea PRIMARY KEY)",
        f"""
        CREATE OR REPLACE FUNCTION {t}charge_window(
            k bytea, amt double precision, lim double precision, win double precision,
            stamp double precision, lock_id bigint
        ) RETURNS boolean LANGUAGE plpgsql AS $fn$
        DECLARE
            held double precision := 0;
            n bigint := 0;
            gone bigint;
            gone_sum double precision;
            allowed boolean;
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_id);
            IF stamp IS NULL THEN
                stamp := extract(epoch FROM clock_timestamp());
            END IF;
            SELECT total, entries INTO held, n FROM {t}windows WHERE key = k;
            IF NOT FOUND THEN
                held := 0;
                n := 0;
            END IF;
            IF n > 0 THEN
                WITH old AS (
                    DELETE FROM {t}window_entries WHERE key = k AND ts <= stamp - win
                    RETURNING amount
                )
                SELECT count(*), coalesce(sum(amount), 0) INTO gone, gone_sum FROM old;
                IF gone > 0 THEN
                    n := n - gone;
                    held := CASE WHEN n > 0 THEN held - gone_sum ELSE 0 END;
                END IF;
            END IF;
            allowed := amt < 0 OR held + amt <= lim;
            IF allowed AND amt <> 0 THEN
                INSERT INTO {t}window_entries (key, ts, amount) VALUES (k, stamp, amt);
                held := held + amt;
                n := n + 1;
            END IF;
            IF n = 0 THEN
                DELETE FROM {t}windows WHERE key = k;
            ELSE
                INSERT INTO {t}windows (key, total, entries) VALUES (k, held, n)
                    ON CONFLICT (key) DO UPDATE
                    SET total = excluded.total, entries = excluded.entries;
            END IF;
            RETURN allowed;
        END
        $fn$
        """,
        f"""
        CREATE OR REPLACE FUNCTION {t}add_members(
            k bytea, wanted bytea[], lim double precision, lock_id bigint
        ) RETURNS bytea[] LANGUAGE plpgsql AS $fn$
        DECLARE
            fresh bytea[];
            size bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock(lock_id);
            SELECT coalesce(array_agg(m ORDER BY i), '{{}}') INTO fresh
                FROM unnest(wanted) WITH ORDINALITY AS w(m, i)
                WHERE NOT EXISTS (SELECT 1 FROM {t}members WHERE key = k AND member = w.m);
            IF lim IS NOT NULL THEN
                SELECT count(*) INTO size FROM {t}members WHERE key = k;
                IF NOT (size + cardinality(fresh) <= lim) THEN
                    RETURN NULL;
                END IF;
            END IF;
            INSERT INTO {t}members (key, member) SELECT k, unnest(fresh);
            RETURN fresh;
        END
        $fn$
        """,
        # NOTIFY for watched keys, in the writing transaction: delivered when it commits.
        f"""
        CREATE OR REPLACE FUNCTION {t}announce() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            k bytea;
        BEGIN
            IF TG_OP = 'DELETE' THEN k := OLD.key; ELSE k := NEW.key; END IF;
            IF EXISTS (SELECT 1 FROM {t}watched WHERE key = k) THEN
                PERFORM pg_notify(TG_ARGV[0], encode(sha256(k), 'hex'));
            END IF;
            RETURN NULL;
        END
        $fn$
        """,
        f"DROP TRIGGER IF EXISTS {p}announce ON {t}counters",
        f"CREATE TRIGGER {p}announce AFTER INSERT OR UPDATE OR DELETE ON {t}counters"
        f" FOR EACH ROW EXECUTE FUNCTION {t}announce('{p}changes')",
        f"DROP TRIGGER IF EXISTS {p}announce ON {t}documents",
        f"CREATE TRIGGER {p}announce AFTER INSERT OR UPDATE OR DELETE ON {t}documents"
        f" FOR EACH ROW EXECUTE FUNCTION {t}announce('{p}changes')",
    ]


class PostgresStore(Store):
    """Budgets, rates, sets and documents in PostgreSQL, shared by workers on many hosts.

    ``url``: a libpq connection URL or string (``postgresql://user@host:5432/db``).
    ``schema``: where the tables live (default: the connection's ``search_path``);
    ``prefix``: the tables' prefix (default ``guardrails_``). ``create=False``: refuse (with
    ``StoreError``) a database holding no store instead of setting one up. ``timeout``:
    seconds to wait for a connection (from the pool, or a new one);
    ``statement_timeout``: seconds a statement may run (or wait for a lock) on the server.
    ``pool_size``: connections per process at most (sync; the async pools, one per event
    loop, take as many).

    >>> store = PostgresStore("postgresql://postgres@127.0.0.1/app")  # doctest: +SKIP
    >>> store.charge("calls/run-1", 1, limit=2)  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        prefix: str = "guardrails_",
        create: bool = True,
        timeout: float = 5.0,
        statement_timeout: float = 5.0,
        pool_size: int = 8,
    ) -> None:
        if schema is not None and not _NAME.match(schema):
            raise ValueError(f"schema must match {_NAME.pattern}, found {schema!r}")
        if not _NAME.match(prefix):
            raise ValueError(f"table prefix must match {_NAME.pattern}, found {prefix!r}")
        if not (timeout > 0 and statement_timeout > 0 and pool_size >= 1):
            raise ValueError("timeout and statement_timeout must be > 0, pool_size >= 1")
        self.url = url
        self.schema = schema
        self.prefix = prefix
        self.timeout = timeout
        self.statement_timeout = statement_timeout
        self.pool_size = pool_size
        self._t = f'"{schema}".{prefix}' if schema else prefix
        self._lock_salt = f"{schema or ''}.{prefix}".encode()
        self._closed = False
        self._state_lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._apools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}
        self._listener: _Listener | None = None
        self._probed = 0.0
        self._closing: set[asyncio.Task[None]] = set()
        self._build_queries()
        self._setup(create)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def __repr__(self) -> str:
        where = _redacted(self.url)
        extra = f", schema={self.schema!r}" if self.schema else ""
        if self.prefix != "guardrails_":
            extra += f", prefix={self.prefix!r}"
        return f"PostgresStore({where!r}{extra}){' (closed)' if self._closed else ''}"

    # -- setup ------------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.timeout)),
            "options": f"-c statement_timeout={int(self.statement_timeout * 1000)}"
            f" -c lock_timeout={int(self.statement_timeout * 1000)}",
        }

    def _setup(self, create: bool) -> None:
        try:
            with psycopg.connect(self.url, **self._connect_kwargs()) as conn:
                version = self._version(conn)
                if version is None and create:
                    # A session lock, then a new transaction: a transaction's start is where
                    # the server takes in catalog changes others committed while we waited.
                    conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK,))
                    try:
                        with conn.transaction():
                            version = self._version(conn)
                            if version is None:
                                self._create_schema(conn)
                                version = SCHEMA_VERSION
                    finally:
                        conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))
        except psycopg.Error as exc:
            raise StoreError(f"{self!r}: cannot open the store: {_reason(exc)}") from exc
        if version is None:
            raise StoreError(f"{self!r}: holds no guardrails store (no {self._t}meta table)")
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self!r}: holds guardrails schema version {version!r}; this version of "
                f"guardrails-plugin reads version {SCHEMA_VERSION}"
            )

    def _create_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self.schema:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        schema = f'"{self.schema}".' if self.schema else ""
        for statement in _schema_statements(schema, self.prefix):
            conn.execute(statement)
        conn.execute(
            f"INSERT INTO {self._t}meta (name, value)"
            " VALUES ('schema_version', %s) ON CONFLICT (name) DO NOTHING",
            (SCHEMA_VERSION,),
        )

    def _version(self, conn: psycopg.Connection[Any]) -> str | None:
        found = conn.execute("SELECT to_regclass(%s)", (f"{self._t}meta",)).fetchone()
        if found is None or found[0] is None:
            return None
        row = conn.execute(
            f"SELECT value FROM {self._t}meta WHERE name = 'schema_version'"
        ).fetchone()
        return None if row is None else str(row[0])

    def _build_queries(self) -> None:
        t = self._t
        self._q_charge = (
            f"INSERT INTO {t}counters AS c (key, value)"
            " SELECT %(k)s, %(a)s WHERE %(a)s < 0 OR %(a)s <= %(l)s"
            f" OR EXISTS (SELECT 1 FROM {t}counters WHERE key = %(k)s)"
            " ON CONFLICT (key) DO UPDATE SET value = c.value + excluded.value"
            " WHERE %(a)s < 0 OR c.value + excluded.value <= %(l)s RETURNING 1"
        )
        self._q_charge_window = f"SELECT {t}charge_window(%s, %s, %s, %s, %s::double precision, %s)"
        self._q_total = f"SELECT value FROM {t}counters WHERE key = %s"
        # One statement, one snapshot: the running total less what aged out unpruned.
        self._q_total_window = (
            "SELECT CASE WHEN w.entries > old.n THEN w.total - old.amount ELSE 0 END"
            f" FROM {t}windows AS w, (SELECT count(*) AS n, coalesce(sum(amount), 0) AS amount"
            f" FROM {t}window_entries WHERE key = %(k)s AND ts <= coalesce("
            "%(now)s::double precision, extract(epoch FROM clock_timestamp())) - %(w)s) AS old"
            " WHERE w.key = %(k)s"
        )
        self._q_add = f"SELECT {t}add_members(%s, %s::bytea[], %s::double precision, %s)"
        self._q_remove = f"DELETE FROM {t}members WHERE key = %s AND member = ANY(%s::bytea[])"
        self._q_members = f"SELECT member FROM {t}members WHERE key = %s"
        self._q_get = f"SELECT value FROM {t}documents WHERE key = %s"
        self._q_put = (
            f"INSERT INTO {t}documents (key, value, canon) VALUES (%s, %s, %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, canon = excluded.canon"
        )
        self._q_delete = f"DELETE FROM {t}documents WHERE key = %s RETURNING 1"
        # Compare and set: the stored null counts as absent, as everywhere else.
        self._q_claim = (
            f"INSERT INTO {t}documents AS d (key, value, canon) VALUES (%(k)s, %(v)s, %(c)s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, canon = excluded.canon"
            " WHERE d.canon = %(null)s RETURNING 1"
        )
        self._q_swap = (
            f"UPDATE {t}documents SET value = %s, canon = %s WHERE key = %s AND canon = %s"
            " RETURNING 1"
        )
        self._q_release = f"DELETE FROM {t}documents WHERE key = %s AND canon = %s RETURNING 1"
        self._q_release_absent = (
            f"WITH gone AS (DELETE FROM {t}documents WHERE key = %(k)s AND canon = %(null)s)"
            f" SELECT NOT EXISTS (SELECT 1 FROM {t}documents"
            " WHERE key = %(k)s AND canon <> %(null)s)"
        )
        self._q_scan = (
            f"SELECT key, value FROM {t}documents WHERE key >= %s AND key < %s ORDER BY key"
        )

    def _lock_id(self, kind: bytes, key: bytes) -> int:
        digest = hashlib.blake2b(
            key, digest_size=8, person=kind.ljust(16, b"\0")[:16], salt=b""
        ).digest()
        salted = hashlib.blake2b(self._lock_salt + b"\0" + digest, digest_size=8).digest()
        return int.from_bytes(salted, "big", signed=True)

    # -- the verbs, as statements -----------------------------------------------------------

    def _charge_op(
        self, key: str, amount: float, limit: float, window: float | None, now: float | None
    ) -> _Op:
        check_amount(amount)
        k = _key(key)
        if window is None:
            return _Op(
                "charge",
                key,
                self._q_charge,
                {"k": k, "a": float(amount), "l": _limit(limit)},
                lambda rows: bool(rows),
            )
        check_window(window)
        return _Op(
            "charge",
            key,
            self._q_charge_window,
            (
                k,
                float(amount),
                _limit(limit),
                float(window),
                None if now is None else float(now),
                self._lock_id(b"window", k),
            ),
            lambda rows: bool(rows[0][0]),
        )

    def _total_op(self, key: str, window: float | None, now: float | None) -> _Op:
        k = _key(key)
        if window is None:
            return _Op(
                "read total of",
                key,
                self._q_total,
                (k,),
                lambda rows: float(rows[0][0]) if rows else 0.0,
                reads_only=True,
            )
        check_window(window)
        return _Op(
            "read total of",
            key,
            self._q_total_window,
            {"k": k, "now": None if now is None else float(now), "w": float(window)},
            lambda rows: float(rows[0][0]) if rows else 0.0,
            reads_only=True,
        )

    def _add_op(self, key: str, members: Iterable[str], limit: float | None) -> _Op:
        wanted = unique_members(members)
        k = _key(key)
        return _Op(
            "add members to",
            key,
            self._q_add,
            (
                k,
                [_key(m) for m in wanted],
                None if limit is None else _limit(limit),
                self._lock_id(b"set", k),
            ),
            lambda rows: None if rows[0][0] is None else tuple(_unkey(m) for m in rows[0][0]),
        )

    def _remove_op(self, key: str, members: Iterable[str]) -> _Op:
        unwanted = [_key(m) for m in unique_members(members)]
        return _Op(
            "remove members from",
            key,
            self._q_remove,
            (_key(key), unwanted),
            lambda rows: None,
        )

    def _members_op(self, key: str) -> _Op:
        return _Op(
            "read members of",
            key,
            self._q_members,
            (_key(key),),
            lambda rows: frozenset(_unkey(m) for (m,) in rows),
            reads_only=True,
        )

    def _get_op(self, key: str) -> _Op:
        return _Op(
            "get document",
            key,
            self._q_get,
            (_key(key),),
            lambda rows: decode_document(key, rows[0][0], repr(self)) if rows else None,
            reads_only=True,
        )

    def _put_op(self, key: str, value: JSON) -> _Op:
        text = _document(key, value)
        return _Op(
            "put document", key, self._q_put, (_key(key), text, _canon(value)), lambda rows: None
        )

    def _delete_op(self, key: str) -> _Op:
        return _Op("delete document", key, self._q_delete, (_key(key),), lambda rows: bool(rows))

    def _put_if_op(self, key: str, value: JSON | None, expected: JSON | None) -> _Op:
        text = None if value is None else _document(key, value)
        encode_document(key, expected)  # a non-JSON ``expected`` is a caller's error
        k = _key(key)
        what = "compare and set document"
        if expected is None and text is not None:
            params: dict[str, Any] = {"k": k, "v": text, "c": _canon(value), "null": _NULL}
            return _Op(what, key, self._q_claim, params, lambda rows: bool(rows))
        if expected is None:
            return _Op(
                what,
                key,
                self._q_release_absent,
                {"k": k, "null": _NULL},
                lambda rows: bool(rows[0][0]),
            )
        if text is None:
            return _Op(what, key, self._q_release, (k, _canon(expected)), lambda rows: bool(rows))
        return _Op(
            what,
            key,
            self._q_swap,
            (text, _canon(value), k, _canon(expected)),
            lambda rows: bool(rows),
        )

    def _scan_op(self, prefix: str) -> _Op:
        low = _key(prefix)

        def result(rows: list[tuple[Any, ...]]) -> Mapping[str, JSON]:
            out: dict[str, JSON] = {}
            for raw, text in rows:
                name = _unkey(raw)
                out[name] = decode_document(name, text, repr(self))
            return out

        # UTF-8 never holds the byte 0xFF: every key starting with the prefix sorts below this.
        return _Op(
            "scan documents with prefix",
            prefix,
            self._q_scan,
            (low, low + b"\xff"),
            result,
            reads_only=True,
        )

    # -- sync verbs -------------------------------------------------------------------------

    def charge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        result: bool = self._run(self._charge_op(key, amount, limit, window, now))
        return result

    def total(self, key: str, *, window: float | None = None, now: float | None = None) -> float:
        result: float = self._run(self._total_op(key, window, now))
        return result

    def add_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        result: tuple[str, ...] | None = self._run(self._add_op(key, members, limit))
        return result

    def remove_members(self, key: str, members: Iterable[str]) -> None:
        self._run(self._remove_op(key, members))

    def members(self, key: str) -> frozenset[str]:
        result: frozenset[str] = self._run(self._members_op(key))
        return result

    def get(self, key: str) -> JSON | None:
        return self._run(self._get_op(key))

    def put(self, key: str, value: JSON) -> None:
        self._run(self._put_op(key, value))

    def delete(self, key: str) -> bool:
        result: bool = self._run(self._delete_op(key))
        return result

    def put_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        result: bool = self._run(self._put_if_op(key, value, expected))
        return result

    def scan(self, prefix: str) -> Mapping[str, JSON]:
        result: Mapping[str, JSON] = self._run(self._scan_op(prefix))
        return result

    # -- async verbs: the same statements on an async pool of this event loop ----------------

    async def acharge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        result: bool = await self._arun(self._charge_op(key, amount, limit, window, now))
        return result

    async def atotal(
        self, key: str, *, window: float | None = None, now: float | None = None
    ) -> float:
        result: float = await self._arun(self._total_op(key, window, now))
        return result

    async def aadd_members(
        self, key: str, members: Iterable[str], limit: float | None = None
    ) -> tuple[str, ...] | None:
        result: tuple[str, ...] | None = await self._arun(self._add_op(key, members, limit))
        return result

    async def aremove_members(self, key: str, members: Iterable[str]) -> None:
        await self._arun(self._remove_op(key, members))

    async def amembers(self, key: str) -> frozenset[str]:
        result: frozenset[str] = await self._arun(self._members_op(key))
        return result

    async def aget(self, key: str) -> JSON | None:
        return await self._arun(self._get_op(key))

    async def aput(self, key: str, value: JSON) -> None:
        await self._arun(self._put_op(key, value))

    async def adelete(self, key: str) -> bool:
        result: bool = await self._arun(self._delete_op(key))
        return result

    async def aput_if(self, key: str, value: JSON | None, *, expected: JSON | None) -> bool:
        result: bool = await self._arun(self._put_if_op(key, value, expected))
        return result

    async def ascan(self, prefix: str) -> Mapping[str, JSON]:
        result: Mapping[str, JSON] = await self._arun(self._scan_op(prefix))
        return result

    # -- running statements -----------------------------------------------------------------

    def _run(self, op: _Op) -> Any:
        for attempt in (1, 2):
            pool = self._sync_pool(op)
            try:
                with pool.connection(timeout=self.timeout) as conn:
                    cursor = conn.execute(op.query, op.params)
                    rows = cursor.fetchall() if cursor.description is not None else []
                return op.result(rows)
            except psycopg.Error as exc:
                if not _connection_lost(exc):
                    raise self._error(op, exc) from exc
                renewed = self._renew_if_back(pool)
                if op.reads_only and attempt == 1:
                    continue  # a read on a connection the server dropped: one fresh try
                if isinstance(exc, PoolTimeout) and renewed and attempt == 1:
                    continue  # no statement was sent: safe to send it on the new pool
                raise self._error(op, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _arun(self, op: _Op) -> Any:
        for attempt in (1, 2):
            pool = await self._async_pool(op)
            try:
                async with pool.connection(timeout=self.timeout) as conn:
                    cursor = await conn.execute(op.query, op.params)
                    rows = await cursor.fetchall() if cursor.description is not None else []
                return op.result(rows)
            except psycopg.Error as exc:
                if not _connection_lost(exc):
                    raise self._error(op, exc) from exc
                renewed = await self._arenew_if_back(pool)
                if op.reads_only and attempt == 1:
                    continue
                if isinstance(exc, PoolTimeout) and renewed and attempt == 1:
                    continue
                raise self._error(op, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # A pool that lost the server retries in the background with a backoff growing to many
    # seconds; once a direct connection shows the server is back, a new pool replaces it, so
    # a restart costs the calls made while it was down and no more. Probed at most this often:
    PROBE_EVERY = 0.25

    def _probe(self) -> bool:
        """Whether the server takes connections again (at most every ``PROBE_EVERY`` s)."""
        now = time.monotonic()
        if now - self._probed < self.PROBE_EVERY:
            return False
        self._probed = now
        try:
            psycopg.connect(self.url, **self._connect_kwargs()).close()
        except psycopg.Error:
            return False
        return True

    def _renew_if_back(self, pool: ConnectionPool) -> bool:
        _sweep(pool)  # drops the idle connections that died with the server
        if pool.get_stats().get("pool_available", 0) or not self._probe():
            return False
        with self._state_lock:
            if self._pool is not pool:
                return True  # another thread renewed it
            self._pool = None
        threading.Thread(target=pool.close, daemon=True).start()  # never wait for it
        return True

    async def _arenew_if_back(self, pool: AsyncConnectionPool) -> bool:
        with contextlib.suppress(Exception):
            await pool.check()
        if pool.get_stats().get("pool_available", 0):
            return False
        if not await asyncio.to_thread(self._probe):
            return False
        loop = asyncio.get_running_loop()
        with self._state_lock:
            if self._apools.get(loop) is not pool:
                return True
            del self._apools[loop]
        self._closing.add(loop.create_task(pool.close()))
        return True

    def _error(self, op: _Op, exc: psycopg.Error) -> StoreError:
        return StoreError(f"{self!r}: cannot {op.what} {op.key!r}: {_reason(exc)}")

    def _closed_error(self, op: _Op) -> StoreError:
        return StoreError(f"{self!r}: cannot {op.what} {op.key!r}: the store is closed")

    def _sync_pool(self, op: _Op) -> ConnectionPool:
        pool = self._pool
        if pool is not None:
            return pool
        with self._state_lock:
            if self._closed:
                raise self._closed_error(op)
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.url,
                    kwargs=self._connect_kwargs(),
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    name=f"guardrails-{self.prefix}",
                    open=True,
                )
            return self._pool

    async def _async_pool(self, op: _Op) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is not None:
            return pool
        with self._state_lock:
            if self._closed:
                raise self._closed_error(op)
            for old in [other for other in self._apools if other.is_closed()]:
                _drop(self._apools.pop(old))  # its loop is gone: nothing can await it
            pool = self._apools.get(loop)
            if pool is None:
                pool = AsyncConnectionPool(
                    self.url,
                    kwargs=self._connect_kwargs(),
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    open=False,
                )
                self._apools[loop] = pool
        await pool.open()
        return pool

    async def aclose(self) -> None:
        """Close the async pool of the running event loop, then everything else."""
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()
        self.close()

    def close(self) -> None:
        """Close the pools and the listener; the store cannot be used afterwards. Twice is fine.

        An async pool whose event loop is still open elsewhere is closed on that loop; close
        it with ``await store.aclose()`` from the loop itself to wait for it."""
        with self._state_lock:
            self._closed = True
            pool, self._pool = self._pool, None
            apools, self._apools = self._apools, {}
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()
        if pool is not None:
            pool.close()
        for loop, apool in apools.items():
            _close_on(loop, apool)

    # -- push: LISTEN/NOTIFY ----------------------------------------------------------------

    def subscribe(self, key: str, callback: Callable[[], None]) -> Subscription | None:
        """Call ``callback()`` (from the store's listener thread, which has a connection of
        its own) after each committed change to counter or document ``key``; ``None`` once
        the store is closed. Returns at once: the listener marks ``key`` watched (so writers'
        triggers announce it), calls ``callback`` once and only then sets ``alive``; the same
        after each reconnection."""
        with self._state_lock:
            if self._closed:
                return None
            if self._listener is None:
                self._listener = _Listener(self)
            listener = self._listener
        made: list[Subscription] = []
        sub = Subscription(key, on_close=lambda: listener.remove(made[0]))
        made.append(sub)
        listener.add(sub, callback)
        return sub

    def _forget_connections(self) -> None:
        """In a forked child: the parent's pools and listener are the parent's."""
        self._state_lock = threading.Lock()
        _INHERITED.extend([self._pool, self._apools, self._listener])
        self._pool, self._apools, self._listener = None, {}, None


class _Listener:
    """One thread and connection per store: ``LISTEN``, mark new subscriptions' keys watched,
    and call back the subscribers of each key a notification names; on a lost connection,
    mark every subscription not alive, reconnect (backing off up to 2 s), and call each once."""

    POLL = 0.05  # seconds between looks at new subscriptions and the stop flag

    def __init__(self, store: PostgresStore) -> None:
        self.url = store.url
        self.kwargs = {**store._connect_kwargs(), "application_name": "guardrails-listener"}
        self.channel = f"{store.prefix}changes"
        self.watch = (
            f"INSERT INTO {store._t}watched (key) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1"
        )
        # A key watched for the first time: wait out writers already past the trigger's look
        # at the watched table (their change would go unannounced), before the first callback.
        self.settle = f"LOCK TABLE {store._t}counters, {store._t}documents IN SHARE MODE"
        self._subs: dict[str, list[tuple[Subscription, Callable[[], None]]]] = {}
        self._pending: list[tuple[Subscription, Callable[[], None]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="guardrails-pg-listen", daemon=True)
        self._thread.start()

    def add(self, sub: Subscription, callback: Callable[[], None]) -> None:
        with self._lock:
            self._pending.append((sub, callback))

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            self._pending = [p for p in self._pending if p[0] is not sub]
            for digest, subs in list(self._subs.items()):
                self._subs[digest] = [p for p in subs if p[0] is not sub]

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            everyone = [p[0] for subs in self._subs.values() for p in subs] + [
                p[0] for p in self._pending
            ]
        for sub in everyone:
            sub.close()
        self._thread.join(timeout=5)

    def _all(self) -> list[tuple[Subscription, Callable[[], None]]]:
        with self._lock:
            return [p for subs in self._subs.values() for p in subs]

    def _loop(self) -> None:
        delay = 0.02
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, **self.kwargs) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    delay = 0.02
                    for sub, callback in self._all():  # changes made while we were away
                        _call(callback)
                        sub.alive = True
                    while not self._stop.is_set():
                        self._confirm(conn)
                        for note in conn.notifies(timeout=self.POLL):
                            with self._lock:
                                callbacks = [cb for _, cb in self._subs.get(note.payload, ())]
                            for callback in callbacks:
                                _call(callback)
            except psycopg.Error:
                pass
            finally:
                for sub, _ in self._all():
                    sub.alive = False
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, 2.0)

    def _confirm(self, conn: psycopg.Connection[Any]) -> None:
        """Watch the keys of new subscriptions, then call each once and mark it alive."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                sub, callback = self._pending[0]
            if not sub.closed:
                with conn.transaction():
                    if conn.execute(self.watch, (_key(sub.key),)).fetchone():
                        conn.execute(self.settle)
            digest = hashlib.sha256(_key(sub.key)).hexdigest()
            with self._lock:
                confirmed = bool(self._pending) and self._pending[0][0] is sub
                if confirmed:
                    self._pending.pop(0)
                    if not sub.closed:
                        self._subs.setdefault(digest, []).append((sub, callback))
            if confirmed and not sub.closed:
                _call(callback)
                sub.alive = True


def _call(callback: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # a subscriber's bug must not stop the listener
        callback()


def _drop(pool: AsyncConnectionPool) -> None:
    """Close the idle connections of an async pool whose event loop is closed (nothing can
    await its ``close()`` any more), so the server gets them back now, not at garbage
    collection."""
    for conn in list(getattr(pool, "_pool", ())):
        with contextlib.suppress(Exception):
            conn.pgconn.finish()


def _close_on(loop: asyncio.AbstractEventLoop, pool: AsyncConnectionPool) -> None:
    if loop.is_closed():
        _drop(pool)
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        loop.create_task(pool.close())
    elif loop.is_running():
        asyncio.run_coroutine_threadsafe(pool.close(), loop)
    else:
        loop.run_until_complete(pool.close())


def _connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` says the connection (not the statement) failed."""
    if isinstance(exc, psycopg.errors.QueryCanceled | psycopg.errors.LockNotAvailable):
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _sweep(pool: ConnectionPool) -> None:
    """Drop the pool's other broken connections (the server restarted: they all are)."""
    with contextlib.suppress(Exception):
        pool.check()


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return f"the server took too long (statement_timeout): {first}"
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return f"waited too long for a lock (lock_timeout): {first}"
    return f"{type(exc).__name__}: {first}"


def _redacted(url: str) -> str:
    """``url`` without its password."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.scheme not in ("postgresql", "postgres"):
        return re.sub(r"password\s*=\s*\S+", "password=***", url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = urlencode(
        [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="/:"
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _after_fork(store: weakref.ref[PostgresStore]) -> None:
    alive = store()
    if alive is not None:
        alive._forget_connections()
