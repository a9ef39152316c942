"""An attacker who controls the model's output, against the OpenAI Agents SDK adapter, on the
paths the argument fuzzing does not reach: agents made tools (``Agent.as_tool``), whose nested
runs the calling tool's decision does not cover. Teams are generated (how deep, which agents
guarded, which tools named ``unguarded``, which recipients the models write); the oracle is the
guard's own listener: a tool body of a guarded agent runs only with a decision that allowed
exactly those arguments, and wrapping refuses any team that would let one run without."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agents import Agent, AgentHooks, Runner, StopAtTools, function_tool
from agents.exceptions import ModelBehaviorError
from agents_sdk_fakes import call, say, scripted, turn
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from guardrails_plugin import (
    Decision,
    Effect,
    Event,
    Guard,
    Policy,
    RunKilled,
    RunPaused,
    ToolCall,
    allow,
)
from guardrails_plugin.agents_sdk import guard_agent
from guardrails_plugin.scopes import Emails

RECIPIENTS = ["a@corp.com", "x@evil.com", "b@corp.com.evil.com", "A@CORP.COM", "c@sub.corp.com"]


def _policy() -> Policy:
    return Policy(
        [
            allow("ask_level*", id="delegate"),
            allow("send_email", args={"to": Emails(domains=["corp.com"])}, id="mail-inside"),
        ]
    )


def _mailer(name: str, ran: list[tuple[str, str]]) -> Any:
    def send_email(to: str) -> str:
        """Send an email."""
        ran.append((name, to))
        return "sent"

    return send_email


def _team(
    guard: Guard,
    guarded: list[bool],
    recipients: list[str],
    unguarded: tuple[str, ...],
    ran: list[tuple[str, str]],
) -> Agent[Any]:
    """Level 0 (always guarded) down to the last level; level i sends one email and, but for
    the last, calls the agent of level i + 1 as a tool; built bottom-up as an app would."""
    below: Agent[Any] | None = None
    for level in reversed(range(len(guarded))):
        name = f"level{level}"

        tools: list[Any] = [function_tool(_mailer(name, ran), name_override="send_email")]
        calls = [call("send_email", {"to": recipients[level]}, f"{name}-mail")]
        if below is not None:
            tools.append(below.as_tool(f"ask_{below.name}", "delegate"))
            calls.append(call(f"ask_{below.name}", {"input": "go"}, f"{name}-ask"))
        agent = Agent(name=name, model=scripted(turn(*calls), say("done")), tools=tools)
        below = guard_agent(agent, guard, unguarded=unguarded) if guarded[level] else agent
    assert below is not None
    return below


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    guarded=st.lists(st.booleans(), min_size=1, max_size=4).map(lambda g: [True, *g[1:]]),
    recipients=st.lists(st.sampled_from(RECIPIENTS), min_size=4, max_size=4),
    left=st.sets(st.integers(1, 3)),
    mode=st.sampled_from(["sync", "async"]),
)
def test_a_nested_agent_tool_never_runs_a_tool_the_guard_did_not_decide(
    guarded: list[bool], recipients: list[str], left: set[int], mode: str
) -> None:
    seen: list[tuple[Event, Decision]] = []
    guard = Guard(_policy(), listeners=[lambda e, d: seen.append((e, d))])
    ran: list[tuple[str, str]] = []
    unguarded = tuple(f"ask_level{i}" for i in sorted(left))
    # a guarded level holding the tool of an unguarded level not named in unguarded=
    refused = any(
        guarded[i] and not guarded[i + 1] and (i + 1) not in left for i in range(len(guarded) - 1)
    )
    if refused:
        event("refused")
        with pytest.raises(TypeError, match="is not guarded"):
            _team(guard, guarded, recipients, unguarded, ran)
        return
    top = _team(guard, guarded, recipients, unguarded, ran)
    if mode == "sync":
        Runner.run_sync(top, "go")
    else:
        asyncio.run(Runner.run(top, "go"))

    allowed = [
        (e.agent, e.args.get("to"))
        for e, d in seen
        if isinstance(e, ToolCall) and e.tool == "send_email" and d.effect is Effect.ALLOW
    ]
    for agent, to in ran:
        level = int(agent.removeprefix("level"))
        event("ran guarded" if guarded[level] else "ran unguarded (left so)")
        if guarded[level]:
            assert (agent, to) in allowed, (agent, to, allowed)
            assert to.lower().endswith("@corp.com")
        else:  # only a level its caller named in unguarded= (or under one) runs unguarded
            assert any(i in left for i in range(1, level + 1))
    # every guarded level was reached and decided (the nested runs happened)
    reached = {int(a.removeprefix("level")) for a, _ in allowed} | {
        int(e.agent.removeprefix("level"))
        for e, _ in seen
        if isinstance(e, ToolCall) and e.tool == "send_email"
    }
    assert reached == {i for i, g in enumerate(guarded) if g}


def test_an_agent_tool_of_an_unguarded_agent_is_refused_and_the_guarded_one_is_decided() -> None:
    ran: list[tuple[str, str]] = []
    guard = Guard(_policy())
    with pytest.raises(TypeError, match=r"'ask_level1' .* 'level1' is not guarded"):
        _team(guard, [True, False], ["a@corp.com", "x@evil.com"], (), ran)
    top = _team(guard, [True, True], ["a@corp.com", "x@evil.com"], (), ran)
    Runner.run_sync(top, "go")
    assert ran == [("level0", "a@corp.com")]  # level1's mail to evil.com was denied


# -- the kill switch where no model turn follows (tool_use_behavior) --------------------------


class _KillAfterTurn(AgentHooks[Any]):
    """The app's own hook: an operator's flag lands after the model answered, before its
    calls are decided."""

    def __init__(self, guard: Guard, flag: str) -> None:
        self.guard, self.flag = guard, flag

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        if self.flag == "kill":
            self.guard.controls.kill(thread="t-stop", reason="operator")
        elif self.flag == "pause":
            self.guard.controls.pause(thread="t-stop", reason="operator")


@pytest.mark.parametrize("behavior", ["run_llm_again", "stop_on_first_tool", "stop_at_tools"])
@pytest.mark.parametrize("flag", ["kill", "pause", "none"])
@pytest.mark.parametrize("mode", ["sync", "async", "streamed"])
def test_a_call_the_kill_switch_stopped_never_ends_the_run_as_a_success(
    behavior: str, flag: str, mode: str
) -> None:
    ran: list[tuple[str, str]] = []
    guard = Guard(_policy())
    use: Any = (
        StopAtTools(stop_at_tool_names=["send_email"]) if behavior == "stop_at_tools" else behavior
    )
    agent = Agent(
        name="level0",
        model=scripted(call("send_email", {"to": "a@corp.com"}, "c1"), say("done")),
        tools=[function_tool(_mailer("level0", ran), name_override="send_email")],
        hooks=_KillAfterTurn(guard, flag),
        tool_use_behavior=use,
    )
    guarded = guard_agent(agent, guard, thread="t-stop")

    async def streamed() -> Any:
        result = Runner.run_streamed(guarded, "go")
        async for _ in result.stream_events():
            pass
        return result

    def go() -> Any:
        if mode == "sync":
            return Runner.run_sync(guarded, "go")
        if mode == "streamed":
            return asyncio.run(streamed())
        return asyncio.run(Runner.run(guarded, "go"))

    if flag == "none":
        result = go()
        assert ran == [("level0", "a@corp.com")]
        assert result.final_output == ("done" if behavior == "run_llm_again" else "sent")
        return
    with pytest.raises(RunKilled if flag == "kill" else RunPaused):
        go()
    assert ran == []


# -- a call id the person approved, reused by the model for another call ----------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    second=st.sampled_from(RECIPIENTS),
    reuse=st.booleans(),
    always=st.booleans(),
    mode=st.sampled_from(["sync", "async"]),
)
def test_an_approval_covers_the_call_the_person_saw_and_no_other(
    second: str, reuse: bool, always: bool, mode: str
) -> None:
    """A person approves send_email(a@corp.com) with id c1; the model's next turn sends
    another mail, under the same id or a new one. The approval never runs a call the person
    did not see, unless it was given "always" and the policy's decision on the new call's own
    arguments is that same ask rule."""
    from guardrails_plugin import ask

    ran: list[tuple[str, str]] = []
    guard = Guard(Policy([ask("send_email", args={"to": Emails(domains=["corp.com"])}, id="ok?")]))
    model = scripted(
        call("send_email", {"to": "a@corp.com"}, "c1"),
        call("send_email", {"to": second}, "c1" if reuse else "c2"),
        say("done"),
    )
    tool = function_tool(_mailer("level0", ran), name_override="send_email")
    agent = guard_agent(Agent(name="level0", model=model, tools=[tool]), guard, thread="t-ok")

    def go(start: Any) -> Any:
        if mode == "sync":
            return Runner.run_sync(agent, start)
        return asyncio.run(Runner.run(agent, start))

    first = go("go")
    [item] = first.interruptions
    state = first.to_state()
    state.approve(item, always_approve=always)
    try:
        result = go(state)
        ending = "interrupted" if result.interruptions else "finished"
    except ModelBehaviorError:  # the SDK refuses a completed id reused for another call
        assert reuse
        ending = "refused by the SDK"

    inside = second.lower().endswith("@corp.com")
    assert ran[0] == ("level0", "a@corp.com")
    ran_second = len(ran) == 2
    event(f"second ran={ran_second}, {ending}")
    assert ran_second == (always and inside and not reuse), (ran, ending)
    if ran_second:
        assert ran[1] == ("level0", second)
