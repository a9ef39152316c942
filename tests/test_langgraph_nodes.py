"""guard_node in real multi-agent graphs: hand-offs checked as calls of the tool "handoff"
(``Command(goto=...)``, ``Send`` fan-out, ``Command.PARENT`` from subgraphs and sub-agents),
the identity each agent's calls are checked under, and approvals raised deep inside
subgraphs and sub-agents that reach the caller of the parent graph.

Every graph is real (``StateGraph``, ``create_agent``, ``InMemorySaver``); models are scripted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fakes import Ran, ScriptedChatModel, Seen, recording_tool, tool_call, tool_messages, user
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolCallId, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command, Send
from langgraph_apps import MODES, config, run

from guardrails_plugin import (
    Approval,
    Effect,
    Guard,
    Policy,
    ToolCallDenied,
    allow,
    ask,
)
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import (
    HANDOFF_TOOL,
    GuardedToolNode,
    answer,
    approval_requests,
    guard_node,
)
from guardrails_plugin.scopes import OneOf

Log = list[str]


def handoffs(seen: Seen) -> list[tuple[str | None, str, Effect]]:
    """The hand-offs the guard decided: (agent, target, effect)."""
    return [(c.agent, c.args["to"], d.effect) for c, d in seen.calls if c.tool == HANDOFF_TOOL]


def worker(name: str, log: Log, goto: str | None = None) -> Callable[[Any], Any]:
    """A node that logs its name, writes one AI message and hands off to ``goto`` if given."""

    def body(state: Any) -> Any:
        log.append(name)
        update = {"messages": [AIMessage(f"{name} done")]}
        return update if goto is None else Command(goto=goto, update=update)

    body.__name__ = name
    return body


def supervisor(plan: list[str], log: Log) -> Callable[[Any], Any]:
    """Hands off to ``plan[i]`` on its i-th visit (counted from the state, so that a re-run
    of the node after an interrupt makes the same choice)."""

    def body(state: MessagesState) -> Command[Any]:
        log.append("supervisor")
        visits = sum(1 for m in state["messages"] if m.text.startswith("supervisor:"))
        target = plan[visits]
        return Command(goto=target, update={"messages": [AIMessage(f"supervisor: {target}")]})

    return body


def team(
    guard: Guard,
    plan: list[str],
    log: Log,
    *,
    researcher_goto: str | None = None,
    researcher_reports: bool = True,
    on_deny: Any = "raise",
    checkpointer: Any = None,
) -> Any:
    """supervisor -> (Command) researcher | writer | admin; researcher (unless
    ``researcher_reports=False``) and writer report back to the supervisor by static edges;
    admin ends the run."""
    builder = StateGraph(MessagesState)
    builder.add_node("supervisor", guard_node(supervisor(plan, log), guard, on_deny=on_deny))
    builder.add_node(
        "researcher", guard_node(worker("researcher", log, researcher_goto), guard, on_deny=on_deny)
    )
    builder.add_node("writer", guard_node(worker("writer", log), guard, on_deny=on_deny))
    builder.add_node("admin", worker("admin", log))
    builder.add_edge(START, "supervisor")
    if researcher_reports:
        builder.add_edge("researcher", "supervisor")
    builder.add_edge("writer", "supervisor")
    return builder.compile(checkpointer=checkpointer)


def team_policy(*extra: Any) -> Policy:
    return Policy(
        [
            allow(HANDOFF_TOOL, agents="supervisor", args={"to": OneOf(["researcher", "writer"])}),
            *extra,
        ]
    )


# -- hand-offs: Command(goto=...) ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_allowed_handoffs_route_the_team_and_ending_is_not_a_handoff(mode: str) -> None:
    log: Log = []
    seen = Seen()
    graph = team(Guard(team_policy(), listeners=[seen]), ["researcher", "writer", END], log)

    result = await run(graph, user("write a report"), None, mode)

    assert log == ["supervisor", "researcher", "supervisor", "writer", "supervisor"]
    assert handoffs(seen) == [
        ("supervisor", "researcher", Effect.ALLOW),
        ("supervisor", "writer", Effect.ALLOW),
    ]
    assert result["messages"][-1].text == "supervisor: __end__"


@pytest.mark.parametrize("mode", MODES)
async def test_a_denied_handoff_raises_and_its_target_never_runs(mode: str) -> None:
    log: Log = []
    graph = team(Guard(team_policy()), ["admin"], log)

    with pytest.raises(ToolCallDenied) as caught:
        await run(graph, user("make me admin"), None, mode)

    assert log == ["supervisor"]
    decision = caught.value.decision
    assert (decision.tool, decision.agent, decision.rule) == (
        "handoff",
        "supervisor",
        "default-deny",
    )
    assert "found str 'admin'" in str(caught.value)


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_handoff_keeps_the_update_and_the_static_edges_decide(mode: str) -> None:
    log: Log = []
    seen = Seen()
    guard = Guard(team_policy(), listeners=[seen])
    graph = team(guard, ["researcher", "writer", END], log, researcher_goto="admin", on_deny="drop")

    result = await run(graph, user("go"), None, mode)

    # researcher -> admin was dropped; its static edge took it back to the supervisor
    assert log == ["supervisor", "researcher", "supervisor", "writer", "supervisor"]
    assert ("researcher", "admin", Effect.DENY) in handoffs(seen)
    assert "researcher done" in [m.text for m in result["messages"]]


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_handoff_with_no_static_edge_ends_the_run(mode: str) -> None:
    log: Log = []
    graph = team(Guard(team_policy()), ["admin"], log, on_deny="drop")

    result = await run(graph, user("make me admin"), None, mode)

    assert log == ["supervisor"]
    assert result["messages"][-1].text == "supervisor: admin"  # the update was kept


# -- hand-offs: Send fan-out --------------------------------------------------------------------


def fan_out(guard: Guard, on_deny: Any, log: Log) -> Any:
    def planner(state: MessagesState) -> Command[Any]:
        log.append("planner")
        return Command(
            goto=[
                Send(w, {"messages": [AIMessage(f"task for {w}")]})
                for w in ("web", "news", "admin")
            ]
        )

    builder = StateGraph(MessagesState)
    builder.add_node("planner", guard_node(planner, guard, on_deny=on_deny))
    for name in ("web", "news", "admin"):
        builder.add_node(name, worker(name, log))
    builder.add_edge(START, "planner")
    return builder.compile()


@pytest.mark.parametrize("mode", MODES)
async def test_send_fan_out_drops_only_the_denied_target(mode: str) -> None:
    log: Log = []
    seen = Seen()
    policy = Policy([allow(HANDOFF_TOOL, agents="planner", args={"to": OneOf(["web", "news"])})])
    graph = fan_out(Guard(policy, listeners=[seen]), "drop", log)

    result = await run(graph, user("research"), None, mode)

    assert log[0] == "planner"
    assert sorted(log[1:]) == ["news", "web"]
    assert handoffs(seen) == [
        ("planner", "web", Effect.ALLOW),
        ("planner", "news", Effect.ALLOW),
        ("planner", "admin", Effect.DENY),
    ]
    assert sorted(m.text for m in result["messages"][1:]) == ["news done", "web done"]


@pytest.mark.parametrize("mode", MODES)
async def test_send_fan_out_with_a_denied_target_raises_before_any_target_runs(mode: str) -> None:
    log: Log = []
    policy = Policy([allow(HANDOFF_TOOL, agents="planner", args={"to": OneOf(["web", "news"])})])
    graph = fan_out(Guard(policy), "raise", log)

    with pytest.raises(ToolCallDenied, match="found str 'admin'"):
        await run(graph, user("research"), None, mode)

    assert log == ["planner"]


# -- hand-offs from subgraphs: Command(graph=Command.PARENT) -----------------------------------


def research_team(log: Log, inner: Callable[[Any], Any] | None = None) -> Any:
    """A subgraph whose ``lead`` hands off to the parent's node named by the user message."""

    def lead(state: MessagesState) -> Command[Any]:
        log.append("lead")
        target = state["messages"][0].text
        return Command(
            graph=Command.PARENT, goto=target, update={"messages": [AIMessage("lead: done")]}
        )

    builder = StateGraph(MessagesState)
    builder.add_node("lead", inner(lead) if inner else lead)
    builder.add_edge(START, "lead")
    return builder.compile()


