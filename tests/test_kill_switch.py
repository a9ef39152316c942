"""The kill switch: an operator pauses, resumes or kills one thread, one agent or everything,
and every guarded step (model calls, tool calls, node entries) obeys — inside graphs through
``interrupt()`` and ``RunKilled``, outside them with ``RunPaused`` / ``RunKilled``, and across
processes through a shared SQLite store.

Every graph is real (``create_agent``, ``StateGraph``, ``InMemorySaver``); models are scripted.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest
from fakes import Ran, ScriptedChatModel, recording_tool, tool_call, user
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import tools_condition
from langgraph.types import Command
from langgraph_apps import MODES, config, run
from typing_extensions import TypedDict

from guardrails_plugin import (
    Approval,
    ApprovalRequest,
    Controls,
    Effect,
    Flag,
    Guard,
    Policy,
    RunKilled,
    RunPaused,
    SQLiteStore,
    ToolCall,
    allow,
    ask,
)
from guardrails_plugin.controls import State
from guardrails_plugin.langchain import (
    AsyncGuardCallbackHandler,
    GuardCallbackHandler,
    GuardMiddleware,
)
from guardrails_plugin.langgraph import GuardedToolNode, answer, approval_requests, guard_node


async def operator(controls: Controls, verb: str, mode: str, **target: Any) -> Any:
    """An operator's ``pause`` / ``kill`` / ``resume`` (``apause``... in async mode)."""
    if mode == "async":
        return await getattr(controls, "a" + verb)(**target)
    return getattr(controls, verb)(**target)


def paused(out: Any) -> list[dict[str, Any]]:
    """The pause interrupts a run stopped at."""
    return [i.value for i in out.get("__interrupt__", ()) if i.value.get("type") == "paused"]


def acting_tool(name: str, ran: Ran, act: Callable[[], Any]) -> BaseTool:
    """A tool that records its run, then does what an operator would do mid-run."""

    def body(text: str) -> str:
        ran.append((name, {"text": text}))
        act()
        return "ok"

    return StructuredTool.from_function(func=body, name=name, description=f"The {name} tool.")


def agent(
    guard: Guard,
    script: list[Any],
    tools: list[BaseTool],
    *,
    name: str = "bot",
    checkpointer: bool = True,
) -> tuple[Any, ScriptedChatModel]:
    model = ScriptedChatModel(script)
    built = create_agent(
        model,
        tools=tools,
        middleware=[GuardMiddleware(guard)],
        name=name,
        checkpointer=InMemorySaver() if checkpointer else None,
    )
    return built, model


def publishing(guard: Guard, ran: Ran, **options: Any) -> tuple[Any, ScriptedChatModel]:
    """An agent whose model publishes once, then answers."""
    script = [tool_call("publish", text="hello"), "published"]
    return agent(guard, script, [recording_tool("publish", ran, "text")], **options)


def open_policy() -> Policy:
    return Policy([allow("*")])


# -- before model calls (GuardMiddleware in create_agent) ----------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_a_paused_thread_waits_before_its_model_call_until_an_operator_resumes_it(
    mode: str,
) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    bot, model = publishing(guard, ran)
    await operator(guard.controls, "pause", mode, thread="t-1", reason="looks odd", by="alice")

    out = await run(bot, user("publish"), config(), mode)
    [pause] = paused(out)
    assert (pause["agent"], pause["thread_id"]) == ("bot", "t-1")
    assert "thread 't-1' paused by alice: looks odd" in pause["reason"]
    assert model.calls == 0  # stopped before the model was called
    assert approval_requests(out) == []

    out = await run(bot, answer(out, True), config(), mode)  # resumed, but still paused
    assert len(paused(out)) == 1
    assert model.calls == 0

    assert await operator(guard.controls, "resume", mode, thread="t-1") is True
    out = await run(bot, answer(out, True), config(), mode)

    assert "__interrupt__" not in out
    assert model.calls == 2
    assert ran == [("publish", {"text": "hello"})]
    assert out["messages"][-1].text == "published"


