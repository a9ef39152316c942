"""The operator dashboard in a real headless Chromium: an operator sees the approval a real
graph waits for, clicks Approve, and the graph resumes (the tool runs, the thread finishes,
the approval leaves the page, the decision shows up in the live stream); Pause and Kill set
the flags the guards read.

Driven by Playwright for Python with Debian's Chromium (/usr/bin/chromium; never
``playwright install``). Skipped when either is missing, unless GUARDRAILS_REQUIRE_BROWSER=1
(CI), which makes a missing browser a failure.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import Ran, recording_tool, tool_call, tool_messages, user
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_apps import tool_graph

from guardrails_plugin import Controls, Guard, Policy, ToolCall, allow, ask
from guardrails_plugin.controls import State
from guardrails_plugin.dashboard import Dashboard, serving
from guardrails_plugin.scopes import Emails
from guardrails_plugin.testing import ScriptedChatModel

REQUIRE_ENV = "GUARDRAILS_REQUIRE_BROWSER"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1: failing instead of skipping)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:
    _unavailable("Playwright for Python is not installed")
if not Path(CHROMIUM).exists():
    _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")

THREAD = "t-1"
CONFIG = {"configurable": {"thread_id": THREAD}}
INJECTED = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Waiting:
    """A guarded agent loop (agent ``support``) paused at an approval for ``send_email``."""

    def __init__(self, checkpointer: Any = None) -> None:
        self.ran: Ran = []
        policy = Policy(
            [
                allow("search"),
                ask("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail-needs-ok"),
            ]
        )
        self.guard = Guard(policy)
        model = ScriptedChatModel(
            [
                tool_call("send_email", to="a@acme.com", body=INJECTED, id="call-1"),
                "sent it",
            ]
        )
        tools = [recording_tool("send_email", self.ran, "to", "body", returns="mail sent")]
        self.graph = tool_graph(
            model, tools, self.guard, checkpointer=checkpointer or InMemorySaver(), agent="support"
        )
        self.dashboard = Dashboard(self.guard, graph=self.graph, poll=0.1)
        self.guard.check(ToolCall("search", {"q": "order 8812"}, agent="support", thread_id=THREAD))
        out = self.graph.invoke(user("mail a@acme.com"), CONFIG)
        assert out["__interrupt__"]


@pytest.fixture
def waiting() -> Waiting:
    return Waiting()


@pytest.fixture
def problems() -> list[str]:
    """Script errors, failed loads, CSP violations and dialogs the page met."""
    return []


@pytest.fixture
def page(browser: Browser, problems: list[str]) -> Iterator[Page]:
    """A fresh page; at the end it may have met no problem. Tests leave it (``about:blank``)
    before their server stops, so the live stream is not cut under it."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: problems.append(f"dialog: {d.message}"))
    yield page
    context.close()
    assert problems == [], problems


@contextlib.contextmanager
def opened(page: Page, dashboard: Dashboard, path: str | None = "") -> Iterator[str]:
    """Serve ``dashboard`` on a free 127.0.0.1 port (uvicorn, background thread) and open
    it in ``page``; leave the page before the server stops."""
    with serving(dashboard) as url:
        if path is not None:
            page.goto(url + path)
        try:
            yield url
        finally:
            page.goto("about:blank")


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_approve_on_the_page_resumes_the_waiting_graph(waiting: Waiting, page: Page) -> None:
    with opened(page, waiting.dashboard):
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        card = page.locator("#pending .card.approval")
        expect(card).to_have_count(1)
        expect(card.locator(".agent")).to_have_text("support")
        expect(card.locator(".tool")).to_have_text("send_email")
        expect(card.locator("pre.args")).to_contain_text('"to": "a@acme.com"')
        # Injected markup in the arguments is shown as text, never run.
        expect(card.locator("pre.args")).to_contain_text(INJECTED.replace('"', '\\"'))
        assert page.locator("#pending img, #decisions img").count() == 0
        assert page.evaluate("window.pwned") is None

        card.get_by_role("button", name="Approve").click()

        expect(card).to_have_count(0)  # answered: the approval leaves the page
        assert waiting.ran == [("send_email", {"to": "a@acme.com", "body": INJECTED})]
        final = waiting.graph.get_state(CONFIG).values["messages"]
        assert tool_messages({"messages": final})[-1].text == "mail sent"
        assert final[-1].content == "sent it"
        approved = page.locator("#decisions tr.d", has_text="by dashboard")
        expect(approved.first).to_contain_text("send_email")
        expect(approved.first.locator(".pill")).to_have_text("allow")
        expect(page.locator("#activity")).to_contain_text("finished")
        expect(page.locator("#pending .empty")).to_contain_text("No approval waiting")