def parent_of(team_node: Any, log: Log, name: str = "research_team") -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node(name, team_node)
    builder.add_node("writer", worker("writer", log))
    builder.add_node("admin", worker("admin", log))
    builder.add_edge(START, name)
    return builder.compile()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("agent", [None, "researchers"])
async def test_a_subgraph_handoff_to_the_parent_is_checked_as_the_subgraphs_agent(
    mode: str, agent: str | None
) -> None:
    identity = agent or "research_team"  # the node name unless agent= is given
    seen = Seen()
    guard = Guard(
        Policy([allow(HANDOFF_TOOL, agents=identity, args={"to": OneOf(["writer"])})]),
        listeners=[seen],
    )
    log: Log = []
    graph = parent_of(guard_node(research_team(log), guard, agent=agent), log)

    result = await run(graph, user("writer"), None, mode)
    assert log == ["lead", "writer"]
    assert handoffs(seen) == [(identity, "writer", Effect.ALLOW)]
    lead_says = next(m for m in result["messages"] if m.text == "lead: done")
    assert lead_says.name == identity  # stamped on the way up

    log.clear()
    with pytest.raises(ToolCallDenied) as caught:
        await run(graph, user("admin"), None, mode)
    assert log == ["lead"]
    assert caught.value.decision.agent == identity


