"""A small, real world for the rollback tests, and the worker process the crash tests kill.

``World`` holds real local side effects (files in a directory, rows in a SQLite file) and
the compensations that undo them; every undo appends a line to an invocation log (written
with ``O_APPEND``, so it survives SIGKILL) and marks its effect key in the ``undone`` table
(``INSERT OR IGNORE``). ``build_graph`` is a LangGraph ``StateGraph`` whose one node runs the
next scripted action per step and writes to the ``Journal`` as a guard would: a safe point
at the checkpoint the step starts from when the action is risky, a violation when it breaks
a rule, and the effect once the tool ran.

Run as a script (``python rollback_worker.py ROOT THREAD``) or through ``rollback_in_child``,
it rolls the thread back, using the SQLite checkpointer and store at ``ROOT/graph.db``.
"""

from __future__ import annotations

import argparse
import operator
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from guardrails_plugin import ToolCall
from guardrails_plugin.rollback import Compensations, Journal, SideEffect

LIMITS: RunnableConfig = {"recursion_limit": 500}


class Crash(BaseException):
    """Stands for the process dying: not an ``Exception``, so the undo does not catch it."""


# -- the world ------------------------------------------------------------------------------


class World:
    """Files under ``root/files``, rows in ``root/world.db``, and their undos."""

    def __init__(self, root: Path, *, undo_delay: float = 0.0) -> None:
        self.root = root
        self.files = root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.db_path = root / "world.db"
        self.log_path = root / "undo.log"
        self.undo_delay = undo_delay
        # Hooks the tests set: called with the effect before / after an undo did its work.
        self.before_undo: Callable[[SideEffect], None] | None = None
        self.after_undo: Callable[[SideEffect], None] | None = None
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS rows (id TEXT PRIMARY KEY, value TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS undone (key TEXT PRIMARY KEY, tool TEXT)")
            db.execute("CREATE TABLE IF NOT EXISTS charges (id TEXT PRIMARY KEY, amount REAL)")
            db.execute("CREATE TABLE IF NOT EXISTS refunds (charge TEXT, amount REAL)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=10, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    # -- tools (the side effects) ---------------------------------------------------------

    def run(self, call: ToolCall) -> Any:
        args = call.args
        if call.tool == "write_file":
            path = self.files / args["path"]
            previous = path.read_text() if path.exists() else None
            path.write_text(args["text"])
            return previous
        if call.tool == "insert_row":
            with self._db() as db:
                db.execute("INSERT INTO rows VALUES (?, ?)", (args["id"], args["value"]))
            return args["id"]
        if call.tool == "charge":
            with self._db() as db:
                db.execute("INSERT INTO charges VALUES (?, ?)", (args["id"], args["amount"]))
            return args["id"]
        if call.tool == "send_email":
            with (self.root / "outbox.txt").open("a") as outbox:
                outbox.write(f"{args['to']}: {args['body']}\n")
            return "sent"
        raise ValueError(f"unknown tool {call.tool!r}")

    # -- compensations --------------------------------------------------------------------

    def compensations(self, *, asynchronous: bool = False) -> Compensations:
        """Undo for write_file, insert_row (idempotent) and charge (a refund: not
        idempotent). send_email has none."""
        compensations = Compensations()
        undos: dict[str, Callable[[SideEffect], None]] = {
            "write_file": self._unwrite,
            "insert_row": self._uninsert,
            "charge": self._refund,
        }
        captures = {
            "write_file": lambda args, result: {"path": args["path"], "previous": result},
            "insert_row": lambda args, result: {"id": result},
            "charge": lambda args, result: {"id": result, "amount": args["amount"]},
        }
        for tool, undo in undos.items():
            wrapped = self._logged(undo)
            if asynchronous:
                wrapped = _as_async(wrapped)
            compensations.register(
                tool, wrapped, capture=captures[tool], idempotent=tool != "charge"
            )
        return compensations

    def _logged(self, undo: Callable[[SideEffect], None]) -> Callable[[SideEffect], None]:
        def logged(effect: SideEffect) -> None:
            line = f"{effect.key} {effect.tool} {effect.attempts}\n".encode()
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
            if self.before_undo is not None:
                self.before_undo(effect)
            if self.undo_delay:
                time.sleep(self.undo_delay)
            undo(effect)
            with self._db() as db:
                db.execute("INSERT OR IGNORE INTO undone VALUES (?, ?)", (effect.key, effect.tool))
            if self.after_undo is not None:
                self.after_undo(effect)

        logged.__qualname__ = f"World.{undo.__name__}"
        return logged

    def _unwrite(self, effect: SideEffect) -> None:
        path = self.files / effect.data["path"]
        if effect.data["previous"] is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(effect.data["previous"])

    def _uninsert(self, effect: SideEffect) -> None:
        with self._db() as db:
            db.execute("DELETE FROM rows WHERE id = ?", (effect.data["id"],))

    def _refund(self, effect: SideEffect) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO refunds VALUES (?, ?)", (effect.data["id"], effect.data["amount"])
            )

    # -- what the tests look at -----------------------------------------------------------

    def file_names(self) -> list[str]:
        return sorted(path.name for path in self.files.iterdir())

    def rows(self) -> list[str]:
        with self._db() as db:
            return [row for (row,) in db.execute("SELECT id FROM rows ORDER BY id")]

    def undone_keys(self) -> list[str]:
        with self._db() as db:
            return [key for (key,) in db.execute("SELECT key FROM undone ORDER BY key")]

    def refunds(self) -> list[str]:
        with self._db() as db:
            return [charge for (charge,) in db.execute("SELECT charge FROM refunds")]

    def invocations(self) -> list[tuple[str, str, int]]:
        """Every undo call, in order: (effect key, tool, attempt)."""
        if not self.log_path.exists():
            return []
        out = []
        for line in self.log_path.read_text().splitlines():
            key, tool, attempt = line.split()
            out.append((key, tool, int(attempt)))
        return out


def _as_async(undo: Callable[[SideEffect], None]) -> Callable[[SideEffect], Any]:
    async def undo_async(effect: SideEffect) -> None:
        undo(effect)

    undo_async.__qualname__ = getattr(undo, "__qualname__", "undo") + "_async"
    return undo_async


# -- the graph ------------------------------------------------------------------------------


class Run(TypedDict, total=False):
    todo: list[dict[str, Any]]
    done: Annotated[list[str], operator.add]


def action(
    name: str, tool: str, /, *, risky: bool = True, violates: str | None = None, **args: Any
) -> dict[str, Any]:
    """One scripted step: call ``tool`` with ``args``; ``violates`` names a broken rule."""
    return {"name": name, "tool": tool, "args": args, "risky": risky, "violates": violates}


def build_graph(
    world: World,
    journal: Journal,
    compensations: Compensations,
    checkpointer: BaseCheckpointSaver[Any],
    *,
    asynchronous: bool = False,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``act`` runs one action per step, then loops until ``todo`` is empty."""

    def begin(state: Run, config: RunnableConfig) -> tuple[str, str, ToolCall, dict[str, Any]]:
        configurable = config["configurable"]
        # The checkpoint this step started from (langgraph.pregel._algo.prepare_single_task
        # puts it in checkpoint_map under the parent namespace, "" for the root graph).
        checkpoint = configurable["checkpoint_map"][""]
        todo = state["todo"][0]
        call = ToolCall(todo["tool"], todo["args"], agent="worker", call_id=todo["name"])
        return configurable["thread_id"], checkpoint, call, todo

    def end(state: Run, todo: dict[str, Any]) -> Run:
        return {"todo": state["todo"][1:], "done": [todo["name"]]}

    def act(state: Run, config: RunnableConfig) -> Run:
        thread, checkpoint, call, todo = begin(state, config)
        if todo["risky"]:
            journal.mark_safe_point(thread, checkpoint, "", tool=call.tool, reason="risky step")
        if todo["violates"]:
            journal.mark_violation(
                thread, checkpoint, "", rule=todo["violates"], reason=todo["name"], tool=call.tool
            )
        result = world.run(call)
        journal.record_effect(
            thread, checkpoint, "", call, compensations.capture(call.tool, call.args, result)
        )
        return end(state, todo)

    async def aact(state: Run, config: RunnableConfig) -> Run:
        thread, checkpoint, call, todo = begin(state, config)
        if todo["risky"]:
            await journal.amark_safe_point(thread, checkpoint, "", tool=call.tool, reason="risky")
        if todo["violates"]:
            await journal.amark_violation(
                thread, checkpoint, "", rule=todo["violates"], reason=todo["name"], tool=call.tool
            )
        result = world.run(call)
        await journal.arecord_effect(
            thread, checkpoint, "", call, compensations.capture(call.tool, call.args, result)
        )
        return end(state, todo)

    def more(state: Run) -> str:
        return "act" if state["todo"] else END

    builder = StateGraph(Run)
    builder.add_node("act", aact if asynchronous else act)
    builder.add_conditional_edges(START, more, ["act", END])
    builder.add_conditional_edges("act", more, ["act", END])
    return builder.compile(checkpointer=checkpointer)


# -- the worker -----------------------------------------------------------------------------

KILL_POINTS = ("none", "before_undo", "after_undo", "before_restore", "before_record", "stall")


def _die(*_: object, **__: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def rollback_in_child(root: str, thread: str, kill: str = "none", at: int = 0) -> None:
    """Roll ``thread`` back with everything opened from ``root``; with ``kill``, SIGKILL this
    process at that point (for undo hooks, at the ``at``-th undo call of this process).
    ``stall``: hang in the ``at``-th undo call, once it is logged, for the parent to kill."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    from guardrails_plugin.langgraph._recovery import Recovery
    from guardrails_plugin.store import SQLiteStore

    world = World(Path(root), undo_delay=0.004)
    calls = 0

    def count(hook: str) -> Callable[[SideEffect], None]:
        def maybe_die(effect: SideEffect) -> None:
            nonlocal calls
            calls += hook == "before_undo"  # count each call once, at its start
            if kill == hook and calls >= at:
                _die()
            if kill == "stall" and hook == "before_undo" and calls >= at:
                time.sleep(120)

        return maybe_die

    world.before_undo = count("before_undo")
    world.after_undo = count("after_undo")
    db = sqlite3.connect(Path(root) / "graph.db", check_same_thread=False, isolation_level=None)
    journal = Journal(SQLiteStore(Path(root) / "graph.db"))
    compensations = world.compensations()
    graph = build_graph(world, journal, compensations, SqliteSaver(db))
    if kill == "before_restore":
        graph.update_state = _die  # type: ignore[method-assign,assignment]
    if kill == "before_record":
        journal.record_rollback = _die  # type: ignore[method-assign]
    report = Recovery(graph, journal, compensations).rollback(
        {"configurable": {"thread_id": thread}}
    )
    print(report, flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("thread")
    parser.add_argument("--kill", choices=KILL_POINTS, default="none")
    parser.add_argument("--at", type=int, default=0)
    options = parser.parse_args(argv)
    rollback_in_child(options.root, options.thread, options.kill, options.at)


if __name__ == "__main__":
    main(sys.argv[1:])
