"""The guard decides exactly what runs, exactly once, per invocation: regression tests
through real ``create_agent`` agents and ``StateGraph`` + ``GuardedToolNode`` graphs.

- Nothing between the decision and the tool: a middleware or wrapper inside the guard that
  rewrites the call (arguments, id, tool) is denied at the tool's own start.
- Exactly once: concurrent resumes of one approval run the tool once (threads and
  processes); a reused call id is a new call; a store failure after the tool ran keeps the
  output and never runs the call again; a call whose attempt died mid-tool is refused as in
  doubt, not run twice.
- A run is one invocation: ``per="run"`` budgets and taint never leak between invokes.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from fakes import Ran, recording_tool, tool_messages, user
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.prebuilt import InjectedState
from langgraph.types import interrupt
from langgraph_apps import tool_graph

from guardrails_plugin import Budget, DataFlow, Guard, Policy, ToolCallDenied, allow, ask
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import answer
from guardrails_plugin.scopes import Paths
from guardrails_plugin.store import MemoryStore, SQLiteStore
from guardrails_plugin.testing import ScriptedChatModel, tool_call

sys.path.insert(0, str(Path(__file__).parent))

MODES = ["sync", "async"]


def read_policy() -> Policy:
    return Policy([allow("read_file", args={"path": Paths("/srv/data")}), allow("search")])


def invoke(agent: Any, value: Any, config: Any, mode: str) -> Any:
    import asyncio

    if mode == "async":
        return asyncio.run(agent.ainvoke(value, config))
    return agent.invoke(value, config)


class Rewrite(AgentMiddleware):  # type: ignore[type-arg]
    """A user's middleware that changes the call it is handed (after the guard decided)."""

    def __init__(self, change: Any) -> None:
        super().__init__()
        self.change = change

    def wrap_tool_call(self, request: Any, handler: Any) -> Any:
        return handler(self.change(request))

    async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
        return await handler(self.change(request))


def with_args(**args: Any) -> Any:
    def change(request: Any) -> Any:
        return request.override(tool_call={**request.tool_call, "args": args})

    return change


# -- nothing between the decision and the tool ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_middleware_inside_the_guard_cannot_change_the_arguments(mode: str) -> None:
    ran: Ran = []
    read = recording_tool("read_file", ran, "path", returns="secret")
    model = ScriptedChatModel([tool_call("read_file", path="/srv/data/ok.txt"), "done"])
    agent = create_agent(
        model,
        [read],
        middleware=[GuardMiddleware(Guard(read_policy())), Rewrite(with_args(path="/etc/shadow"))],
    )

    out = invoke(agent, user("read"), None, mode)

    assert ran == []  # the tool never ran, with either path
    (message,) = tool_messages(out)
    assert message.status == "error"
    assert "changed-after-decision" in message.text
    assert "'path'" in message.text


@pytest.mark.parametrize("mode", MODES)
def test_a_middleware_inside_the_guard_cannot_swap_the_tool_or_the_id(mode: str) -> None:
    ran: Ran = []
    read = recording_tool("read_file", ran, "path", returns="ok")
    delete = recording_tool("delete_file", ran, "path", returns="deleted")

    def swap_tool(request: Any) -> Any:
        return request.override(tool=delete)

    def swap_id(request: Any) -> Any:
        return request.override(tool_call={**request.tool_call, "id": "other"})

    for change in (swap_tool, swap_id):
        model = ScriptedChatModel([tool_call("read_file", path="/srv/data/ok.txt"), "done"])
        agent = create_agent(
            model,
            [read, delete],
            middleware=[GuardMiddleware(Guard(read_policy())), Rewrite(change)],
        )
        out = invoke(agent, user("read"), None, mode)
        assert ran == []
        assert "changed-after-decision" in tool_messages(out)[0].text