def test_pause_and_kill_on_the_page_set_the_flags(waiting: Waiting, page: Page) -> None:
    controls = Controls(waiting.guard.store)
    with opened(page, waiting.dashboard):
        row = page.locator(f"#threads .row[data-thread='{THREAD}']")
        row.get_by_role("button", name="Pause").click()

        flags = eventually(controls.flags)
        assert [(f.level, f.target, f.state, f.by) for f in flags] == [
            ("thread", THREAD, State.PAUSED, "dashboard")
        ]
        expect(page.locator("#flags .card")).to_contain_text(f"thread {THREAD}")
        expect(row.locator(".badge")).to_contain_text(["paused"])

        agent = page.locator("#agents .agent-block[data-agent='support']")
        kill = agent.get_by_role("button", name="Kill")
        kill.click()  # the first click only arms the button
        expect(agent.get_by_role("button", name="Confirm")).to_be_visible()
        assert len(controls.flags()) == 1
        agent.get_by_role("button", name="Confirm").click()
        assert eventually(lambda: any(f.state is State.KILLED for f in controls.flags()))

        page.locator("#flags .card", has_text=f"thread {THREAD}").get_by_role(
            "button", name="Lift"
        ).click()
        assert eventually(lambda: [f.level for f in controls.flags()] == ["agent"])


def test_a_token_url_opens_the_page_and_keeps_the_token_out_of_it(
    page: Page, problems: list[str]
) -> None:
    from guardrails_plugin import MemoryStore

    dashboard = Dashboard(MemoryStore(), token="browser-token-123", poll=0.1)
    with opened(page, dashboard, None) as url:
        denied = page.goto(url)
        assert denied is not None
        assert denied.status == 401
        # The browser logs the 401 of the page itself (worded as each Chromium words it).
        assert [p for p in problems if "401" not in p] == [], problems
        problems.clear()
        page.goto(url + "?token=browser-token-123")
        assert page.url == url  # the token moved into an HttpOnly cookie
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        expect(page.locator("#answering-off")).to_contain_text("Answering is off")
        assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it


@contextlib.contextmanager
def busy(guard: Guard, agent: str, thread: str, every: float = 0.05) -> Iterator[None]:
    """``agent`` makes a decision every ``every`` seconds on ``thread`` (a busy agent, whose
    rows on the page change with each poll) until the block ends."""
    stop = threading.Event()

    def work() -> None:
        while not stop.wait(every):
            guard.check(ToolCall("search", {"q": "more"}, agent=agent, thread_id=thread))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(5)


def test_a_busy_agent_can_be_killed_from_its_row(waiting: Waiting, page: Page) -> None:
    """Its row is redrawn with every decision it makes; the two clicks of Kill (arm, then
    confirm) must still reach the store."""
    controls = Controls(waiting.guard.store)
    with opened(page, waiting.dashboard), busy(waiting.guard, "support", "t-busy"):
        agent = page.locator("#agents .agent-block[data-agent='support']")
        expect(agent).to_contain_text("support")
        agent.get_by_role("button", name="Kill").click()
        time.sleep(0.5)  # several redraws of the row
        # A person's time, not Playwright's default 30 s; a loaded 2-core machine needs
        # more than 2 s to catch the row between two redraws. The armed state must
        # survive the redraws for the button to be named Confirm at all.
        agent.get_by_role("button", name="Confirm").click(timeout=10_000)
        assert eventually(lambda: [(f.level, f.state) for f in controls.flags()]) == [
            ("agent", State.KILLED)
        ]


def test_two_dashboards_on_one_host_keep_their_own_logins(page: Page) -> None:
    """Cookies are shared by every port of a host: logging in to a second dashboard must not
    log the operator out of the first."""
    from guardrails_plugin import MemoryStore

    first = Dashboard(MemoryStore(), token="first-token-123", poll=0.1)
    second = Dashboard(MemoryStore(), token="second-token-456", poll=0.1)
    with opened(page, first, "?token=first-token-123") as one, serving(second) as two:
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        other = page.context.new_page()
        other.goto(two + "?token=second-token-456")
        expect(other.locator("#conn")).to_have_attribute("data-state", "live")
        other.goto("about:blank")
        other.close()
        response = page.reload()
        assert response is not None
        assert response.status == 200, "the first dashboard's login was overwritten"
        expect(page.locator("#conn")).to_have_attribute("data-state", "live")
        assert page.url == one


class FlakySaver(InMemorySaver):
    """An in-memory checkpointer whose first read by a dashboard resume fails, as a
    checkpoint database that is briefly unavailable."""

    failed = False

    def get_tuple(self, config: Any) -> Any:
        if not self.failed and threading.current_thread().name.startswith("guardrails-dashboard_"):
            self.failed = True
            raise OSError("checkpoint database unavailable")
        return super().get_tuple(config)


