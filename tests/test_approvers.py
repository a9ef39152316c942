"""The ready-made approvers: a person at a console, and a queue a server answers.

Console tests type scripted lines and read what was printed; queue tests answer from the
same loop, other threads and other loops; end-to-end tests run real ``create_agent`` agents
through the real guard and middleware.
"""

from __future__ import annotations

import asyncio
import doctest
import io
import json
import threading
import time
from collections import deque
from typing import Any

import pytest
from fakes import Ran, ScriptedChatModel, recording_tool, tool_call, tool_messages, user
from langchain.agents import create_agent

from guardrails_plugin import (
    Answer,
    Approval,
    ApprovalRequest,
    Decision,
    Effect,
    Guard,
    Policy,
    ToolCall,
    ask,
)
from guardrails_plugin.approvers import (
    ApproverClosed,
    ConsoleApprover,
    QueueApprover,
    QueuedApproval,
)
from guardrails_plugin.langchain import GuardMiddleware

EMAIL = {"to": "boss@example.com", "body": "Q3 summary"}
EDITED = {"to": "team@example.com", "body": "Q3 summary"}
PROMPT = "[a]pprove / [e]dit / [r]eject / re[s]pond? "


def request(
    allowed: tuple[Answer, ...] = tuple(Answer), args: dict[str, Any] | None = None
) -> ApprovalRequest:
    call = ToolCall("send_email", args if args is not None else EMAIL, agent="mailer")
    decision = Decision(
        Effect.ASK, "mail-needs-ok", "mail leaves the company", tool="send_email", agent="mailer"
    )
    return ApprovalRequest(call, decision, allowed=allowed)


# -- the console ------------------------------------------------------------------------------


class Typist:
    """Scripted console input: each call records its prompt and returns the next line;
    when the lines run out it raises ``end`` (EOFError: the terminal closed)."""

    def __init__(self, *lines: str, end: type[BaseException] = EOFError) -> None:
        self.lines = deque(lines)
        self.prompts: list[str] = []
        self.end = end

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if not self.lines:
            raise self.end
        return self.lines.popleft()


def console(typist: Typist, **options: Any) -> tuple[ConsoleApprover, io.StringIO]:
    out = io.StringIO()
    return ConsoleApprover(input=typist, output=out, approver_name="alice", **options), out


def test_console_shows_the_call_and_approves() -> None:
    typist = Typist("a")
    approver, out = console(typist)

    approval = approver(request())

    assert approval == Approval.approve(approver="alice")
    shown = out.getvalue()
    assert "agent 'mailer' wants to call 'send_email'" in shown
    assert '      "to": "boss@example.com",\n' in shown  # arguments pretty-printed as JSON
    assert "rule:   mail-needs-ok" in shown
    assert "reason: mail leaves the company" in shown
    assert "you may: approve, edit, reject, respond" in shown
    assert typist.prompts == [PROMPT]


def test_console_edit_reprompts_until_the_arguments_are_a_json_object() -> None:
    typist = Typist("e", "{to: team}", '["team@example.com"]', json.dumps(EDITED))
    approver, out = console(typist)

    approval = approver(request())

    assert approval.answer is Answer.EDIT
    assert approval.args == EDITED
    assert approval.approver == "alice"
    shown = out.getvalue()
    assert f"Current arguments: {json.dumps(EMAIL)}" in shown
    assert "That is not valid JSON (Expecting property name enclosed in double quotes" in shown
    assert "The arguments must be a JSON object, found list." in shown
    assert len(typist.prompts) == 4


def test_console_edit_with_an_empty_line_goes_back_to_the_choice() -> None:
    typist = Typist("e", "", "a")
    approver, _ = console(typist)

    assert approver(request()).answer is Answer.APPROVE
    assert typist.prompts[0] == typist.prompts[2] == PROMPT


def test_console_reject_passes_the_message_to_the_model() -> None:
    approver, _ = console(Typist("r", "  not to customers  "))

    assert approver(request()) == Approval.reject("not to customers", approver="alice")