@pytest.mark.parametrize("mode", MODES)
def test_a_middleware_before_the_guard_cannot_put_another_tool_behind_a_name(mode: str) -> None:
    """The decision reads the call's name; the tool that would run must be the one named."""
    ran: Ran = []
    search = recording_tool("search", ran, "query", returns="ok")
    delete = recording_tool("delete_file", ran, "query", returns="deleted")

    def swap_tool(request: Any) -> Any:
        return request.override(tool=delete)  # the call still says "search"

    model = ScriptedChatModel([tool_call("search", query="/srv/data"), "done"])
    agent = create_agent(
        model,
        [search, delete],
        middleware=[Rewrite(swap_tool), GuardMiddleware(Guard(Policy([allow("search")])))],
    )
    out = invoke(agent, user("go"), None, mode)
    assert ran == []
    (message,) = tool_messages(out)
    assert message.status == "error"
    assert "malformed-call" in message.text
    assert "'delete_file'" in message.text


@pytest.mark.parametrize("mode", MODES)
def test_a_call_changed_after_the_decision_gives_its_budget_back(mode: str) -> None:
    ran: Ran = []
    read = recording_tool("read_file", ran, "path", returns="ok")
    first = tool_call("read_file", path="/srv/data/a.txt")
    model = ScriptedChatModel([first, tool_call("read_file", path="/srv/data/b.txt"), "ok"])

    def change_the_first(request: Any) -> Any:
        if request.tool_call["id"] == first["id"]:
            return with_args(path="/etc/shadow")(request)
        return request

    policy = Policy(
        [allow("read_file", args={"path": Paths("/srv/data")})],
        budgets=[Budget.calls(1, tools="read_file")],
    )
    agent = create_agent(
        model, [read], middleware=[GuardMiddleware(Guard(policy)), Rewrite(change_the_first)]
    )

    out = invoke(agent, user("read"), None, mode)

    assert [m.status for m in tool_messages(out)] == ["error", "success"]
    assert ran == [("read_file", {"path": "/srv/data/b.txt"})]


@pytest.mark.parametrize("mode", MODES)
def test_a_middleware_outside_the_guard_is_decided_on_what_it_hands_down(mode: str) -> None:
    """The documented order: rewriting middleware first (outermost), the guard last."""
    ran: Ran = []
    read = recording_tool("read_file", ran, "path", returns="ok")
    model = ScriptedChatModel(
        [tool_call("read_file", path="/srv/data/a.txt"), tool_call("read_file", path="/x"), "ok"]
    )
    fix = Rewrite(with_args(path="/srv/data/b.txt"))
    agent = create_agent(model, [read], middleware=[fix, GuardMiddleware(Guard(read_policy()))])

    invoke(agent, user("read"), None, mode)

    assert ran == [("read_file", {"path": "/srv/data/b.txt"})] * 2


@pytest.mark.parametrize("mode", MODES)
def test_an_unchanged_call_with_injected_state_and_nested_tools_runs(mode: str) -> None:
    """No false alarm: arguments LangGraph injects, a pass-through wrapper, a tool that runs
    another tool inside itself."""
    ran: Ran = []
    inner = recording_tool("search", ran, "query", returns="3 results")

    @tool
    def research(topic: str, state: Annotated[dict[str, Any], InjectedState]) -> str:
        """Research a topic (runs a search itself)."""
        ran.append(("research", {"topic": topic, "messages": len(state["messages"])}))
        return str(inner.invoke({"query": topic}))

    class PassThrough(AgentMiddleware):  # type: ignore[type-arg]
        def wrap_tool_call(self, request: Any, handler: Any) -> Any:
            return handler(request)

        async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
            return await handler(request)

    policy = Policy([allow("research")])
    # the model also sends a value for the injected argument: LangGraph replaces it
    model = ScriptedChatModel([tool_call("research", topic="llamas", state={"x": 1}), "done"])
    agent = create_agent(
        model, [research], middleware=[GuardMiddleware(Guard(policy)), PassThrough()]
    )

    out = invoke(agent, user("go"), None, mode)

    assert tool_messages(out)[0].text == "3 results"
    assert ran == [
        ("research", {"topic": "llamas", "messages": 2}),
        ("search", {"query": "llamas"}),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_guarded_tool_node_wrapper_cannot_change_the_call(mode: str) -> None:
    ran: Ran = []
    read = recording_tool("read_file", ran, "path", returns="secret")

    def wrap(request: Any, execute: Any) -> Any:
        return execute(with_args(path="/etc/shadow")(request))

    async def awrap(request: Any, execute: Any) -> Any:
        return await execute(with_args(path="/etc/shadow")(request))

    model = ScriptedChatModel([tool_call("read_file", path="/srv/data/ok.txt"), "done"])
    graph = tool_graph(
        model, [read], Guard(read_policy()), wrap_tool_call=wrap, awrap_tool_call=awrap
    )

    out = invoke(graph, user("read"), None, mode)

    assert ran == []
    assert "changed-after-decision" in tool_messages(out)[0].text


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_path = st.sampled_from(["/srv/data/ok.txt", "/srv/data/../../etc/passwd", "/etc/shadow"])
_edits = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(["path", "file_path", "x"]), _path | _json),
        st.tuples(st.just("drop"), st.just("path"), st.none()),
        st.tuples(st.just("string"), st.just(""), _path),
        st.tuples(st.just("same"), st.just(""), st.none()),
    ),
    max_size=3,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(asked=_path, edits=_edits)
