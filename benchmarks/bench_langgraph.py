"""The LangGraph benchmarks: what ``guardrails_plugin.langgraph`` costs a graph.

Run them one by one (each takes about two minutes with its defaults; ``--help`` for flags):

    python benchmarks/bench_toolnode.py     # GuardedToolNode vs ToolNode, per tool-call step
    python benchmarks/bench_interrupts.py   # approval interrupt + resume vs a bare interrupt()
    python benchmarks/bench_kill.py         # kill flag set by another process -> RunKilled
    python benchmarks/bench_rollback.py     # Recovery.rollback vs history and effect count

or all four in a row:  python benchmarks/bench_langgraph.py [--quick]

This module also holds what they share: the policy, the tool, the graph, the statistics.
Method: see BENCHMARKING.md and bench_middleware.py (interleaved whole runs, min / median /
max, and the guard's own in-process share).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from guardrails_plugin import Budget, Policy, allow, deny
from guardrails_plugin.scopes import Number, OneOf
from guardrails_plugin.testing import ScriptedChatModel

HERE = Path(__file__).resolve().parent
SCRIPTS = ("bench_toolnode.py", "bench_interrupts.py", "bench_kill.py", "bench_rollback.py")


@tool
def lookup(n: int) -> str:
    """Look a number up."""
    return f"value {n}"


def policy(*extra: Any) -> Policy:
    """The shape of bench_middleware.py's policy: 100 rules (the scoped allow for ``lookup``
    last) and a calls budget on ``lookup``; ``extra`` rules go first."""
    rules = list(extra)
    rules += [allow(f"tool_{i}", args={"n": Number(le=i)}) for i in range(60)]
    rules += [deny(f"danger_{i}_*") for i in range(20)]
    rules += [allow(f"other_{i}", args={"m": OneOf(["a", "b"])}) for i in range(19)]
    rules.append(allow("lookup", args={"n": Number(ge=0, le=10**9)}))
    return Policy(rules, budgets=[Budget.calls(10**9, tools="lookup", per="run")])


def agent_graph(
    model: ScriptedChatModel,
    tools: Sequence[BaseTool],
    tool_node: Any,
    checkpointer: Any = None,
    state: type = MessagesState,
) -> Any:
    """START -> agent (the model bound to the tools) -> tools_condition -> tools -> agent."""
    bound = model.bind_tools(tools)

    def agent(s: dict[str, Any]) -> dict[str, Any]:
        return {"messages": [bound.invoke(s["messages"])]}

    builder = StateGraph(state)
    builder.add_node("agent", agent)
    builder.add_node("tools", tool_node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def reset(model: ScriptedChatModel) -> None:
    model.calls = 0
    model.seen.clear()
    model.bound_tools.clear()


def versions(*extra: str) -> str:
    names = ("langgraph", "langgraph-prebuilt", "langgraph-checkpoint", "langchain-core", *extra)
    found = ", ".join(f"{n} {version(n)}" for n in names)
    return f"{found}; python {platform.python_version()}, {os.cpu_count()} cores"


def spread(samples: Sequence[float]) -> tuple[float, float, float]:
    """min, median, max."""
    return min(samples), statistics.median(samples), max(samples)


def fmt(samples: Sequence[float], digits: int = 3) -> str:
    lo, med, hi = spread(samples)
    return f"{lo:.{digits}f} / {med:.{digits}f} / {hi:.{digits}f}"


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the four LangGraph benchmarks in a row.")
    parser.add_argument("--quick", action="store_true", help="smoke run: few rounds, small sizes")
    opts = parser.parse_args()
    quick = {
        "bench_toolnode.py": ["--rounds", "3", "--runs", "3"],
        "bench_interrupts.py": ["--rounds", "3", "--runs", "3"],
        "bench_kill.py": ["--repeats", "3"],
        "bench_rollback.py": ["--history", "10,100", "--effects", "1,100", "--repeats", "1"],
    }
    for script in SCRIPTS:
        args = quick[script] if opts.quick else []
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True)


if __name__ == "__main__":
    main()