def test_console_reject_message_is_optional() -> None:
    approver, _ = console(Typist("reject", ""))

    assert approver(request()) == Approval.reject("", approver="alice")


def test_console_respond_answers_in_the_tools_place() -> None:
    typist = Typist("s", "", "respond", "Already sent this morning.")
    approver, _ = console(typist)

    approval = approver(request())

    assert approval == Approval.respond("Already sent this morning.", approver="alice")
    assert typist.prompts[2] == PROMPT  # an empty answer went back to the choice


def test_console_unknown_input_asks_again() -> None:
    typist = Typist("yes", "", "  APPROVE ")
    approver, out = console(typist)

    assert approver(request()).answer is Answer.APPROVE
    assert typist.prompts == [PROMPT] * 3
    assert "Unknown answer 'yes'; answer a (approve) or e (edit) or r (reject)" in out.getvalue()


def test_console_offers_only_the_answers_possible_here() -> None:
    typist = Typist("e", "s", "r", "no")
    approver, out = console(typist)

    approval = approver(request(allowed=(Answer.APPROVE, Answer.REJECT)))

    assert approval == Approval.reject("no", approver="alice")
    assert typist.prompts[0] == "[a]pprove / [r]eject? "
    assert out.getvalue().count("That answer is not possible here; answer a (approve) or r") == 2
    assert "you may: approve, reject" in out.getvalue()


@pytest.mark.parametrize("end", [EOFError, KeyboardInterrupt])
def test_console_with_no_one_to_answer_rejects(end: type[BaseException]) -> None:
    approver, out = console(Typist(end=end))

    approval = approver(request())

    assert approval.answer is Answer.REJECT
    assert approval.message == "no one answered at the console (input closed)"
    assert "rejected" in out.getvalue()


def test_console_with_no_answer_possible_rejects_without_asking() -> None:
    typist = Typist("a")
    approver, _ = console(typist)

    assert approver(request(allowed=())).answer is Answer.REJECT
    assert typist.prompts == []


class SlowTypist(Typist):
    """Answers the first question only once ``typed`` is set (a person away from the desk)."""

    def __init__(self, late: str, *lines: str) -> None:
        super().__init__(*lines)
        self.late = late
        self.typed = threading.Event()

    def __call__(self, prompt: str) -> str:
        if not self.typed.is_set() and not self.prompts:
            self.prompts.append(prompt)
            self.typed.wait(5)
            return self.late
        return super().__call__(prompt)


def test_console_timeout_rejects_and_a_late_line_does_not_answer_the_next_question() -> None:
    typist = SlowTypist("a", "r", "too late")
    approver, out = console(typist, timeout=0.05)

    started = time.monotonic()
    first = approver(request())
    assert time.monotonic() - started < 1

    assert first.answer is Answer.REJECT
    assert first.message == "no one answered at the console within 0.05s"
    assert "No answer within 0.05s: rejected." in out.getvalue()

    typist.typed.set()  # the person comes back and types "a" for the rejected question
    second = approver(request())

    assert second == Approval.reject("too late", approver="alice")  # not an approval
    assert "(Ignored 'a', typed after the last question had timed out.)" in out.getvalue()


def test_console_answer_within_the_timeout_counts() -> None:
    approver, _ = console(Typist("a"), timeout=5)

    assert approver(request()).answer is Answer.APPROVE


def test_console_asks_parallel_calls_one_after_another() -> None:
    inside = 0
    most = 0
    lock = threading.Lock()
    typist = Typist("a", "r", "")

    def slow(prompt: str) -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.005)
        with lock:
            inside -= 1
        return typist(prompt)

    approver = ConsoleApprover(input=slow, output=io.StringIO(), approver_name="alice")
    answers: list[Approval] = []
    threads = [threading.Thread(target=lambda: answers.append(approver(request()))) for _ in "12"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.answer for a in answers) == [Answer.APPROVE, Answer.REJECT]
    assert most == 1
    assert typist.prompts == [PROMPT, PROMPT, "Message to the model (optional)? "]


