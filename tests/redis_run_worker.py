"""A worker process of tests/test_redis_workers.py: one LangGraph app whose checkpoints are in a
SQLite file and whose guard state is in Redis, run as one of several roles.

    python tests/redis_run_worker.py ask    WORKDIR REDIS_URL   # runs until an approval waits,
                                                                # says so, then waits to be killed
    python tests/redis_run_worker.py resume WORKDIR REDIS_URL   # approves what waits, resumes

The tool appends a line to WORKDIR/outbox.jsonl each time it runs: the side effect counted.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from guardrails_plugin import Approval, Budget, Guard, Policy, allow, ask
from guardrails_plugin.langgraph import GuardedToolNode, answer, approval_requests
from guardrails_plugin.store.redis import RedisStore
from guardrails_plugin.testing import ScriptedChatModel, tool_call

THREAD: Any = {"configurable": {"thread_id": "moving-run"}}
POLICY = Policy(
    [ask("send_email", id="mail-needs-ok"), allow("notify", id="notify")],
    budgets=[Budget.calls(2, tools=["send_email", "notify"], per="global", id="fleet")],
)


def build(workdir: Path, url: str, script: list[Any]) -> Any:
    outbox = workdir / "outbox.jsonl"

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        with outbox.open("a") as f:
            f.write(json.dumps({"to": to, "pid": __import__("os").getpid()}) + "\n")
        return f"sent to {to}"

    guard = Guard(POLICY, store=RedisStore(url, create=False))
    model = ScriptedChatModel(script).bind_tools([send_email])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", GuardedToolNode([send_email], guard, agent="assistant"))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    conn = sqlite3.connect(workdir / "graph.db", check_same_thread=False)
    return builder.compile(checkpointer=SqliteSaver(conn))


def main() -> None:
    role, workdir, url = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    if role == "ask":
        graph = build(workdir, url, [tool_call("send_email", to="ann@example.com", body="hi")])
        graph.invoke({"messages": [{"role": "user", "content": "Mail Ann."}]}, THREAD)
        waiting = approval_requests(graph, THREAD)
        print(json.dumps({"waiting": [r.call_id for r in waiting]}), flush=True)
        time.sleep(600)  # killed here
    elif role == "resume":
        graph = build(workdir, url, ["Ann has her mail."])
        waiting = approval_requests(graph, THREAD)
        if waiting:
            approvals = {r.call_id: Approval.approve(approver="bob") for r in waiting}
            graph.invoke(answer(graph, approvals, THREAD), THREAD)
        state = graph.get_state(THREAD)
        last = state.values["messages"][-1]
        print(json.dumps({"answered": [r.call_id for r in waiting], "last": last.text}))


if __name__ == "__main__":
    main()
