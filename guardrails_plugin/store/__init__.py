"""Where the guard keeps what agents, threads and processes share.

``Store`` is the contract; each backend is a module of its own: ``MemoryStore`` (one
process, the default), ``SQLiteStore`` (one machine, several processes), ``RedisStore``
and ``PostgresStore`` (many hosts; imported on first use, they need ``redis`` and
``psycopg``). ``open_store``
builds one from a URL, as found in a configuration file:

    >>> open_store("memory://")
    MemoryStore(counters=0, windows=0, sets=0, documents=0)
    >>> open_store("sqlite://:memory:")
    SQLiteStore(':memory:')
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import StoreError
from ._base import Store, Subscription, Watch
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store", "Subscription", "Watch", "open_store"]


def open_store(url: str, *, create: bool = True) -> Store:
    """The store a URL names.

    ``create=False`` opens only a store that exists (``StoreError`` otherwise): what a
    command acting on the guards' store needs, since a new empty store is a store no guard
    reads. A ``memory://`` store never exists beforehand, so it is refused then too.

    - ``memory://``: a new ``MemoryStore``.
    - ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db``: a ``SQLiteStore``;
      as in SQLAlchemy, the path is what follows the third slash.
    - ``sqlite://:memory:`` (or ``sqlite:///:memory:``): a private in-memory SQLite store.
    - ``redis://[user:password@]host:port/db``, ``rediss://...`` (TLS): a ``RedisStore``
      (key prefix ``guardrails:``). ``create=False`` requires the server to answer and to
      hold a store made by a ``create=True`` open (``guardrails-plugin init``).
    - ``postgresql://user@host:port/db`` (or ``postgres://``): a ``PostgresStore``; libpq's
      query parameters pass through (``?sslmode=require``), and ``schema=NAME`` picks the
      schema the tables live in. With ``create=False`` the store must be set up already.
    """
    scheme, separator, rest = url.partition("://")
    opener = _OPENERS.get(scheme) if separator else None
    if opener is None:
        raise ValueError(f"unsupported store URL {url!r}: {_SUPPORTED}")
    if scheme not in ("postgresql", "postgres") and ("?" in rest or "#" in rest):
        raise ValueError(f"store URL {url!r}: query strings and fragments are not supported")
    return opener(url, rest, create)


def _open_memory(url: str, rest: str, create: bool) -> Store:
    if rest:
        raise ValueError(f"store URL {url!r}: a memory store takes nothing after 'memory://'")
    if not create:
        raise StoreError(f"store URL {url!r}: a new memory store holds nothing to act on")
    return MemoryStore()


def _open_sqlite(url: str, rest: str, create: bool) -> Store:
    if rest == ":memory:":
        if not create:
            raise StoreError(f"store URL {url!r}: a new in-memory store holds nothing to act on")
        return SQLiteStore(":memory:")
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"store URL {url!r}: expected sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite://:memory:"
        )
    return SQLiteStore(rest[1:], create=create)


def _open_postgres(url: str, rest: str, create: bool) -> Store:
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            "store URL: PostgreSQL needs psycopg 3 and "
            f"psycopg_pool (pip install 'guardrails-plugin[postgres]'): {exc}"
        ) from exc
    base, _, query = url.partition("?")
    base, _, fragment = base.partition("#")
    if fragment:
        raise ValueError("store URL: fragments are not supported")
    schema = None
    kept = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        if name == "schema":
            schema = value
        else:
            kept.append(part)
    dsn = base + ("?" + "&".join(kept) if kept else "")
    return PostgresStore(dsn, schema=schema, create=create)


def _open_redis(url: str, rest: str, create: bool) -> Store:
    if not rest or rest.startswith("/"):
        raise ValueError(f"store URL {url!r}: expected redis://host:port/db")
    from .redis import RedisStore  # the redis client is imported only when used

    return RedisStore(url, create=create)


# A backend slots in here: its scheme(s) and a function from (url, rest after "://", create).
_OPENERS: dict[str, Callable[[str, str, bool], Store]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "redis": _open_redis,
    "rediss": _open_redis,
    "postgresql": _open_postgres,
    "postgres": _open_postgres,
}
_SUPPORTED = (
    "supported are memory://, sqlite:///path/to/file.db, sqlite://:memory:, "
    "redis://host:port/db (rediss:// for TLS) and postgresql://user@host:port/database"
)
