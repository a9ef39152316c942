"""Take the README's screenshot of the operator dashboard: docs/dashboard.png.

A real scenario, offline: a guarded LangGraph agent (scripted model) waiting for an approval,
decisions from several agents, a cascade loop that tripped the breaker (which paused its
thread), a run-time grant, a quarantined agent. Served on 127.0.0.1, photographed in headless
Chromium (Debian's /usr/bin/chromium, or CHROMIUM=/path)::

    python scripts/dashboard_screenshot.py [--out docs/dashboard.png] [--width 1400 --height 900]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from guardrails_plugin import AgentMessage, Guard, Policy, SQLiteStore, ToolCall, allow, ask, deny
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.dashboard import Dashboard, serving
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.policy import Budget
from guardrails_plugin.scopes import Emails, Number, Paths, Urls
from guardrails_plugin.testing import ScriptedChatModel, tool_call

ROOT = Path(__file__).resolve().parent.parent
THREADS = ["ticket-36", "ticket-37", "ticket-38"]
CHROMIUM_ARGS = [
    "--disable-dev-shm-usage",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

POLICY = Policy(
    [
        allow("search"),
        allow("fetch_url", args={"url": Urls(["docs.acme.com", "*.wikipedia.org"])}),
        allow("read_file", args={"path": Paths(["/srv/data"])}),
        allow("refund", agents="billing", args={"amount": Number(gt=0, le=100)}),
        ask("refund", agents="billing", args={"amount": Number(gt=100, le=1000)}, id="big-refund"),
        ask("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail-needs-ok"),
        deny("delete_*", id="no-deletes"),
        deny("refund", args={"amount": Number(gt=50)}, shadow=True, id="refunds-over-50"),
        allow("handoff"),
    ],
    budgets=[Budget.calls(12, per="thread", id="calls-per-thread")],
)


class Replayed:
    """A clock that starts ``behind`` seconds in the past and catches up with real time as
    ``advance`` is called: a quarter of an hour of traffic, made in a second."""

    def __init__(self, behind: float) -> None:
        self.behind = behind

    def __call__(self) -> float:
        return time.time() - self.behind

    def advance(self, seconds: float) -> None:
        self.behind = max(0.0, self.behind - seconds)


def tool(name: str, *params: str) -> Any:
    def body(**args: Any) -> str:
        return f"{name} ok"

    from pydantic import create_model

    fields: dict[str, Any] = dict.fromkeys(params, (Any, ...))
    return StructuredTool.from_function(
        func=body,
        name=name,
        description=f"The {name} tool.",
        args_schema=create_model(f"{name}_args", **fields),
    )


def support_graph(guard: Guard) -> Any:
    """The classic agent loop with GuardedToolNode, as the app ``support`` has it."""
    model = ScriptedChatModel(
        [
            tool_call("search", q="order 8812 delivery status"),
            tool_call(
                "send_email",
                to="ops@acme.com",
                subject="Order 8812 stuck in customs",
                body="Customer asks for a refund of $240; carrier says 5 more days.",
            ),
            "I have emailed ops about order 8812.",
        ]
    )
    tools = [tool("search", "q"), tool("send_email", "to", "subject", "body")]
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", GuardedToolNode(tools, guard, agent="support"))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def populate(guard: Guard, graph: Any, dashboard: Dashboard, clock: Replayed) -> None:
    """Decisions over a quarter of an hour, a pending approval, a trip that paused a
    thread, a grant, a quarantine."""
    rng = random.Random(7)
    background = [
        ("search", {"q": "shipping delays"}, "researcher"),
        ("read_file", {"path": "/srv/data/orders.csv"}, "analyst"),
        ("refund", {"order": "8801", "amount": 20}, "billing"),
        ("refund", {"order": "8802", "amount": 80}, "billing"),
        ("refund", {"order": "8803", "amount": 400}, "billing"),
        ("send_email", {"to": "ops@acme.com", "subject": "daily report"}, "support"),
        ("fetch_url", {"url": "https://docs.acme.com/returns"}, "researcher"),
        ("delete_file", {"path": "/srv/data/tmp.csv"}, "analyst"),
    ]
    for _ in range(45):
        tool_name, args, agent = rng.choice(background)
        clock.advance(rng.uniform(5, 25))
        guard.check(ToolCall(tool_name, args, agent=agent, thread_id=rng.choice(THREADS)))
    for sender, recipient in [("researcher", "analyst"), ("analyst", "billing")] * 2:
        clock.advance(rng.uniform(5, 20))
        guard.check(AgentMessage(sender, recipient, "over to you", thread_id="ticket-39"))
    checks = [
        ToolCall(
            "search", {"q": "quarterly revenue 2024"}, agent="researcher", thread_id="ticket-39"
        ),
        ToolCall(
            "fetch_url",
            {"url": "https://en.wikipedia.org/wiki/Llama"},
            agent="researcher",
            thread_id="ticket-39",
        ),
        ToolCall("read_file", {"path": "/srv/data/q3.csv"}, agent="analyst", thread_id="ticket-39"),
        ToolCall(
            "read_file",
            {"path": "/srv/data/../../etc/shadow"},
            agent="analyst",
            thread_id="ticket-39",
        ),
        ToolCall("refund", {"order": "8790", "amount": 35}, agent="billing", thread_id="ticket-40"),
        ToolCall(
            "fetch_url",
            {"url": "https://pastebin.example/raw/x1"},
            agent="scraper",
            thread_id="ticket-41",
        ),
        ToolCall("delete_records", {"table": "customers"}, agent="scraper", thread_id="ticket-41"),
    ]
    for call in checks:
        clock.advance(rng.uniform(5, 20))
        guard.check(call)
    guard.grant("researcher", "fetch_url", args={"url": Urls(["arxiv.org"])}, ttl=3600)
    dashboard.operator.quarantine(
        "scraper", reason="spreading an instruction found on a web page", by="alice"
    )
    # A planner and a coder handing the same plan back and forth: the cycle detector trips
    # and the breaker pauses their thread for a person.
    plan = (
        "Plan: refactor the billing module, then run the full test suite, then ask the coder "
        "to review the refactor of the billing module again before merging."
    )
    for i in range(12):
        sender, recipient = ("planner", "coder") if i % 2 == 0 else ("coder", "planner")
        clock.advance(rng.uniform(1, 4))
        decision = guard.check(
            AgentMessage(sender, recipient, plan, thread_id="ticket-7", id=f"m{i}")
        )
        if not decision.allowed:
            break
    # The support agent's run: a search, then an email that waits for a person.
    clock.advance(clock.behind)
    graph.invoke(
        {"messages": [{"role": "user", "content": "Where is order 8812?"}]},
        {"configurable": {"thread_id": "ticket-42"}},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)

    out = os.path.abspath(args.out)
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        clock = Replayed(15 * 60)
        guard = Guard(POLICY, store=SQLiteStore("guard.db"), cascade=CascadeMonitor(), clock=clock)
        graph = support_graph(guard)
        dashboard = Dashboard(guard, graph=graph, by="alice", clock=clock)
        populate(guard, graph, dashboard, clock)
        photograph(dashboard, out, args.width, args.height)
    print(f"wrote {out}")
    return 0


def photograph(dashboard: Dashboard, out: str, width: int, height: int) -> None:
    from playwright.sync_api import sync_playwright

    with serving(dashboard) as url, sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#pending .card.approval")
            page.wait_for_selector("#decisions tr.d")
            page.wait_for_selector("#conn[data-state='live']")
            page.wait_for_selector("#plot-timeline-body svg")
            page.wait_for_selector("#plot-messages-body circle.node.culprit")
            page.wait_for_timeout(300)
            page.screenshot(path=out)
            page.goto("about:blank")  # leave before the server stops
        finally:
            browser.close()


if __name__ == "__main__":
    sys.exit(main())
