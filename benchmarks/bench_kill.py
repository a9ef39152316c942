"""Kill switch latency: from a kill flag written by another process to the run stopping.

Run:  python benchmarks/bench_kill.py [--repeats 20] [--checkpointer memory|none]

A graph loops agent -> GuardedToolNode -> agent ... (one guarded ``lookup`` call per step,
the policy of bench_toolnode.py) on a ``SQLiteStore`` file, in this process. A worker
process, started once, opens ``Controls(SQLiteStore(path))``; for each repeat it waits a
random 0.1-0.4 s after this process says the run starts, calls ``kill(thread=...)`` and
reports ``time.time()`` right after ``kill`` returned (the flag and the epoch counter are
committed then). The run raises ``RunKilled``; latency = ``time.time()`` when the exception
surfaced from ``graph.invoke`` minus the time the flag was written (same machine clock).

The guard reads the kill switch once per guarded call (one counter read in its store), so
the latency should be under one step: where in the step the flag lands, plus the exception
unwinding LangGraph. Per-step time of the loop is printed for context (the same run,
steps done / time until the kill).
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, TypedDict

from bench_langgraph import fmt, lookup, policy, versions
from langchain_core.messages import AIMessage, AnyMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from guardrails_plugin import Controls, Guard, RunKilled, SQLiteStore
from guardrails_plugin.langgraph import GuardedToolNode

WORKER = """
import sys, time
from guardrails_plugin import Controls, SQLiteStore
controls = Controls(SQLiteStore(sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    thread, delay = line.split()
    time.sleep(float(delay))
    controls.kill(thread=thread, reason="benchmark", by="bench_kill")
    print(repr(time.time()), flush=True)
"""


def _replace(old: Any, new: Any) -> Any:
    return new


class LoopState(TypedDict):
    # Replaced, not appended, each step: the step costs the same at step 10 and step 1000.
    messages: Annotated[list[AnyMessage], _replace]
    i: int


class WatchedToolNode(GuardedToolNode):
    """Notes when the guard raised RunKilled, to split the latency: flag -> the guard sees it,
    and the guard's raise -> ``invoke`` raises (LangGraph unwinding the step)."""

    raised_at = 0.0

    def _wrap(self, request: Any, execute: Any) -> Any:
        try:
            return super()._wrap(request, execute)
        except RunKilled:
            self.raised_at = time.time()
            raise


def loop_graph(node: GuardedToolNode, limit: int, checkpointer: Any, progress: list[int]) -> Any:
    """agent -> tools -> agent ... for ``limit`` steps; ``progress[0]``: steps started."""

    def agent(state: LoopState) -> dict[str, Any]:
        i = state["i"] + 1
        progress[0] = i
        call = {"name": "lookup", "args": {"n": i}, "id": f"call_{i}", "type": "tool_call"}
        return {"messages": [AIMessage("", tool_calls=[call])], "i": i}

    builder = StateGraph(LoopState)
    builder.add_node("agent", agent)
    builder.add_node("tools", node)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", lambda s: "tools" if s["i"] <= limit else END)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--checkpointer",
        choices=["memory", "none"],
        default="memory",
        help="InMemorySaver (the guard also writes its done-ledger to the SQLite file) or none",
    )
    parser.add_argument("--seed", type=int, default=3)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    limit = 100_000  # steps; far more than a run lasts before its kill

    latencies: list[float] = []
    step_ms: list[float] = []
    seen: list[float] = []
    unwind: list[float] = []
    steps_done: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "guard.db")
        store = SQLiteStore(path)
        controls = Controls(store)
        node = WatchedToolNode([lookup], Guard(policy(), store=store))
        progress = [0]
        saver = InMemorySaver() if opts.checkpointer == "memory" else None
        graph = loop_graph(node, limit, saver, progress)
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdin is not None
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
            warm = {"configurable": {"thread_id": "warm-up"}, "recursion_limit": 10**6}
            graph.invoke({"messages": [], "i": limit - 20}, config=warm)
            for r in range(opts.repeats):
                thread = f"kill-{r}"
                config = {"configurable": {"thread_id": thread}, "recursion_limit": 10**6}
                worker.stdin.write(f"{thread} {rng.uniform(0.1, 0.4):.3f}\n")
                worker.stdin.flush()
                t0 = time.time()
                try:
                    graph.invoke({"messages": [], "i": 0}, config=config)
                except RunKilled:
                    stopped = time.time()
                else:
                    raise AssertionError("the run finished before the kill")
                killed_at = float(worker.stdout.readline())
                latencies.append((stopped - killed_at) * 1000)
                seen.append((node.raised_at - killed_at) * 1000)
                unwind.append((stopped - node.raised_at) * 1000)
                steps_done.append(progress[0])
                step_ms.append((stopped - t0) * 1000 / progress[0])
                controls.resume(thread=thread)
        finally:
            if worker.stdin is not None:
                worker.stdin.close()
            worker.wait(timeout=10)
            store.close()

    print(
        f"{versions()}\n{opts.repeats} kills, each after a random 0.1-0.4 s of running; "
        f"guard on SQLiteStore (WAL); checkpointer: {opts.checkpointer}\n"
    )
    print(f"kill flag written -> RunKilled raised, ms min / median / max: {fmt(latencies)}")
    print(
        f"  mean {statistics.mean(latencies):.3f} ms; all: {sorted(round(x, 2) for x in latencies)}"
    )
    print(f"  of which flag -> the guard raises RunKilled: {fmt(seen)}")
    print(f"  and the guard's raise -> invoke raises:      {fmt(unwind)}")
    print(
        f"step of the loop (agent + guarded tool call), ms min / median / max: {fmt(step_ms)}; "
        f"steps per run before the kill: median {statistics.median(steps_done)}"
    )
    ratio = statistics.median(latencies) / statistics.median(step_ms)
    print(f"median latency / median step: {ratio:.2f}")


if __name__ == "__main__":
    main()