@pytest.mark.parametrize("mode", MODES)
async def test_a_dropped_subgraph_handoff_keeps_the_update_and_ends(mode: str) -> None:
    log: Log = []
    guard = Guard(Policy([]))
    graph = parent_of(guard_node(research_team(log), guard, on_deny="drop"), log)

    result = await run(graph, user("admin"), None, mode)

    assert log == ["lead"]
    assert result["messages"][-1].text == "lead: done"


@pytest.mark.parametrize("mode", MODES)
async def test_a_node_inside_a_subgraph_handing_off_to_the_parent_is_checked_as_graph_parent(
    mode: str,
) -> None:
    seen = Seen()
    policy = Policy(
        [
            allow(
                HANDOFF_TOOL,
                agents="lead",
                args={"to": OneOf(["writer"]), "graph": OneOf(["parent"])},
            )
        ]
    )
    guard = Guard(policy, listeners=[seen])
    log: Log = []
    graph = parent_of(research_team(log, inner=lambda n: guard_node(n, guard)), log)

    await run(graph, user("writer"), None, mode)
    assert log == ["lead", "writer"]
    [(call, decision)] = seen.calls
    assert (call.agent, dict(call.args), decision.effect) == (
        "lead",
        {"to": "writer", "graph": "parent"},
        Effect.ALLOW,
    )

    log.clear()
    with pytest.raises(ToolCallDenied):
        await run(graph, user("admin"), None, mode)
    assert log == ["lead"]


def transfer_to(target: str) -> BaseTool:
    """The usual hand-off tool of supervisor and swarm teams: Command.PARENT from a tool."""

    @tool(f"transfer_to_{target}")
    def transfer(tool_call_id: Annotated[str, InjectedToolCallId]) -> Command[Any]:
        """Hand the conversation to another agent."""
        message = ToolMessage(f"handed to {target}", tool_call_id=tool_call_id)
        return Command(graph=Command.PARENT, goto=target, update={"messages": [message]})

    return transfer


