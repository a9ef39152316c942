"""A thread's parent links, read one checkpoint at a time without loading any state.

Finding a rollback target needs to know, for a handful of checkpoints, whether each is still
in the thread's history and which checkpoint it came from. LangGraph's ``list`` and
``get_tuple`` give that only with the whole checkpoint: every saver deserializes the state
(and ``list`` every state of the history, so a listing grows with the history's length times
the state's size — quadratic for a message list). So for the savers LangGraph ships, the
link is read where the saver keeps it: the ``parent_checkpoint_id`` column of the
``checkpoints`` table (SQLite, Postgres: one indexed row by primary key) or the third item
of ``InMemorySaver.storage[thread][ns][checkpoint_id]``. Any other saver is asked with
``get_tuple`` (one checkpoint's state per question, still flat in the history's length).

A saver-specific read that fails for a reason other than the connection (a schema this
code does not know) falls back to ``get_tuple``: slower, never wrong.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver

Link = tuple[bool, str | None]
"""``(True, parent id or None)`` for a checkpoint in the history; ``(False, None)`` else."""

Path = list[tuple[str, str | None]]
"""A checkpoint and its ancestors, newest first, each with its parent id."""

_DEEPEST = 10_000_000  # a bound on a walk, should a damaged table hold a cycle

_SQLITE = (
    "SELECT parent_checkpoint_id FROM checkpoints "
    "WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ?"
)
_SQLITE_ANY = "SELECT 1 FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' LIMIT 1"
_POSTGRES = (
    "SELECT parent_checkpoint_id FROM checkpoints "
    "WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s"
)
_POSTGRES_ANY = (
    "SELECT 1 AS found FROM checkpoints WHERE thread_id = %s AND checkpoint_ns = '' LIMIT 1"
)

# The walk up the parent links in one query: from the start checkpoint, parent after parent,
# until a checkpoint among the stops (included) or the root. Each step is a primary-key look-up.
_SQLITE_PATH = """
WITH RECURSIVE path(id, parent, depth) AS (
    SELECT checkpoint_id, parent_checkpoint_id, 0 FROM checkpoints
     WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id = ?
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, path.depth + 1
      FROM path JOIN checkpoints AS c
        ON c.thread_id = ? AND c.checkpoint_ns = '' AND c.checkpoint_id = path.parent
     WHERE path.id NOT IN (SELECT value FROM json_each(?)) AND path.depth < ?
)
SELECT id, parent FROM path ORDER BY depth
"""
_POSTGRES_PATH = """
WITH RECURSIVE path(id, parent, depth) AS (
    SELECT checkpoint_id, parent_checkpoint_id, 0 FROM checkpoints
     WHERE thread_id = %s AND checkpoint_ns = '' AND checkpoint_id = %s
    UNION ALL
    SELECT c.checkpoint_id, c.parent_checkpoint_id, path.depth + 1
      FROM path JOIN checkpoints AS c
        ON c.thread_id = %s AND c.checkpoint_ns = '' AND c.checkpoint_id = path.parent
     WHERE path.id <> ALL(%s::text[]) AND path.depth < %s
)
SELECT id, parent FROM path ORDER BY depth
"""

_KINDS = {
    "langgraph.checkpoint.memory.InMemorySaver": "memory",
    "langgraph.checkpoint.sqlite.SqliteSaver": "sqlite",
    "langgraph.checkpoint.sqlite.aio.AsyncSqliteSaver": "async-sqlite",
    "langgraph.checkpoint.postgres.PostgresSaver": "postgres",
    "langgraph.checkpoint.postgres.aio.AsyncPostgresSaver": "async-postgres",
}


def saver_kind(saver: BaseCheckpointSaver[Any]) -> str:
    """Which known saver ``saver`` is (or derives from); ``"generic"`` for any other."""
    for cls in type(saver).__mro__:
        kind = _KINDS.get(f"{cls.__module__}.{cls.__qualname__}")
        if kind is not None:
            return kind
    return "generic"


def _config(thread: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _from_tuple(saved: Any, checkpoint_id: str) -> Link:
    if saved is None or saved.config["configurable"].get("checkpoint_id") != checkpoint_id:
        return False, None
    parent = saved.parent_config
    return True, (str(parent["configurable"]["checkpoint_id"]) if parent else None)


def _from_row(row: Any) -> Link:
    if row is None:
        return False, None
    parent = row["parent_checkpoint_id"] if isinstance(row, dict) else row[0]
    return True, (str(parent) if parent else None)


def _path_rows(rows: Any) -> Path:
    out: Path = []
    for row in rows:
        found, parent = (row["id"], row["parent"]) if isinstance(row, dict) else row
        out.append((str(found), str(parent) if parent else None))
    return out


def _walked(path: Path, start: str, stops: frozenset[str]) -> Path:
    """``path`` cut where a walk would stop: at a stop, or where a cycle closes."""
    seen: set[str] = set()
    out: Path = []
    for found, parent in path:
        if found in seen:
            break
        seen.add(found)
        out.append((found, parent))
        if found in stops:
            break
    return out if out and out[0][0] == start else []


def _schema_problem(exc: Exception) -> bool:
    """An error that says the table is not what this code expects (not a dead connection)."""
    name = type(exc).__name__
    return name in {"OperationalError", "ProgrammingError", "UndefinedTable", "UndefinedColumn"}


class ParentLinks:
    """Reads one thread's parent links from ``saver`` (see the module doc)."""

    def __init__(self, saver: BaseCheckpointSaver[Any], thread: str) -> None:
        self.saver = saver
        self.thread = thread
        self.kind = saver_kind(saver)

    # -- sync ---------------------------------------------------------------------------

    def parent(self, checkpoint_id: str) -> Link:
        """Whether ``checkpoint_id`` is in the thread's root history, and its parent."""
        saver: Any = self.saver
        if self.kind == "memory":
            saved = saver.storage.get(self.thread, {}).get("", {}).get(checkpoint_id)
            return (False, None) if saved is None else (True, saved[2] or None)
        try:
            if self.kind == "sqlite":
                with saver.cursor(transaction=False) as cur:
                    cur.execute(_SQLITE, (self.thread, checkpoint_id))
                    return _from_row(cur.fetchone())
            if self.kind == "postgres":
                with saver._cursor() as cur:
                    cur.execute(_POSTGRES, (self.thread, checkpoint_id))
                    return _from_row(cur.fetchone())
        except Exception as exc:
            if not _schema_problem(exc):
                raise
        return _from_tuple(saver.get_tuple(_config(self.thread, checkpoint_id)), checkpoint_id)

    def path(self, start: str, stops: frozenset[str]) -> Path:
        """``start`` and its ancestors, newest first, up to the first one in ``stops``
        (included) or the root; empty when ``start`` is not in the history. One query with
        SQLite and Postgres."""
        saver: Any = self.saver
        try:
            if self.kind == "sqlite":
                params = (self.thread, start, self.thread, json.dumps(sorted(stops)), _DEEPEST)
                with saver.cursor(transaction=False) as cur:
                    cur.execute(_SQLITE_PATH, params)
                    return _walked(_path_rows(cur.fetchall()), start, stops)
            if self.kind == "postgres":
                params2 = (self.thread, start, self.thread, sorted(stops), _DEEPEST)
                with saver._cursor() as cur:
                    cur.execute(_POSTGRES_PATH, params2)
                    return _walked(_path_rows(cur.fetchall()), start, stops)
        except Exception as exc:
            if not _schema_problem(exc):
                raise
        out: Path = []
        current: str | None = start
        while current is not None and len(out) <= _DEEPEST:
            exists, parent = self.parent(current)
            if not exists:
                break
            out.append((current, parent))
            if current in stops or parent in {found for found, _ in out}:
                break
            current = parent
        return _walked(out, start, stops)

    async def apath(self, start: str, stops: frozenset[str]) -> Path:
        saver: Any = self.saver
        try:
            if self.kind == "async-sqlite":
                params = (self.thread, start, self.thread, json.dumps(sorted(stops)), _DEEPEST)
                await saver.setup()
                async with saver.lock, saver.conn.cursor() as cur:
                    await cur.execute(_SQLITE_PATH, params)
                    return _walked(_path_rows(await cur.fetchall()), start, stops)
            if self.kind == "async-postgres":
                params2 = (self.thread, start, self.thread, sorted(stops), _DEEPEST)
                async with saver._cursor() as cur:
                    await cur.execute(_POSTGRES_PATH, params2)
                    return _walked(_path_rows(await cur.fetchall()), start, stops)
        except Exception as exc:
            if not _schema_problem(exc):
                raise
        out: Path = []
        current: str | None = start
        while current is not None and len(out) <= _DEEPEST:
            exists, parent = await self.aparent(current)
            if not exists:
                break
            out.append((current, parent))
            if current in stops or parent in {found for found, _ in out}:
                break
            current = parent
        return _walked(out, start, stops)

    def any(self) -> bool:
        """Whether the thread has any checkpoint (asked only to explain a failure)."""
        saver: Any = self.saver
        if self.kind == "memory":
            return bool(saver.storage.get(self.thread, {}).get("", {}))
        try:
            if self.kind == "sqlite":
                with saver.cursor(transaction=False) as cur:
                    cur.execute(_SQLITE_ANY, (self.thread,))
                    return cur.fetchone() is not None
            if self.kind == "postgres":
                with saver._cursor() as cur:
                    cur.execute(_POSTGRES_ANY, (self.thread,))
                    return cur.fetchone() is not None
        except Exception as exc:
            if not _schema_problem(exc):
                raise
        return saver.get_tuple(_config(self.thread)) is not None

    # -- async --------------------------------------------------------------------------

    async def aparent(self, checkpoint_id: str) -> Link:
        saver: Any = self.saver
        if self.kind == "memory":
            return self.parent(checkpoint_id)
        try:
            if self.kind == "async-sqlite":
                await saver.setup()
                async with saver.lock, saver.conn.cursor() as cur:
                    await cur.execute(_SQLITE, (self.thread, checkpoint_id))
                    return _from_row(await cur.fetchone())
            if self.kind == "async-postgres":
                async with saver._cursor() as cur:
                    await cur.execute(_POSTGRES, (self.thread, checkpoint_id))
                    return _from_row(await cur.fetchone())
        except Exception as exc:
            if not _schema_problem(exc):
                raise
        saved = await saver.aget_tuple(_config(self.thread, checkpoint_id))
        return _from_tuple(saved, checkpoint_id)

    async def aany(self) -> bool:
        saver: Any = self.saver
        if self.kind == "memory":
            return self.any()
        try:
            if self.kind == "async-sqlite":
                await saver.setup()
                async with saver.lock, saver.conn.cursor() as cur:
                    await cur.execute(_SQLITE_ANY, (self.thread,))
                    return await cur.fetchone() is not None
            if self.kind == "async-postgres":
                async with saver._cursor() as cur:
                    await cur.execute(_POSTGRES_ANY, (self.thread,))
                    return await cur.fetchone() is not None
        except Exception as exc:
            if not _schema_problem(exc):
                raise
        return await saver.aget_tuple(_config(self.thread)) is not None
