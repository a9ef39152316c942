"""Recipe: stop a runaway agent team from another process: pause, resume, kill.

    python cookbook/langgraph_kill_switch.py           # offline: a scripted model plays the LLM
    OPENAI_API_KEY=... python cookbook/langgraph_kill_switch.py   # a real OpenAI-compatible model
                                                      # (needs: pip install langchain-openai)

A supervisor routes a job between two ``create_agent`` agents, a researcher and a writer,
by handing off with ``Command(goto=...)``. Each agent node is wrapped with ``guard_node``
(its hand-offs are checked as calls of the tool ``handoff``) and each agent has a
``GuardMiddleware`` (its model and tool calls are checked). The guard keeps its state in a
``SQLiteStore``, so an operator in another process can flip the kill switch with nothing
but ``Controls(SQLiteStore(path))``.

What it shows:

1. A hand-off the policy does not allow (to a ``deployer``) raises ``ToolCallDenied``; the
   deployer never runs.
2. The supervisor has a bug: it never decides the job is done, so the team loops. A monitor
   (a guard listener) notices the third round and pages the operator, whose console runs in
   another process: ``pause(agent="researcher")``. The run stops at the researcher's next
   step with a ``paused`` interrupt; the writer's work so far is kept in the checkpoint.
3. The operator lifts the pause; the run resumes where it stopped.
   Two rounds later the operator kills the thread: the run ends with ``RunKilled``.
4. The thread stays killed (a resume raises ``RunKilled`` again) until the flag is lifted.

The operator's process acts when the monitor asks and answers when done, so the recipe is
deterministic: no sleeps, no races.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

from guardrails_plugin import (
    Decision,
    Event,
    Guard,
    Policy,
    RunKilled,
    SQLiteStore,
    ToolCall,
    ToolCallDenied,
    allow,
)
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import HANDOFF_TOOL, answer, guard_node
from guardrails_plugin.scopes import OneOf
from guardrails_plugin.testing import ScriptedChatModel, tool_call

POLICY = Policy(
    [
        allow(
            HANDOFF_TOOL,
            agents="supervisor",
            args={"to": OneOf(["researcher", "writer"])},
            id="team-routes",
        ),
        allow("search", agents="researcher", id="research"),
    ]
)

# The operator's console: another process that knows nothing but the store's path.
# It reads commands ("pause agent researcher", "kill thread report-1", ...) on stdin.
OPERATOR = """
import sys
from guardrails_plugin import Controls, SQLiteStore

