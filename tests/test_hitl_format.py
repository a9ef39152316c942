"""The guard's approvals speak LangChain's human-in-the-loop format.

An approval UI written only for LangChain's ``HumanInTheLoopMiddleware`` (it reads
``action_requests`` / ``review_configs`` and resumes with ``{"decisions": [...]}``) must
approve, edit and reject the guard's interrupts unchanged: ``langchain_ui`` below is such a
UI, checked first against LangChain's own middleware (the real consumer is the oracle),
then run against ``GuardedToolNode`` and ``GuardMiddleware``, sync and async, one call and
several at once. The same approvals given in the guard's own format must come out the same.
A resume the guard cannot read is raised to the caller, and the approval stays pending.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fakes import Ran, ScriptedChatModel, recording_tool, tool_call, tool_messages, user
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_apps import MODES, run, tool_graph

from guardrails_plugin import Approval, ApprovalAnswerError, Guard, Policy, allow, ask
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import answer, approval_requests
from guardrails_plugin.scopes import Emails

CONFIG = {"configurable": {"thread_id": "t-hitl"}}

Decide = Callable[[dict[str, Any]], dict[str, Any]]


def langchain_ui(result: dict[str, Any], decide: Decide) -> Command[Any]:
    """An approval UI that knows only LangChain's HITL shapes: for every interrupt, one
    decision per action request, answered by interrupt id."""
    resume: dict[str, Any] = {}
    for item in result["__interrupt__"]:
        request = item.value
        decisions = []
        for action, review in zip(
            request["action_requests"], request["review_configs"], strict=True
        ):
            assert review["action_name"] == action["name"]
            decision = decide(action)
            assert decision["type"] in review["allowed_decisions"]
            decisions.append(decision)
        resume[item.id] = {"decisions": decisions}
    return Command(resume=resume)


def approve(action: dict[str, Any]) -> dict[str, Any]:
    return {"type": "approve"}


def edit_to(address: str) -> Decide:
    def decide(action: dict[str, Any]) -> dict[str, Any]:
        args = {**action["args"], "to": address}
        return {"type": "edit", "edited_action": {"name": action["name"], "args": args}}

    return decide


def reject(action: dict[str, Any]) -> dict[str, Any]:
    return {"type": "reject", "message": f"not {action['args']['to']}"}


def by_address(action: dict[str, Any]) -> dict[str, Any]:
    """Approve mail to a@, reject the rest (several calls in one interrupt)."""
    return approve(action) if action["args"]["to"].startswith("a@") else reject(action)


OURS: dict[str, Any] = {
    "approve": Approval.approve(),
    "edit": Approval.edit({"to": "c@acme.com"}),
    "reject": Approval.reject("not a@acme.com"),
}
THEIRS: dict[str, Decide] = {"approve": approve, "edit": edit_to("c@acme.com"), "reject": reject}


def mail_tool(ran: Ran) -> Any:
    return recording_tool("send_email", ran, "to", "subject")


def guarded(adapter: str, ran: Ran, model: ScriptedChatModel) -> Any:
    """A graph whose ``send_email`` calls need a person: the guard's adapters, or
    LangChain's own middleware (the reference the UI is written for)."""
    tools = [mail_tool(ran)]
    if adapter == "langchain-hitl":
        middleware: Any = HumanInTheLoopMiddleware(interrupt_on={"send_email": True})
        return create_agent(model, tools, middleware=[middleware], checkpointer=InMemorySaver())
    policy = Policy([ask("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail-ok")])
    guard = Guard(policy)
    if adapter == "middleware":
        return create_agent(
            model, tools, middleware=[GuardMiddleware(guard)], checkpointer=InMemorySaver()
        )
    return tool_graph(model, tools, guard, checkpointer=InMemorySaver())


def one_mail() -> ScriptedChatModel:
    return ScriptedChatModel(
        [tool_call("send_email", to="a@acme.com", subject="hi", id="c-1"), "done"]
    )


