"""Where the guard keeps what agents, threads and processes share.

``Store`` is the contract; each backend is a module of its own: ``MemoryStore`` (one
process, the default) and ``SQLiteStore`` (one machine, several processes). ``open_store``
builds one from a URL, as found in a configuration file:

    >>> open_store("memory://")
    MemoryStore(counters=0, windows=0, sets=0, documents=0)
    >>> open_store("sqlite://:memory:")
    SQLiteStore(':memory:')
"""

from __future__ import annotations

from collections.abc import Callable

from ._base import Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = ["MemoryStore", "SQLiteStore", "Store", "open_store"]


def open_store(url: str) -> Store:
    """The store a URL names.

    - ``memory://``: a new ``MemoryStore``.
    - ``sqlite:///relative/file.db``, ``sqlite:////absolute/file.db``: a ``SQLiteStore``;
      as in SQLAlchemy, the path is what follows the third slash.
    - ``sqlite://:memory:`` (or ``sqlite:///:memory:``): a private in-memory SQLite store.
    """
    scheme, separator, rest = url.partition("://")
    opener = _OPENERS.get(scheme) if separator else None
    if opener is None:
        raise ValueError(f"unsupported store URL {url!r}: {_SUPPORTED}")
    if "?" in rest or "#" in rest:
        raise ValueError(f"store URL {url!r}: query strings and fragments are not supported")
    return opener(url, rest)


def _open_memory(url: str, rest: str) -> Store:
    if rest:
        raise ValueError(f"store URL {url!r}: a memory store takes nothing after 'memory://'")
    return MemoryStore()


def _open_sqlite(url: str, rest: str) -> Store:
    if rest == ":memory:":
        return SQLiteStore(":memory:")
    if not rest.startswith("/") or rest == "/":
        raise ValueError(
            f"store URL {url!r}: expected sqlite:///relative/path.db, "
            "sqlite:////absolute/path.db or sqlite://:memory:"
        )
    return SQLiteStore(rest[1:])


# A backend slots in here: its scheme(s) and a function from (url, rest after "://").
_OPENERS: dict[str, Callable[[str, str], Store]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
}
_SUPPORTED = "supported are memory://, sqlite:///path/to/file.db and sqlite://:memory:"
