"""One policy, one script, two apps: a plain ``openai`` tool loop (``GuardedTools``) and a
LangChain ``create_agent`` app whose model is ``langchain-openai``'s ``ChatOpenAI`` pointed at
the same local server, guarded by ``GuardMiddleware``. Both talk real HTTP to the scripted
server; they must reach the same decisions, write the same audit records, and send the model
the same tool outputs (the server records what each client sent back). This also covers the
LangChain adapter's real HTTP model path (usage read from ``ChatOpenAI``'s answers)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import StructuredTool
from langchain_openai import ChatOpenAI
from openai_scenarios import TOOLS, chat_loop, client, comparable, guard_for
from openai_server import Call, Turn, Usage

from guardrails_plugin import Approval, BudgetExceeded, RunKilled
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.openai import GuardedTools
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
    Turn(  # a second count is over the call budget; this answer takes the model budget
        # over: its read is denied, and the run stops before the next model call
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


def approver(request: Any) -> Approval:
    if request.call.tool == "read_file":
        return Approval.edit({"path": "/data/public/key"}, approver="ana")
    return Approval.reject("not now", approver="ana")


def _agent(guard: Any, server: Any, *, aio: bool = False) -> Any:
    model = ChatOpenAI(model="gpt-test", base_url=server.base_url, api_key="test", max_retries=0)
    tools = [StructuredTool.from_function(f) for f in TOOLS]
    return create_agent(model, tools=tools, middleware=[GuardMiddleware(guard)], name="support")


def _by_call(items: list[Any], call_id: Any) -> list[Any]:
    """``items`` grouped by call id, each call's own order kept: create_agent runs the calls
    of one answer in parallel (their relative order varies), the plain loop one by one."""
    groups: dict[Any, list[Any]] = {}
    for item in items:
        groups.setdefault(call_id(item), []).append(item)
    return sorted(groups.items(), key=lambda kv: str(kv[0]))


def _sent(server: Any) -> list[dict[str, Any]]:
    return [r.tool_outputs() for r in server.requests]


def _offered(server: Any) -> list[list[str]]:
    return [sorted(t["function"]["name"] for t in r.body.get("tools", [])) for r in server.requests]


def _run_plain(server: Any, tmp_path: Any) -> tuple[list[Any], Any]:
    guard, log = guard_for(tmp_path, *BUDGETS, approver=approver)
    decisions: list[Any] = []
    guard.listeners.append(lambda event, d: decisions.append(_seen(event, d)))
    server.reset()
    server.push(*SCRIPT)
    tools = GuardedTools(guard, TOOLS, agent="support", thread_id="t1")
    with pytest.raises(BudgetExceeded):
        chat_loop(tools, client(server), "work")
    return decisions, log


def test_plain_loop_and_langchain_agent_decide_and_record_alike(openai_server, tmp_path):
    plain_decisions, plain_log = _run_plain(openai_server, tmp_path)
    plain_sent, plain_offered = _sent(openai_server), _offered(openai_server)
    assert openai_server.pending() == 1  # the run stopped before the last model call

    guard, log = guard_for(tmp_path, *BUDGETS, approver=approver)
    decisions: list[Any] = []
    guard.listeners.append(lambda event, d: decisions.append(_seen(event, d)))
    openai_server.reset()
    openai_server.push(*SCRIPT)
    with pytest.raises(BudgetExceeded):
        _agent(guard, openai_server).invoke(
            {"messages": [{"role": "user", "content": "work"}]},
            config={"configurable": {"thread_id": "t1"}},
        )
    assert openai_server.pending() == 1

    assert _by_call(decisions, lambda d: d[0]) == _by_call(plain_decisions, lambda d: d[0])
    records, plain_records = comparable(log), comparable(plain_log)
    assert {r["kind"] for r in plain_records} == {"decision", "approval", "result"}
    in_call = lambda r: r["detail"].get("call_id")  # noqa: E731
    assert _by_call(records, in_call) == _by_call(plain_records, in_call)
    assert _sent(openai_server) == plain_sent
    assert _offered(openai_server) == plain_offered
    # and the script did exercise what it is meant to
    rules = [rule for _, _, rule, _ in plain_decisions]
    for expected in (
        "allow read_file",
        "default-deny",
        "malformed-call",
        "private files",
        "email needs a person",
        "calls of count per thread",
        "record",
        "tokens in model per thread",
    ):
        assert expected in rules
    assert [str(effect) for _, effect, _, _ in plain_decisions].count("modify") == 1


def _seen(event: Any, d: Any) -> tuple[Any, ...]:
    return (getattr(event, "call_id", None), d.effect, d.rule, d.reason)


async def test_kill_switch_alike_async(openai_server, tmp_path):
    outcomes = []
    for app in ("plain", "langchain"):
        guard, log = guard_for(tmp_path)
        guard.controls.kill(thread="t9", reason="incident")
        openai_server.reset()
        openai_server.push(Turn(text="never reached"))
        if app == "plain":
            tools = GuardedTools(guard, TOOLS, agent="support", thread_id="t9")
            stopped = tools.abefore_model()
        else:
            stopped = _agent(guard, openai_server).ainvoke(
                {"messages": [{"role": "user", "content": "go"}]},
                config={"configurable": {"thread_id": "t9"}},
            )
        with pytest.raises(RunKilled):
            await stopped
        assert openai_server.requests == []
        outcomes.append(
            [(r["kind"], r["outcome"], r["rule"], r["reason"]) for r in comparable(log)]
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][-1][:2] == ("control", "deny")
