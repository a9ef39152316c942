"""Approval round trip: GuardedToolNode's ``ask`` interrupt + resume vs a bare ``interrupt()``.

Run:  python benchmarks/bench_interrupts.py [--rounds 20] [--runs 20]

Both graphs: agent (a ``ScriptedChatModel``: one call of ``send``, then "done") ->
``tools_condition`` -> a tool node -> agent.

- X, bare: ``ToolNode([send], wrap_tool_call=ask_first)``, where ``ask_first`` calls
  ``langgraph.types.interrupt({...})`` and runs the tool if the answer is true; resumed with
  ``Command(resume=True)``.
- Y, guarded: ``GuardedToolNode([send], guard)``, the policy of bench_toolnode.py plus
  ``ask("send")``: the guard logs the pending approval in its store, interrupts, and on
  resume replays the log, resolves the answer, runs the tool and writes the done-ledger;
  resumed with ``answer(out, Approval.approve())``.

A round trip = ``invoke`` until the interrupt + ``invoke(<resume>)`` until "done", on a new
thread. Two set-ups: ``InMemorySaver`` (guard on ``MemoryStore``) and ``SqliteSaver`` (a file
in a temp dir; guard on ``SQLiteStore``, a file of its own). X and Y interleaved.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_langgraph import agent_graph, fmt, policy, reset, versions
from langchain_core.messages import ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, interrupt

from guardrails_plugin import Approval, Guard, MemoryStore, SQLiteStore, ask
from guardrails_plugin.langgraph import GuardedToolNode, answer
from guardrails_plugin.testing import ScriptedChatModel, tool_call


@tool
def send(to: str, text: str) -> str:
    """Send a message."""
    return f"sent to {to}"


def ask_first(request: Any, execute: Callable[[Any], Any]) -> Any:
    """The hand-written way: ask a person through interrupt(), then run the tool."""
    tc = request.tool_call
    approved = interrupt({"type": "approval", "tool": tc["name"], "args": tc["args"]})
    if approved:
        return execute(request)
    return ToolMessage("rejected by a person", tool_call_id=tc["id"], name=tc["name"])


class Setup:
    def __init__(self, name: str, saver: Callable[[], Any], store: Any) -> None:
        self.name = name
        self.model = ScriptedChatModel([tool_call("send", to="bob", text="hi"), "done"])
        guard = Guard(policy(ask("send")), store=store)
        self.graphs = {
            "X bare interrupt()": agent_graph(
                self.model, [send], ToolNode([send], wrap_tool_call=ask_first), saver()
            ),
            "Y GuardedToolNode ask": agent_graph(
                self.model, [send], GuardedToolNode([send], guard), saver()
            ),
        }
        self.resumes: dict[str, Callable[[Any], Command[Any]]] = {
            "X bare interrupt()": lambda out: Command(resume=True),
            "Y GuardedToolNode ask": lambda out: answer(out, Approval.approve()),
        }
        self.samples: dict[str, dict[str, list[float]]] = {
            v: {"total": [], "ask": [], "resume": []} for v in self.graphs
        }
        self.run_id = 0

    def run(self, variant: str) -> tuple[float, float]:
        self.run_id += 1
        reset(self.model)
        graph = self.graphs[variant]
        config = {"configurable": {"thread_id": f"{self.name}-{self.run_id}"}}
        t0 = time.perf_counter()
        out = graph.invoke({"messages": [{"role": "user", "content": "go"}]}, config=config)
        t1 = time.perf_counter()
        assert out.get("__interrupt__"), out
        done = graph.invoke(self.resumes[variant](out), config=config)
        t2 = time.perf_counter()
        assert done["messages"][-1].content == "done", done["messages"][-1]
        assert done["messages"][-2].content == "sent to bob", done["messages"][-2]
        return t1 - t0, t2 - t1

    def round(self, runs: int) -> None:
        for variant in self.graphs:
            asked = resumed = 0.0
            for _ in range(runs):
                a, r = self.run(variant)
                asked += a
                resumed += r
            s = self.samples[variant]
            s["ask"].append(asked / runs * 1000)
            s["resume"].append(resumed / runs * 1000)
            s["total"].append((asked + resumed) / runs * 1000)

    def report(self) -> None:
        print(f"\n## {self.name}")
        print(
            f"{'variant':<24}{'round trip, ms min / median / max':>36}"
            f"{'to interrupt':>14}{'resume':>9}"
        )
        for variant, s in self.samples.items():
            print(
                f"{variant:<24}{fmt(s['total']):>36}"
                f"{statistics.median(s['ask']):>14.3f}{statistics.median(s['resume']):>9.3f}"
            )
        x, y = (s["total"] for s in self.samples.values())
        per_round = [b / a for a, b in zip(x, y, strict=True)]
        print(
            f"Y/X per round, min / median / max: {fmt(per_round)}; "
            f"ratio of medians {statistics.median(y) / statistics.median(x):.3f}; "
            f"Y - X (medians) {statistics.median(y) - statistics.median(x):.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20, help="round trips per variant per round")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        connections: list[sqlite3.Connection] = []
        stores: list[SQLiteStore] = []

        def sqlite_saver() -> SqliteSaver:
            path = Path(tmp) / f"checkpoints-{len(connections)}.db"
            connections.append(sqlite3.connect(path, check_same_thread=False))
            return SqliteSaver(connections[-1])

        stores.append(SQLiteStore(Path(tmp) / "guard.db"))
        setups = [
            Setup("InMemorySaver, MemoryStore", InMemorySaver, MemoryStore()),
            Setup("SqliteSaver, SQLiteStore", sqlite_saver, stores[0]),
        ]
        try:
            for setup in setups:  # warm up
                for variant in setup.graphs:
                    setup.run(variant)
            for _ in range(opts.rounds):
                for setup in setups:
                    setup.round(opts.runs)
        finally:
            for store in stores:
                store.close()
            for connection in connections:
                connection.close()

    print(
        f"{versions('langgraph-checkpoint-sqlite')}\n{opts.rounds} rounds x {opts.runs} round "
        "trips per variant and set-up; X and Y interleaved; ms per round trip "
        "(to interrupt + resume, each a graph invoke)"
    )
    for setup in setups:
        setup.report()


if __name__ == "__main__":
    main()