controls = Controls(SQLiteStore(sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    verb, level, target = line.split()
    if verb == "resume":
        lifted = controls.resume(**{level: target})
        print(f"{level} {target!r} {'resumed' if lifted else 'had no flag'}", flush=True)
    else:
        flag = getattr(controls, verb)(**{level: target}, by="oncall", reason="runaway loop")
        print(flag.describe(), flush=True)
"""


class OperatorConsole:
    """Runs the operator's commands in their own process and waits for each to be done."""

    def __init__(self, store_path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", OPERATOR, str(store_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._reply() == "ready"

    def run(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        print(f"  operator (pid {self.process.pid})$ {command}\n    {self._reply()}")

    def _reply(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the operator process exited ({self.process.wait()})")
        return line.strip()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def monitor(plan: dict[int, str], page: Callable[[str], None]) -> Callable[[Event, Decision], None]:
    """A guard listener: counts the supervisor's hand-offs to the researcher and pages the
    operator with ``plan[n]`` at the n-th one."""
    rounds = 0

    def listen(event: Event, decision: Decision) -> None:
        nonlocal rounds
        if not (isinstance(event, ToolCall) and event.tool == HANDOFF_TOOL and decision.allowed):
            return
        print(f"  {event.agent} -> {event.args['to']}")
        if event.args["to"] == "researcher":
            rounds += 1
            if rounds in plan:
                print(f"  monitor: round {rounds} of the same loop; paging the operator")
                page(plan[rounds])

    return listen


def supervisor(state: MessagesState) -> Command[Any]:
    """Routes the job. The bug: it never notices that the draft is done."""
    request = state["messages"][0].text
    if "ship" in request.lower():
        return Command(goto="deployer")
    last = state["messages"][-1]
    goto = "writer" if getattr(last, "name", None) == "researcher" else "researcher"
    return Command(goto=goto)


def deployer(state: MessagesState) -> dict[str, Any]:
    print("  deployer: shipping to production!")  # never printed: the hand-off is denied
    return {"messages": [AIMessage("shipped")]}


@tool
def search(query: str) -> str:
    """Search the web."""
    return f"3 results for {query!r}"


def make_model() -> BaseChatModel:
    """A real OpenAI-compatible model when a key is set and langchain-openai is installed."""
    if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("langchain_openai"):
        from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]

        model: BaseChatModel = ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
        return model
    script: list[Any] = []
    for n in range(1, 50):  # researcher: a search, then notes; writer: a draft
        script += [tool_call("search", query=f"competitor pricing, pass {n}"), f"notes {n}"]
        script += [f"draft v{n}"]
    return ScriptedChatModel(script)


def build_team(guard: Guard, model: BaseChatModel, checkpointer: Any) -> Any:
    def member(name: str, tools: list[Any]) -> Any:
        agent = create_agent(model, tools=tools, middleware=[GuardMiddleware(guard)], name=name)
        return guard_node(agent, guard)  # identity: the node name

    builder = StateGraph(MessagesState)
    builder.add_node("supervisor", guard_node(supervisor, guard))
    builder.add_node("researcher", member("researcher", [search]))
    builder.add_node("writer", member("writer", []))
    builder.add_node("deployer", deployer)
    builder.add_edge(START, "supervisor")
    builder.add_edge("researcher", "supervisor")
    builder.add_edge("writer", "supervisor")
    builder.add_edge("deployer", END)
    return builder.compile(checkpointer=checkpointer)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        store_path = workdir / "guard.db"
        console = OperatorConsole(store_path)
        conn = sqlite3.connect(workdir / "graph.db", check_same_thread=False)
        try:
            plan = {3: "pause agent researcher", 5: "kill thread report-1"}
            guard = Guard(
                POLICY, store=SQLiteStore(store_path), listeners=[monitor(plan, console.run)]
            )
            team = build_team(guard, make_model(), SqliteSaver(conn))

            print("== 1. a hand-off the policy does not allow")
            ship = {"configurable": {"thread_id": "ship-1"}}
            try:
                team.invoke({"messages": [{"role": "user", "content": "Ship the draft."}]}, ship)
            except ToolCallDenied as exc:
                print(f"  ToolCallDenied: {exc}")

            print("\n== 2. a runaway loop; the operator pauses the researcher")
            job = {"configurable": {"thread_id": "report-1"}, "recursion_limit": 200}
            request = {"messages": [{"role": "user", "content": "Write a pricing report."}]}
            out = team.invoke(request, job)
            for stop in out.get("__interrupt__", ()):
                print(f"  interrupted: {stop.value['type']}: {stop.value['reason']}")
            state = team.get_state(job)
            print(f"  waiting at {state.next}; last message: {state.values['messages'][-1].text!r}")

            print("\n== 3. the operator lifts the pause; the run goes on from there")
            console.run("resume agent researcher")
            try:
                team.invoke(answer(out, True), job)  # answer() resumes pause interrupts too
            except RunKilled as exc:
                print(f"  RunKilled: {exc}")

            print("\n== 4. the thread stays killed until an operator lifts the flag")
            last = team.get_state(job).values["messages"][-1]
            print(f"  the checkpoint keeps the work so far; last message: {last.text!r}")
            try:
                team.invoke(None, job)
            except RunKilled as exc:
                print(f"  resuming it: RunKilled again ({exc.decision.rule})")
        finally:
            conn.close()
            console.close()


if __name__ == "__main__":
    main()