ADAPTERS = ["toolnode", "middleware"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("adapter", ["langchain-hitl", *ADAPTERS])
@pytest.mark.parametrize("choice", ["approve", "edit", "reject"])
async def test_a_langchain_only_ui_approves_edits_and_rejects(
    adapter: str, mode: str, choice: str
) -> None:
    ran: Ran = []
    graph = guarded(adapter, ran, one_mail())
    out = await run(graph, user("mail a"), CONFIG, mode)
    assert json.loads(json.dumps(out["__interrupt__"][0].value)) == out["__interrupt__"][0].value
    out = await run(graph, langchain_ui(out, THEIRS[choice]), CONFIG, mode)
    (message,) = tool_messages(out)
    if choice == "approve":
        assert ran == [("send_email", {"to": "a@acme.com", "subject": "hi"})]
    elif choice == "edit":
        assert ran == [("send_email", {"to": "c@acme.com", "subject": "hi"})]
    else:
        assert ran == []
        assert message.status == "error"
        assert "not a@acme.com" in message.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("choice", ["approve", "edit", "reject"])
async def test_the_same_approval_in_both_formats_comes_out_the_same(
    adapter: str, mode: str, choice: str
) -> None:
    outcomes = []
    for resume in ("ours", "theirs"):
        ran: Ran = []
        graph = guarded(adapter, ran, one_mail())
        out = await run(graph, user("mail a"), CONFIG, mode)
        command = (
            answer(out, OURS[choice]) if resume == "ours" else langchain_ui(out, THEIRS[choice])
        )
        out = await run(graph, command, CONFIG, mode)
        outcomes.append((ran, [(m.status, m.text) for m in tool_messages(out)]))
    assert outcomes[0] == outcomes[1]
    expected = {
        "approve": [("send_email", {"to": "a@acme.com", "subject": "hi"})],
        "edit": [("send_email", {"to": "c@acme.com", "subject": "hi"})],
        "reject": [],
    }
    assert outcomes[0][0] == expected[choice]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("adapter", ["langchain-hitl", *ADAPTERS])
async def test_several_calls_waiting_at_once_are_decided_each(adapter: str, mode: str) -> None:
    ran: Ran = []
    model = ScriptedChatModel(
        [
            [
                tool_call("send_email", to="a@acme.com", subject="1", id="c-a"),
                tool_call("send_email", to="b@acme.com", subject="2", id="c-b"),
            ],
            "done",
        ]
    )
    graph = guarded(adapter, ran, model)
    out = await run(graph, user("mail both"), CONFIG, mode)
    listed = [a["args"]["to"] for i in out["__interrupt__"] for a in i.value["action_requests"]]
    assert sorted(listed) == ["a@acme.com", "b@acme.com"]
    out = await run(graph, langchain_ui(out, by_address), CONFIG, mode)
    assert ran == [("send_email", {"to": "a@acme.com", "subject": "1"})]
    statuses = {m.tool_call_id: m.status for m in tool_messages(out)}
    assert statuses == {"c-a": "success", "c-b": "error"}


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_request_carries_the_rule_and_reason(adapter: str) -> None:
    graph = guarded(adapter, [], one_mail())
    out = graph.invoke(user("mail a"), CONFIG)
    value = out["__interrupt__"][0].value
    (action,) = value["action_requests"]
    assert (action["name"], action["args"]) == ("send_email", {"to": "a@acme.com", "subject": "hi"})
    assert action["rule"] == "mail-ok"
    assert action["reason"] == value["reason"]
    assert "mail-ok" in action["description"]
    assert value["review_configs"] == [
        {"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject", "respond"]}
    ]
    # the guard's own view of the same interrupt is unchanged
    (pending,) = approval_requests(out)
    assert (pending.tool, pending.rule, pending.call_id) == ("send_email", "mail-ok", "c-1")