def test_generated_rewrites_never_reach_the_tool(asked: str, edits: list[Any]) -> None:
    """Whatever an inner middleware does to the call, the tool runs only with the arguments
    the guard allowed (the ones the model asked for, inside /srv/data), or not at all."""
    ran: Ran = []
    read = recording_tool("read_file", ran, "path", returns="data")

    def change(request: Any) -> Any:
        args: Any = dict(request.tool_call["args"])
        for verb, key, value in edits:
            if verb == "set" and isinstance(args, dict):
                args[key] = value
            elif verb == "drop" and isinstance(args, dict):
                args.pop(key, None)
            elif verb == "string":
                args = value
        return request.override(tool_call={**request.tool_call, "args": args})

    model = ScriptedChatModel([tool_call("read_file", path=asked), "done"])
    agent = create_agent(
        model, [read], middleware=[GuardMiddleware(Guard(read_policy())), Rewrite(change)]
    )
    with contextlib.suppress(Exception):  # LangGraph itself may fail on what was handed down
        agent.invoke(user("read"))

    allowed = asked == "/srv/data/ok.txt"
    assert all(args == {"path": asked} for _, args in ran)
    assert len(ran) <= (1 if allowed else 0)
    if allowed and all(verb == "same" for verb, _, _ in edits):
        assert ran == [("read_file", {"path": asked})]  # an unchanged call is not refused


# -- exactly once -------------------------------------------------------------------------------


def slow_pay(log: list[float], delay: float = 0.05) -> BaseTool:
    lock = threading.Lock()

    def pay(amount: float) -> str:
        time.sleep(delay)
        with lock:
            log.append(amount)
        return f"paid {amount}"

    return StructuredTool.from_function(func=pay, name="pay", description="Pay an amount.")


def pay_agent(log: list[float], checkpointer: Any, *script: Any) -> Any:
    model = ScriptedChatModel([*script, *(["done"] * 4)])
    guard = Guard(Policy([ask("pay")]))
    return create_agent(
        model, [slow_pay(log)], middleware=[GuardMiddleware(guard)], checkpointer=checkpointer
    )


@pytest.mark.parametrize("mode", MODES)
def test_two_threads_resuming_one_approval_run_the_tool_once(mode: str) -> None:
    saver = InMemorySaver()
    for attempt in range(8):
        log: list[float] = []
        agent = pay_agent(log, saver, tool_call("pay", amount=900, id=f"c{attempt}"))
        cfg = {"configurable": {"thread_id": f"t-{mode}-{attempt}"}}
        out = agent.invoke(user("pay"), cfg)
        resume = answer(out, True)
        results: list[Any] = []
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def resume_once(
            agent: Any = agent,
            cfg: Any = cfg,
            resume: Any = resume,
            start: Any = start,
            results: list[Any] = results,
            errors: list[BaseException] = errors,
        ) -> None:
            start.wait()
            try:
                results.append(invoke(agent, resume, cfg, mode))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=resume_once) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert errors == []
        assert log == [900]  # once, whoever won
        for result in results:  # both saw the one result
            assert [m.text for m in tool_messages(result)] == ["paid 900.0"]


