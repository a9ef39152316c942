"""Each invocation of a thread starts its own causal tree, also for hand-off tools.

A langgraph-swarm app (``create_agent`` agents under ``GuardMiddleware``, hand-offs by
``create_handoff_tool``) keeps one conversation per thread, and every user turn is a new
invocation. The hand-off tools take their causal parent from the last message delivered to
the agent (``Inbox``); a delivery made in an earlier turn did not start what the agent
sends now. Generated: random agent names, chain lengths, numbers of turns and wordings
(the same few lines repeated, which is what a status question asked turn after turn looks
like). The same hand-offs inside one invocation are a loop and trip: the control that
shows the test can fail.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_swarm import create_handoff_tool, create_swarm

from guardrails_plugin import Guard, Policy, allow
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.testing import ScriptedChatModel, tool_call

NAMES = ("triage", "billing", "support", "status_desk", "ops", "frontline", "backoffice")
LINES = ("Any news on my ticket?", "Still waiting, over to you.", "Nothing new here, back to you.")


def _swarm(agents: list[str], scripts: dict[str, list[Any]]) -> tuple[Any, Guard]:
    guard = Guard(Policy([allow("transfer_to_*")]), cascade=CascadeMonitor())
    built: list[Any] = []
    for a in agents:
        tools = [create_handoff_tool(agent_name=b) for b in agents if b != a]
        model = ScriptedChatModel(scripts[a])
        built.append(create_agent(model, tools, middleware=[GuardMiddleware(guard)], name=a))
    graph = create_swarm(built, default_active_agent=agents[0]).compile(InMemorySaver())
    return graph, guard


def _turn(rng: random.Random, me: str, to: str | None) -> Any:
    if to is None:
        return "Nothing new yet; I will let you know."
    return AIMessage(rng.choice(LINES), tool_calls=[tool_call(f"transfer_to_{to}")])


@pytest.mark.parametrize("seed", range(4))
def test_the_same_handoffs_once_per_user_turn_are_not_a_loop(seed: int) -> None:
    rng = random.Random(seed)
    agents = rng.sample(NAMES, rng.randint(2, 3))
    turns = rng.randint(4, 7)
    # every turn: a0 -> a1 (-> a2) -> a0, who answers the user; the swarm keeps a0 active
    ring = [*agents[1:], agents[0]]
    scripts: dict[str, list[Any]] = {a: [] for a in agents}
    for _ in range(turns):
        for me, to in zip([agents[0], *ring[:-1]], ring, strict=True):
            scripts[me].append(_turn(rng, me, to))
        scripts[agents[0]].append(_turn(rng, agents[0], None))
    graph, guard = _swarm(agents, scripts)
    config: Any = {"configurable": {"thread_id": f"turns-{seed}"}}
    for _ in range(turns):
        out = graph.invoke({"messages": [("user", "Status of my ticket, please?")]}, config)
        assert "__interrupt__" not in out
    assert guard.trips() == []


@pytest.mark.parametrize("seed", range(2))
def test_the_same_handoffs_repeated_in_one_turn_trip_cycles(seed: int) -> None:
    rng = random.Random(seed)
    agents = rng.sample(NAMES, rng.randint(2, 3))
    ring = [*agents[1:], agents[0]]
    scripts: dict[str, list[Any]] = {a: [] for a in agents}
    for _ in range(6):  # the whole ring six times in one invocation
        for me, to in zip([agents[0], *ring[:-1]], ring, strict=True):
            scripts[me].append(_turn(rng, me, to))
    graph, guard = _swarm(agents, scripts)
    config: Any = {"configurable": {"thread_id": f"loop-{seed}"}}
    graph.invoke({"messages": [("user", "Status of my ticket, please?")]}, config)
    assert [t.signal for t in guard.trips()][:1] == ["cycles"]