@pytest.mark.parametrize("mode", MODES)
async def test_a_pause_set_mid_run_stops_the_next_model_call(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    pausing = acting_tool("publish", ran, lambda: guard.controls.pause(thread="t-1"))
    bot, model = agent(guard, [tool_call("publish", text="x"), "done"], [pausing])

    out = await run(bot, user("go"), config(), mode)
    assert len(paused(out)) == 1
    assert model.calls == 1  # the second model call waits
    assert ran == [("publish", {"text": "x"})]

    await operator(guard.controls, "resume", mode, thread="t-1")
    out = await run(bot, answer(out, True), config(), mode)

    assert out["messages"][-1].text == "done"
    assert model.calls == 2
    assert ran == [("publish", {"text": "x"})]  # not run again by the resume


@pytest.mark.parametrize("mode", MODES)
async def test_a_killed_thread_ends_with_run_killed_saying_who_and_why(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    bot, model = publishing(guard, ran)
    await operator(guard.controls, "kill", mode, thread="t-1", reason="runaway spend", by="alice")

    with pytest.raises(RunKilled) as caught:
        await run(bot, user("publish"), config(), mode)

    assert str(caught.value) == (
        "denied by rule 'kill-switch': killed by an operator "
        "(thread 't-1' killed by alice: runaway spend)"
    )
    assert caught.value.decision.kind == "control"
    assert model.calls == 0
    assert ran == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_kill_set_mid_run_ends_it_at_the_next_guarded_step(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    killing = acting_tool("publish", ran, lambda: guard.controls.kill(thread="t-1"))
    bot, model = agent(guard, [tool_call("publish", text="x"), "never said"], [killing])

    with pytest.raises(RunKilled, match="thread 't-1' killed"):
        await run(bot, user("go"), config(), mode)

    assert model.calls == 1
    assert ran == [("publish", {"text": "x"})]


@pytest.mark.parametrize("mode", MODES)
async def test_flags_on_other_threads_and_agents_leave_this_run_alone(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    bot, _ = publishing(guard, ran)
    await operator(guard.controls, "kill", mode, thread="t-other")
    await operator(guard.controls, "kill", mode, agent="other-bot")
    await operator(guard.controls, "pause", mode, agent="third-bot")

    out = await run(bot, user("publish"), config(), mode)

    assert out["messages"][-1].text == "published"
    assert ran == [("publish", {"text": "hello"})]


@pytest.mark.parametrize("mode", MODES)
async def test_an_agent_kill_stops_that_agent_on_every_thread_and_no_other(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    await operator(guard.controls, "kill", mode, agent="researcher", reason="quarantined")

    for thread in ("t-1", "t-2"):
        researcher, model = publishing(guard, ran, name="researcher")
        with pytest.raises(RunKilled, match="agent 'researcher' killed: quarantined"):
            await run(researcher, user("publish"), config(thread), mode)
        assert model.calls == 0
    writer, _ = publishing(guard, ran, name="writer")
    await run(writer, user("publish"), config("t-1"), mode)
    assert ran == [("publish", {"text": "hello"})]

    await operator(guard.controls, "resume", mode, agent="researcher")
    researcher, _ = publishing(guard, ran, name="researcher")
    await run(researcher, user("publish"), config("t-3"), mode)
    assert len(ran) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_global_pause_stops_every_agent_until_lifted(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    await operator(guard.controls, "pause", mode, reason="incident")
    bots = {name: publishing(guard, ran, name=name) for name in ("researcher", "writer")}

    outs = {}
    for name, (bot, model) in bots.items():
        outs[name] = await run(bot, user("publish"), config(name), mode)
        [pause] = paused(outs[name])
        assert "everything paused: incident" in pause["reason"]
        assert model.calls == 0

    await operator(guard.controls, "resume", mode)
    for name, (bot, _) in bots.items():
        out = await run(bot, answer(outs[name], True), config(name), mode)
        assert out["messages"][-1].text == "published"
    assert len(ran) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_a_kill_beats_a_pause(mode: str) -> None:
    guard = Guard(open_policy())
    bot, model = publishing(guard, [])
    await operator(guard.controls, "pause", mode, thread="t-1")
    await operator(guard.controls, "kill", mode)

    with pytest.raises(RunKilled, match="everything killed"):
        await run(bot, user("publish"), config(), mode)
    assert model.calls == 0


@pytest.mark.parametrize("mode", MODES)
async def test_resume_lifts_only_the_flag_set_at_its_own_level(mode: str) -> None:
    times = iter([10.0, 20.0])
    controls = Controls(Guard(open_policy()).store, clock=lambda: next(times))
    await operator(controls, "pause", mode, agent="bot", reason="why", by="ops")
    await operator(controls, "kill", mode, thread="t-9")

    assert await operator(controls, "resume", mode, thread="t-1") is False
    flags = await controls.aflags() if mode == "async" else controls.flags()
    assert flags == [
        Flag("agent", "bot", State.PAUSED, reason="why", by="ops", at=10.0),
        Flag("thread", "t-9", State.KILLED, at=20.0),
    ]
    assert await operator(controls, "resume", mode, agent="bot") is True
    assert [f.key for f in controls.flags()] == ["control/flag/thread/t-9"]


@pytest.mark.parametrize("mode", MODES)
async def test_without_a_checkpointer_a_pause_raises_run_paused(mode: str) -> None:
    guard = Guard(open_policy())
    bot, model = publishing(guard, [], checkpointer=False)
    await operator(guard.controls, "pause", mode, thread="t-1")

    with pytest.raises(RunPaused, match="thread 't-1' paused"):
        await run(bot, user("publish"), config(), mode)
    assert model.calls == 0


@pytest.mark.parametrize(
    "mode",
    [
        "sync",
        "async",
    ],
)
async def test_no_pause_record_is_left_once_the_paused_model_call_went_ahead(mode: str) -> None:
    guard = Guard(open_policy())
    bot, _ = publishing(guard, [])
    guard.controls.pause(thread="t-1")
    out = await run(bot, user("publish"), config(), mode)
    guard.controls.resume(thread="t-1")

    await run(bot, answer(out, True), config(), mode)

    assert guard.store.scan("pending/") == {}


# -- before tool calls (GuardedToolNode) ----------------------------------------------------------


def tool_loop(model: ScriptedChatModel, tools: list[BaseTool], guard: Guard, **options: Any) -> Any:
    """The classic agent loop with the user's ToolNode swapped for GuardedToolNode; the model
    node itself is not guarded, so only the tool calls meet the kill switch."""
    bound = model.bind_tools(tools)

    def call_model(state: Any) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(_Messages)
    builder.add_node("agent", call_model)
    builder.add_node("tools", GuardedToolNode(tools, guard, **options))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


class _Messages(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


@pytest.mark.parametrize("mode", MODES)
async def test_a_paused_thread_waits_before_a_guarded_tool_call(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    model = ScriptedChatModel([tool_call("publish", text="x", id="c-1"), "done"])
    graph = tool_loop(model, [recording_tool("publish", ran, "text")], guard)
    await operator(guard.controls, "pause", mode, thread="t-1")

    out = await run(graph, user("go"), config(), mode)
    [pause] = paused(out)
    assert (pause["tool"], pause["call_id"]) == ("publish", "c-1")
    assert ran == []

    out = await run(graph, answer(out, True), config(), mode)  # still paused
    assert len(paused(out)) == 1
    assert ran == []

    await operator(guard.controls, "resume", mode, thread="t-1")
    out = await run(graph, Command(resume=True), config(), mode)

    assert out["messages"][-1].text == "done"
    assert ran == [("publish", {"text": "x"})]


@pytest.mark.parametrize("mode", MODES)
async def test_a_kill_stops_a_guarded_tool_node_even_where_denials_go_to_the_model(
    mode: str,
) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    model = ScriptedChatModel([tool_call("publish", text="x"), "done"])
    graph = tool_loop(model, [recording_tool("publish", ran, "text")], guard, on_deny="message")
    await operator(guard.controls, "kill", mode, agent="agent", by="ops")

    with pytest.raises(RunKilled, match="agent 'agent' killed by ops"):
        await run(graph, user("go"), config(), mode)
    assert ran == []


@pytest.mark.parametrize("mode", MODES)
async def test_once_lifted_a_paused_step_with_several_calls_needs_one_resume(mode: str) -> None:
    ran: Ran = []
    guard = Guard(open_policy())
    turn = [tool_call("publish", text=t, id=f"c-{t}") for t in ("a", "b", "c")]
    model = ScriptedChatModel([turn, "done"])
    graph = tool_loop(model, [recording_tool("publish", ran, "text")], guard)
    await operator(guard.controls, "pause", mode, thread="t-1")
    out = await run(graph, user("go"), config(), mode)
    assert len(paused(out)) == 1

    await operator(guard.controls, "resume", mode, thread="t-1")
    out = await run(graph, answer(out, True), config(), mode)

    assert paused(out) == []
    assert sorted(text["text"] for _, text in ran) == ["a", "b", "c"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_kill_while_a_person_decides_stops_the_approved_call(mode: str) -> None:
    ran: Ran = []
    guard = Guard(Policy([ask("publish", id="publish-needs-ok")]))
    bot, _ = publishing(guard, ran)
    out = await run(bot, user("publish"), config(), mode)
    [pending] = approval_requests(out)

    await operator(guard.controls, "kill", mode, thread="t-1")
    with pytest.raises(RunKilled):
        await run(bot, answer(out, {pending.call_id: Approval.approve()}), config(), mode)
    assert ran == []


@pytest.mark.parametrize("mode", MODES)
async def test_a_pause_while_a_person_decides_holds_the_approved_call(mode: str) -> None:
    ran: Ran = []
    guard = Guard(Policy([ask("publish", id="publish-needs-ok")]))
    bot, _ = publishing(guard, ran)
    out = await run(bot, user("publish"), config(), mode)
    [pending] = approval_requests(out)

    await operator(guard.controls, "pause", mode, thread="t-1")
    out = await run(bot, answer(out, {pending.call_id: Approval.approve()}), config(), mode)

    assert ran == []
    assert len(paused(out)) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_pause_while_a_person_decides_a_step_of_several_calls_holds_them_once(
    mode: str,
) -> None:
    """A step of several calls waits in one "approvals" interrupt; an operator pauses the
    thread meanwhile. The person's answer must reach the approvals (not the step's
    kill-switch hold, which the step had already passed), and the approved calls wait for
    the pause to be lifted: one pause, one resume."""
    ran: Ran = []
    guard = Guard(Policy([ask("publish", id="publish-needs-ok")]))
    turn = [tool_call("publish", text=t, id=f"c-{t}") for t in ("a", "b")]
    graph = tool_loop(
        ScriptedChatModel([turn, "done"]), [recording_tool("publish", ran, "text")], guard
    )
    out = await run(graph, user("go"), config(), mode)
    assert sorted(p.call_id for p in approval_requests(out)) == ["c-a", "c-b"]

    await operator(guard.controls, "pause", mode, thread="t-1")
    out = await run(graph, answer(out, True), config(), mode)
    assert ran == []
    assert len(paused(out)) == 1
    assert approval_requests(out) == []  # answered: not asked again

    await operator(guard.controls, "resume", mode, thread="t-1")
    out = await run(graph, Command(resume=True), config(), mode)
    assert paused(out) == []
    assert sorted(text["text"] for _, text in ran) == ["a", "b"]


# -- before a node runs (guard_node) ---------------------------------------------------------------


def two_nodes(guard: Guard, log: list[str]) -> Any:
    def step(name: str) -> Callable[[Any], Any]:
        def body(state: Any) -> dict[str, Any]:
            log.append(name)
            return {"messages": [AIMessage(f"{name} done")]}

        return body

    builder = StateGraph(_Messages)
    builder.add_node("planner", guard_node(step("planner"), guard))
    builder.add_node("researcher", guard_node(step("researcher"), guard))
    builder.add_edge(START, "planner")
    builder.add_edge("planner", "researcher")
    builder.add_edge("researcher", END)
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("mode", MODES)
async def test_a_guarded_node_waits_before_it_runs_while_its_agent_is_paused(mode: str) -> None:
    log: list[str] = []
    guard = Guard(open_policy())
    graph = two_nodes(guard, log)
    await operator(guard.controls, "pause", mode, agent="researcher")

    out = await run(graph, user("go"), config(), mode)
    [pause] = paused(out)
    assert pause["agent"] == "researcher"
    assert log == ["planner"]

    await operator(guard.controls, "resume", mode, agent="researcher")
    out = await run(graph, answer(out, True), config(), mode)

    assert log == ["planner", "researcher"]
    assert out["messages"][-1].text == "researcher done"
    assert guard.store.scan("pending/") == {}


@pytest.mark.parametrize("mode", MODES)
async def test_a_guarded_node_of_a_killed_agent_never_runs(mode: str) -> None:
    log: list[str] = []
    guard = Guard(open_policy())
    await operator(guard.controls, "kill", mode, agent="researcher")

    with pytest.raises(RunKilled, match="agent 'researcher' killed"):
        await run(two_nodes(guard, log), user("go"), config(), mode)
    assert log == ["planner"]


# -- outside graphs ------------------------------------------------------------------------------


class Approver:
    def __init__(self) -> None:
        self.asked: list[ApprovalRequest] = []

    def __call__(self, request: ApprovalRequest) -> Approval:
        self.asked.append(request)
        return Approval.approve()


@pytest.mark.parametrize("mode", MODES)
async def test_outside_a_graph_a_pause_raises_run_paused_and_never_asks_the_approver(
    mode: str,
) -> None:
    ran: Ran = []
    approver = Approver()
    guard = Guard(Policy([ask("publish")]), approver=approver)
    publish = recording_tool("publish", ran, "text")
    await operator(guard.controls, "pause", mode, thread="t-1")
    handler: Any = (
        AsyncGuardCallbackHandler(guard) if mode == "async" else GuardCallbackHandler(guard)
    )
    run_config: Any = {"callbacks": [handler], "metadata": {"thread_id": "t-1"}}

    async def call_tool() -> Any:
        if mode == "async":
            return await publish.ainvoke({"text": "x"}, config=run_config)
        return publish.invoke({"text": "x"}, config=run_config)

    with pytest.raises(RunPaused, match="thread 't-1' paused"):
        await call_tool()
    assert ran == []
    assert approver.asked == []

    await operator(guard.controls, "kill", mode, thread="t-1")
    with pytest.raises(RunKilled):
        await call_tool()
    assert ran == []

    await operator(guard.controls, "resume", mode, thread="t-1")
    await call_tool()
    assert ran == [("publish", {"text": "x"})]
    assert len(approver.asked) == 1  # asked only once nothing stopped the call


@pytest.mark.parametrize("mode", MODES)
async def test_decide_gives_the_control_decision_and_never_asks_the_approver(mode: str) -> None:
    approver = Approver()
    guard = Guard(Policy([ask("publish")]), approver=approver)
    call = ToolCall("publish", {"text": "x"}, agent="bot", thread_id="t-1")

    async def decide() -> Any:
        return await guard.adecide(call) if mode == "async" else guard.decide(call)

    await operator(guard.controls, "pause", mode, agent="bot")
    pause = await decide()
    assert (pause.effect, pause.rule, pause.kind) == (Effect.ASK, "pause", "control")
    assert isinstance(pause.error(), RunPaused)

    await operator(guard.controls, "kill", mode, thread="t-1")
    kill = await decide()
    assert (kill.effect, kill.rule, kill.kind) == (Effect.DENY, "kill-switch", "control")
    assert approver.asked == []

    await operator(guard.controls, "resume", mode, agent="bot")
    await operator(guard.controls, "resume", mode, thread="t-1")
    assert (await decide()).effect is Effect.ALLOW
    assert len(approver.asked) == 1


# -- across processes ------------------------------------------------------------------------------

# The operator: another process with nothing but the shared store. It runs its script of
# actions in order: "touch:<file>", "wait:<file>", or a Controls verb on the thread.
OPERATOR = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from guardrails_plugin import Controls, SQLiteStore

    db, thread, mode, *actions = sys.argv[1:]
    controls = Controls(SQLiteStore(db))
    for action in actions:
        kind, _, arg = action.partition(":")
        if kind == "touch":
            Path(arg).touch()
        elif kind == "wait":
            deadline = time.monotonic() + 20
            while not Path(arg).exists():
                if time.monotonic() > deadline:
                    sys.exit(f"operator: gave up waiting for {arg}")
                time.sleep(0.002)
        elif mode == "async":
            asyncio.run(getattr(controls, "a" + kind)(thread=thread))
        else:
            getattr(controls, kind)(thread=thread)
    """
)


def start_operator(db: Path, thread: str, mode: str, *actions: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", OPERATOR, str(db), thread, mode, *actions])


def wait_for(path: Path, operator: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until the operator process has created ``path`` (or fail if it died)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert operator.poll() is None, f"the operator exited early ({operator.returncode})"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.002)


class Steps:
    """A tool the loop calls at every step: it counts, says when the run has started, and
    notes the steps that began after the operator's flag was in the store."""

    def __init__(self, started: Path, flagged: Path, start_at: int = 3) -> None:
        self.started = started
        self.flagged = flagged
        self.start_at = start_at
        self.ran: list[int] = []
        self.after_flag: list[int] = []

    def tool(self) -> BaseTool:
        def step(n: int) -> str:
            """Do one step of the job."""
            if self.flagged.exists():
                self.after_flag.append(n)
            self.ran.append(n)
            if n == self.start_at:
                self.started.touch()
            return f"step {n} done"

        return StructuredTool.from_function(func=step)


@pytest.mark.parametrize("mode", MODES)
async def test_a_kill_from_another_process_ends_a_running_agent_at_its_next_step(
    tmp_path: Path, mode: str
) -> None:
    db = tmp_path / "guard.db"
    ready, started, flagged = (tmp_path / n for n in ("ready", "started", "flagged"))
    guard = Guard(Policy([allow("step")]), store=SQLiteStore(db))
    steps = Steps(started, flagged)
    many = [tool_call("step", n=i) for i in range(400)]
    looper, model = agent(guard, [*many, "finished"], [steps.tool()], name="looper")
    kill = start_operator(
        db, "t-loop", mode, f"touch:{ready}", f"wait:{started}", "kill", f"touch:{flagged}"
    )
    try:
        wait_for(ready, kill)

        with pytest.raises(RunKilled, match="thread 't-loop' killed"):
            await run(looper, user("loop"), config("t-loop"), mode)
    finally:
        assert kill.wait(timeout=20) == 0

    assert steps.ran == list(range(len(steps.ran)))
    assert steps.start_at < len(steps.ran) < len(many)  # it ran, and it was cut short
    assert len(steps.after_flag) <= 1  # at most the step already past its check
    # stopped at the model call after the last step, or at the tool call that call made
    assert model.calls - len(steps.ran) in (0, 1)


def _recent(old: list[AnyMessage], new: Any) -> list[AnyMessage]:
    return add_messages(old, new)[-4:]  # keeps steps cheap however long the loop runs


class _Loop(TypedDict):
    messages: Annotated[list[AnyMessage], _recent]


def counting_loop(guard: Guard, steps: Steps, limit: int, wind_down: Path) -> Any:
    """A graph cycling agent -> GuardedToolNode -> agent, one ``step`` call per cycle, up to
    ``limit`` steps or until ``wind_down`` exists."""

    def plan(state: Any) -> dict[str, Any]:
        n = len(steps.ran)
        if n >= limit or wind_down.exists():
            return {"messages": [AIMessage("finished")]}
        return {"messages": [AIMessage("", tool_calls=[tool_call("step", n=n, id=f"s-{n}")])]}

    builder = StateGraph(_Loop)
    builder.add_node("agent", plan)
    builder.add_node("tools", GuardedToolNode([steps.tool()], guard))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


@pytest.mark.parametrize("mode", MODES)
async def test_a_pause_from_another_process_interrupts_and_its_resume_lets_the_run_finish(
    tmp_path: Path, mode: str
) -> None:
    db = tmp_path / "guard.db"
    ready, started, flagged, lift, lifted = (
        tmp_path / n for n in ("ready", "started", "flagged", "lift", "lifted")
    )
    guard = Guard(Policy([allow("step")]), store=SQLiteStore(db))
    steps = Steps(started, flagged)
    limit = 1000
    graph = counting_loop(guard, steps, limit, wind_down=lifted)
    run_config = {**config("t-loop"), "recursion_limit": 3 * limit}
    ops = start_operator(
        db,
        "t-loop",
        mode,
        f"touch:{ready}",
        f"wait:{started}",
        "pause",
        f"touch:{flagged}",
        f"wait:{lift}",
        "resume",
        f"touch:{lifted}",
    )
    try:
        wait_for(ready, ops)
        out = await run(graph, {"messages": [("user", "loop")]}, run_config, mode)
        [pause] = paused(out)
        assert (pause["tool"], pause["thread_id"]) == ("step", "t-loop")
        stopped_at = len(steps.ran)
        assert steps.start_at < stopped_at < limit
        assert len(steps.after_flag) <= 1

        out = await run(graph, Command(resume=True), run_config, mode)  # still paused
        assert len(paused(out)) == 1
        assert len(steps.ran) == stopped_at

        lift.touch()
        wait_for(lifted, ops)
        out = await run(graph, Command(resume=True), run_config, mode)
    finally:
        lift.touch()
        assert ops.wait(timeout=20) == 0

    assert "__interrupt__" not in out
    assert out["messages"][-1].text == "finished"
    # the step the pause held ran once it was lifted; no step ran twice or was skipped
    assert steps.ran == list(range(stopped_at + 1))
