"""Listeners by kind: a listener can hear the decisions on tool calls alone.

A real agent run (GuardMiddleware on ``create_agent``, sync and async) gives the guard
every kind of event: the kill-switch check before each model call, each tool call, each
recorded result. A plain listener keeps hearing all of them; a subscription hears only
its kinds, and exactly the events of those kinds the plain listener heard.
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import Ran, ScriptedChatModel, recording_tool, tool_call, user
from langchain.agents import create_agent

from guardrails_plugin import (
    AgentMessage,
    DataFlow,
    Decision,
    EventKind,
    Guard,
    ModelCall,
    Policy,
    ToolCall,
    ToolResult,
    allow,
    event_kind,
    subscribe,
)
from guardrails_plugin.langchain import GuardMiddleware

Heard = list[tuple[Any, Decision]]


def run_agent(listeners: list[Any], mode: str) -> Any:
    ran: Ran = []
    tools = [recording_tool("search", ran, "q"), recording_tool("send", ran, "to")]
    policy = Policy([allow("search")], flows=[DataFlow(sources="search", sinks="send")])
    model = ScriptedChatModel([tool_call("search", q="a"), tool_call("nope", q="b"), "done"])
    agent = create_agent(
        model, tools, middleware=[GuardMiddleware(Guard(policy, listeners=listeners))]
    )
    return agent.ainvoke(user("go")) if mode == "async" else agent.invoke(user("go"))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_subscription_hears_only_its_kinds(mode: str) -> None:
    everything: Heard = []
    decisions: Heard = []
    models: Heard = []
    listeners = [
        lambda e, d: everything.append((e, d)),
        subscribe(lambda e, d: decisions.append((e, d))),  # default: tool calls
        subscribe(lambda e, d: models.append((e, d)), "model_call", EventKind.TOOL_RESULT),
    ]
    out = run_agent(listeners, mode)
    if mode == "async":
        await out
    kinds = {event_kind(e) for e, _ in everything}
    assert {EventKind.TOOL_CALL, EventKind.MODEL_CALL, EventKind.TOOL_RESULT} <= kinds
    assert decisions == [(e, d) for e, d in everything if isinstance(e, ToolCall)]
    assert [(d.rule, e.tool) for e, d in decisions] == [
        ("allow search", "search"),
        ("malformed-call", "nope"),
    ]
    assert models == [(e, d) for e, d in everything if isinstance(e, ModelCall | ToolResult)]


def test_event_kinds() -> None:
    assert event_kind(ToolCall("t")) is EventKind.TOOL_CALL
    assert event_kind(ModelCall()) is EventKind.MODEL_CALL
    assert event_kind(ToolResult("t", "x")) is EventKind.TOOL_RESULT
    assert event_kind(AgentMessage("a", "b", "hi")) is EventKind.MESSAGE
    with pytest.raises(TypeError, match="not a guard event"):
        event_kind("call")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown event kind 'decisions'"):
        subscribe(print, "decisions")
