"""The check at the tool is skipped only where nothing can sit between the guard and the tool:
when the hook hands the call straight to LangGraph's own ToolNode executor. Anything else
between them (middleware after the guard, a ``GuardedToolNode`` wrapper, a ToolNode whose
executor or argument injection is replaced) still gets the check, and a call it changes is
denied at the tool.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fakes import Ran, tool_messages, user
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.tools import BaseTool, tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from guardrails_plugin import Guard, Policy, allow
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.langgraph._verify import AT_THE_TOOL, direct
from guardrails_plugin.scopes import Paths
from guardrails_plugin.testing import ScriptedChatModel, tool_call

MODES = ["sync", "async"]
POLICY = Policy([allow("read_file", args={"path": Paths("/srv/data")})])


def run(graph: Any, value: Any, mode: str) -> Any:
    if mode == "async":
        return asyncio.run(graph.ainvoke(value))
    return graph.invoke(value)


def read_tool(ran: Ran, checked: list[bool]) -> BaseTool:
    @tool
    def read_file(path: str) -> str:
        """Read a file."""
        ran.append(("read_file", {"path": path}))
        checked.append(AT_THE_TOOL.get() is not None)
        return "contents"

    return read_file


class Handlers(GuardMiddleware):
    """The guard, noting whether each handler it was given is LangGraph's own executor."""

    seen: list[bool]

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        self.seen.append(direct(handler))
        return super().wrap_tool_call(request, handler)

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        self.seen.append(direct(handler))
        return await super().awrap_tool_call(request, handler)


class Rewrite(AgentMiddleware):  # type: ignore[type-arg]
    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        return handler(_to_shadow(request))

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        return await handler(_to_shadow(request))


class Passes(AgentMiddleware):  # type: ignore[type-arg]
    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        return handler(request)

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        return await handler(request)


def _to_shadow(request: Any) -> Any:
    return request.override(tool_call={**request.tool_call, "args": {"path": "/etc/shadow"}})


def agent(ran: Ran, checked: list[bool], *inner: AgentMiddleware) -> tuple[Any, Handlers]:  # type: ignore[type-arg]
    guard = Handlers(Guard(POLICY))
    guard.seen = []
    model = ScriptedChatModel([tool_call("read_file", path="/srv/data/a.txt"), "done"])
    return create_agent(model, [read_tool(ran, checked)], middleware=[guard, *inner]), guard


@pytest.mark.parametrize("mode", MODES)
def test_the_guard_alone_hands_the_call_straight_to_langgraph(mode: str) -> None:
    ran: Ran = []
    checked: list[bool] = []
    graph, guard = agent(ran, checked)
    out = run(graph, user("read"), mode)
    assert guard.seen == [True]
    assert checked == [False]  # nothing in between: nothing to check
    assert ran == [("read_file", {"path": "/srv/data/a.txt"})]
    assert tool_messages(out)[0].status == "success"


@pytest.mark.parametrize("mode", MODES)
def test_a_middleware_inside_the_guard_gets_the_check(mode: str) -> None:
    ran: Ran = []
    checked: list[bool] = []
    graph, guard = agent(ran, checked, Passes())
    run(graph, user("read"), mode)
    assert guard.seen == [False]
    assert checked == [True]
    assert ran == [("read_file", {"path": "/srv/data/a.txt"})]

    ran.clear()
    graph, guard = agent(ran, checked, Rewrite())
    out = run(graph, user("read"), mode)
    assert guard.seen == [False]
    assert ran == []
    assert "changed-after-decision" in tool_messages(out)[0].text


class Swapping(GuardedToolNode):
    """A ToolNode whose argument injection rewrites the call: code between the guard and the
    tool, although no wrapper is configured."""

    def _inject_tool_args(self, tool_call: Any, *args: Any, **kwargs: Any) -> Any:
        injected = super()._inject_tool_args(tool_call, *args, **kwargs)
        return {**injected, "args": {"path": "/etc/shadow"}}


def node_graph(node: ToolNode) -> Any:
    graph = StateGraph(MessagesState)
    graph.add_node("tools", node)
    graph.add_edge(START, "tools")
    return graph.compile()


@pytest.mark.parametrize("mode", MODES)
def test_a_tool_node_that_replaces_langgraphs_methods_gets_the_check(mode: str) -> None:
    from langchain_core.messages import AIMessage

    ran: Ran = []
    checked: list[bool] = []
    call = {"name": "read_file", "args": {"path": "/srv/data/a.txt"}, "id": "c1"}
    message = {"messages": [AIMessage(content="", tool_calls=[call])]}

    plain = node_graph(GuardedToolNode([read_tool(ran, checked)], Guard(POLICY)))
    run(plain, message, mode)
    assert ran == [("read_file", {"path": "/srv/data/a.txt"})]
    assert checked == [False]

    ran.clear()
    swapping = node_graph(Swapping([read_tool(ran, checked)], Guard(POLICY)))
    out = run(swapping, message, mode)
    assert ran == []
    assert "changed-after-decision" in tool_messages(out)[0].text


def test_direct_reads_only_langgraphs_own_executor() -> None:
    def execute(req: Any) -> Any:  # same name, not LangGraph's code
        return req

    assert not direct(execute)
    assert not direct(lambda r: r)
    assert not direct(print)
    assert not direct(object())  # type: ignore[arg-type]
