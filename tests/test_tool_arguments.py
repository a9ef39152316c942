"""The guard decides on what the tool will really receive: its arguments as the tool's own
schema parses them (aliases, defaults, coercions, string inputs, injected arguments left
out), in every adapter; keys the schema does not know are denied, and so is a call whose
tool the adapter cannot see.

The tools are the oracle: they record what their bodies got (one runs real bash).
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Annotated, Any

import pytest
from enforcement import KEYS, arguments, make_tools
from fakes import Ran, tool_messages, user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState
from pydantic import BaseModel, ConfigDict, Field

from guardrails_plugin import Guard, Policy, ToolCallDenied, allow
from guardrails_plugin.langchain import (
    AsyncGuardCallbackHandler,
    GuardCallbackHandler,
    GuardMiddleware,
)
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.langgraph._toolargs import received
from guardrails_plugin.scopes import Number, Paths, Shell
from guardrails_plugin.testing import ScriptedChatModel, tool_call

# -- tools ------------------------------------------------------------------------------------


def bash_tool() -> BaseTool:
    @tool
    def shell(command: str) -> str:
        """Run a command with bash."""
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=10)
        return done.stdout

    return shell


class ReadArgs(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    path: str = Field(alias="file_path")


class FetchArgs(BaseModel):
    url: str
    timeout: int = 10


def read_tool(ran: Ran) -> BaseTool:
    def read_file(path: str) -> str:
        ran.append(("read_file", {"path": path}))
        return f"contents of {path}"

    return StructuredTool.from_function(read_file, description="Read.", args_schema=ReadArgs)


def fetch_tool(ran: Ran) -> BaseTool:
    def fetch(url: str, timeout: int = 10) -> str:
        ran.append(("fetch", {"url": url, "timeout": timeout}))
        return "page"

    return StructuredTool.from_function(fetch, description="Fetch.", args_schema=FetchArgs)


READ_POLICY = Policy([allow("read_file", args={"path": Paths(["/srv/data"])})])


def agent_with(tools: list[BaseTool], policy: Policy, *turns: Any) -> Any:
    model = ScriptedChatModel([*turns, "done"])
    return create_agent(model, tools=tools, middleware=[GuardMiddleware(Guard(policy))])


def toolnode_graph(tools: list[BaseTool], policy: Policy) -> Any:
    graph = StateGraph(MessagesState)
    graph.add_node("tools", GuardedToolNode(tools, Guard(policy)))
    graph.add_edge(START, "tools")
    return graph.compile()


def run_toolnode(graph: Any, *calls: dict[str, Any]) -> list[ToolMessage]:
    out = graph.invoke({"messages": [AIMessage(content="", tool_calls=list(calls))]})
    return tool_messages(out)


# -- a string input reaches a one-argument tool whole --------------------------------------


INJECTION = '{{"command": "ls", "x": "$(touch {marker})"\n}}'


def test_callback_decides_the_string_bash_would_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    shell = bash_tool()
    handler = GuardCallbackHandler(Guard(Policy([allow("shell", args={"command": Shell(["ls"])})])))

    with pytest.raises(ToolCallDenied) as caught:
        shell.invoke(INJECTION.format(marker=marker), config={"callbacks": [handler]})

    assert not marker.exists()
    assert "command" in caught.value.decision.reason
    # the same tool, an allowed string: bash runs it
    assert shell.invoke("ls /", config={"callbacks": [handler]}) != ""


async def test_async_callback_decides_the_string_bash_would_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    shell = bash_tool()
    handler = AsyncGuardCallbackHandler(
        Guard(Policy([allow("shell", args={"command": Shell(["ls"])})]))
    )

    with pytest.raises(ToolCallDenied):
        await shell.ainvoke(INJECTION.format(marker=marker), config={"callbacks": [handler]})

    assert not marker.exists()


# -- aliases ----------------------------------------------------------------------------------


def test_middleware_decides_the_aliased_value_the_tool_reads() -> None:
    ran: Ran = []
    agent = agent_with(
        [read_tool(ran)],
        READ_POLICY,
        [tool_call("read_file", path="/srv/data/ok.txt", file_path="/etc/passwd")],
        [tool_call("read_file", file_path="/srv/data/ok.txt")],
    )

    out = agent.invoke(user("read"), {"configurable": {"thread_id": "t1"}})

    assert ran == [("read_file", {"path": "/srv/data/ok.txt"})]
    denied, allowed = tool_messages(out)
    assert denied.status == "error"
    assert "/etc/passwd" in str(denied.content)
    assert allowed.status == "success"


async def test_middleware_decides_the_aliased_value_async() -> None:
    ran: Ran = []
    agent = agent_with(
        [read_tool(ran)],
        READ_POLICY,
        [tool_call("read_file", path="/srv/data/ok.txt", file_path="/etc/passwd")],
    )

    await agent.ainvoke(user("read"), {"configurable": {"thread_id": "t1"}})

    assert ran == []


def test_toolnode_decides_the_aliased_value() -> None:
    ran: Ran = []
    graph = toolnode_graph([read_tool(ran)], READ_POLICY)

    denied, allowed = run_toolnode(
        graph,
        tool_call("read_file", path="/srv/data/ok.txt", file_path="/etc/passwd"),
        tool_call("read_file", file_path="/srv/data/ok.txt"),
    )

    assert ran == [("read_file", {"path": "/srv/data/ok.txt"})]
    assert denied.status == "error"
    assert allowed.status == "success"


def test_callback_decides_the_aliased_value() -> None:
    ran: Ran = []
    read = read_tool(ran)
    handler = GuardCallbackHandler(Guard(READ_POLICY))

    with pytest.raises(ToolCallDenied):
        read.invoke(
            {"path": "/srv/data/ok.txt", "file_path": "/etc/passwd"},
            config={"callbacks": [handler]},
        )
    read.invoke({"file_path": "/srv/data/ok.txt"}, config={"callbacks": [handler]})

    assert ran == [("read_file", {"path": "/srv/data/ok.txt"})]


# -- coercions and defaults ---------------------------------------------------------------------


def test_coerced_and_default_values_are_decided() -> None:
    ran: Ran = []
    policy = Policy([allow("fetch", args={"timeout": Number(le=30)})])
    agent = agent_with(
        [fetch_tool(ran)],
        policy,
        [tool_call("fetch", url="u1", timeout="5")],  # the tool gets 5
        [tool_call("fetch", url="u2", timeout="50")],
        [tool_call("fetch", url="u3")],  # the default, 10
    )

    out = agent.invoke(user("go"), {"configurable": {"thread_id": "t1"}})

    assert ran == [("fetch", {"url": "u1", "timeout": 5}), ("fetch", {"url": "u3", "timeout": 10})]
    assert [m.status for m in tool_messages(out)] == ["success", "error", "success"]


def test_a_default_outside_the_policy_is_denied() -> None:
    ran: Ran = []

    def read_file(path: str = "/etc/passwd") -> str:
        ran.append(("read_file", {"path": path}))
        return "x"

    read = StructuredTool.from_function(read_file, description="Read.")
    graph = toolnode_graph([read], READ_POLICY)

    (msg,) = run_toolnode(graph, tool_call("read_file"))

    assert ran == []
    assert "/etc/passwd" in str(msg.content)


# -- keys the schema does not know, tools the adapter cannot see ------------------------------


@pytest.mark.parametrize("extra", ["x", "p\u0430th", "state", "tool_call_id", "run_manager"])
# (read_file has no injected arguments: "state" and "tool_call_id" are not its keys)
def test_keys_the_schema_does_not_know_are_denied(extra: str) -> None:
    ran: Ran = []
    agent = agent_with(
        [read_tool(ran)],
        READ_POLICY,
        [tool_call("read_file", file_path="/srv/data/ok.txt", **{extra: "/etc/passwd"})],
    )

    out = agent.invoke(user("read"), {"configurable": {"thread_id": "t1"}})

    assert ran == []
    (msg,) = tool_messages(out)
    assert "not in the schema" in str(msg.content)


def test_injected_arguments_are_left_to_the_framework() -> None:
    seen: list[tuple[str, int, str]] = []

    @tool
    def note(
        text: str,
        state: Annotated[dict[str, Any], InjectedState],
        call_id: Annotated[str, InjectedToolCallId],
    ) -> str:
        """Take a note."""
        seen.append((text, len(state["messages"]), call_id))
        return "noted"

    policy = Policy([allow("note", args={"text": Paths(["/srv/data"])})])
    agent = agent_with(
        [note],
        policy,
        [tool_call("note", text="/srv/data/a", id="n1")],
        [tool_call("note", text="/srv/data/a", state={"messages": []}, id="n2")],
        [tool_call("note", text="/etc/passwd", id="n3")],
    )

    out = agent.invoke(user("go"), {"configurable": {"thread_id": "t1"}})

    # n2's forged state is replaced by LangGraph's: the real one, injected after the decision
    assert [(t, c) for t, _, c in seen] == [("/srv/data/a", "n1"), ("/srv/data/a", "n2")]
    assert all(n >= 2 for _, n, _ in seen)
    assert [m.status for m in tool_messages(out)] == ["success", "success", "error"]


def test_a_tool_the_middleware_cannot_see_is_denied_with_the_reason() -> None:
    ran: Ran = []
    agent = agent_with([read_tool(ran)], Policy([allow("*")]), [tool_call("ghost", path="/")])

    out = agent.invoke(user("go"), {"configurable": {"thread_id": "t1"}})

    (msg,) = tool_messages(out)
    assert "cannot see the tool's argument schema" in str(msg.content)


def test_json_schema_tools_get_their_object_as_is() -> None:
    ran: Ran = []

    def body(**kwargs: Any) -> str:
        ran.append(("read_file", kwargs))
        return "x"

    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    read = StructuredTool(name="read_file", description="Read.", args_schema=schema, func=body)
    handler = GuardCallbackHandler(Guard(READ_POLICY))

    read.invoke({"path": "/srv/data/a"}, config={"callbacks": [handler]})
    with pytest.raises(ToolCallDenied):
        read.invoke({"path": "/srv/data/a", "mode": "w"}, config={"callbacks": [handler]})
    with pytest.raises(ToolCallDenied):
        read.invoke("/srv/data/a", config={"callbacks": [handler]})  # the tool refuses strings

    assert ran == [("read_file", {"path": "/srv/data/a"})]


# -- the module against the real consumer: generated inputs ------------------------------------


_ran: Ran = []
_tools = {t.name: t for t in make_tools(_ran)}


@st.composite
def _sent(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.sampled_from(sorted(KEYS)))
    if draw(st.booleans()):
        return name, draw(st.text(max_size=30))
    return name, draw(arguments(name))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sent())
def test_received_is_exactly_what_the_tool_body_gets(sent: tuple[str, Any]) -> None:
    name, tool_input = sent
    args, problem = received(_tools[name], tool_input, tool_call_id="c1")
    _ran.clear()
    with contextlib.suppress(Exception):  # refused by the tool's own validation
        _tools[name].invoke(
            {"name": name, "args": tool_input, "id": "c1", "type": "tool_call"}
            if isinstance(tool_input, dict)
            else tool_input
        )
    if args is not None:
        assert problem is None
        assert _ran == [(name, args)]
    else:
        assert problem


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sent())
def test_received_agrees_with_langchains_own_parsing(sent: tuple[str, Any]) -> None:
    # received() reads objects without LangChain's per-call introspection: same answer
    name, tool_input = sent
    tool_ = _tools[name]
    args, _ = received(tool_, tool_input, tool_call_id="c1")
    try:
        positional, keywords = tool_._to_args_and_kwargs(
            dict(tool_input) if isinstance(tool_input, dict) else tool_input, "c1"
        )
    except Exception:
        assert args is None  # what LangChain refuses, the guard does not decide either
        return
    if args is not None:
        assert keywords == args or (positional and list(args.values()) == list(positional))