def test_console_settings_are_checked_and_shown() -> None:
    assert repr(ConsoleApprover(approver_name="ops", timeout=5)) == (
        "ConsoleApprover(approver_name='ops', timeout=5.0)"
    )
    assert ConsoleApprover().approver_name  # the OS user, or "console"
    assert ConsoleApprover(timeout=float("inf")).timeout is None
    for bad in (0, -1, float("nan"), True, "5"):
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            ConsoleApprover(timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout must be a positive number"):
            QueueApprover(timeout=bad)  # type: ignore[arg-type]


def test_console_docstring_example_holds() -> None:
    import guardrails_plugin.approvers

    result = doctest.testmod(guardrails_plugin.approvers)
    assert result.attempted >= 3
    assert result.failed == 0


# -- the queue --------------------------------------------------------------------------------


async def parked(approver: QueueApprover, req: ApprovalRequest | None = None) -> Any:
    """Start a call waiting on ``approver``; returns its task and its pending approval."""
    task = asyncio.create_task(approver(req or request()))
    pending = await asyncio.wait_for(approver.next(), 1)
    return task, pending


async def test_queue_answer_from_the_same_loop_resolves_the_waiting_call() -> None:
    approver = QueueApprover()
    req = request()
    task, pending = await parked(approver, req)

    assert isinstance(pending, QueuedApproval)
    assert pending.request is req
    assert approver.pending() == [pending]
    applied = approver.answer(pending.id, Approval.approve(approver="ops"))

    assert await task == applied == Approval.approve(approver="ops")
    assert pending.future.result() == applied
    assert approver.pending() == []


async def test_queue_answers_may_be_bools_or_dicts_and_are_signed_with_the_default_name() -> None:
    approver = QueueApprover(approver_name="web")
    task, pending = await parked(approver)
    approver.answer(pending.id, {"type": "edit", "args": EDITED})
    task2, pending2 = await parked(approver)
    approver.answer(pending2.id, {"type": "reject", "message": "no", "approver": "bob"})
    task3, pending3 = await parked(approver)
    approver.answer(pending3.id, True)

    assert await task == Approval.edit(EDITED, approver="web")
    assert await task2 == Approval.reject("no", approver="bob")
    assert await task3 == Approval.approve(approver="web")


async def test_queue_answer_from_another_thread() -> None:
    approver = QueueApprover()

    def operator() -> None:  # a web handler on a server thread
        deadline = time.monotonic() + 2
        while not approver.pending() and time.monotonic() < deadline:
            time.sleep(0.001)
        [pending] = approver.pending()
        approver.answer(pending.id, Approval.respond("42", approver="ops"))

    thread = threading.Thread(target=operator)
    thread.start()
    approval = await asyncio.wait_for(approver(request()), 2)
    thread.join()

    assert approval == Approval.respond("42", approver="ops")
    assert approver.pending() == []


async def test_queue_worker_on_another_event_loop_takes_and_answers_calls() -> None:
    approver = QueueApprover()

    async def worker() -> None:
        pending = await asyncio.wait_for(approver.next(), 2)
        approver.answer(pending.id, Approval.approve(approver="worker"))

    thread = threading.Thread(target=asyncio.run, args=(worker(),))
    thread.start()
    await asyncio.sleep(0.01)  # the worker is waiting before the call arrives
    approval = await asyncio.wait_for(approver(request()), 2)
    thread.join()

    assert approval.approver == "worker"


async def test_queue_timeout_rejects_naming_it_and_removes_the_call() -> None:
    approver = QueueApprover(timeout=0.05)
    task, pending = await parked(approver)

    approval = await task

    assert approval.answer is Answer.REJECT
    assert approval.message == "no one answered within the approval timeout of 0.05s"
    assert approver.pending() == []
    assert pending.expires_at == pytest.approx(pending.created_at + 0.05)
    with pytest.raises(asyncio.InvalidStateError, match=r"it was already timed out after 0\.05s"):
        approver.answer(pending.id, True)


async def test_queue_cancelled_agent_takes_its_call_off_the_queue() -> None:
    approver = QueueApprover()
    task, pending = await parked(approver)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert approver.pending() == []
    assert pending.future.cancelled()
    with pytest.raises(asyncio.InvalidStateError, match="withdrawn: the agent stopped waiting"):
        approver.answer(pending.id, True)


async def test_queue_second_answer_is_an_error() -> None:
    approver = QueueApprover()
    task, pending = await parked(approver)
    approver.answer(pending.id, Approval.approve(approver="ops"))

    with pytest.raises(asyncio.InvalidStateError, match=r"already answered \(approve by ops\)"):
        approver.answer(pending.id, False)
    assert (await task).answer is Answer.APPROVE


async def test_queue_unknown_id_is_a_key_error() -> None:
    approver = QueueApprover()

    with pytest.raises(KeyError, match="no pending approval with id 'nope'"):
        approver.answer("nope", True)


async def test_queue_unreadable_or_impossible_answer_leaves_the_call_pending() -> None:
    approver = QueueApprover()
    task, pending = await parked(approver, request(allowed=(Answer.APPROVE, Answer.REJECT)))

    with pytest.raises(TypeError, match="found str"):
        approver.answer(pending.id, "yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="found 'maybe'"):
        approver.answer(pending.id, {"type": "maybe"})
    with pytest.raises(ValueError, match=r"edit is not possible .* possible: approve, reject"):
        approver.answer(pending.id, Approval.edit(EDITED))
    assert approver.pending() == [pending]

    approver.answer(pending.id, False)
    assert (await task).answer is Answer.REJECT


async def test_queue_next_hands_out_each_call_once_oldest_first() -> None:
    approver = QueueApprover()
    first = asyncio.create_task(approver(request(args={"to": "1"})))
    await asyncio.sleep(0)
    second = asyncio.create_task(approver(request(args={"to": "2"})))
    await asyncio.sleep(0)

    taken = [await approver.next(), await approver.next()]
    assert [p.request.call.args["to"] for p in taken] == ["1", "2"]
    assert approver.pending() == taken
    waiting = asyncio.create_task(approver.next())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # nothing new to hand out

    assert approver.answer_all(True) == 2
    assert [(await first).answer, (await second).answer] == [Answer.APPROVE] * 2
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_queue_next_skips_calls_answered_before_anyone_took_them() -> None:
    approver = QueueApprover()
    task = asyncio.create_task(approver(request()))
    while not approver.pending():
        await asyncio.sleep(0)
    approver.answer(approver.pending()[0].id, True)  # a handler that lists pending()
    await task

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(approver.next(), 0.02)


async def test_queue_close_rejects_everything_and_ends_requests() -> None:
    approver = QueueApprover(approver_name="server")
    seen: list[QueuedApproval] = []

    async def watch() -> None:
        async for pending in approver.requests:
            seen.append(pending)

    watcher = asyncio.create_task(watch())
    tasks = [asyncio.create_task(approver(request())) for _ in range(2)]
    while len(seen) < 2:
        await asyncio.sleep(0)

    assert approver.close("shutting down") == 2

    for task in tasks:
        assert await task == Approval.reject("shutting down")
    await asyncio.wait_for(watcher, 1)  # the iterator ended
    assert len(seen) == 2
    assert approver.closed
    assert await approver(request()) == Approval.reject("the approver is closed: shutting down")
    with pytest.raises(ApproverClosed, match="shutting down"):
        await approver.next()
    with pytest.raises(asyncio.InvalidStateError, match="closed: shutting down"):
        approver.answer(seen[0].id, True)


async def test_queue_pending_approval_is_json_and_reads_well() -> None:
    approver = QueueApprover(timeout=5, approver_name="web")
    task, pending = await parked(approver)

    doc = json.loads(json.dumps(pending.to_dict()))
    assert doc["id"] == pending.id
    assert doc["tool"] == "send_email"
    assert doc["args"] == EMAIL
    assert doc["allowed_decisions"] == ["approve", "edit", "reject", "respond"]
    assert repr(pending) == (
        f"QueuedApproval(id={pending.id!r}, tool='send_email', agent='mailer', "
        "rule='mail-needs-ok', pending)"
    )
    assert repr(approver) == "QueueApprover(timeout=5.0, approver_name='web', pending=1)"
    approver.answer(pending.id, True)
    await task


# -- end to end: real agents, the real guard ------------------------------------------------


def mail_agent(approver: Any, ran: Ran, script: list[Any] | None = None) -> Any:
    guard = Guard(Policy([ask("send_email")]), approver=approver)
    model = ScriptedChatModel(script or [tool_call("send_email", **EMAIL), "done"])
    tools = [recording_tool("send_email", ran, "to", "body", returns="sent")]
    return create_agent(model=model, tools=tools, middleware=[GuardMiddleware(guard)])


async def run_answering(agent: Any, approver: QueueApprover, answer: Any) -> Any:
    """Run the agent while a separate task (a person, through a server) answers its call."""

    async def person() -> QueuedApproval:
        pending = await approver.next()
        approver.answer(pending.id, answer)
        return pending

    answering = asyncio.create_task(person())
    result = await asyncio.wait_for(agent.ainvoke(user("mail the boss")), 5)
    pending = await answering
    assert pending.request.call.tool == "send_email"
    assert pending.request.call.args == EMAIL
    return result


async def test_agent_call_approved_through_the_queue_runs_the_tool() -> None:
    ran: Ran = []
    approver = QueueApprover()

    result = await run_answering(mail_agent(approver, ran), approver, True)

    assert ran == [("send_email", EMAIL)]
    assert tool_messages(result)[0].content == "sent"
    assert approver.pending() == []


async def test_agent_call_edited_through_the_queue_runs_with_the_edited_arguments() -> None:
    ran: Ran = []
    approver = QueueApprover()

    await run_answering(
        mail_agent(approver, ran), approver, {"type": "edit", "args": EDITED, "approver": "ops"}
    )

    assert ran == [("send_email", EDITED)]


async def test_agent_call_rejected_through_the_queue_never_runs_the_tool() -> None:
    ran: Ran = []
    approver = QueueApprover(approver_name="ops")

    result = await run_answering(mail_agent(approver, ran), approver, Approval.reject("not today"))

    assert ran == []
    [message] = tool_messages(result)
    assert message.status == "error"
    assert "rejected by ops: not today" in message.content


async def test_agent_call_nobody_answers_in_time_is_rejected() -> None:
    ran: Ran = []
    approver = QueueApprover(timeout=0.05)

    result = await mail_agent(approver, ran).ainvoke(user("mail the boss"))

    assert ran == []
    assert "within the approval timeout of 0.05s" in tool_messages(result)[0].content
    assert approver.pending() == []


def test_queue_approver_under_sync_invoke_denies_and_queues_nothing() -> None:
    ran: Ran = []
    approver = QueueApprover()

    result = mail_agent(approver, ran).invoke(user("mail the boss"))

    assert ran == []
    assert "ainvoke" in tool_messages(result)[0].content
    assert approver.pending() == []


def test_agent_call_edited_at_the_console_in_a_sync_run() -> None:
    ran: Ran = []
    typist = Typist("e", json.dumps(EDITED))
    approver, out = console(typist)

    result = mail_agent(approver, ran).invoke(user("mail the boss"))

    assert ran == [("send_email", EDITED)]
    assert tool_messages(result)[0].content == "sent"
    assert "wants to call 'send_email'" in out.getvalue()
    assert typist.prompts[0] == PROMPT
