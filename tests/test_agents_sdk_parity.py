"""One policy, one script, two frameworks: a LangChain ``create_agent`` app (``ChatOpenAI``,
``GuardMiddleware``) and an OpenAI Agents SDK app (``OpenAIChatCompletionsModel``,
``guard_agent``), both over real HTTP to the scripted server on loopback. Out-of-scope
arguments, a malformed call, approvals (an edit re-checked into policy, a rejection), call and
model-token budgets, and the kill switch must give the same decisions, the same audit records
and the same tool runs. The LangChain app asks its approver; the Agents SDK app asks through
the SDK's own interruptions, answered from a serialized run state: the engine must not see the
difference."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner
from agents import function_tool as sdk_tool
from agents.run_state import RunState
from langchain.agents import create_agent
from langchain_core.tools import StructuredTool
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI
from openai_scenarios import RAN, TOOLS, comparable, guard_for
from openai_server import Call, Turn, Usage

from guardrails_plugin import Approval, BudgetExceeded, RunKilled
from guardrails_plugin.agents_sdk import answer, guard_agent
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.policy import Budget

SCRIPT = [
    Turn(  # parallel calls: in scope, out of scope, a key the tool does not take
        tool_calls=[
            Call("read_file", {"path": "/data/a"}, id="a1"),
            Call("read_file", {"path": "/etc/passwd"}, id="a2"),
            Call("count", {"n": 1, "unit": "x"}, id="a3"),
        ],
        usage=Usage(20, 10),
    ),
    Turn(  # asks: an edit re-checked into policy, a rejection
        tool_calls=[
            Call("read_file", {"path": "/data/private/key"}, id="b1"),
            Call("send_email", {"to": "boss@example.com", "body": "hi"}, id="b2"),
        ],
        usage=Usage(30, 10),
    ),
    Turn(tool_calls=[Call("count", {"n": 2}, id="c1")], usage=Usage(40, 10)),
    Turn(  # over the call budget; this answer takes the model budget over too
        tool_calls=[
            Call("count", {"n": 3}, id="d1"),
            Call("read_file", {"path": "/data/b"}, id="d2"),
        ],
        usage=Usage(50, 10),
    ),
    Turn(text="never reached"),
]
BUDGETS = (
    Budget.calls(1, tools="count", per="thread"),
    Budget.tokens(170, of="model", per="thread"),
)
EDIT = Approval.edit({"path": "/data/public/key"}, approver="ana")
REJECT = Approval.reject("not now", approver="ana")


def approver(request: Any) -> Approval:
    return EDIT if request.call.tool == "read_file" else REJECT


def _langchain(guard: Any, server: Any, tools: list[Any]) -> Any:
    model = ChatOpenAI(model="gpt-test", base_url=server.base_url, api_key="test", max_retries=0)
    wrapped = [StructuredTool.from_function(f) for f in tools]
    return create_agent(model, tools=wrapped, middleware=[GuardMiddleware(guard)], name="support")


def _sdk(guard: Any, server: Any, tools: list[Any]) -> Agent[Any]:
    client = AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)
    agent = Agent(name="support", model=model, tools=[sdk_tool(f) for f in tools])
    return guard_agent(agent, guard, thread="t1")


def _seen(event: Any, d: Any) -> tuple[Any, ...]:
    return (getattr(event, "call_id", None), str(d.effect), d.rule, d.reason)


def _by_call(items: list[Any], call_id: Any) -> list[Any]:
    """Grouped by call id, each call's own order kept: parallel calls run in any order."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(call_id(item), []).append(item)
    return sorted(groups.items(), key=lambda kv: str(kv[0]))


def _decided(seen: list[Any]) -> list[Any]:
    return [s for s in seen if not (s[0] is None and s[1] == "allow")]


def _ran() -> list[tuple[str, dict[str, Any]]]:
    return sorted(RAN, key=repr)


