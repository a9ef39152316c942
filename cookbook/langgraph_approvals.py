"""Recipe: a person approves, edits or rejects the tool calls of a LangGraph agent.

    python cookbook/langgraph_approvals.py             # offline: a scripted model, scripted answers
    python cookbook/langgraph_approvals.py --console   # you answer each request at the terminal
    OPENAI_API_KEY=... python cookbook/langgraph_approvals.py   # a real OpenAI-compatible model
                                                       # (needs: pip install langchain-openai)

The app is a classic agent loop (``agent`` -> ``tools`` -> ``agent``) with a SQLite
checkpointer. The only changes: ``GuardedToolNode`` where the graph had ``ToolNode``, and a
``Guard`` whose state lives in a ``SQLiteStore`` next to the checkpoints. The policy lets
the agent search freely; every email needs a person's OK and may only go to example.com.

What it shows, step by step:

1. One turn with three parallel calls: the free ``search`` runs at once; each email waits
   for a person, one ``interrupt()`` each, as typed ``PendingApproval`` records.
2. Approve the first email; edit the second (the edit is checked against the policy again,
   and the tool runs with the edited arguments).
3. An edit that leaves the policy's scope (a gmail.com address) is denied: a person cannot
   approve a call out of policy either.
4. A restart (simulated in one process): while an approval waits, the app drops its graph,
   guard and connections; a fresh graph and guard built from the same two files find the
   request in the checkpoint and resume it there. The email is sent once.
5. ``approval_timeout``: an answer that comes after the deadline is denied.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from guardrails_plugin import (
    Approval,
    ApprovalRequest,
    ConsoleApprover,
    Decision,
    Effect,
    Guard,
    Policy,
    SQLiteStore,
    ToolCall,
    allow,
    ask,
)
from guardrails_plugin.langgraph import GuardedToolNode, PendingApproval, answer, approval_requests
from guardrails_plugin.scopes import Emails
from guardrails_plugin.testing import ScriptedChatModel, tool_call

THREAD: RunnableConfig = {"configurable": {"thread_id": "ops-42"}}
APPROVAL_TIMEOUT = 3600.0  # an hour to answer; later answers are denied

POLICY = Policy(
    [
        allow("search_status", id="search-freely"),
        ask("send_email", args={"to": Emails(domains=["example.com"])}, id="mail-needs-ok"),
    ]
)

# What the user asks, turn by turn, and what a scripted model answers (offline).
TURNS: list[tuple[str, list[Any]]] = [
    (
        "Check the status of the EU outage and tell ann@example.com and bob@example.com.",
        [
            [
                tool_call("search_status", query="EU outage", id="call-search"),
                tool_call("send_email", to="ann@example.com", body="EU is back up.", id="call-ann"),
                tool_call("send_email", to="bob@example.com", body="EU is back up.", id="call-bob"),
            ],
            "Searched the status page and emailed Ann and Bob.",
        ],
    ),
    (
        "Send Bob the post-mortem too.",
        [
            tool_call("send_email", to="bob@example.com", body="Post-mortem: ...", id="call-pm"),
            "The post-mortem could not be sent: the guard blocked the address.",
        ],
    ),
    (
        "Email carol@example.com that the incident is closed.",
        [
            tool_call("send_email", to="carol@example.com", body="Closed.", id="call-carol"),
            "Carol knows the incident is closed.",
        ],
    ),
    (
        "Email dan@example.com the summary.",
        [
            tool_call("send_email", to="dan@example.com", body="Summary: ...", id="call-dan"),
            "The approval for Dan's email expired; nothing was sent.",
        ],
    ),
]


class Clock:
    """The guard's clock, which this recipe can move forward to show an approval expiring."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


def make_tools(outbox: Path) -> list[BaseTool]:
    @tool
    def search_status(query: str) -> str:
        """Search the status page."""
        print(f"  ran search_status({query!r})")
        return f"status for {query!r}: all regions operational since 09:40"

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        with outbox.open("a") as f:  # the side effect: a line in the outbox file
            f.write(json.dumps({"to": to, "body": body}) + "\n")
        print(f"  ran send_email(to={to!r})")
        return f"sent to {to}"

    return [search_status, send_email]


def sent(outbox: Path) -> list[str]:
    if not outbox.exists():
        return []
    return sorted(json.loads(line)["to"] for line in outbox.read_text().splitlines())


def make_model(script: list[Any]) -> BaseChatModel:
    """A real OpenAI-compatible model when a key is set and langchain-openai is installed."""
    if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("langchain_openai"):
        from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]

        model: BaseChatModel = ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
        return model
    return ScriptedChatModel(script)


def build_graph(model: BaseChatModel, tools: list[BaseTool], guard: Guard, conn: Any) -> Any:
    """The app's own agent loop; ``GuardedToolNode`` is the only change."""
    bound = model.bind_tools(tools)
    system = SystemMessage("You are an ops assistant. Use the tools; one email per recipient.")

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke([system, *state["messages"]])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node(
        "tools",
        GuardedToolNode(tools, guard, agent="assistant", approval_timeout=APPROVAL_TIMEOUT),
    )
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=SqliteSaver(conn))


@contextmanager
def app(workdir: Path, model: BaseChatModel, clock: Clock) -> Iterator[Any]:
    """One run of the app's process: a graph and a guard over the files in ``workdir``."""
    conn = sqlite3.connect(workdir / "graph.db", check_same_thread=False)
    try:
        guard = Guard(POLICY, store=SQLiteStore(workdir / "guard.db"), clock=clock)
        yield build_graph(model, make_tools(workdir / "outbox.jsonl"), guard, conn)
    finally:
        conn.close()


