"""Small real LangGraph apps the LangGraph tests (and their subprocesses) share.

``tool_graph`` is the classic agent loop a user already has — an agent node calling a chat
model bound to tools, ``tools_condition``, a tool node, back to the agent — with the user's
``ToolNode`` swapped for ``GuardedToolNode``. Nothing else changes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from guardrails_plugin import Guard
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.testing import ScriptedChatModel

sys.path.insert(0, str(Path(__file__).parent))


def tool_graph(
    model: ScriptedChatModel,
    tools: Sequence[BaseTool],
    guard: Guard,
    *,
    checkpointer: Any = None,
    **node_options: Any,
) -> Any:
    bound = model.bind_tools(list(tools))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    from langgraph._internal._runnable import RunnableCallable

    builder = StateGraph(MessagesState)
    builder.add_node("agent", RunnableCallable(agent, aagent, name="agent"))
    builder.add_node("tools", GuardedToolNode(tools, guard, **node_options))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


MODES = ["sync", "async"]
"""Every LangGraph test runs each graph with ``invoke`` and with ``ainvoke``."""


def config(thread: str = "t-1") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def run(graph: Any, value: Any, config: Any, mode: str) -> Any:
    """``graph.invoke`` or ``await graph.ainvoke``, as ``mode`` says."""
    if mode == "async":
        return await graph.ainvoke(value, config)
    return graph.invoke(value, config)


def file_tool(name: str, log: Path) -> BaseTool:
    """A tool whose side effect is a line appended to ``log`` (visible across processes)."""

    def body(to: str) -> str:
        with log.open("a") as f:
            f.write(json.dumps({"tool": name, "to": to}) + "\n")
        return f"{name} sent to {to}"

    return StructuredTool.from_function(func=body, name=name, description=f"The {name} tool.")


def lines(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]