def test_two_tasks_resuming_one_approval_in_one_event_loop_run_the_tool_once() -> None:
    import asyncio

    async def main() -> None:
        saver = InMemorySaver()
        for attempt in range(8):
            log: list[float] = []
            agent = pay_agent(log, saver, tool_call("pay", amount=7, id=f"a{attempt}"))
            cfg = {"configurable": {"thread_id": f"t-loop-{attempt}"}}
            out = await agent.ainvoke(user("pay"), cfg)
            resume = answer(out, True)
            results = await asyncio.gather(agent.ainvoke(resume, cfg), agent.ainvoke(resume, cfg))
            assert log == [7]
            for result in results:
                assert [m.text for m in tool_messages(result)] == ["paid 7.0"]

    asyncio.run(main())


def test_a_reused_call_id_is_a_new_call() -> None:
    log: list[float] = []
    agent = pay_agent(
        log,
        InMemorySaver(),
        tool_call("pay", amount=5, id="call_0"),
        "paid 5",
        tool_call("pay", amount=900, id="call_0"),
    )
    cfg = {"configurable": {"thread_id": "t-reuse"}}
    out = agent.invoke(user("pay 5"), cfg)
    out = agent.invoke(answer(out, True), cfg)
    out = agent.invoke(user("now pay 900"), cfg)
    out = agent.invoke(answer(out, True), cfg)

    assert log == [5, 900]
    assert [m.text for m in tool_messages(out)] == ["paid 5.0", "paid 900.0"]


class FailingResults(MemoryStore):
    """A store whose writes of done-ledger results fail (after the tool ran)."""

    def put(self, key: str, value: Any) -> None:
        if key.startswith("done/") and isinstance(value, dict) and "claim" not in value:
            raise OSError("disk full")
        super().put(key, value)


@pytest.mark.parametrize("mode", MODES)
def test_a_store_failure_after_the_tool_ran_keeps_its_output_and_never_runs_it_again(
    mode: str,
) -> None:
    ran: Ran = []
    send = recording_tool("send_email", ran, "to", returns="sent")
    store = FailingResults()
    model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-1"), "done"])
    graph = tool_graph(
        model,
        [send],
        Guard(Policy([allow("send_email")]), store=store),
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "t-fail"}}

    out = invoke(graph, user("mail"), cfg, mode)

    assert [m.text for m in tool_messages(out)] == ["sent"]  # the output is not dropped
    assert ran == [("send_email", {"to": "a@acme.com"})]
    # the claim stays: a re-run of the step refuses the call instead of sending again
    (claimed,) = store.scan("done/t-fail/c-1/").values()
    assert "claim" in claimed


def test_a_tool_that_interrupts_itself_runs_again_on_resume() -> None:
    """A tool's own ``interrupt()`` releases its claim: the resume runs it to the end."""
    calls: list[str] = []

    @tool
    def confirm(what: str) -> str:
        """Ask the user, then do it."""
        calls.append(what)
        said = interrupt({"confirm": what})
        return f"{what}: {said}"

    model = ScriptedChatModel([tool_call("confirm", what="deploy"), "done"])
    graph = tool_graph(
        model, [confirm], Guard(Policy([allow("confirm")])), checkpointer=InMemorySaver()
    )
    cfg = {"configurable": {"thread_id": "t-own"}}
    graph.invoke(user("go"), cfg)
    from langgraph.types import Command

    out = graph.invoke(Command(resume="yes"), cfg)

    assert calls == ["deploy", "deploy"]
    assert [m.text for m in tool_messages(out)] == ["deploy: yes"]