def sub_agent_team(guard: Guard, model: ScriptedChatModel, log: Log) -> Any:
    """A create_agent researcher, guarded as a node, whose tools hand off to the parent."""
    researcher = create_agent(
        model,
        tools=[transfer_to("writer"), transfer_to("admin")],
        middleware=[GuardMiddleware(guard)],
        name="researcher",
    )
    return parent_of(guard_node(researcher, guard), log, name="researcher")


@pytest.mark.parametrize("mode", MODES)
async def test_a_sub_agents_handoff_tool_is_checked_as_a_handoff_of_that_agent(mode: str) -> None:
    seen = Seen()
    policy = Policy(
        [
            allow("transfer_to_*"),  # the tools may run; the hand-off they make is checked
            allow(HANDOFF_TOOL, agents="researcher", args={"to": OneOf(["writer"])}),
        ]
    )
    guard = Guard(policy, listeners=[seen])
    log: Log = []
    model = ScriptedChatModel([tool_call("transfer_to_writer")])
    graph = sub_agent_team(guard, model, log)

    result = await run(graph, user("go"), None, mode)
    assert log == ["writer"]
    assert handoffs(seen) == [("researcher", "writer", Effect.ALLOW)]
    assert "handed to writer" in [m.text for m in result["messages"]]

    log.clear()
    model = ScriptedChatModel([tool_call("transfer_to_admin")])
    graph = sub_agent_team(guard, model, log)
    with pytest.raises(ToolCallDenied, match="found str 'admin'"):
        await run(graph, user("go"), None, mode)
    assert log == []


# -- hand-offs a person must approve ------------------------------------------------------------


