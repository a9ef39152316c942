"""GuardedToolNode in a real StateGraph: decisions, approvals through interrupt(), resumes that
never run a tool twice, approvals that survive a process restart, expiry of stale approvals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from fakes import Ran, recording_tool, tool_call, tool_messages, user
from langchain_core.messages import ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_apps import MODES, file_tool, lines, run, tool_graph

from guardrails_plugin import (
    Approval,
    Budget,
    Guard,
    MemoryStore,
    Policy,
    ToolCallDenied,
    allow,
    ask,
)
from guardrails_plugin.langgraph import GuardedToolNode, answer, approval_requests
from guardrails_plugin.scopes import Emails
from guardrails_plugin.testing import ScriptedChatModel

HERE = Path(__file__).parent
CONFIG = {"configurable": {"thread_id": "t-1"}}


def email_policy(**kwargs: Any) -> Policy:
    return Policy(
        [
            allow("search"),
            ask("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail-needs-ok"),
        ],
        **kwargs,
    )


def tools(ran: Ran) -> list[Any]:
    return [recording_tool("search", ran, "q"), recording_tool("send_email", ran, "to")]


# -- deciding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_allowed_calls_run_denied_calls_come_back_to_the_model(mode: str) -> None:
    ran: Ran = []
    model = ScriptedChatModel(
        [[tool_call("search", q="llamas"), tool_call("delete_all", q="*")], "done"]
    )
    graph = tool_graph(
        model, [*tools(ran), recording_tool("delete_all", ran, "q")], Guard(email_policy())
    )
    result = await run(graph, user("go"), None, mode)
    assert ran == [("search", {"q": "llamas"})]
    search, delete = tool_messages(result)
    assert search.status == "success"
    assert delete.status == "error"
    assert "default-deny" in delete.text
    assert "the tool did not run" in delete.text
    assert result["messages"][-1].content == "done"


@pytest.mark.parametrize("mode", MODES)
async def test_on_deny_raise_ends_the_run(mode: str) -> None:
    ran: Ran = []
    model = ScriptedChatModel([tool_call("rm", q="/")])
    graph = tool_graph(model, [recording_tool("rm", ran, "q")], Guard(Policy([])), on_deny="raise")
    with pytest.raises(ToolCallDenied, match="default-deny"):
        await run(graph, user("go"), None, mode)
    assert ran == []


def test_no_checkpointer_and_no_approver_denies_an_ask() -> None:
    ran: Ran = []
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com"), "ok"])
    result = tool_graph(model, tools(ran), Guard(email_policy())).invoke(user("mail"))
    assert ran == []
    assert "no approver is configured" in tool_messages(result)[0].text


def test_a_guard_approver_is_used_when_configured() -> None:
    ran: Ran = []
    asked: list[dict[str, Any]] = []

    def approver(request: Any) -> Approval:
        asked.append(request.to_dict())
        return Approval.edit({"to": "b@acme.com"}, approver="bob")

    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com"), "ok"])
    guard = Guard(email_policy(), approver=approver)
    graph = tool_graph(model, tools(ran), guard, checkpointer=InMemorySaver())
    result = graph.invoke(user("mail"), CONFIG)
    assert "__interrupt__" not in result
    assert asked[0]["tool"] == "send_email"
    assert ran == [("send_email", {"to": "b@acme.com"})]


def test_user_wrap_tool_call_runs_inside_the_guard() -> None:
    ran: Ran = []
    seen: list[str] = []

    def wrapper(request: Any, execute: Any) -> Any:
        seen.append(request.tool_call["name"])
        return execute(request)

    model = ScriptedChatModel([[tool_call("search", q="a"), tool_call("rm", q="b")], "ok"])
    graph = tool_graph(
        model,
        [*tools(ran), recording_tool("rm", ran, "q")],
        Guard(email_policy()),
        wrap_tool_call=wrapper,
    )
    graph.invoke(user("go"))
    assert seen == ["search"]  # the denied call never reached the user's wrapper
    assert ran == [("search", {"q": "a"})]


def test_repr_and_bad_options() -> None:
    guard = Guard(email_policy())
    node = GuardedToolNode(tools([]), guard, agent="mailer")
    assert "GuardedToolNode(tools=['search', 'send_email']" in repr(node)
    assert "agent='mailer'" in repr(node)
    with pytest.raises(ValueError, match="on_deny"):
        GuardedToolNode(tools([]), guard, on_deny="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="approvals"):
        GuardedToolNode(tools([]), guard, approvals="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="approval_timeout"):
        GuardedToolNode(tools([]), guard, approval_timeout=0)
    with pytest.raises(TypeError, match="Guard"):
        GuardedToolNode(tools([]), object())  # type: ignore[arg-type]


# -- approvals through interrupt() ----------------------------------------------------------------


def parallel_turn() -> list[dict[str, Any]]:
    return [
        tool_call("search", q="llamas", id="c-search"),
        tool_call("send_email", to="a@acme.com", id="c-a"),
        tool_call("send_email", to="b@acme.com", id="c-b"),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_parallel_calls_each_gated_call_asked_separately_free_calls_run_at_once(
    mode: str,
) -> None:
    ran: Ran = []
    model = ScriptedChatModel([parallel_turn(), "done"])
    graph = tool_graph(model, tools(ran), Guard(email_policy()), checkpointer=InMemorySaver())

    out = await run(graph, user("mail both"), CONFIG, mode)
    first, second = approval_requests(out)  # both gated calls at once, one request each
    assert (first.call_id, first.tool, first.args) == ("c-a", "send_email", {"to": "a@acme.com"})
    assert (second.call_id, second.args) == ("c-b", {"to": "b@acme.com"})
    assert first.rule == second.rule == "mail-needs-ok"
    assert ran == [("search", {"q": "llamas"})]  # the free call ran, the gated ones wait

    # a person answers one of them: the other is asked again, nothing runs yet
    out = await run(graph, answer(out, {"c-a": Approval.approve()}), CONFIG, mode)
    (still,) = approval_requests(out)
    assert still.call_id == "c-b"
    assert ran == [("search", {"q": "llamas"})]

    out = await run(graph, answer(out, {"c-b": Approval.reject("not b")}), CONFIG, mode)
    assert "__interrupt__" not in out
    assert ran == [("search", {"q": "llamas"}), ("send_email", {"to": "a@acme.com"})]
    by_id = {m.tool_call_id: m for m in tool_messages(out)}
    assert by_id["c-search"].status == "success"
    assert by_id["c-a"].status == "success"
    assert by_id["c-b"].status == "error"
    assert "not b" in by_id["c-b"].text


@pytest.mark.parametrize("mode", MODES)
async def test_parallel_approvals_answered_separately_in_one_resume(mode: str) -> None:
    ran: Ran = []
    store = MemoryStore()
    model = ScriptedChatModel([parallel_turn(), "done"])
    graph = tool_graph(
        model, tools(ran), Guard(email_policy(), store=store), checkpointer=InMemorySaver()
    )
    out = await run(graph, user("mail both"), CONFIG, mode)
    answers = {"c-a": Approval.edit({"to": "z@acme.com"}), "c-b": Approval.respond("done by hand")}
    out = await run(graph, answer(out, answers), CONFIG, mode)
    assert "__interrupt__" not in out
    assert sorted(ran) == [("search", {"q": "llamas"}), ("send_email", {"to": "z@acme.com"})]
    assert {m.tool_call_id: m.text for m in tool_messages(out)}["c-b"] == "done by hand"
    assert store.scan("pending/") == {}  # nothing left waiting


def test_the_interrupt_payload_is_typed_and_json() -> None:
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-1"), "ok"])
    graph = tool_graph(
        model,
        tools([]),
        Guard(email_policy()),
        checkpointer=InMemorySaver(),
        agent="mailer",
        approval_timeout=60,
    )
    out = graph.invoke(user("mail"), CONFIG)
    payload = out["__interrupt__"][0].value
    assert json.loads(json.dumps(payload)) == payload
    assert payload["type"] == "approval"
    assert payload["agent"] == "mailer"
    assert payload["tool"] == "send_email"
    assert payload["args"] == {"to": "a@acme.com"}
    assert payload["rule"] == "mail-needs-ok"
    assert "approval" in payload["reason"]
    assert payload["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
    assert payload["expires_at"] - payload["asked_at"] == 60
    # the same request is visible from the graph's state, without the invoke result
    assert approval_requests(graph, CONFIG)[0].call_id == "c-1"


@pytest.mark.parametrize("mode", MODES)
async def test_an_edit_is_checked_again(mode: str) -> None:
    ran: Ran = []
    model = ScriptedChatModel(
        [
            tool_call("send_email", to="a@acme.com", id="c-1"),
            tool_call("send_email", to="a@acme.com", id="c-2"),
            "done",
        ]
    )
    graph = tool_graph(model, tools(ran), Guard(email_policy()), checkpointer=InMemorySaver())
    out = await run(graph, user("mail"), CONFIG, mode)
    out = await run(graph, answer(out, Approval.edit({"to": "c@acme.com"})), CONFIG, mode)
    assert ran == [("send_email", {"to": "c@acme.com"})]
    # the second call: an edit that leaves the scope is denied, the tool does not run
    out = await run(graph, answer(out, Approval.edit({"to": "evil@attacker.test"})), CONFIG, mode)
    assert ran == [("send_email", {"to": "c@acme.com"})]
    last = tool_messages(out)[-1]
    assert last.status == "error"
    assert "the edited call is out of policy" in last.text


@pytest.mark.parametrize("mode", MODES)
async def test_respond_answers_in_the_tools_place(mode: str) -> None:
    ran: Ran = []
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com"), "done"])
    graph = tool_graph(model, tools(ran), Guard(email_policy()), checkpointer=InMemorySaver())
    out = await run(graph, user("mail"), CONFIG, mode)
    out = await run(graph, answer(out, Approval.respond("I phoned them instead")), CONFIG, mode)
    assert ran == []
    (message,) = tool_messages(out)
    assert message.text == "I phoned them instead"
    assert message.status == "success"


def test_answer_refuses_unknown_call_ids() -> None:
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-1")])
    graph = tool_graph(model, tools([]), Guard(email_policy()), checkpointer=InMemorySaver())
    out = graph.invoke(user("mail"), CONFIG)
    with pytest.raises(KeyError, match="no pending approval for call 'c-9'"):
        answer(out, {"c-9": True})


@pytest.mark.parametrize("mode", MODES)
async def test_a_resume_charges_the_budget_once(mode: str) -> None:
    ran: Ran = []
    store = MemoryStore()
    policy = email_policy(budgets=[Budget.calls(3, tools="send_email", per="thread", id="mails")])
    model = ScriptedChatModel([parallel_turn(), "done"])
    graph = tool_graph(model, tools(ran), Guard(policy, store=store), checkpointer=InMemorySaver())
    out = await run(graph, user("mail"), CONFIG, mode)
    out = await run(graph, answer(out, True), CONFIG, mode)
    out = await run(graph, answer(out, True), CONFIG, mode)
    assert [name for name, _ in ran] == ["search", "send_email", "send_email"]
    assert store.total("budget/mails/thread=t-1") == 2  # two calls, each charged once over 3 runs


@pytest.mark.parametrize("mode", MODES)
async def test_a_rejected_call_gives_its_budget_back(mode: str) -> None:
    store = MemoryStore()
    policy = email_policy(budgets=[Budget.calls(3, tools="send_email", per="thread", id="mails")])
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com"), "done"])
    graph = tool_graph(model, tools([]), Guard(policy, store=store), checkpointer=InMemorySaver())
    out = await run(graph, user("mail"), CONFIG, mode)
    assert store.total("budget/mails/thread=t-1") == 1
    await run(graph, answer(out, False), CONFIG, mode)
    assert store.total("budget/mails/thread=t-1") == 0


def test_a_late_answer_is_denied_and_the_pending_record_is_cleared() -> None:
    now = [1000.0]
    ran: Ran = []
    store = MemoryStore()
    guard = Guard(email_policy(), store=store, clock=lambda: now[0])
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com"), "done"])
    graph = tool_graph(model, tools(ran), guard, checkpointer=InMemorySaver(), approval_timeout=30)
    out = graph.invoke(user("mail"), CONFIG)
    assert store.scan("pending/")  # the request is on record while it waits
    now[0] += 31
    out = graph.invoke(answer(out, Approval.approve(approver="late")), CONFIG)
    assert ran == []
    (message,) = tool_messages(out)
    assert message.status == "error"
    assert "the approval expired" in message.text
    assert store.scan("pending/") == {}


# -- never twice ----------------------------------------------------------------------------------


def _script(body: str) -> str:
    return textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        from pathlib import Path
        from langgraph.checkpoint.sqlite import SqliteSaver
        import sqlite3
        from fakes import tool_call, user
        from langgraph_apps import file_tool, tool_graph
        from guardrails_plugin import Guard, Policy, SQLiteStore, allow, ask
        from guardrails_plugin.scopes import Emails
        from guardrails_plugin.testing import ScriptedChatModel
        """
    ) + textwrap.dedent(body)


