"""``approval_requests`` and ``answer`` read a ``StateSnapshot`` from ``graph.get_state``.

A ``StateSnapshot`` is a named tuple: read as a plain iterable it holds no ``Interrupt``,
so the approvals waiting in it went unseen and ``answer`` raised ``KeyError``. Real graphs,
real snapshots: a top-level tool node, several approvals of one step, and approvals raised
inside a subgraph (the snapshot read with and without ``subgraphs=True``).
"""

from __future__ import annotations

from typing import Any

import pytest
from fakes import Ran, ScriptedChatModel, recording_tool, tool_call, user
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import StateSnapshot
from langgraph_apps import MODES, config, run, tool_graph

from guardrails_plugin import Approval, Guard, Policy, allow, ask
from guardrails_plugin.langgraph import GuardedToolNode, answer, approval_requests


def policy() -> Policy:
    return Policy([allow("search"), ask("send_email", id="mail-needs-ok")])


def tools(ran: Ran) -> list[BaseTool]:
    return [recording_tool("search", ran, "q"), recording_tool("send_email", ran, "to")]


def loop(model: ScriptedChatModel, ran: Ran, guard: Guard) -> Any:
    """The agent loop without a checkpointer: as a subgraph it uses its parent's."""
    bound = model.bind_tools(tools(ran))

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", GuardedToolNode(tools(ran), guard))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def parent_of(subgraph: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("mailer", subgraph)
    builder.add_edge(START, "mailer")
    return builder.compile(checkpointer=InMemorySaver())


def two_mails() -> ScriptedChatModel:
    return ScriptedChatModel(
        [
            [
                tool_call("search", q="who", id="c-search"),
                tool_call("send_email", to="a@acme.com", id="c-a"),
                tool_call("send_email", to="b@acme.com", id="c-b"),
            ],
            "done",
        ]
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_snapshot_shows_the_approvals_of_a_step_and_answers_them(mode: str) -> None:
    ran: Ran = []
    graph = tool_graph(two_mails(), tools(ran), Guard(policy()), checkpointer=InMemorySaver())

    out = await run(graph, user("mail both"), config(), mode)
    snapshot = graph.get_state(config())
    assert isinstance(snapshot, StateSnapshot)

    found = approval_requests(snapshot)
    assert sorted(p.call_id for p in found) == ["c-a", "c-b"]
    assert {p.call_id: p.args for p in found} == {p.call_id: p.args for p in approval_requests(out)}
    assert ran == [("search", {"q": "who"})]

    resume = answer(snapshot, {"c-a": Approval.approve(), "c-b": Approval.reject("no")})
    assert resume == answer(out, {"c-a": Approval.approve(), "c-b": Approval.reject("no")})
    out = await run(graph, resume, config(), mode)

    assert "__interrupt__" not in out
    assert ran == [("search", {"q": "who"}), ("send_email", {"to": "a@acme.com"})]
    assert approval_requests(graph.get_state(config())) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("subgraphs", [False, True])
async def test_a_snapshot_shows_approvals_raised_inside_a_subgraph(
    mode: str, subgraphs: bool
) -> None:
    ran: Ran = []
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-mail"), "sent"])
    graph = parent_of(loop(model, ran, Guard(policy())))

    await run(graph, user("mail a"), config(), mode)
    snapshot = graph.get_state(config(), subgraphs=subgraphs)

    [found] = approval_requests(snapshot)
    assert (found.call_id, found.tool, found.rule) == ("c-mail", "send_email", "mail-needs-ok")
    assert ran == []

    out = await run(graph, answer(snapshot, True), config(), mode)  # one answer for all

    assert "__interrupt__" not in out
    assert ran == [("send_email", {"to": "a@acme.com"})]  # exactly once
    assert approval_requests(graph.get_state(config(), subgraphs=subgraphs)) == []


def test_answer_names_the_pending_calls_when_a_snapshot_lacks_the_one_asked_for() -> None:
    ran: Ran = []
    graph = tool_graph(two_mails(), tools(ran), Guard(policy()), checkpointer=InMemorySaver())
    graph.invoke(user("mail both"), config())

    with pytest.raises(KeyError, match=r"'c-zzz'.*\['c-a', 'c-b'\]"):
        answer(graph.get_state(config()), {"c-zzz": True})


@pytest.mark.parametrize("source", ["c-a", b"c-a", 42, None, object()])
def test_a_source_that_holds_no_interrupts_is_an_error_not_an_empty_answer(source: Any) -> None:
    with pytest.raises(TypeError, match="StateSnapshot"):
        approval_requests(source)
    with pytest.raises(TypeError, match="StateSnapshot"):
        answer(source, True)