# -- showing what waits ------------------------------------------------------------------------


def show(request: PendingApproval) -> None:
    left = (request.expires_at or 0) - (request.asked_at or 0)
    print(
        f"  waiting: {request.agent} -> {request.tool}({json.dumps(dict(request.args))})\n"
        f"    call {request.call_id}, rule {request.rule}: {request.reason}\n"
        f"    may answer: {', '.join(request.allowed)}; expires {left:.0f}s after asked"
    )


def show_results(graph: Any, since: int) -> None:
    """The tool results and the answer the thread got after message ``since``."""
    state = graph.get_state(THREAD)
    for message in state.values["messages"][since:]:
        # what ran is printed by the tools themselves; here: what the model was told instead
        if isinstance(message, ToolMessage) and message.status == "error":
            print(f"  {message.name} -> model: {message.text}")
    if not state.next:
        print(f"  agent: {state.values['messages'][-1].text}")


# -- who answers --------------------------------------------------------------------------------

Operator = Callable[[PendingApproval], Approval]


def scripted_operator() -> Operator:
    """The answers of a person, in order: whatever the model asked for, the story is the same."""
    plan: list[Callable[[PendingApproval], Approval]] = [
        lambda r: Approval.approve(approver="alice"),
        # reroute to the team inbox and sign it: inside the policy, so it runs as edited
        lambda r: Approval.edit(
            {"to": "support@example.com", "body": f"{r.args.get('body', '')}\n-- ops team"},
            approver="alice",
        ),
        # a careless edit: a private address, outside the policy's scope
        lambda r: Approval.edit({**r.args, "to": "bob.private@gmail.com"}, approver="alice"),
    ]
    answers = iter(plan)

    def answer_next(request: PendingApproval) -> Approval:
        show(request)
        return next(answers, plan[0])(request)

    return answer_next


def console_operator() -> Operator:
    """Ask at the terminal with the package's ``ConsoleApprover``."""
    console = ConsoleApprover()

    def ask_person(request: PendingApproval) -> Approval:
        call = ToolCall(
            request.tool,
            request.args,
            agent=request.agent,
            call_id=request.call_id,
            thread_id=request.thread_id,
        )
        asked = Decision(Effect.ASK, request.rule, request.reason, tool=request.tool)
        return console(ApprovalRequest(call, asked, allowed=request.allowed))

    return ask_person


def late(operator: Operator, clock: Clock, seconds: float) -> Operator:
    """The same person, answering ``seconds`` later (the guard's clock moves on)."""

    def answer_late(request: PendingApproval) -> Approval:
        approval = operator(request)
        clock.skew += seconds  # the guard checks the deadline when the answer arrives
        print(f"  (the answer arrives {seconds / 3600:g} hours after the question)")
        return approval

    return answer_late


def settle(graph: Any, operator: Operator, *, limit: int | None = None) -> None:
    """Answer the approvals the thread waits for, one at a time (at most ``limit``)."""
    while (pending := approval_requests(graph, THREAD)) and (limit is None or limit > 0):
        request = pending[0]  # parallel calls are asked one after another
        approval = operator(request)
        print(f"  answer: {approval.answer}{_args(approval)} (by {approval.approver or '?'})")
        graph.invoke(answer(graph, {request.call_id: approval}, THREAD), THREAD)
        limit = None if limit is None else limit - 1


def turn(graph: Any, text: str, operator: Operator, *, limit: int | None = None) -> None:
    """One user message, the approvals it needs, and what came of it."""
    print(f"\nuser: {text}")
    since = len(graph.get_state(THREAD).values.get("messages", []))
    graph.invoke({"messages": [{"role": "user", "content": text}]}, THREAD)
    settle(graph, operator, limit=limit)
    show_results(graph, since)


def _args(approval: Approval) -> str:
    return "" if approval.args is None else f" {json.dumps(dict(approval.args))}"


# -- the story ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Approvals in a LangGraph agent.")
    parser.add_argument("--console", action="store_true", help="answer at the terminal")
    options = parser.parse_args(argv)
    operator = console_operator() if options.console else scripted_operator()
    model = make_model([reply for _, replies in TURNS for reply in replies])
    clock = Clock()
    asks = [text for text, _ in TURNS]

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        outbox = workdir / "outbox.jsonl"

        print("== 1-2. parallel calls: the search runs at once, each email waits for a person")
        with app(workdir, model, clock) as graph:
            turn(graph, asks[0], operator)
            print(f"  outbox: {sent(outbox)}")

            print("\n== 3. an edit that leaves the policy's scope is denied")
            turn(graph, asks[1], operator)
            print(f"  outbox: {sent(outbox)}")

            print("\n== 4. a restart while an approval waits")
            turn(graph, asks[2], operator, limit=0)
            print(f"  the process stops here; outbox: {sent(outbox)}")

        with app(workdir, model, clock) as graph:  # a fresh graph and guard, the same files
            waiting = approval_requests(graph, THREAD)  # read from the checkpoint
            print(f"  restarted: {[r.call_id for r in waiting]} still waiting for a person")
            since = len(graph.get_state(THREAD).values["messages"])
            settle(graph, operator)
            show_results(graph, since)
            print(f"  outbox: {sent(outbox)}")

            print(f"\n== 5. approval_timeout={APPROVAL_TIMEOUT:g}s: a late answer is denied")
            turn(graph, asks[3], late(operator, clock, 2 * APPROVAL_TIMEOUT))
            print(f"  outbox: {sent(outbox)}")


if __name__ == "__main__":
    main()