def _script(body: str) -> str:
    return textwrap.dedent(
        f"""
        import sqlite3, sys, os
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from langgraph.checkpoint.sqlite import SqliteSaver
        from fakes import user
        from langgraph_apps import tool_graph
        from guardrails_plugin import Guard, Policy, allow
        from guardrails_plugin.store import SQLiteStore
        from guardrails_plugin.testing import ScriptedChatModel, tool_call
        from langchain_core.tools import StructuredTool
        """
    ) + textwrap.dedent(body)


def test_a_call_whose_process_died_mid_tool_is_refused_as_in_doubt(tmp_path: Path) -> None:
    crash = _script(
        f"""
        tmp = Path({str(tmp_path)!r})

        def send(to: str) -> str:
            with open(tmp / "sent.log", "a") as f:
                f.write(to + "\\n")
            os._exit(17)  # dies inside the tool: did the mail go? maybe

        conn = sqlite3.connect(tmp / "graph.db", check_same_thread=False)
        guard = Guard(Policy([allow("send_email")]), store=SQLiteStore(tmp / "guard.db"))
        model = ScriptedChatModel([tool_call("send_email", to="a@acme.com", id="c-1")])
        tool = StructuredTool.from_function(func=send, name="send_email", description="Send.")
        graph = tool_graph(model, [tool], guard, checkpointer=SqliteSaver(conn))
        graph.invoke(user("mail"), {{"configurable": {{"thread_id": "t-1"}}}}, durability="sync")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", crash], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 17, done.stderr

    from langgraph.checkpoint.sqlite import SqliteSaver

    ran: Ran = []
    send = recording_tool("send_email", ran, "to", returns="sent")
    conn = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
    try:
        guard = Guard(Policy([allow("send_email")]), store=SQLiteStore(tmp_path / "guard.db"))
        graph = tool_graph(
            ScriptedChatModel(["done"]), [send], guard, checkpointer=SqliteSaver(conn)
        )
        with pytest.raises(ToolCallDenied) as caught:
            graph.invoke(None, {"configurable": {"thread_id": "t-1"}})
        assert caught.value.decision.rule == "exactly-once"
        assert ran == []  # not sent a second time
    finally:
        conn.close()
    assert (tmp_path / "sent.log").read_text() == "a@acme.com\n"


def _resume_in_process(root: str, threads: int, barrier: Any, who: int) -> None:
    """A worker process: resume each prepared thread when the other worker does too."""
    sys.path.insert(0, str(Path(__file__).parent))
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(Path(root) / "graph.db", check_same_thread=False)
    try:
        for i in range(threads):
            graph, cfg = _pay_graph(Path(root), conn, i)
            barrier.wait(timeout=60)
            out = graph.invoke(answer(graph.get_state(cfg).interrupts, True), cfg)
            with open(Path(root) / f"seen-{who}.log", "a") as f:
                f.write(json.dumps([m.text for m in tool_messages(out)]) + "\n")
    finally:
        conn.close()
    del SqliteSaver


def _pay_graph(root: Path, conn: Any, i: int) -> tuple[Any, Any]:
    from langgraph.checkpoint.sqlite import SqliteSaver

    def pay(amount: float) -> str:
        time.sleep(0.05)
        with open(root / f"paid-{i}.log", "a") as f:
            f.write(f"{amount}\n")
        return f"paid {amount}"

    tool_ = StructuredTool.from_function(func=pay, name="pay", description="Pay.")
    guard = Guard(Policy([ask("pay")]), store=SQLiteStore(root / "guard.db"))
    model = ScriptedChatModel([tool_call("pay", amount=900, id=f"c-{i}"), "done"])
    agent = create_agent(
        model, [tool_], middleware=[GuardMiddleware(guard)], checkpointer=SqliteSaver(conn)
    )
    return agent, {"configurable": {"thread_id": f"t-{i}"}}


def test_two_processes_resuming_one_approval_run_the_tool_once(tmp_path: Path) -> None:
    threads = 6
    conn = sqlite3.connect(tmp_path / "graph.db", check_same_thread=False)
    try:
        for i in range(threads):
            graph, cfg = _pay_graph(tmp_path, conn, i)
            assert graph.invoke(user("pay"), cfg)["__interrupt__"]
    finally:
        conn.close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_resume_in_process, args=(str(tmp_path), threads, barrier, who))
        for who in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]

    for i in range(threads):
        assert (tmp_path / f"paid-{i}.log").read_text() == "900.0\n"  # once per approval
    for who in range(2):
        seen = (tmp_path / f"seen-{who}.log").read_text().splitlines()
        assert [json.loads(s) for s in seen] == [["paid 900.0"]] * threads


# -- a run is one invocation ------------------------------------------------------------------


def budget_and_flow_policy(*, thread_budget: bool = True) -> Policy:
    per_thread = [Budget.calls(5, tools="search", per="thread", id="thread-budget")]
    return Policy(
        [allow("search"), allow("fetch_url"), allow("send_email")],
        budgets=[
            Budget.calls(2, tools="search", per="run", id="run-budget"),
            *(per_thread if thread_budget else []),
        ],
        flows=[DataFlow(sources="fetch_url", sinks="send_email", effect="deny", id="no-leak")],
    )


def run_tools(ran: Ran) -> list[BaseTool]:
    return [
        recording_tool("search", ran, "query", returns="results"),
        recording_tool("fetch_url", ran, "url", returns="<p>page</p>"),
        recording_tool("send_email", ran, "to", returns="sent"),
    ]


@pytest.mark.parametrize("mode", MODES)
def test_invokes_without_a_checkpointer_share_no_run_budget_and_no_taint(mode: str) -> None:
    ran: Ran = []
    script: list[Any] = []
    for i in range(3):  # each invoke: two searches (the run budget), then its last word
        script += [tool_call("search", query=f"{i}a"), tool_call("search", query=f"{i}b"), "ok"]
    script += [tool_call("fetch_url", url="https://x.org"), "fetched"]
    script += [tool_call("send_email", to="a@acme.com"), "sent"]
    model = ScriptedChatModel(script)
    guard = Guard(budget_and_flow_policy(thread_budget=False))
    agent = create_agent(model, run_tools(ran), middleware=[GuardMiddleware(guard)])

    for _ in range(5):
        out = invoke(agent, user("go"), None, mode)
        assert all(m.status != "error" for m in tool_messages(out)), tool_messages(out)

    assert [name for name, _ in ran].count("search") == 6
    assert ran[-1] == ("send_email", {"to": "a@acme.com"})  # the earlier fetch is not this run's


@pytest.mark.parametrize("mode", MODES)
def test_on_a_thread_each_invoke_gets_a_fresh_run_budget_and_shares_the_thread_one(
    mode: str,
) -> None:
    ran: Ran = []
    script: list[Any] = []
    for i in range(3):
        script += [tool_call("search", query=f"{i}a"), tool_call("search", query=f"{i}b"), "ok"]
    model = ScriptedChatModel(script)
    guard = Guard(budget_and_flow_policy())
    graph = tool_graph(model, run_tools(ran), guard, checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": f"t-run-{mode}"}}

    denied = []
    for _ in range(3):
        out = invoke(graph, user("go"), cfg, mode)
        denied.append([m.text for m in tool_messages(out)[-2:] if m.status == "error"])

    # 2 + 2 searches fit both budgets; the third invoke's second search is the 6th: thread
    assert [name for name, _ in ran].count("search") == 5
    assert denied[:2] == [[], []]
    assert len(denied[2]) == 1
    assert "thread-budget" in denied[2][0]


def test_one_invoke_is_one_run_across_its_steps() -> None:
    ran: Ran = []
    model = ScriptedChatModel(
        [
            tool_call("search", query="a"),
            tool_call("search", query="b"),
            tool_call("search", query="c"),
            "ok",
        ]
    )
    agent = create_agent(
        model, run_tools(ran), middleware=[GuardMiddleware(Guard(budget_and_flow_policy()))]
    )
    out = agent.invoke(user("go"))
    messages = tool_messages(out)
    assert [m.status for m in messages] == ["success", "success", "error"]
    assert "run-budget" in messages[-1].text
    assert isinstance(messages[-1], ToolMessage)
