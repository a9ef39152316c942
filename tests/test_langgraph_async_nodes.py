"""guard_node around ``async def`` nodes, the way LangGraph users write them: hand-offs
checked, denied ones refused, cascade messages reported, under ``ainvoke`` and ``astream``;
under ``invoke`` the wrapped node is refused exactly as LangGraph refuses the bare one."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import Command, Send

from guardrails_plugin import AgentMessage, Guard, Policy, ToolCallDenied, allow
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.langgraph import HANDOFF_TOOL, guard_node
from guardrails_plugin.scopes import OneOf


async def _say(state: Any, *, name: str, goto: Any, log: list[str]) -> Any:
    await asyncio.sleep(0)  # a real suspension point, as a model call would have
    log.append(name)
    update = {"messages": [AIMessage(f"{name}: order INV-{len(log):04d} checked")]}
    return update if goto is None else Command(goto=goto, update=update)


class _Callable:
    """A node object whose ``__call__`` is a coroutine function."""

    def __init__(self, name: str, goto: Any, log: list[str]) -> None:
        self.name, self.goto, self.log = name, goto, log

    async def __call__(self, state: Any) -> Any:
        return await _say(state, name=self.name, goto=self.goto, log=self.log)


def _async_def(name: str, goto: Any, log: list[str]) -> Callable[..., Any]:
    async def node(state: Any) -> Any:
        return await _say(state, name=name, goto=goto, log=log)

    node.__name__ = name
    return node


FORMS: dict[str, Callable[[str, Any, list[str]], Any]] = {
    "async def": _async_def,
    "partial": lambda name, goto, log: functools.partial(_say, name=name, goto=goto, log=log),
    "__call__": _Callable,
}


def _team(guard: Guard, form: str, log: list[str], lead_goto: Any) -> Any:
    make = FORMS[form]
    builder = StateGraph(MessagesState)
    builder.add_node("lead", guard_node(make("lead", lead_goto, log), guard, agent="lead"))
    for w in ("a", "b"):
        builder.add_node(w, guard_node(make(w, None, log), guard, agent=w))
    builder.add_edge(START, "lead")
    return builder.compile()


def _policy() -> Policy:
    return Policy([allow(HANDOFF_TOOL, agents="lead", args={"to": OneOf(["a"])})])


async def _drive(app: Any, how: str) -> None:
    start = {"messages": [("user", "check the orders")]}
    if how == "ainvoke":
        await app.ainvoke(start)
    else:
        async for _ in app.astream(start, stream_mode="updates"):
            pass


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("how", ["ainvoke", "astream"])
def test_async_nodes_hand_off_under_the_guard(form: str, how: str) -> None:
    seen: list[tuple[str, str]] = []

    class Recording(CascadeMonitor):
        """Records every message it is fed (a subclass overriding ``observe`` is fed
        every message through it)."""

        def observe(self, message: AgentMessage, *args: Any, **kwargs: Any) -> Any:
            seen.append((message.sender, message.recipient))
            return super().observe(message, *args, **kwargs)

    guard = Guard(_policy(), cascade=Recording())
    log: list[str] = []
    asyncio.run(_drive(_team(guard, form, log, "a"), how))
    assert log == ["lead", "a"]  # the node ran once, awaited, and its hand-off was taken
    assert ("lead", "a") in seen  # the monitor was told of the hand-off


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("goto", ["b", [Send("b", {"messages": []})]])
def test_a_denied_hand_off_from_an_async_node_never_reaches_its_target(
    form: str, goto: Any
) -> None:
    guard = Guard(_policy())
    log: list[str] = []
    with pytest.raises(ToolCallDenied):
        asyncio.run(_team(guard, form, log, goto).ainvoke({"messages": [("user", "go")]}))
    assert log == ["lead"]


@pytest.mark.parametrize("form", list(FORMS))
def test_invoke_refuses_an_async_node_as_langgraph_does(form: str) -> None:
    log: list[str] = []
    bare = StateGraph(MessagesState)
    bare.add_node("lead", FORMS[form]("lead", None, log))
    bare.add_edge(START, "lead")
    with pytest.raises(TypeError) as plain:
        bare.compile().invoke({"messages": [("user", "go")]})
    guarded = StateGraph(MessagesState)
    guarded.add_node("lead", guard_node(FORMS[form]("lead", None, log), Guard(_policy())))
    guarded.add_edge(START, "lead")
    with pytest.raises(TypeError) as wrapped:
        guarded.compile().invoke({"messages": [("user", "go")]})
    assert "No synchronous function" in str(plain.value)
    assert "No synchronous function" in str(wrapped.value)
    assert log == []  # neither ran, and no coroutine was left un-awaited as a state update
