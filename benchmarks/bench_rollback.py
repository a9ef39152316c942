"""Rollback time vs the thread's history length and its number of side effects to undo.

Run:  python benchmarks/bench_rollback.py [--history 10,100,1000] [--effects 1,100,1000]
                                          [--repeats 5] [--backend sqlite|memory]

For each history length H and effect count N, on a new thread each repeat:

- a graph (one node, ``{"i": int}`` state) runs H steps: H + 2 checkpoints;
- N rows are inserted into a SQLite "world" file and N effects recorded with
  ``Journal.record_effect`` (what GuardedToolNode does after a compensated tool ran),
  spread over the checkpoints after the target; the compensation deletes its row
  (``DELETE ... WHERE id = ?``, autocommit; WAL, ``synchronous=NORMAL`` as SQLiteStore);
- ``Recovery(graph, journal, compensations).rollback(config, to=<checkpoint of step 1>)``
  is timed: it reads the target checkpoint, reads the journal, runs the N compensations
  newest first
  (two journal writes each: ``undoing``, then ``undone``), forks the thread back to the
  target, checks the state and records the rollback. The report must be ``ok`` and the
  world's table empty.

Backends: ``sqlite`` (default): ``SqliteSaver`` and ``SQLiteStore``, files in a temp dir;
``memory``: ``InMemorySaver`` and ``MemoryStore`` (the world stays a SQLite file).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from bench_langgraph import versions
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

import guardrails_plugin.langgraph._recovery as recovery_module
from guardrails_plugin import MemoryStore, SQLiteStore, ToolCall
from guardrails_plugin.langgraph import Recovery
from guardrails_plugin.rollback import Compensations, Journal


class Counter(TypedDict):
    i: int
    limit: int


class Timer:
    """Time spent in the parts of a rollback (cleared before each one)."""

    def __init__(self) -> None:
        self.parts: dict[str, float] = {}

    def add(self, part: str, seconds: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + seconds

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(part, time.perf_counter() - t0)

        return timed


TIMER = Timer()
# Recovery.rollback looks undo_effects up in its module at call time: time it there.
recovery_module.undo_effects = TIMER.wrap("undo", recovery_module.undo_effects)


class TimedRecovery(Recovery):
    def _target(self, config: Any, to: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return super()._target(config, to)
        finally:
            TIMER.add("target", time.perf_counter() - t0)


def counter_graph(checkpointer: Any) -> Any:
    """One node, looping until ``i == limit``: one checkpoint per step."""

    def step(state: Counter) -> dict[str, int]:
        return {"i": state["i"] + 1}

    builder = StateGraph(Counter)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["i"] >= s["limit"] else "step")
    return builder.compile(checkpointer=checkpointer)


class Bench:
    def __init__(self, tmp: Path, backend: str) -> None:
        self.world = sqlite3.connect(tmp / "world.db", isolation_level=None)
        self.world.execute("PRAGMA journal_mode=WAL")
        self.world.execute("PRAGMA synchronous=NORMAL")  # as SQLiteStore: no fsync per commit
        self.world.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, thread TEXT)")
        self.closers: list[Callable[[], Any]] = [self.world.close]
        if backend == "sqlite":
            connection = sqlite3.connect(tmp / "checkpoints.db", check_same_thread=False)
            self.closers.append(connection.close)
            checkpointer: Any = SqliteSaver(connection)
            store: Any = SQLiteStore(tmp / "journal.db")
            self.closers.append(store.close)
        else:
            checkpointer, store = InMemorySaver(), MemoryStore()
        # Recovery deletes the done-ledger entries of the calls it undid: time those deletes.
        store.delete = TIMER.wrap("ledger", store.delete)
        self.journal = Journal(store)
        self.compensations = Compensations()
        self.compensation_seconds = 0.0

        @self.compensations.undo("insert_row", capture=lambda args, result: {"id": args["id"]})
        def delete_row(effect: Any) -> None:  # a SideEffect
            t0 = time.perf_counter()
            self.world.execute("DELETE FROM rows WHERE id = ?", (effect.data["id"],))
            self.compensation_seconds += time.perf_counter() - t0

        self.graph = counter_graph(checkpointer)
        self.recovery = TimedRecovery(self.graph, self.journal, self.compensations)
        self.rows = 0
        self.threads = 0

    def close(self) -> None:
        for close in reversed(self.closers):
            close()

    def thread(self, history: int, effects: int) -> tuple[dict[str, Any], str, int]:
        """A new thread: ``history`` steps, ``effects`` rows and effects. Returns its
        config, the target (the checkpoint before step 1) and its number of checkpoints."""
        self.threads += 1
        thread = f"thread-{self.threads}"
        config: dict[str, Any] = {
            "configurable": {"thread_id": thread},
            "recursion_limit": history + 10,
        }
        self.graph.invoke({"i": 0, "limit": history}, config=config)
        snapshots = self.graph.get_state_history(config)
        steps = [s for s in snapshots if s.next == ("step",)][::-1]  # oldest first
        ids = [s.config["configurable"]["checkpoint_id"] for s in steps]
        rows = range(self.rows, self.rows + effects)
        self.rows += effects
        self.world.execute("BEGIN")
        self.world.executemany(
            "INSERT INTO rows (id, thread) VALUES (?, ?)", [(r, thread) for r in rows]
        )
        self.world.execute("COMMIT")
        for k, row in enumerate(rows):  # spread over the steps, the target's included
            call = ToolCall("insert_row", {"id": row}, call_id=f"call-{row}", thread_id=thread)
            data = self.compensations.capture("insert_row", dict(call.args), None)
            self.journal.record_effect(thread, ids[k * len(ids) // effects], "", call, data)
        return config, ids[0], len(list(self.graph.get_state_history(config)))

    def rollback(self, config: dict[str, Any], target: str, effects: int) -> dict[str, float]:
        TIMER.parts.clear()
        self.compensation_seconds = 0.0
        t0 = time.perf_counter()
        report = self.recovery.rollback(config, to=target)
        total = time.perf_counter() - t0
        assert report.ok, str(report)
        assert len(report.undo.undone) == effects, len(report.undo.undone)
        thread = config["configurable"]["thread_id"]
        (left,) = self.world.execute("SELECT count(*) FROM rows WHERE thread = ?", (thread,))
        assert left == (0,), left
        parts = dict(TIMER.parts)
        return {
            "total": total,
            "target": parts["target"],
            "undo": parts["undo"],
            "compensations": self.compensation_seconds,
            "ledger": parts.get("ledger", 0.0),
            "rest": total - parts["target"] - parts["undo"] - parts.get("ledger", 0.0),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--history", default="10,100,1000", help="history lengths, in steps")
    parser.add_argument("--effects", default="1,100,1000", help="effects to undo")
    parser.add_argument("--repeats", type=int, default=5, help="rollbacks per cell (new threads)")
    parser.add_argument("--backend", choices=["sqlite", "memory"], default="sqlite")
    opts = parser.parse_args()
    histories = [int(x) for x in opts.history.split(",")]
    effect_counts = [int(x) for x in opts.effects.split(",")]

    results: dict[tuple[int, int], list[dict[str, float]]] = {}
    checkpoints: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), opts.backend)
        try:
            config, target, _ = bench.thread(10, 10)  # warm up
            bench.rollback(config, target, 10)
            for _ in range(opts.repeats):  # cells interleaved, repeat after repeat
                for h in histories:
                    for n in effect_counts:
                        config, target, checkpoints[h] = bench.thread(h, n)
                        results.setdefault((h, n), []).append(bench.rollback(config, target, n))
        finally:
            bench.close()

    saver = (
        "SqliteSaver + SQLiteStore" if opts.backend == "sqlite" else "InMemorySaver + MemoryStore"
    )
    print(
        f"{versions('langgraph-checkpoint-sqlite')}\nbackend: {saver}; {opts.repeats} "
        "rollbacks per cell, each on a new thread; medians, ms\n"
    )
    print("Recovery.rollback(config, to=...), total ms (median of the repeats):")
    print(f"{'history (checkpoints)':<24}" + "".join(f"{f'N={n}':>12}" for n in effect_counts))
    for h in histories:
        cells = [statistics.median(r["total"] for r in results[h, n]) * 1000 for n in effect_counts]
        label = f"{h} steps ({checkpoints[h]})"
        print(f"{label:<24}" + "".join(f"{c:>12.1f}" for c in cells))
    print(
        "\nwhere the time goes, ms (median): target lookup / undo (of which the "
        "compensations) / done-ledger deletes / rest"
    )
    for h in histories:
        for n in effect_counts:
            rs = results[h, n]
            med = {k: statistics.median(r[k] for r in rs) * 1000 for k in rs[0]}
            print(
                f"  H={h:<5} N={n:<5} {med['target']:>9.1f} / {med['undo']:>8.1f} "
                f"({med['compensations']:>6.1f}) / {med['ledger']:>6.1f} / {med['rest']:>6.1f}"
            )
    if len(effect_counts) > 1:
        lo, hi = min(effect_counts), max(effect_counts)
        print("\nper compensation, us: (total at N=max - total at N=min) / (max - min);")
        print("  undo per effect; the compensation itself (the DELETE)")
        for h in histories:
            t_lo = statistics.median(r["total"] for r in results[h, lo])
            t_hi = statistics.median(r["total"] for r in results[h, hi])
            undo = statistics.median(r["undo"] / hi for r in results[h, hi])
            comp = statistics.median(r["compensations"] / hi for r in results[h, hi])
            print(
                f"  H={h:<5} {(t_hi - t_lo) / (hi - lo) * 1e6:8.1f}   {undo * 1e6:8.1f}   "
                f"{comp * 1e6:8.1f}"
            )


if __name__ == "__main__":
    main()