def test_after_a_failed_resume_the_operator_can_answer_again(page: Page) -> None:
    waiting = Waiting(checkpointer=FlakySaver())
    with opened(page, waiting.dashboard):
        card = page.locator("#pending .card.approval")
        approve = card.get_by_role("button", name="Approve")
        approve.click()
        expect(card.locator(".card-status")).to_contain_text("checkpoint database unavailable")
        expect(page.locator("#toasts")).to_contain_text("checkpoint database unavailable")
        assert waiting.ran == []
        expect(approve).to_be_enabled()
        approve.click()
        expect(card).to_have_count(0)
        assert waiting.ran == [("send_email", {"to": "a@acme.com", "body": INJECTED})]


def test_an_edit_being_typed_survives_a_reconnect(waiting: Waiting, page: Page) -> None:
    with opened(page, waiting.dashboard):
        card = page.locator("#pending .card.approval")
        card.get_by_role("button", name="Edit").click()
        editor = card.locator("textarea.editor")
        editor.fill('{"to": "b@acme.com", "body": "half typed')
        for live_page in list(waiting.dashboard.live.pages):
            live_page.drop()  # as when a page falls behind: its stream ends, it reconnects
        expect(page.locator("#conn")).not_to_have_attribute("data-state", "live")
        expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=5000)
        expect(editor).to_have_value('{"to": "b@acme.com", "body": "half typed')


def test_the_live_plots_draw_the_feeds_numbers(page: Page) -> None:
    """Decisions over time (one dot per bucket and series), budget bars (one per thread),
    the message graph (one node per agent, the cascade trip's marked); a new decision
    reaches the plots live."""
    from guardrails_plugin import AgentMessage, deny
    from guardrails_plugin.cascade import CascadeMonitor
    from guardrails_plugin.policy import Budget

    now = [1_700_000_000.0]
    policy = Policy(
        [allow("read"), ask("mail"), allow("write"), deny("write", shadow=True)],
        budgets=[Budget.calls(4, per="thread", id="calls")],
    )
    guard = Guard(policy, cascade=CascadeMonitor(), clock=lambda: now[0])
    dashboard = Dashboard(guard, poll=0.1, clock=lambda: now[0])
    for i, tool in enumerate(["read", "mail", "write", "delete", "read", "write"]):
        now[0] += 30
        guard.check(ToolCall(tool, {}, agent="coder", thread_id=f"t-{i % 2}"))
    plan = "Plan: refactor the billing module, run the suite, then ask the coder to review it."
    for i in range(12):
        now[0] += 1
        pair = ("planner", "coder") if i % 2 == 0 else ("coder", "planner")
        if not guard.check(AgentMessage(*pair, plan, thread_id="t-7", id=f"m{i}")).allowed:
            break
    state = dashboard.state(dashboard.feed.tail(300))["plots"]
    points = len(state["timeline"]["points"])
    assert points > 1
    with opened(page, dashboard):
        svg = page.locator("#plot-timeline-body svg")
        expect(svg).to_have_attribute("data-points", str(points))
        for series in ("allow", "deny", "ask", "would_deny"):
            expect(svg.locator(f"g.dots[data-series='{series}'] circle")).to_have_count(points)
        expect(svg.locator("text[data-series='would_deny']")).to_have_attribute("data-total", "2")
        bars = page.locator("#plot-budgets-body rect.bar")
        expect(bars).to_have_count(2)  # t-0 and t-1; t-7 has messages only
        expect(page.locator("#plot-budgets-body rect.bar[data-thread='t-0']")).to_have_attribute(
            "data-used", "3"
        )
        nodes = page.locator("#plot-messages-body circle.node")
        expect(nodes).to_have_count(2)
        expect(page.locator("#plot-messages-body circle.node.culprit")).to_have_count(1)
        expect(page.locator("#plot-messages-body path.edge.alarm")).to_have_count(2)

        now[0] += 30
        guard.check(AgentMessage(INJECTED, "planner", INJECTED, thread_id=INJECTED))
        expect(nodes).to_have_count(3)
        expect(page.locator("#plot-messages-body path.edge")).to_have_count(3)
        expect(page.locator("#plot-messages-body path.edge.alarm")).to_have_count(2)
        # an agent's name is drawn as text, never as markup
        expect(page.locator("#plot-messages-body circle.node title")).to_contain_text(
            [INJECTED + ": 1 messages"]
        )
        assert page.locator("#panel-plots img, #panel-plots script").count() == 0
        assert page.evaluate("window.pwned") is None
    dashboard.close()