def _open(tmp_path: Path, script: list[Any], **guard_options: Any) -> tuple[Any, Any]:
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from guardrails_plugin import SQLiteStore

    log = tmp_path / "sent.log"
    conn = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
    guard = Guard(email_policy(), store=SQLiteStore(tmp_path / "guard.db"), **guard_options)
    model = ScriptedChatModel(script)
    graph = tool_graph(model, [file_tool("send_email", log)], guard, checkpointer=SqliteSaver(conn))
    return graph, conn


def test_an_approval_survives_a_process_restart(tmp_path: Path) -> None:
    first = _script(
        f"""
        tmp = Path({str(tmp_path)!r})
        conn = sqlite3.connect(tmp / "graph.db", check_same_thread=False)
        policy = Policy([ask("send_email", args={{"to": Emails(domains=["acme.com"])}})])
        guard = Guard(policy, store=SQLiteStore(tmp / "guard.db"))
        model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-1")])
        graph = tool_graph(model, [file_tool("send_email", tmp / "sent.log")], guard,
                           checkpointer=SqliteSaver(conn))
        out = graph.invoke(user("mail"), {{"configurable": {{"thread_id": "t-1"}}}})
        print(out["__interrupt__"][0].value["call_id"])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", first], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "c-1"
    assert lines(tmp_path / "sent.log") == []

    # a new process: new graph, new guard, the same files
    graph, conn = _open(tmp_path, ["sent it"])
    try:
        (pending,) = approval_requests(graph, CONFIG)
        assert pending.call_id == "c-1"
        out = graph.invoke(answer(graph.get_state(CONFIG).interrupts, True), CONFIG)
        assert out["messages"][-1].content == "sent it"
        assert lines(tmp_path / "sent.log") == [{"tool": "send_email", "to": "a@acme.com"}]
        # resuming again (nothing pending) runs nothing a second time
        graph.invoke(None, CONFIG)
        assert len(lines(tmp_path / "sent.log")) == 1
    finally:
        conn.close()


def test_a_crash_after_the_tool_ran_does_not_run_it_again(tmp_path: Path) -> None:
    """The process dies right after the tool ran, before LangGraph wrote the step's
    checkpoint. Re-running the thread returns the recorded result: one email, not two."""
    crash = _script(
        f"""
        import os
        from guardrails_plugin import ToolResult
        tmp = Path({str(tmp_path)!r})
        conn = sqlite3.connect(tmp / "graph.db", check_same_thread=False)

        def die_after_send(event, decision):
            if isinstance(event, ToolResult) and event.tool == "send_email":
                os._exit(17)  # the tool ran; the step never finishes

        policy = Policy([allow("send_email")])
        guard = Guard(policy, store=SQLiteStore(tmp / "guard.db"), listeners=[die_after_send])
        model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-1")])
        graph = tool_graph(model, [file_tool("send_email", tmp / "sent.log")], guard,
                           checkpointer=SqliteSaver(conn))
        graph.invoke(user("mail"), {{"configurable": {{"thread_id": "t-1"}}}},
                     durability="sync")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", crash], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 17, done.stderr
    assert len(lines(tmp_path / "sent.log")) == 1
    assert os.path.exists(tmp_path / "graph.db")

    graph, conn = _open(tmp_path, ["done"])
    try:
        assert graph.get_state(CONFIG).next == ("tools",)  # the step is still to do
        out = graph.invoke(None, CONFIG)
        assert len(lines(tmp_path / "sent.log")) == 1  # not sent again
        message = next(m for m in out["messages"] if isinstance(m, ToolMessage))
        assert message.text == "send_email sent to a@acme.com"  # the recorded result
        assert out["messages"][-1].content == "done"
    finally:
        conn.close()


def test_resuming_a_finished_step_with_none_is_harmless() -> None:
    ran: Ran = []
    model = ScriptedChatModel([tool_call("search", q="x"), "done"])
    graph = tool_graph(model, tools(ran), Guard(email_policy()), checkpointer=InMemorySaver())
    graph.invoke(user("go"), CONFIG)
    graph.invoke(Command(resume=True), CONFIG)
    assert ran == [("search", {"q": "x"})]


def test_the_done_ledger_keeps_only_the_steps_that_can_still_run_again() -> None:
    store = MemoryStore()
    model = ScriptedChatModel(
        [
            tool_call("search", q="a", id="s1"),
            tool_call("search", q="b", id="s2"),
            [tool_call("search", q="c", id="s3"), tool_call("search", q="d", id="s4")],
            "done",
        ]
    )
    graph = tool_graph(
        model, tools([]), Guard(email_policy(), store=store), checkpointer=InMemorySaver()
    )
    graph.invoke(user("go"), CONFIG)
    # the last step's calls may still be re-run (a crash before its checkpoint); older not
    calls = sorted(key.rsplit("/", 1)[0] for key in store.scan("done/"))
    assert calls == ["done/t-1/s3", "done/t-1/s4"]


def test_a_console_approver_answers_graph_approvals() -> None:
    import io

    from guardrails_plugin import ConsoleApprover
    from guardrails_plugin.langgraph import answer_with

    ran: Ran = []
    typed = iter(["e", '{"to": "c@acme.com"}'])
    console = ConsoleApprover(input=lambda prompt: next(typed), output=io.StringIO())
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com"), "done"])
    graph = tool_graph(model, tools(ran), Guard(email_policy()), checkpointer=InMemorySaver())
    out = graph.invoke(user("mail"), CONFIG)
    graph.invoke(answer_with(out, console), CONFIG)
    assert ran == [("send_email", {"to": "c@acme.com"})]
    assert "send_email" in console.output.getvalue()  # type: ignore[union-attr]


async def test_a_queue_approver_answers_graph_approvals_for_a_server() -> None:
    import asyncio

    from guardrails_plugin import QueueApprover
    from guardrails_plugin.langgraph import aanswer_with

    ran: Ran = []
    queue = QueueApprover(approver_name="web")
    model = ScriptedChatModel([parallel_turn(), "done"])
    graph = tool_graph(model, tools(ran), Guard(email_policy()), checkpointer=InMemorySaver())
    out = await graph.ainvoke(user("mail"), CONFIG)

    async def operator(n: int) -> None:  # a web handler answering what the queue shows
        for _ in range(n):
            item = await queue.next()
            no = item.request.call.call_id == "c-b"
            queue.answer(item.id, Approval.reject("no") if no else True)

    rounds = 0
    while "__interrupt__" in out:
        rounds += 1
        task = asyncio.create_task(operator(len(approval_requests(out))))
        command = await asyncio.wait_for(aanswer_with(out, queue), timeout=10)
        await task
        out = await graph.ainvoke(command, CONFIG)
    assert rounds == 1  # both calls were asked together
    assert ran == [("search", {"q": "llamas"}), ("send_email", {"to": "a@acme.com"})]


def test_a_late_answer_to_a_step_of_several_calls_is_denied_for_each() -> None:
    now = [1000.0]
    ran: Ran = []
    store = MemoryStore()
    guard = Guard(email_policy(), store=store, clock=lambda: now[0])
    model = ScriptedChatModel([parallel_turn(), "done"])
    graph = tool_graph(model, tools(ran), guard, checkpointer=InMemorySaver(), approval_timeout=30)
    out = graph.invoke(user("mail"), CONFIG)
    assert [p.expires_at for p in approval_requests(out)] == [1030.0, 1030.0]
    now[0] += 31
    out = graph.invoke(answer(out, True), CONFIG)
    assert ran == [("search", {"q": "llamas"})]
    expired = [m for m in tool_messages(out) if m.tool_call_id in ("c-a", "c-b")]
    assert [m.status for m in expired] == ["error", "error"]
    assert all("the approval expired" in m.text for m in expired)
    assert store.scan("pending/") == {}
