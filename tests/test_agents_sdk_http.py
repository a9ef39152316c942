"""The Agents SDK adapter over the real HTTP model path: the SDK's own OpenAI models
(``OpenAIChatCompletionsModel``, ``OpenAIResponsesModel``) with a real ``AsyncOpenAI`` client
pointed at the scripted server on loopback (tests/openai_server.py), streaming included."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, OpenAIChatCompletionsModel, OpenAIResponsesModel, Runner
from agents.run_state import RunState
from agents_sdk_fakes import Ran, tools
from openai import AsyncOpenAI
from openai_server import Call, Turn

from guardrails_plugin import Approval, Budget, Effect, Guard, Policy, allow, ask
from guardrails_plugin.agents_sdk import answer, guard_agent
from guardrails_plugin.scopes import Emails, Paths

APIS = ["chat", "responses"]


def _model(server: Any, api: str) -> Any:
    client = AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0)
    if api == "chat":
        return OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)
    return OpenAIResponsesModel(model="gpt-test", openai_client=client)


def _policy() -> Policy:
    return Policy(
        [
            allow("read_file", args={"path": Paths(["/data"])}, id="read-data"),
            ask("send_email", args={"to": Emails(domains=["example.com"])}, id="mail-needs-ok"),
        ],
        budgets=[Budget.calls(2, tools="read_file", per="thread")],
    )


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [False, True])
def test_deny_allow_and_budget_over_http(openai_server: Any, api: str, stream: bool) -> None:
    ran: Ran = []
    openai_server.push(
        Turn(
            tool_calls=[
                Call("read_file", {"path": "/etc/shadow"}, id="c1"),
                Call("read_file", {"path": "/data/a"}, id="c2"),
                Call("read_file", '{"path": "/data/b", "mode": "w"}', id="c3"),
            ]
        ),
        Turn(tool_calls=[Call("read_file", {"path": "/data/c"}, id="c4")]),
        Turn(tool_calls=[Call("read_file", {"path": "/data/d"}, id="c5")]),
        Turn(text="done"),
    )
    seen: list[tuple[str, Effect, str]] = []
    guard = Guard(
        _policy(),
        listeners=[lambda e, d: seen.append((getattr(e, "call_id", ""), d.effect, d.rule))],
    )
    agent = guard_agent(
        Agent(name="worker", model=_model(openai_server, api), tools=list(tools(ran).values())),
        guard,
        thread="http-1",
    )

    async def go() -> Any:
        if stream:
            result = Runner.run_streamed(agent, "read")
            async for _ in result.stream_events():
                pass
            return result
        return await Runner.run(agent, "read")

    result = asyncio.run(go())

    assert result.final_output == "done"
    assert ran == [("read_file", {"path": "/data/a"}), ("read_file", {"path": "/data/c"})]
    rules = {cid: (eff, rule) for cid, eff, rule in seen if cid}
    assert rules["c1"][0] is Effect.DENY
    assert rules["c1"][1] == "default-deny"
    assert rules["c3"] == (Effect.DENY, "malformed-call")
    assert rules["c5"][0] is Effect.DENY
    assert "calls" in rules["c5"][1]
    # The model read every denial over the wire, in the API's own format.
    sent: dict[str, Any] = {}
    for request in openai_server.requests:
        sent.update(request.tool_outputs())
    assert "outside the allowed roots" in str(sent["c1"])
    assert "malformed-call" in str(sent["c3"])
    assert "2 of 2 calls used" in str(sent["c5"])
    assert sent["c2"] == "Q3 revenue: 1.2M"


@pytest.mark.parametrize("api", APIS)
def test_an_edited_approval_resumed_from_a_serialized_state_over_http(
    openai_server: Any, api: str
) -> None:
    ran: Ran = []
    openai_server.push(
        Turn(tool_calls=[Call("send_email", {"to": "boss@example.com", "body": "Q3"}, id="m1")]),
        Turn(text="sent"),
    )
    guard = Guard(_policy())

    def build(guard: Guard) -> Any:  # a fresh client per event loop, as another process has
        model = _model(openai_server, api)
        worker = Agent(name="worker", model=model, tools=list(tools(ran).values()))
        return guard_agent(worker, guard, thread="http-2")

    first = Runner.run_sync(build(guard), "mail the boss")
    saved = first.to_state().to_string()

    agent = build(Guard(_policy(), store=guard.store))
    state = asyncio.run(RunState.from_string(agent, saved))
    [item] = state.get_interruptions()
    answer(state, item, Approval.edit({"to": "team@example.com", "body": "Q3"}, approver="ops"))
    result = Runner.run_sync(agent, state)

    assert result.final_output == "sent"
    assert ran == [("send_email", {"to": "team@example.com", "body": "Q3"})]
    assert openai_server.requests[-1].tool_outputs() == {"m1": "sent"}
