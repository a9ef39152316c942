"""Offline stand-ins for the OpenAI Agents SDK tests: the SDK's own scripted model
(``agents.testing.ScriptedModel``, in-process, through its ``Model`` interface), function
tools that record their runs, and the turns a script is made of."""

from __future__ import annotations

from typing import Any

from agents import Agent, FunctionTool, function_tool
from agents.items import TResponseOutputItem
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage

Ran = list[tuple[str, dict[str, Any]]]
"""What tool bodies ran, in order: ``(tool name, arguments)``."""

__all__ = ["Ran", "agent", "call", "say", "scripted", "tools", "turn"]


def call(name: str, args: dict[str, Any] | str, id: str) -> TResponseOutputItem:
    """One function call the model makes (``args``: an object, or a raw string sent as is)."""
    return function_call(name, args, call_id=id)


def say(text: str) -> TResponseOutputItem:
    return assistant_message(text)


def turn(*items: TResponseOutputItem, tokens: int = 0) -> ModelStep:
    """One model response: its output items (several calls: parallel calls)."""
    usage = Usage(requests=1, input_tokens=tokens, output_tokens=0, total_tokens=tokens)
    return ModelStep(output=list(items), usage=usage)


def scripted(*turns: ModelStep | TResponseOutputItem) -> ScriptedModel:
    """A model playing ``turns`` in order (a bare output item is a turn of its own)."""
    return ScriptedModel([t if isinstance(t, ModelStep) else turn(t) for t in turns])


def tools(ran: Ran) -> dict[str, FunctionTool]:
    """The tools the tests share, each appending ``(name, kwargs)`` to ``ran`` when it runs."""

    @function_tool
    def search(query: str) -> str:
        """Search the web."""
        ran.append(("search", {"query": query}))
        return "3 results"

    @function_tool
    def read_file(path: str) -> str:
        """Read a file."""
        ran.append(("read_file", {"path": path}))
        return "Q3 revenue: 1.2M"

    @function_tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        ran.append(("send_email", {"to": to, "body": body}))
        return "sent"

    @function_tool
    def delete_file(path: str) -> str:
        """Delete a file."""
        ran.append(("delete_file", {"path": path}))
        return "deleted"

    return {t.name: t for t in (search, read_file, send_email, delete_file)}


def agent(name: str, model: ScriptedModel, tools: list[Any], **kw: Any) -> Agent[Any]:
    return Agent(name=name, model=model, tools=tools, **kw)


def _no_tracing() -> None:
    """The SDK exports traces to OpenAI by default: never from the tests."""
    from agents import set_tracing_disabled

    set_tracing_disabled(True)


_no_tracing()
