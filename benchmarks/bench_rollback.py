"""Rollback time vs the thread's history length and its number of side effects to undo.

Run:  python benchmarks/bench_rollback.py [--history 23,203,2003] [--effects 1,100]
                                          [--repeats 3] [--backend sqlite|memory]
                                          [--target both|to|default] [--lookups 20]

Building a 2,005-checkpoint message thread takes minutes (the saver writes the growing
state at every step): the defaults run for about half an hour on a loaded 2-core machine.

For each history length H and effect count N, on a new thread each repeat:

- an agent-like graph over ``MessagesState`` runs H steps: H + 2 checkpoints (25 / 205 /
  2,005 by default). Its step appends, in turn, an ``AIMessage`` calling a tool (a few
  sentences of text, a tool call with arguments, usage metadata) and the ``ToolMessage``
  answering it (a JSON document of ~1 kB): the state grows with the history, as an agent's;
- a safe point is marked at the checkpoint before step 1 and a violation at the checkpoint
  the last step started from (what the guard records), so the default target is step 1's;
- N rows are inserted into a SQLite "world" file and N effects recorded with
  ``Journal.record_effect`` (what GuardedToolNode does after a compensated tool ran),
  spread over the checkpoints after the target; the compensation deletes its row
  (``DELETE ... WHERE id = ?``, autocommit; WAL, ``synchronous=NORMAL`` as SQLiteStore);
- ``Recovery(graph, journal, compensations).rollback(config, to=<checkpoint of step 1>)``
  (``to=``) or ``.rollback(config)`` (``default``: the target found from the journal's safe
  points and violations and the checkpointer's parent links) is timed, on a thread of its
  own each: it finds and reads the target checkpoint, reads the journal, runs the N
  compensations newest first
  (two journal writes each: ``undoing``, then ``undone``), forks the thread back to the
  target, checks the state and records the rollback. The report must be ``ok`` and the
  world's table empty.

Backends: ``sqlite`` (default): ``SqliteSaver`` and ``SQLiteStore``, files in a temp dir;
``memory``: ``InMemorySaver`` and ``MemoryStore`` (the world stays a SQLite file).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_langgraph import versions
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph

import guardrails_plugin.langgraph._recovery as recovery_module
from guardrails_plugin import MemoryStore, SQLiteStore, ToolCall
from guardrails_plugin.langgraph import Recovery
from guardrails_plugin.rollback import Compensations, Journal


class Run(MessagesState):
    limit: int


WORDS = (
    "the invoice for order {i} was checked against the ledger and the vendor record; "
    "the amounts match, the due date is next week and the account is in good standing, "
    "so the next step is to look up the payment terms before scheduling the transfer."
)


def ai_message(i: int) -> AIMessage:
    return AIMessage(
        WORDS.format(i=i),
        id=f"ai-{i}",
        tool_calls=[
            {
                "name": "lookup_invoice",
                "args": {"order": f"ORD-{i:06d}", "fields": ["amount", "due", "vendor"]},
                "id": f"call-{i}",
                "type": "tool_call",
            }
        ],
        usage_metadata={"input_tokens": 900 + i, "output_tokens": 60, "total_tokens": 960 + i},
        response_metadata={"model_name": "scripted", "finish_reason": "tool_calls"},
    )


def tool_message(i: int) -> ToolMessage:
    lines = [
        {"sku": f"SKU-{i}-{k}", "qty": k + 1, "price": 19.99 + k, "note": "standard terms"}
        for k in range(8)
    ]
    body = {"order": f"ORD-{i:06d}", "vendor": "ACME Supplies Ltd", "lines": lines}
    return ToolMessage(json.dumps(body), tool_call_id=f"call-{i - 1}", name="lookup_invoice")


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


def messages_graph(checkpointer: Any) -> Any:
    """One node appending an AI message or a tool message per step, until ``limit`` steps:
    one checkpoint per step, a ``MessagesState`` growing like an agent's."""

    def step(state: Run) -> dict[str, Any]:
        i = len(state["messages"])
        return {"messages": [ai_message(i) if i % 2 else tool_message(i)]}

    def more(state: Run) -> str:
        return END if len(state["messages"]) > state["limit"] else "step"

    builder = StateGraph(Run)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", more)
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

        self.graph = messages_graph(checkpointer)
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
        first = {"role": "user", "content": "pay the open invoices"}
        # The checkpoints as they are saved (listing them would load every state).
        run = {"messages": [first], "limit": history}
        made = list(self.graph.stream(run, config, stream_mode="checkpoints"))
        ids = [e["config"]["configurable"]["checkpoint_id"] for e in made if e["next"] == ["step"]]
        assert len(made) == history + 2, len(made)
        assert len(ids) == history, len(ids)
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
        self.journal.mark_safe_point(thread, ids[0], tool="insert_row", reason="risky")
        self.journal.mark_violation(thread, ids[-1], rule="late-rule", reason="bench")
        return config, ids[0], len(made)

    def lookups(self, config: dict[str, Any], target: str, times: int) -> dict[str, float]:
        """Median seconds of ``Recovery.target`` (changes nothing), default and ``to=``,
        interleaved ``times`` times on the same thread."""
        found: dict[str, list[float]] = {"default": [], "to": []}
        for _ in range(times):
            for mode in ("default", "to"):
                t0 = time.perf_counter()
                chosen = self.recovery.target(config, to=target if mode == "to" else None)
                found[mode].append(time.perf_counter() - t0)
                assert chosen == target, (chosen, target)
        return {mode: statistics.median(samples) for mode, samples in found.items()}

    def rollback(
        self, config: dict[str, Any], target: str, effects: int, *, named: bool
    ) -> dict[str, float]:
        TIMER.parts.clear()
        self.compensation_seconds = 0.0
        t0 = time.perf_counter()
        report = self.recovery.rollback(config, to=target if named else None)
        total = time.perf_counter() - t0
        assert report.ok, str(report)
        assert report.target == target, (report.target, target)
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
    parser.add_argument("--history", default="23,203,2003", help="history lengths, in steps")
    parser.add_argument("--effects", default="1,100", help="effects to undo")
    parser.add_argument("--repeats", type=int, default=3, help="rollbacks per cell (new threads)")
    parser.add_argument("--backend", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument(
        "--target", choices=["both", "to", "default"], default="both", help="how it is found"
    )
    parser.add_argument(
        "--lookups", type=int, default=20, help="Recovery.target calls per thread, each way"
    )
    opts = parser.parse_args()
    histories = [int(x) for x in opts.history.split(",")]
    effect_counts = [int(x) for x in opts.effects.split(",")]
    modes = ["to", "default"] if opts.target == "both" else [opts.target]

    results: dict[tuple[str, int, int], list[dict[str, float]]] = {}
    lookups: dict[int, list[dict[str, float]]] = {}
    checkpoints: dict[int, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(tmp), opts.backend)
        try:
            for mode in modes:  # warm up
                config, target, _ = bench.thread(10, 10)
                bench.rollback(config, target, 10, named=mode == "to")
            for _ in range(opts.repeats):  # cells interleaved, repeat after repeat
                for h in histories:
                    for n in effect_counts:
                        for mode in modes:
                            config, target, checkpoints[h] = bench.thread(h, n)
                            if opts.lookups:
                                looked = bench.lookups(config, target, opts.lookups)
                                lookups.setdefault(h, []).append(looked)
                            timing = bench.rollback(config, target, n, named=mode == "to")
                            results.setdefault((mode, h, n), []).append(timing)
                            print(  # progress, kept if a long run is cut short
                                f"  {mode} H={h} N={n}: {timing['total'] * 1000:.1f} ms "
                                f"(target {timing['target'] * 1000:.1f} ms)",
                                file=sys.stderr,
                                flush=True,
                            )
        finally:
            bench.close()

    saver = (
        "SqliteSaver + SQLiteStore" if opts.backend == "sqlite" else "InMemorySaver + MemoryStore"
    )
    print(
        f"{versions('langgraph-checkpoint-sqlite')}\nbackend: {saver}; {opts.repeats} "
        "rollbacks per cell, each on a new thread; medians, ms\n"
    )
    for mode in modes:
        call = "rollback(config, to=...)" if mode == "to" else "rollback(config) (default target)"
        print(f"Recovery.{call}, total ms (median of the repeats):")
        print(f"{'history (checkpoints)':<24}" + "".join(f"{f'N={n}':>12}" for n in effect_counts))
        for h in histories:
            cells = [
                statistics.median(r["total"] for r in results[mode, h, n]) * 1000
                for n in effect_counts
            ]
            label = f"{h} steps ({checkpoints[h]})"
            print(f"{label:<24}" + "".join(f"{c:>12.1f}" for c in cells))
        print()
    if lookups:
        print(
            f"Recovery.target(config) alone (read-only, {opts.lookups} calls each way per "
            "thread, interleaved), ms: default target / to= / ratio (median over threads)"
        )
        for h in histories:
            d = statistics.median(x["default"] for x in lookups[h]) * 1000
            t = statistics.median(x["to"] for x in lookups[h]) * 1000
            print(f"  {h} steps ({checkpoints[h]}): {d:8.2f} / {t:8.2f} / {d / t:5.2f}")
        print()
    print(
        "where the time goes, ms (median): target lookup / undo (of which the "
        "compensations) / done-ledger deletes / rest"
    )
    for mode in modes:
        for h in histories:
            for n in effect_counts:
                rs = results[mode, h, n]
                med = {k: statistics.median(r[k] for r in rs) * 1000 for k in rs[0]}
                print(
                    f"  {mode:<8} H={h:<5} N={n:<5} {med['target']:>9.1f} / {med['undo']:>8.1f} "
                    f"({med['compensations']:>6.1f}) / {med['ledger']:>6.1f} / {med['rest']:>6.1f}"
                )
    if len(effect_counts) > 1 and "to" in modes:
        lo, hi = min(effect_counts), max(effect_counts)
        print("\nper compensation, us: (total at N=max - total at N=min) / (max - min);")
        print("  undo per effect; the compensation itself (the DELETE)")
        for h in histories:
            t_lo = statistics.median(r["total"] for r in results["to", h, lo])
            t_hi = statistics.median(r["total"] for r in results["to", h, hi])
            undo = statistics.median(r["undo"] / hi for r in results["to", h, hi])
            comp = statistics.median(r["compensations"] / hi for r in results["to", h, hi])
            print(
                f"  H={h:<5} {(t_hi - t_lo) / (hi - lo) * 1e6:8.1f}   {undo * 1e6:8.1f}   "
                f"{comp * 1e6:8.1f}"
            )


if __name__ == "__main__":
    main()