def test_same_decisions_records_and_runs_through_langchain_and_the_agents_sdk(
    openai_server: Any, tmp_path: Any
) -> None:
    guard, lc_log = guard_for(tmp_path, *BUDGETS, approver=approver)
    lc_seen: list[Any] = []
    guard.listeners.append(lambda e, d: lc_seen.append(_seen(e, d)))
    openai_server.push(*SCRIPT)
    with pytest.raises(BudgetExceeded):
        _langchain(guard, openai_server, TOOLS).invoke(
            {"messages": [{"role": "user", "content": "work"}]},
            config={"configurable": {"thread_id": "t1"}},
        )
    lc_ran = _ran()

    guard, sdk_log = guard_for(tmp_path, *BUDGETS)  # no approver: the SDK's interruptions
    sdk_seen: list[Any] = []
    guard.listeners.append(lambda e, d: sdk_seen.append(_seen(e, d)))
    openai_server.reset()
    openai_server.push(*SCRIPT)
    first = Runner.run_sync(_sdk(guard, openai_server, TOOLS), "work")
    assert sorted(i.tool_name for i in first.interruptions) == ["read_file", "send_email"]
    saved = first.to_state().to_string()
    agent = _sdk(guard, openai_server, TOOLS)  # a fresh client for the next event loop
    state = asyncio.run(RunState.from_string(agent, saved))
    for item in state.get_interruptions():
        answer(state, item, EDIT if item.tool_name == "read_file" else REJECT)
    with pytest.raises(BudgetExceeded):
        Runner.run_sync(agent, state)

    assert openai_server.pending() == 1  # both stopped before the last model call
    assert _ran() == lc_ran
    assert ("read_file", {"path": "/data/public/key"}) in lc_ran
    # Allowed model turns are kill-switch checks, not audited; the SDK app checks once more
    # (after the person's answer, as any interrupted approval does).
    sdk_decided, lc_decided = _decided(sdk_seen), _decided(lc_seen)
    assert _by_call(sdk_decided, lambda s: s[0]) == _by_call(lc_decided, lambda s: s[0])
    in_call = lambda r: r["detail"].get("call_id")  # noqa: E731
    records, lc_records = comparable(sdk_log), comparable(lc_log)
    assert _by_call(records, in_call) == _by_call(lc_records, in_call)
    rules = {rule for _, _, rule, _ in lc_seen}
    for expected in (
        "allow read_file",
        "default-deny",
        "malformed-call",
        "private files",
        "email needs a person",
        "calls of count per thread",
        "tokens in model per thread",
    ):
        assert expected in rules
    assert [effect for _, effect, _, _ in sdk_seen].count("modify") == 1


def _killing_tools(guard: Any) -> list[Any]:
    def read_file(path: str) -> str:
        """Read a file under /data; an operator kills the thread meanwhile."""
        RAN.append(("read_file", {"path": path}))
        guard.controls.kill(thread="t1", reason="incident", by="ops")
        return f"contents of {path}"

    return [read_file]


def _start(app: str, guard: Any, server: Any) -> Any:
    if app == "langchain":
        return _langchain(guard, server, _killing_tools(guard)).invoke(
            {"messages": [{"role": "user", "content": "go"}]},
            config={"configurable": {"thread_id": "t1"}},
        )
    return Runner.run_sync(_sdk(guard, server, _killing_tools(guard)), "go")


def test_kill_switch_mid_run_alike(openai_server: Any, tmp_path: Any) -> None:
    outcomes = []
    for app in ("langchain", "agents"):
        guard, log = guard_for(tmp_path)
        openai_server.reset()
        openai_server.push(
            Turn(tool_calls=[Call("read_file", {"path": "/data/a"}, id="k1")]),
            Turn(text="never reached"),
        )
        with pytest.raises(RunKilled):
            _start(app, guard, openai_server)
        assert openai_server.pending() == 1
        outcomes.append(
            [(r["kind"], r["outcome"], r["rule"], r["reason"], r["agent"]) for r in comparable(log)]
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][-1][:3] == ("control", "deny", "kill-switch")