UNREADABLE: list[Any] = [
    {"decisions": []},  # no decision for the call
    {"decisions": [{"type": "approve"}, {"type": "approve"}]},  # one too many
    {"decisions": [{"type": "accept"}]},  # not a decision type
    {"decisions": [{"type": "edit", "edited_action": {"name": "delete_all", "args": {}}}]},
    {"decisions": [{"type": "edit"}]},  # an edit without arguments
    {"decisions": [{"type": "reject", "message": 42}]},
    {"decisions": "approve"},
    "yes",
    None,
    {"type": "approve", "replace": "no"},
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize("bad", UNREADABLE, ids=repr)
async def test_an_unreadable_resume_is_raised_and_the_approval_stays_pending(
    adapter: str, mode: str, bad: Any
) -> None:
    ran: Ran = []
    graph = guarded(adapter, ran, one_mail())
    out = await run(graph, user("mail a"), CONFIG, mode)
    interrupt_id = out["__interrupt__"][0].id
    with pytest.raises(ApprovalAnswerError, match="cannot read the answer"):
        await run(graph, Command(resume={interrupt_id: bad}), CONFIG, mode)
    assert ran == []
    # nothing was decided: the same approval is still waiting, and a good answer runs it
    (pending,) = approval_requests(graph, CONFIG)
    assert pending.call_id == "c-1"
    out = await run(
        graph,
        langchain_ui({"__interrupt__": graph.get_state(CONFIG).interrupts}, approve),
        CONFIG,
        mode,
    )
    assert ran == [("send_email", {"to": "a@acme.com", "subject": "hi"})]
    assert [m.status for m in tool_messages(out)] == ["success"]


@pytest.mark.parametrize("mode", MODES)
async def test_an_unreadable_answer_among_several_decides_none(mode: str) -> None:
    ran: Ran = []
    model = ScriptedChatModel(
        [
            [
                tool_call("send_email", to="a@acme.com", subject="1", id="c-a"),
                tool_call("send_email", to="b@acme.com", subject="2", id="c-b"),
            ],
            "done",
        ]
    )
    graph = guarded("toolnode", ran, model)
    out = await run(graph, user("mail both"), CONFIG, mode)
    (item,) = out["__interrupt__"]
    bad = {"decisions": [{"type": "approve"}, {"type": "maybe"}]}
    with pytest.raises(ApprovalAnswerError, match="'maybe'"):
        await run(graph, Command(resume={item.id: bad}), CONFIG, mode)
    assert ran == []
    assert {p.call_id for p in approval_requests(graph, CONFIG)} == {"c-a", "c-b"}


@pytest.mark.parametrize("args", [{"to": "b@acme.com"}, {"to": "b@acme.com", "subject": "yo"}])
def test_our_answer_helper_takes_langchains_decisions(args: dict[str, Any]) -> None:
    ran: Ran = []
    graph = guarded("toolnode", ran, one_mail())
    out = graph.invoke(user("mail a"), CONFIG)
    edit = {"type": "edit", "edited_action": {"name": "send_email", "args": args}}
    out = graph.invoke(answer(out, {"decisions": [edit]}), CONFIG)
    if "subject" in args:
        assert ran == [("send_email", args)]
    else:  # LangChain's edit replaces the arguments: without the required subject, denied
        assert ran == []
        (message,) = tool_messages(out)
        assert "subject" in message.text
        assert "Field required" in message.text


def test_an_allowed_call_does_not_interrupt() -> None:
    ran: Ran = []
    graph = tool_graph(
        one_mail(),
        [mail_tool(ran)],
        Guard(Policy([allow("send_email")])),
        checkpointer=InMemorySaver(),
    )
    out = graph.invoke(user("mail a"), CONFIG)
    assert "__interrupt__" not in out
    assert len(ran) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_guard_node_handoff_is_approved_and_rejected_by_the_langchain_ui(
    mode: str,
) -> None:
    from langgraph.graph import END
    from test_langgraph_nodes import Log, ask_policy, team

    from guardrails_plugin import ToolCallDenied

    for decide in (approve, lambda action: {"type": "reject", "message": "not yet"}):
        log: Log = []
        graph = team(
            Guard(ask_policy()),
            ["researcher", END],
            log,
            researcher_goto="writer",
            researcher_reports=False,
            checkpointer=InMemorySaver(),
        )
        out = await run(graph, user("go"), CONFIG, mode)
        (action,) = out["__interrupt__"][0].value["action_requests"]
        assert (action["name"], action["args"], action["rule"]) == (
            "handoff",
            {"to": "writer"},
            "ok-to-write",
        )
        if decide is approve:
            out = await run(graph, langchain_ui(out, decide), CONFIG, mode)
            assert "writer" in log
        else:
            with pytest.raises(ToolCallDenied, match="rejected: not yet"):
                await run(graph, langchain_ui(out, decide), CONFIG, mode)
            assert "writer" not in log