def ask_policy() -> Policy:
    return team_policy(
        ask(HANDOFF_TOOL, agents="researcher", args={"to": OneOf(["writer"])}, id="ok-to-write")
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_handoff_that_needs_approval_interrupts_and_goes_on_once_approved(
    mode: str,
) -> None:
    log: Log = []
    graph = team(
        Guard(ask_policy()),
        ["researcher", END],
        log,
        researcher_goto="writer",
        researcher_reports=False,
        checkpointer=InMemorySaver(),
    )

    out = await run(graph, user("go"), config(), mode)
    [pending] = approval_requests(out)
    assert (pending.tool, pending.agent, dict(pending.args)) == (
        "handoff",
        "researcher",
        {"to": "writer"},
    )
    assert pending.rule == "ok-to-write"
    assert log == ["supervisor", "researcher"]  # the writer waits

    out = await run(graph, answer(out, Approval.approve()), config(), mode)
    assert "__interrupt__" not in out
    # The hand-off is known only once the researcher ran, so the person is asked after it
    # and LangGraph runs the interrupted node again on resume (its output must not change).
    assert log == ["supervisor", "researcher", "researcher", "writer", "supervisor"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_rejected_handoff_raises_and_the_target_never_runs(mode: str) -> None:
    log: Log = []
    graph = team(
        Guard(ask_policy()),
        ["researcher", END],
        log,
        researcher_goto="writer",
        researcher_reports=False,
        checkpointer=InMemorySaver(),
    )
    out = await run(graph, user("go"), config(), mode)

    with pytest.raises(ToolCallDenied, match="rejected: not yet"):
        await run(graph, answer(out, Approval.reject("not yet")), config(), mode)

    assert "writer" not in log


@pytest.mark.parametrize("mode", MODES)
async def test_an_approved_handoff_tool_of_a_sub_agent_hands_off_once_approved(
    mode: str,
) -> None:
    guard = Guard(Policy([allow("transfer_to_*"), ask(HANDOFF_TOOL, agents="researcher")]))
    log: Log = []
    model = ScriptedChatModel([tool_call("transfer_to_admin")])
    graph = _with_static_edge_to_writer(guard, model, log)

    out = await run(graph, user("go"), config(), mode)
    [pending] = approval_requests(out)
    assert dict(pending.args) == {"to": "admin"}

    await run(graph, answer(out, True), config(), mode)
    # as without the guard: the hand-off and the node's static edge both go on (LangGraph
    # runs both); the tool's Command was replayed from the done-ledger, not lost
    assert log == ["admin", "writer"]
    assert model.calls == 1  # the sub-agent did not think again


def _with_static_edge_to_writer(guard: Guard, model: ScriptedChatModel, log: Log) -> Any:
    researcher = create_agent(
        model,
        tools=[transfer_to("admin")],
        middleware=[GuardMiddleware(guard)],
        name="researcher",
    )
    builder = StateGraph(MessagesState)
    builder.add_node("researcher", guard_node(researcher, guard))
    builder.add_node("writer", worker("writer", log))
    builder.add_node("admin", worker("admin", log))
    builder.add_edge(START, "researcher")
    builder.add_edge("researcher", "writer")
    return builder.compile(checkpointer=InMemorySaver())


# -- identity -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_nodes_tools_are_checked_under_the_node_name_or_the_agent_given(
    mode: str,
) -> None:
    ran: Ran = []
    seen = Seen()
    guard = Guard(Policy([allow("publish", agents="editor")]), listeners=[seen])
    publish = recording_tool("publish", ran, "text")
    models = {
        node: ScriptedChatModel([tool_call("publish", text=node), "done"])
        for node in ("researcher", "writer")
    }
    builder = StateGraph(MessagesState)
    for node, agent in (("researcher", None), ("writer", "editor")):
        unnamed = create_agent(models[node], tools=[publish], middleware=[GuardMiddleware(guard)])
        builder.add_node(node, guard_node(unnamed, guard, agent=agent))
    builder.add_edge(START, "researcher")
    builder.add_edge("researcher", "writer")

    await run(builder.compile(), user("publish"), None, mode)

    assert ran == [("publish", {"text": "writer"})]
    assert [(c.agent, d.effect) for c, d in seen.calls] == [
        ("researcher", Effect.DENY),
        ("editor", Effect.ALLOW),
    ]
    # the model calls are made under the same identity: publish was hidden from the researcher
    assert not any("publish" in names for names in models["researcher"].bound_tools)
    assert models["writer"].bound_tools == [["publish"], ["publish"]]


@pytest.mark.parametrize("mode", MODES)
async def test_in_a_team_of_named_agents_each_agents_calls_are_checked_under_its_name(
    mode: str,
) -> None:
    ran: Ran = []
    seen = Seen()
    guard = Guard(
        Policy([allow("search"), allow("publish", agents="writer"), *team_policy().rules]),
        listeners=[seen],
    )
    tools = [recording_tool("search", ran, "q"), recording_tool("publish", ran, "text")]
    models: dict[str, ScriptedChatModel] = {}
    log: Log = []
    builder = StateGraph(MessagesState)
    builder.add_node(
        "supervisor", guard_node(supervisor(["researcher", "writer", END], log), guard)
    )
    for name in ("researcher", "writer"):
        models[name] = ScriptedChatModel(
            [[tool_call("search", q=name), tool_call("publish", text=name)], f"{name} finished"]
        )
        agent = create_agent(
            models[name], tools=tools, middleware=[GuardMiddleware(guard)], name=name
        )
        builder.add_node(name, guard_node(agent, guard))
        builder.add_edge(name, "supervisor")
    builder.add_edge(START, "supervisor")

    result = await run(builder.compile(), user("research, then publish"), None, mode)

    assert sorted(ran, key=str) == sorted(
        [
            ("search", {"q": "researcher"}),
            ("search", {"q": "writer"}),
            ("publish", {"text": "writer"}),
        ],
        key=str,
    )
    tool_calls = [(c.agent, c.tool, d.effect) for c, d in seen.calls if c.tool != HANDOFF_TOOL]
    assert sorted(tool_calls) == [
        ("researcher", "publish", Effect.DENY),
        ("researcher", "search", Effect.ALLOW),
        ("writer", "publish", Effect.ALLOW),
        ("writer", "search", Effect.ALLOW),
    ]
    [denied] = [m for m in tool_messages(result) if m.status == "error"]
    assert "no rule allows tool 'publish' for agent 'researcher'" in denied.text
    assert denied.text in [m.text for m in models["researcher"].seen[1]]  # it read why
    assert handoffs(seen) == [
        ("supervisor", "researcher", Effect.ALLOW),
        ("supervisor", "writer", Effect.ALLOW),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_a_shared_tool_node_attributes_each_call_to_the_agent_that_made_it(
    mode: str,
) -> None:
    ran: Ran = []
    seen = Seen()
    guard = Guard(Policy([allow("publish", agents="writer")]), listeners=[seen])

    def caller(name: str) -> Callable[[Any], Any]:
        def body(state: MessagesState) -> dict[str, Any]:
            call = tool_call("publish", id=f"call-{name}", text=name)
            return {"messages": [AIMessage("", tool_calls=[call])]}  # unnamed: the wrapper names it

        return body

    def back(state: MessagesState) -> str:
        last_ai = next(m for m in reversed(state["messages"]) if isinstance(m, AIMessage))
        return "writer" if last_ai.name == "researcher" else END

    builder = StateGraph(MessagesState)
    builder.add_node("researcher", guard_node(caller("researcher"), guard))
    builder.add_node("writer", guard_node(caller("writer"), guard))
    builder.add_node("tools", GuardedToolNode([recording_tool("publish", ran, "text")], guard))
    builder.add_edge(START, "researcher")
    builder.add_edge("researcher", "tools")
    builder.add_edge("writer", "tools")
    builder.add_conditional_edges("tools", back, ["writer", END])

    result = await run(builder.compile(), user("publish"), None, mode)

    assert ran == [("publish", {"text": "writer"})]
    assert [(c.agent, d.effect) for c, d in seen.calls] == [
        ("researcher", Effect.DENY),
        ("writer", Effect.ALLOW),
    ]
    by_id = {m.tool_call_id: m for m in tool_messages(result)}
    assert by_id["call-researcher"].status == "error"
    assert by_id["call-writer"].status == "success"
    assert [m.name for m in result["messages"] if isinstance(m, AIMessage)] == [
        "researcher",
        "writer",
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_agent_given_to_guard_node_is_the_identity_of_a_named_sub_agents_tool_calls(
    mode: str,
) -> None:
    ran: Ran = []
    guard = Guard(Policy([allow("publish", agents="editor")]))
    model = ScriptedChatModel([tool_call("publish", text="x"), "done"])
    named = create_agent(
        model,
        tools=[recording_tool("publish", ran, "text")],
        middleware=[GuardMiddleware(guard)],
        name="publish-bot",
    )
    builder = StateGraph(MessagesState)
    builder.add_node("writer", guard_node(named, guard, agent="editor"))
    builder.add_edge(START, "writer")

    await run(builder.compile(), user("publish"), None, mode)

    assert ran == [("publish", {"text": "x"})]


# -- approvals deep inside subgraphs and sub-agents ---------------------------------------------


def mail_policy() -> Policy:
    return Policy([allow("search"), ask("send_email", id="mail-needs-ok")])


def mail_tools(ran: Ran) -> list[BaseTool]:
    return [recording_tool("search", ran, "q"), recording_tool("send_email", ran, "to")]


def tool_loop(model: ScriptedChatModel, tools: list[BaseTool], guard: Guard) -> Any:
    """The classic agent loop (model node, GuardedToolNode), compiled without a checkpointer:
    used as a subgraph it shares its parent's."""
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", GuardedToolNode(tools, guard))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile()


def with_after(node: Any, name: str, log: Log) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node(name, node)
    builder.add_node("after", worker("after", log))
    builder.add_edge(START, name)
    builder.add_edge(name, "after")
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("mode", MODES)
async def test_an_approval_inside_a_subgraph_reaches_the_caller_of_the_parent(mode: str) -> None:
    ran: Ran = []
    log: Log = []
    guard = Guard(mail_policy())
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-mail"), "sent"])
    graph = with_after(guard_node(tool_loop(model, mail_tools(ran), guard), guard), "mailer", log)

    out = await run(graph, user("mail a"), config(), mode)
    [pending] = approval_requests(out)
    [found] = approval_requests(graph, config())  # read from the thread's state, subgraphs too
    assert pending.call_id == found.call_id == "c-mail"
    assert (found.agent, found.tool, found.rule) == ("mailer", "send_email", "mail-needs-ok")
    assert ran == []
    assert log == []

    out = await run(graph, answer(graph, {"c-mail": Approval.approve()}, config()), config(), mode)

    assert "__interrupt__" not in out
    assert ran == [("send_email", {"to": "a@acme.com"})]  # exactly once
    assert log == ["after"]
    assert model.calls == 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("verdict", ["approve", "reject"])
async def test_an_approval_inside_a_create_agent_sub_agent_reaches_the_caller(
    mode: str, verdict: str
) -> None:
    ran: Ran = []
    log: Log = []
    guard = Guard(mail_policy())
    model = ScriptedChatModel(
        [
            tool_call("search", q="address"),
            tool_call("send_email", to="a@acme.com", id="c-mail"),
            "finished",
        ]
    )
    agent = create_agent(
        model, tools=mail_tools(ran), middleware=[GuardMiddleware(guard)], name="mailer"
    )
    graph = with_after(agent, "mailer", log)

    out = await run(graph, user("mail a"), config(), mode)
    [found] = approval_requests(graph, config())
    assert (found.call_id, found.agent) == ("c-mail", "mailer")
    assert ran == [("search", {"q": "address"})]

    value = Approval.approve() if verdict == "approve" else Approval.reject("wrong person")
    out = await run(graph, answer(out, {"c-mail": value}), config(), mode)

    assert "__interrupt__" not in out
    assert log == ["after"]
    assert model.calls == 3
    mail = {m.tool_call_id: m for m in tool_messages(out)}["c-mail"]
    if verdict == "approve":
        assert ran == [("search", {"q": "address"}), ("send_email", {"to": "a@acme.com"})]
        assert mail.status == "success"
    else:
        assert ran == [("search", {"q": "address"})]
        assert mail.status == "error"
        assert "wrong person" in mail.text
        assert model.seen[2][-1].text == mail.text  # the model read the rejection


@pytest.mark.parametrize("mode", MODES)
async def test_parallel_calls_two_approvals_answered_in_one_resume(mode: str) -> None:
    ran: Ran = []
    guard = Guard(mail_policy())
    model = ScriptedChatModel(
        [
            [
                tool_call("search", q="llamas", id="c-search"),
                tool_call("send_email", to="a@acme.com", id="c-a"),
                tool_call("send_email", to="b@acme.com", id="c-b"),
            ],
            "done",
        ]
    )
    agent = create_agent(
        model,
        tools=mail_tools(ran),
        middleware=[GuardMiddleware(guard)],
        checkpointer=InMemorySaver(),
        name="mailer",
    )

    out = await run(agent, user("search and mail both"), config(), mode)
    assert ran == [("search", {"q": "llamas"})]  # the allowed call ran at once
    assert sorted(p.call_id for p in approval_requests(out)) == ["c-a", "c-b"]
    assert model.calls == 1

    resume = answer(out, {"c-a": Approval.approve(), "c-b": Approval.reject("no")})
    out = await run(agent, resume, config(), mode)

    assert "__interrupt__" not in out
    assert ran == [("search", {"q": "llamas"}), ("send_email", {"to": "a@acme.com"})]
    by_id = {m.tool_call_id: m for m in tool_messages(out)}
    assert by_id["c-search"].status == "success"
    assert by_id["c-a"].status == "success"
    assert by_id["c-b"].status == "error"
    assert "rejected: no" in by_id["c-b"].text
    assert model.calls == 2
    assert out["messages"][-1].text == "done"
