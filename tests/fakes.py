"""Offline stand-ins for the LangChain tests: a scripted chat model and tools that record runs.

The scripted model is the package's own (``guardrails_plugin.testing``, which the demo uses
too), so tests and demo drive agents the same way: each turn is an ``AIMessage``, a string
(a final answer), a ``tool_call(...)`` or a list of them (parallel calls in one turn);
``model.bound_tools`` lists the tool names of each ``bind_tools`` call and ``model.seen`` the
messages of each turn. Works with ``invoke`` and ``ainvoke``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import create_model

from guardrails_plugin import Decision, Effect, Event, ToolCall
from guardrails_plugin.testing import ScriptedChatModel, tool_call

__all__ = [
    "Ran",
    "ScriptedChatModel",
    "Seen",
    "recording_tool",
    "tool_call",
    "tool_messages",
    "user",
]

Ran = list[tuple[str, dict[str, Any]]]
"""What tool bodies ran, in order: ``(tool name, arguments)``."""


def recording_tool(
    name: str, ran: Ran, *params: str, returns: str = "ok", description: str = ""
) -> BaseTool:
    """A tool taking ``params`` (any JSON values) that appends ``(name, args)`` to ``ran``
    when its body runs and returns ``returns``. Runs under ``invoke`` and ``ainvoke``."""

    def body(**args: Any) -> str:
        ran.append((name, args))
        return returns

    fields: dict[str, Any] = dict.fromkeys(params, (Any, ...))
    return StructuredTool.from_function(
        func=body,
        name=name,
        description=description or f"The {name} tool.",
        args_schema=create_model(f"{name}_args", **fields),
    )


def user(text: str) -> Any:
    """An agent's input: one user message."""
    return {"messages": [{"role": "user", "content": text}]}


def tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    """The tool messages of an agent's final state, in order."""
    messages: list[BaseMessage] = result["messages"]
    return [m for m in messages if isinstance(m, ToolMessage)]


class Seen:
    """A guard listener: every tool call the guard decided, with its decision."""

    def __init__(self) -> None:
        self.calls: list[tuple[ToolCall, Decision]] = []

    def __call__(self, event: Event, decision: Decision) -> None:
        if isinstance(event, ToolCall):
            self.calls.append((event, decision))

    def effects(self, tool: str) -> list[Effect]:
        return [d.effect for c, d in self.calls if c.tool == tool]
