"""The operator dashboard's API: what it shows from the store, who may use it, and that
answering an approval on it resumes the real graph that waits (the tool runs after an
approve, with the edited arguments after an edit, never after a reject).

Graphs are real (``StateGraph`` + ``GuardedToolNode`` + ``InMemorySaver``), models scripted;
the HTTP side is Starlette's ``TestClient`` and, for the live stream, a real uvicorn server.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import importlib
import json
import logging
import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes import Ran, recording_tool, tool_call, tool_messages, user
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_apps import tool_graph
from starlette.testclient import TestClient

from guardrails_plugin import (
    AgentMessage,
    Controls,
    Guard,
    MemoryStore,
    Policy,
    SQLiteStore,
    Store,
    StoreError,
    ToolCall,
    allow,
    ask,
    deny,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.cascade._breaker import TRIP_PREFIX
from guardrails_plugin.cli import main as cli
from guardrails_plugin.controls import State
from guardrails_plugin.dashboard import Dashboard, Job, serve, serving
from guardrails_plugin.dashboard._cli import load_graph
from guardrails_plugin.dashboard._feed import NoFeed
from guardrails_plugin.dashboard._live import Live
from guardrails_plugin.dashboard._state import PENDING_PREFIX
from guardrails_plugin.langgraph import approval_requests
from guardrails_plugin.langgraph._pending import PENDING_PREFIX as GATE_PENDING_PREFIX
from guardrails_plugin.scopes import Emails, Urls
from guardrails_plugin.testing import ScriptedChatModel

BASE = "http://127.0.0.1:8765"
CSRF = {"X-Guardrails": "1"}
THREAD = "t-1"
CONFIG = {"configurable": {"thread_id": THREAD}}
XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def email_policy() -> Policy:
    return Policy(
        [
            allow("search"),
            ask("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail-needs-ok"),
            allow("handoff"),
        ]
    )


class App:
    """A guarded agent loop paused at an approval for ``send_email``, and its dashboard."""

    def __init__(
        self,
        *,
        store: Store | None = None,
        body: str = "hello",
        checkpointer: Any = None,
        **options: Any,
    ):
        self.ran: Ran = []
        self.guard = Guard(email_policy(), store=store or MemoryStore())
        model = ScriptedChatModel(
            [tool_call("send_email", to="a@acme.com", body=body, id="call-1"), "sent it"]
        )
        tools = [
            recording_tool("search", self.ran, "q"),
            recording_tool("send_email", self.ran, "to", "body", returns="mail sent"),
        ]
        saver = checkpointer or InMemorySaver()
        self.graph = tool_graph(model, tools, self.guard, checkpointer=saver)
        self.out = self.graph.invoke(user("mail a@acme.com"), CONFIG)
        self.dashboard = Dashboard(self.guard, graph=self.graph, **options)
        self.client = TestClient(self.dashboard.app, base_url=BASE)

    def state(self) -> dict[str, Any]:
        response = self.client.get("/api/state")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def answer(self, **body: Any) -> dict[str, Any]:
        response = self.client.post(
            "/api/answer", json={"thread": THREAD, "call": "call-1", **body}, headers=CSRF
        )
        assert response.status_code == 202, response.text
        return ended(self.dashboard, response.json()["job"]["id"]).to_doc()

    def final_messages(self) -> list[Any]:
        return list(self.graph.get_state(CONFIG).values["messages"])


def ended(dashboard: Dashboard, job_id: str) -> Job:
    """The dashboard's resume of a graph, once it has ended."""
    job = dashboard.operator.job(job_id)
    assert job is not None, job_id
    assert job.wait(10), "the resume did not end within 10 s"
    return job


@pytest.fixture
def app() -> Iterator[App]:
    a = App()
    yield a
    a.dashboard.close()


# -- what the page shows ---------------------------------------------------------------------


def test_state_lists_what_waits_with_agent_tool_args_and_rule(app: App) -> None:
    body = app.state()
    (pending,) = body["state"]["pending"]
    assert pending["thread_id"] == THREAD
    assert pending["call_id"] == "call-1"
    assert (pending["agent"], pending["tool"], pending["rule"]) == (
        "agent",
        "send_email",
        "mail-needs-ok",
    )
    assert pending["args"] == {"to": "a@acme.com", "body": "hello"}
    assert body["info"]["answering"] is True
    assert body["state"]["threads"] == [
        {"id": THREAD, "state": None, "pending": 1, "paused_steps": 0, "decisions": 0}
    ]


def test_state_shows_flags_grants_trips_and_the_agents_they_name() -> None:
    guard = Guard(email_policy(), cascade=CascadeMonitor())
    dashboard = Dashboard(guard)
    client = TestClient(dashboard.app, base_url=BASE)
    grant = guard.grant("researcher", "fetch_url", args={"url": Urls(["arxiv.org"])}, ttl=60)
    guard.controls.kill(agent="rogue", reason="looping", by="alice")
    plan = "Plan: refactor billing, run all tests, then ask the coder to review it all again. " * 2
    for i in range(12):  # a ping-pong of the same plan: the cycle detector trips
        sender, recipient = ("planner", "coder") if i % 2 == 0 else ("coder", "planner")
        if not guard.check(
            AgentMessage(sender, recipient, plan, thread_id="t-7", id=str(i))
        ).allowed:
            break
    state = client.get("/api/state").json()["state"]

    (g,) = state["grants"]
    assert (g["id"], g["agent"], g["tools"], g["expired"]) == (
        grant.id,
        "researcher",
        ["fetch_url"],
        False,
    )
    assert g["args"] == grant.to_doc()["args"]
    flags = {(f["level"], f["target"]): f for f in state["flags"]}
    assert flags["agent", "rogue"]["state"] == "killed"
    assert flags["agent", "rogue"]["by"] == "alice"
    assert flags["thread", "t-7"]["state"] == "paused"  # the breaker's interrupt
    (trip,) = state["trips"]
    assert (trip["signal"], trip["response"], trip["thread_id"]) == ("cycles", "interrupt", "t-7")
    assert trip["evidence"]
    assert trip["evidence"][0]["content"].startswith("Plan:")
    agents = {a["name"]: a for a in state["agents"]}
    assert {"researcher", "rogue", "planner", "coder"} <= set(agents)
    assert agents["researcher"]["grants"] == 1
    assert agents["rogue"]["state"] == "killed"
    decisions = client.get("/api/state").json()["decisions"]
    assert [d["outcome"] for d in decisions][-1] == "ask"  # the tripping hand-off waits
    assert decisions[-1]["kind"] == "trip"
    assert decisions[-1]["detail"]["recipient"] in ("planner", "coder")
    dashboard.close()


def test_decisions_of_a_guard_in_this_process_are_streamed_without_an_audit_log(app: App) -> None:
    app.guard.check(ToolCall("search", {"q": "llamas"}, agent="researcher", thread_id="t-2"))
    app.guard.check(ToolCall("rm", {"path": "/"}, agent="researcher", thread_id="t-2"))
    first = app.client.get("/api/decisions?since=0").json()["decisions"]
    assert [(d["tool"], d["outcome"], d["rule"]) for d in first] == [
        ("search", "allow", "allow search"),
        ("rm", "deny", "default-deny"),
    ]
    later = app.client.get(f"/api/decisions?since={first[0]['seq']}").json()["decisions"]
    assert [d["tool"] for d in later] == ["rm"]


def test_decisions_come_from_the_audit_log_another_process_writes(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    writer = Guard(email_policy(), listeners=[AuditLog(tmp_path / "audit.db")])
    writer.check(ToolCall("search", {"q": "x", "api_key": "sk-secret"}, thread_id="t-9"))
    dashboard = Dashboard(SQLiteStore(tmp_path / "guard.db"), audit=log)
    client = TestClient(dashboard.app, base_url=BASE)
    body = client.get("/api/state").json()
    (d,) = body["decisions"]
    assert (d["kind"], d["outcome"], d["tool"], d["thread_id"]) == (
        "decision",
        "allow",
        "search",
        "t-9",
    )
    assert d["args"]["api_key"] == "[REDACTED]"
    assert "hash" not in d  # the chain stays in the log
    assert body["info"]["feed"] == "audit"
    writer.check(ToolCall("rm", {}, thread_id="t-9"))
    newer = client.get(f"/api/decisions?since={d['seq']}").json()["decisions"]
    assert [n["tool"] for n in newer] == ["rm"]
    dashboard.close()


def test_shadow_decisions_reach_the_page_marked(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    writer = Guard(email_policy(), mode="shadow", audit=AuditLog(tmp_path / "audit.db"))
    assert writer.check(ToolCall("rm", {"path": "/"}, thread_id="t-1")).allowed
    dashboard = Dashboard(SQLiteStore(tmp_path / "guard.db"), audit=log)
    client = TestClient(dashboard.app, base_url=BASE)
    (d,) = client.get("/api/state").json()["decisions"]
    assert (d["tool"], d["outcome"], d["detail"]["shadow"]) == ("rm", "allow", "deny")
    script = client.get("/static/app.js").text
    assert "detail.shadow" in script  # the page marks it ("shadow: would deny")
    dashboard.close()


def test_shadow_rule_marks_reach_the_page(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    policy = Policy([allow("rm"), deny("rm", shadow=True, id="no-rm")])
    writer = Guard(policy, audit=AuditLog(tmp_path / "audit.db"))
    assert writer.check(ToolCall("rm", {"path": "/"}, thread_id="t-1")).allowed
    dashboard = Dashboard(SQLiteStore(tmp_path / "guard.db"), audit=log)
    client = TestClient(dashboard.app, base_url=BASE)
    (d,) = client.get("/api/state").json()["decisions"]
    assert (d["outcome"], d["detail"]["would"], d["detail"]["would_rule"]) == (
        "allow",
        "deny",
        "no-rm",
    )
    assert "detail.would" in client.get("/static/app.js").text  # "shadow rule: would deny"
    dashboard.close()


def test_agent_text_is_returned_as_json_data_never_as_markup() -> None:
    a = App(body=XSS)
    response = a.client.get("/api/state")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.json()["state"]["pending"][0]["args"]["body"] == XSS
    page = a.client.get("/")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-frame-options"] == "DENY"
    a.dashboard.close()


def test_the_page_renders_text_only_and_loads_nothing_from_elsewhere() -> None:
    static = resources.files("guardrails_plugin.dashboard").joinpath("static")
    script = static.joinpath("app.js").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in script, sink
    html = static.joinpath("index.html").read_text()
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']
    assert not re.search(r"\son[a-z]+\s*=", html), "no inline event handlers"
    for text in (html, script, static.joinpath("style.css").read_text()):
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), (
            "the page must work offline"
        )


# -- answering resumes the graph --------------------------------------------------------------


def test_approve_resumes_the_graph_and_the_tool_runs(app: App) -> None:
    job = app.answer(answer="approve")
    assert job["status"] == "finished", job
    assert app.ran == [("send_email", {"to": "a@acme.com", "body": "hello"})]
    messages = app.final_messages()
    assert tool_messages({"messages": messages})[-1].text == "mail sent"
    assert messages[-1].content == "sent it"
    assert app.state()["state"]["pending"] == []
    approvals = [d for d in app.state()["decisions"] if d["kind"] == "approval"]
    assert [(d["outcome"], d["approver"]) for d in approvals] == [("allow", "dashboard")]


def test_edit_runs_the_tool_with_the_edited_arguments(app: App) -> None:
    job = app.answer(answer="edit", args={"to": "b@acme.com", "body": "edited"})
    assert job["status"] == "finished", job
    assert app.ran == [("send_email", {"to": "b@acme.com", "body": "edited"})]


def test_an_edit_outside_the_policy_is_denied_and_the_tool_does_not_run(app: App) -> None:
    job = app.answer(answer="edit", args={"to": "mallory@evil.example", "body": "x"})
    assert job["status"] == "finished"
    assert app.ran == []
    assert "evil.example" in tool_messages({"messages": app.final_messages()})[-1].text


def test_reject_does_not_run_the_tool_and_the_model_reads_why(app: App) -> None:
    job = app.answer(answer="reject", message="not to customers")
    assert job["status"] == "finished"
    assert app.ran == []
    assert "not to customers" in tool_messages({"messages": app.final_messages()})[-1].text
    assert app.state()["state"]["pending"] == []


def test_a_run_that_waits_again_is_reported_as_waiting() -> None:
    ran: Ran = []
    guard = Guard(email_policy())
    model = ScriptedChatModel(
        [
            tool_call("send_email", to="a@acme.com", id="c1"),
            tool_call("send_email", to="b@acme.com", id="c2"),
            "done",
        ]
    )
    graph = tool_graph(
        model, [recording_tool("send_email", ran, "to")], guard, checkpointer=InMemorySaver()
    )
    graph.invoke(user("two mails"), CONFIG)
    dashboard = Dashboard(guard, graph=graph)
    client = TestClient(dashboard.app, base_url=BASE)
    response = client.post(
        "/api/answer", json={"thread": THREAD, "call": "c1", "answer": "approve"}, headers=CSRF
    )
    job = ended(dashboard, response.json()["job"]["id"])
    assert job.status == "waiting"
    assert job.waiting == [{"call_id": "c2", "agent": "agent", "tool": "send_email"}]
    assert [p.call_id for p in approval_requests(graph, CONFIG)] == ["c2"]
    assert [p["call_id"] for p in client.get("/api/state").json()["state"]["pending"]] == ["c2"]
    dashboard.close()


class FlakySaver(InMemorySaver):
    """An in-memory checkpointer whose first read by a dashboard resume fails, as a
    checkpoint database that is briefly unavailable."""

    failed = False

    def get_tuple(self, config: Any) -> Any:
        if not self.failed and threading.current_thread().name.startswith(RESUMER):
            self.failed = True
            raise OSError("checkpoint database unavailable")
        return super().get_tuple(config)


RESUMER = "guardrails-dashboard_"
"""The name of the dashboard's resume threads."""


def test_a_resume_that_fails_leaves_the_call_waiting_to_be_answered_again() -> None:
    a = App(checkpointer=FlakySaver())
    first = a.answer(answer="approve")
    assert first["status"] == "error"
    assert "checkpoint database unavailable" in first["detail"]
    assert a.ran == []
    assert [p["call_id"] for p in a.state()["state"]["pending"]] == ["call-1"]
    assert a.answer(answer="approve")["status"] == "finished"  # the thread is not left busy
    assert a.ran == [("send_email", {"to": "a@acme.com", "body": "hello"})]
    a.dashboard.close()


def test_answering_a_call_that_does_not_wait_is_refused(app: App) -> None:
    response = app.client.post(
        "/api/answer", json={"thread": THREAD, "call": "nope", "answer": "approve"}, headers=CSRF
    )
    assert response.status_code == 409
    assert "does not wait" in response.json()["error"]
    bad = app.client.post(
        "/api/answer",
        json={"thread": THREAD, "call": "call-1", "answer": "edit", "args": [1]},
        headers=CSRF,
    )
    assert bad.status_code == 400
    assert app.ran == []


def test_without_the_graph_the_page_shows_approvals_but_cannot_answer(app: App) -> None:
    dashboard = Dashboard(app.guard.store)  # an operator process with the store only
    client = TestClient(dashboard.app, base_url=BASE)
    body = client.get("/api/state").json()
    assert [p["call_id"] for p in body["state"]["pending"]] == ["call-1"]
    assert body["info"]["answering"] is False
    assert "--graph" in body["info"]["answering_off"]
    assert body["info"]["feed"] == "none"
    response = client.post(
        "/api/answer", json={"thread": THREAD, "call": "call-1", "answer": "approve"}, headers=CSRF
    )
    assert response.status_code == 409
    assert "--graph module:attr" in response.json()["error"]
    assert app.ran == []
    dashboard.close()


# -- controls ----------------------------------------------------------------------------------


def post(client: TestClient, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body, headers=CSRF)
    assert response.status_code == 200, response.text
    return response.json()


def test_pause_kill_quarantine_and_resume_set_the_flags_guards_read(app: App) -> None:
    store, client = app.guard.store, app.client
    app.guard.grant("scraper", "fetch_url")
    post(client, "/api/pause", {"thread": "t-2", "reason": "looks like a loop"})
    post(client, "/api/kill", {"agent": "rogue"})
    post(client, "/api/quarantine", {"agent": "scraper", "reason": "spreading"})
    post(client, "/api/pause", {})
    flags = {(f.level, f.target): f for f in Controls(store).flags()}
    assert flags["thread", "t-2"].state is State.PAUSED
    assert flags["thread", "t-2"].reason == "looks like a loop"
    assert flags["thread", "t-2"].by == "dashboard"
    assert flags["agent", "rogue"].state is State.KILLED
    assert flags["agent", "scraper"].state is State.QUARANTINED
    assert flags["global", "*"].state is State.PAUSED
    assert app.guard.grants("scraper") == []  # a quarantine takes the grants away

    assert post(client, "/api/resume", {"agent": "scraper"})["lifted"] is True
    assert [g.tools for g in app.guard.grants("scraper")] == [("fetch_url",)]
    assert post(client, "/api/resume", {})["lifted"] is True
    assert post(client, "/api/resume", {"thread": "nobody"})["lifted"] is False
    assert {(f.level, f.target) for f in Controls(store).flags()} == {
        ("thread", "t-2"),
        ("agent", "rogue"),
    }
    activity = app.state()["state"]["activity"]
    assert [a["action"] for a in activity][:3] == ["resume", "resume", "resume"]
    assert all(a["by"] == "dashboard" for a in activity)

    bad = client.post("/api/pause", json={"thread": "a", "agent": "b"}, headers=CSRF)
    assert bad.status_code == 400
    assert client.post("/api/quarantine", json={}, headers=CSRF).status_code == 400


def test_revoking_a_grant_takes_the_permission_away(app: App) -> None:
    grant = app.guard.grant("researcher", "fetch_url")
    assert app.guard.check(ToolCall("fetch_url", {}, agent="researcher")).allowed
    assert post(app.client, "/api/revoke", {"grant": grant.id}) == {"revoked": True}
    assert not app.guard.check(ToolCall("fetch_url", {}, agent="researcher")).allowed
    assert app.state()["state"]["grants"] == []
    assert post(app.client, "/api/revoke", {"grant": grant.id}) == {"revoked": False}


def test_resume_lifts_the_pause_and_the_held_graph_goes_on() -> None:
    ran: Ran = []
    guard = Guard(email_policy())
    model = ScriptedChatModel([tool_call("search", q="llamas", id="s1"), "found"])
    graph = tool_graph(
        model, [recording_tool("search", ran, "q")], guard, checkpointer=InMemorySaver()
    )
    dashboard = Dashboard(guard, graph=graph)
    client = TestClient(dashboard.app, base_url=BASE)
    post(client, "/api/pause", {"thread": THREAD, "reason": "wait"})
    out = graph.invoke(user("search"), CONFIG)
    assert [i.value["type"] for i in out["__interrupt__"]] == ["paused"]
    assert ran == []
    assert client.get("/api/state").json()["state"]["threads"][0]["paused_steps"] >= 1

    result = post(client, "/api/resume", {"thread": THREAD})
    assert result["lifted"] is True
    (job_doc,) = result["jobs"]
    job = ended(dashboard, job_doc["id"])
    assert job.status == "finished", job.detail
    assert ran == [("search", {"q": "llamas"})]
    assert graph.get_state(CONFIG).values["messages"][-1].content == "found"
    dashboard.close()


def test_actions_record_the_operator_the_token_names(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    a = App(token={"alice-token-123": "alice", "bob-token-4567": "bob"}, audit=log)
    alice = {"Authorization": "Bearer alice-token-123", **CSRF}
    bob = {"Authorization": "Bearer bob-token-4567", **CSRF}
    assert a.client.post("/api/pause", json={"thread": "t-2"}, headers=alice).status_code == 200
    response = a.client.post(
        "/api/answer", json={"thread": THREAD, "call": "call-1", "answer": "approve"}, headers=bob
    )
    job = ended(a.dashboard, response.json()["job"]["id"])
    assert job.by == "bob"
    assert Controls(a.guard.store).flags()[0].by == "alice"
    (control,) = log.tail(10, kind="control")
    assert (control.outcome, control.thread_id, control.approver) == ("pause", "t-2", "alice")
    assert control.detail["via"] == "dashboard"
    a.dashboard.close()


# -- who may use it ------------------------------------------------------------------------------


def test_a_token_is_required_when_configured() -> None:
    a = App(token="s3cret-token-value")
    c = a.client
    assert c.get("/api/state").status_code == 401
    assert (
        c.get("/api/state", headers={"Authorization": "Bearer wrong-token-xx"}).status_code == 401
    )
    ok = c.get("/api/state", headers={"Authorization": "Bearer s3cret-token-value"})
    assert ok.status_code == 200
    assert ok.json()["info"]["by"] == "dashboard"
    assert c.post("/api/pause", json={}, headers=CSRF).status_code == 401
    assert Controls(a.guard.store).flags() == []
    page = c.get("/")
    assert page.status_code == 401
    assert "token is required" in page.text
    assert c.get("/?token=wrong-token-xx").status_code == 401

    login = c.get("/?token=s3cret-token-value", follow_redirects=False)
    assert login.status_code == 303
    assert login.headers["location"] == "/"
    cookie = login.headers["set-cookie"].lower()
    assert cookie.startswith("guardrails_dashboard_8765=")  # named for its port
    assert "s3cret-token-value" not in cookie  # other servers on the host receive it too
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert c.get("/").status_code == 200  # the cookie now opens the page
    assert c.get("/api/state").status_code == 200  # ... and the API (EventSource)
    assert c.post("/api/pause", json={"thread": "t-3"}, headers=CSRF).status_code == 200
    assert c.get("/static/app.js").status_code == 200
    a.dashboard.close()


def test_state_changes_need_the_csrf_header_json_and_the_same_origin(app: App) -> None:
    c = app.client
    assert c.post("/api/pause", json={}).status_code == 403
    assert (
        c.post(
            "/api/pause", content="{}", headers={**CSRF, "Content-Type": "text/plain"}
        ).status_code
        == 415
    )
    evil = {**CSRF, "Origin": "http://evil.example"}
    assert c.post("/api/pause", json={}, headers=evil).status_code == 403
    other_port = {**CSRF, "Origin": "http://127.0.0.1:9999"}
    assert c.post("/api/pause", json={}, headers=other_port).status_code == 403
    cross = {**CSRF, "Sec-Fetch-Site": "cross-site"}
    assert c.post("/api/pause", json={}, headers=cross).status_code == 403
    assert c.get("/api/pause").status_code == 405
    assert Controls(app.guard.store).flags() == []
    same = {**CSRF, "Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert c.post("/api/pause", json={}, headers=same).status_code == 200


def test_a_rebound_host_name_is_refused(app: App) -> None:
    """DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1."""
    response = app.client.get("/api/state", headers={"Host": "evil.example:8765"})
    assert response.status_code == 421
    assert app.client.get("/", headers={"Host": "localhost:8765"}).status_code == 200
    assert app.client.get("/", headers={"Host": "[::1]:8765"}).status_code == 200


def test_a_host_name_allowed_by_the_operator_is_served() -> None:
    from starlette.testclient import TestClient

    dashboard = Dashboard(MemoryStore(), hosts=["ops.internal"])
    with TestClient(dashboard.app, base_url="http://ops.internal:8765") as client:
        assert client.get("/", headers={"Host": "ops.internal:8765"}).status_code == 200
        assert client.get("/", headers={"Host": "evil.example:8765"}).status_code == 421


def test_a_non_loopback_bind_without_a_token_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = str(tmp_path / "guard.db")
    SQLiteStore(store).close()
    dashboard = Dashboard(MemoryStore())
    with pytest.raises(ValueError, match="without a token"):
        serve(dashboard, host="0.0.0.0", port=0)
    with pytest.raises(ValueError, match="without a token"), serving(dashboard, host="192.0.2.1"):
        pass
    assert cli(["dashboard", "--store", store, "--host", "0.0.0.0"]) == 1
    assert "refusing to serve the dashboard on '0.0.0.0' without a token" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 8"):
        Dashboard(MemoryStore(), token="short")


# -- the live stream -----------------------------------------------------------------------------


def events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name is not None:
            yield name, json.loads(line[6:])
            name = None


def test_the_stream_pushes_new_decisions_and_state_changes(app: App) -> None:
    dashboard = Dashboard(app.guard, graph=app.graph, poll=0.05)
    with serving(dashboard) as url, httpx.stream("GET", url + "api/stream", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        assert next(stream)[0] == "hello"
        assert next(stream) == ("decisions", {"reset": True, "items": []})
        name, state = next(stream)
        assert name == "state"
        assert [p["call_id"] for p in state["pending"]] == ["call-1"]
        app.guard.check(ToolCall("search", {"q": "llamas"}, agent="researcher", thread_id="t-2"))
        name, batch = next(stream)
        assert name == "decisions"
        assert batch["reset"] is False
        assert [(d["agent"], d["tool"], d["outcome"]) for d in batch["items"]] == [
            ("researcher", "search", "allow")
        ]
        name, state = next(stream)  # researcher and t-2 are new in the state
        assert name == "state"
        Controls(app.guard.store).pause(thread="t-2")
        deadline = time.monotonic() + 5
        for name, value in stream:
            if name == "state" and value["flags"]:
                assert value["flags"][0]["target"] == "t-2"
                break
            assert time.monotonic() < deadline


def test_non_finite_numbers_in_arguments_do_not_break_the_page(app: App) -> None:
    app.guard.check(ToolCall("search", {"q": math.nan}, thread_id="t-2"))
    (d,) = app.client.get("/api/decisions?since=0").json()["decisions"]
    assert d["args"] == {"q": "nan"}


# -- the command ---------------------------------------------------------------------------------


def test_the_graph_option_imports_a_compiled_graph() -> None:
    with pytest.raises(ValueError, match="module:attribute"):
        load_graph("no-colon")
    with pytest.raises(ImportError, match="cannot import"):
        load_graph("no_such_module_xyz:graph")
    with pytest.raises(AttributeError, match="has no 'nope'"):
        load_graph("langgraph_apps:nope")
    with pytest.raises(TypeError, match="expected a compiled LangGraph graph"):
        load_graph("langgraph_apps:tool_graph")


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(importlib.import_module("guardrails_plugin.dashboard._serve"))
    assert result.failed == 0
    assert result.attempted >= 1


def test_the_store_and_the_gate_agree_on_where_pending_approvals_live() -> None:
    assert PENDING_PREFIX == GATE_PENDING_PREFIX
    assert TRIP_PREFIX.startswith("cascade/")


# -- the operator's process: guardrails-plugin dashboard --------------------------------------

APP = """
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph_apps import file_tool, tool_graph

from guardrails_plugin import Guard, Policy, SQLiteStore, ask
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.scopes import Emails
from guardrails_plugin.testing import ScriptedChatModel

HERE = Path(__file__).parent


def build(script):
    policy = Policy([ask("send_email", args={{"to": Emails(domains=["acme.com"])}}, id="mail-ok")])
    guard = Guard(policy, store=SQLiteStore(HERE / "guard.db"), listeners=[AuditLog(HERE / "audit.db")])
    conn = sqlite3.connect(HERE / "graph.db", check_same_thread=False)
    tools = [file_tool("send_email", HERE / "sent.log")]
    return tool_graph(ScriptedChatModel(script), tools, guard, checkpointer=SqliteSaver(conn))


graph = build(["sent it"])  # what the dashboard process loads: the model's next turn
"""

AGENT_RUN = """
from app_graph import build
from guardrails_plugin.testing import tool_call

graph = build([tool_call("send_email", to="a@acme.com", id="c-1")])
out = graph.invoke({"messages": [{"role": "user", "content": "mail"}]},
                   {"configurable": {"thread_id": "t-1"}})
print(out["__interrupt__"][0].value["call_id"])
"""


def test_the_dashboard_command_answers_for_a_graph_run_by_another_process(tmp_path: Path) -> None:
    """The agents ran elsewhere and wait (SQLite store + SqliteSaver). An operator starts
    ``guardrails-plugin dashboard --graph app_graph:graph``; approving there resumes the
    run in the dashboard's process, and the email goes out once."""
    (tmp_path / "app_graph.py").write_text(APP.format(tests=str(Path(__file__).parent)))
    agent = subprocess.run(
        [sys.executable, "-c", AGENT_RUN],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert agent.returncode == 0, agent.stderr
    assert agent.stdout.strip() == "c-1"

    token = "operator-token-1234"
    command = [
        sys.executable, "-m", "guardrails_plugin.cli", "dashboard",
        "--store", "guard.db", "--audit", "audit.db", "--graph", "app_graph:graph",
        "--port", "0", "--token", token, "--by", "carol",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # printed once the port is bound
        found = re.match(r"guardrails dashboard: (http://127\.0\.0\.1:\d+)/\?token=(\S+)", line)
        assert found is not None, line
        assert found[2] == token
        auth = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=found[1], headers=auth, timeout=10) as c:
            state = eventually(lambda: _get(c, "/api/state"))
            assert state["info"]["answering"] is True
            assert [p["call_id"] for p in state["state"]["pending"]] == ["c-1"]
            response = c.post(
                "/api/answer",
                json={"thread": "t-1", "call": "c-1", "answer": "approve"},
                headers=CSRF,
            )
            assert response.status_code == 202, response.text
            job_id = response.json()["job"]["id"]
            job = eventually(lambda: _ended(c.get(f"/api/jobs/{job_id}").json()))
            assert (job["status"], job["by"]) == ("finished", "carol"), job
            assert (tmp_path / "sent.log").read_text().count("a@acme.com") == 1
            after = c.get("/api/state").json()
            assert after["state"]["pending"] == []
            approvals = [d for d in after["decisions"] if d["kind"] == "approval"]
            assert [(d["outcome"], d["approver"]) for d in approvals] == [("allow", "carol")]
    finally:
        stop(server)


def stop(server: subprocess.Popen[str]) -> None:
    """Ctrl-C, as an operator stops it: it ends cleanly (else it is killed, never left)."""
    server.send_signal(signal.SIGINT)
    try:
        code = server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise
    assert code == 0


def _get(client: httpx.Client, path: str) -> Any:
    try:
        return client.get(path).json()
    except httpx.ConnectError:
        return None


def _ended(job: dict[str, Any]) -> dict[str, Any] | None:
    return job if job["status"] != "running" else None


def eventually(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while (value := check()) is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_the_other_commands_work_without_the_dashboard_extra(tmp_path: Path) -> None:
    store = str(tmp_path / "guard.db")
    SQLiteStore(store).close()
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from guardrails_plugin.cli import main\n"
        f"assert main(['flags', '--store', {store!r}]) == 0\n"
        f"assert main(['dashboard', '--store', {store!r}]) == 1\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'guardrails-plugin[dashboard]'" in done.stderr


# -- what waits at a pause ------------------------------------------------------------------------


def two_mails(thread: str = THREAD) -> tuple[Any, Dashboard, TestClient]:
    """A guarded loop whose model sends two mails in one step (one "approvals" interrupt)."""
    ran: Ran = []
    guard = Guard(email_policy())
    turn = [tool_call("send_email", to=f"{n}@acme.com", id=f"c-{n}") for n in ("a", "b")]
    graph = tool_graph(
        ScriptedChatModel([turn, "done"]),
        [recording_tool("send_email", ran, "to")],
        guard,
        checkpointer=InMemorySaver(),
    )
    dashboard = Dashboard(guard, graph=graph)
    return graph, dashboard, TestClient(dashboard.app, base_url=BASE)


def test_a_thread_id_with_slashes_is_shown_and_resumed_whole() -> None:
    thread = "acme/support/t-1"
    graph, dashboard, client = two_mails(thread)
    post(client, "/api/pause", {"reason": "maintenance"})
    out = graph.invoke(user("mail a and b"), {"configurable": {"thread_id": thread}})
    assert [i.value["type"] for i in out["__interrupt__"]] == ["paused"]
    state = client.get("/api/state").json()["state"]
    assert [s["thread_id"] for s in state["paused_steps"]] == [thread]
    assert [t["id"] for t in state["threads"]] == [thread]

    (job_doc,) = post(client, "/api/resume", {})["jobs"]
    job = ended(dashboard, job_doc["id"])
    assert (job.thread_id, job.status) == (thread, "waiting")
    assert [w["call_id"] for w in job.waiting] == ["c-a", "c-b"]
    dashboard.close()


def test_a_step_that_got_past_its_pause_is_no_longer_shown_held() -> None:
    graph, dashboard, client = two_mails()
    post(client, "/api/pause", {"thread": THREAD})
    graph.invoke(user("mail a and b"), CONFIG)
    assert len(client.get("/api/state").json()["state"]["paused_steps"]) == 1

    (job_doc,) = post(client, "/api/resume", {"thread": THREAD})["jobs"]
    assert ended(dashboard, job_doc["id"]).status == "waiting"  # now at the two approvals
    state = client.get("/api/state").json()["state"]
    assert [p["call_id"] for p in state["pending"]] == ["c-a", "c-b"]
    assert state["paused_steps"] == []
    assert state["threads"][0]["paused_steps"] == 0
    dashboard.close()


def test_an_approved_call_held_by_a_pause_is_shown_held(app: App) -> None:
    post(app.client, "/api/pause", {"thread": THREAD, "reason": "hold on"})
    job = app.answer(answer="approve")
    assert (job["status"], job["detail"]) == ("waiting", "the run waits again: 1 pause")
    state = app.state()["state"]
    assert state["pending"] == []
    (held,) = state["paused_steps"]
    assert (held["thread_id"], held["tool"], held["agent"]) == (THREAD, "send_email", "agent")
    assert held["approved"] is True
    assert app.ran == []

    (resumed,) = post(app.client, "/api/resume", {"thread": THREAD})["jobs"]
    assert ended(app.dashboard, resumed["id"]).status == "finished"
    assert app.ran == [("send_email", {"to": "a@acme.com", "body": "hello"})]
    assert app.state()["state"]["paused_steps"] == []


def test_resume_goes_on_only_with_the_threads_no_other_flag_holds() -> None:
    graph, dashboard, client = two_mails()
    post(client, "/api/pause", {"thread": THREAD})
    post(client, "/api/pause", {})
    graph.invoke(user("mail a and b"), CONFIG)
    before = graph.get_state(CONFIG).tasks

    assert post(client, "/api/resume", {}) == {"lifted": True, "jobs": []}  # t-1 still paused
    assert graph.get_state(CONFIG).tasks == before
    (job_doc,) = post(client, "/api/resume", {"thread": THREAD})["jobs"]
    assert ended(dashboard, job_doc["id"]).status == "waiting"
    dashboard.close()


# -- the live stream: one reader for every page ---------------------------------------------------


class CountingStore(MemoryStore):
    """A memory store that counts its scans (how often the dashboard reads it)."""

    def __init__(self) -> None:
        super().__init__()
        self.scans = 0
        self.failing = 0

    def scan(self, prefix: str) -> dict[str, Any]:
        self.scans += 1
        if self.failing:
            self.failing -= 1
            raise StoreError("database is locked")
        return super().scan(prefix)


def scans_per_poll(store: CountingStore, seconds: float, poll: float) -> float:
    start = store.scans
    time.sleep(seconds)
    return (store.scans - start) / (seconds / poll)


def test_the_store_is_read_once_per_poll_however_many_pages_are_open() -> None:
    store = CountingStore()
    dashboard = Dashboard(store, poll=0.05)
    with serving(dashboard) as url, contextlib.ExitStack() as pages:
        assert scans_per_poll(store, 0.3, 0.05) == 0  # no page open: no reads
        streams = [
            events(pages.enter_context(httpx.stream("GET", url + "api/stream", timeout=10)))
            for _ in range(6)
        ]
        for stream in streams:
            assert [next(stream)[0] for _ in range(3)] == ["hello", "decisions", "state"]
        per_poll = scans_per_poll(store, 0.5, 0.05)
        assert 0 < per_poll <= 8, per_poll  # one snapshot (5 prefixes) a poll, not six
    dashboard.close()


def test_a_store_error_is_shown_on_the_stream_and_the_stream_goes_on() -> None:
    store = CountingStore()
    dashboard = Dashboard(store, poll=0.05)
    with serving(dashboard) as url, httpx.stream("GET", url + "api/stream", timeout=10) as r:
        stream = events(r)
        assert [next(stream)[0] for _ in range(3)] == ["hello", "decisions", "state"]
        store.failing = 3
        name, problem = next(stream)
        assert name == "problem"
        assert "database is locked" in problem["error"]
        Controls(store).pause(thread="t-9")
        for name, value in stream:
            if name == "state" and value["flags"]:
                break
    dashboard.close()


def test_a_page_that_stops_reading_is_dropped_not_buffered() -> None:
    live = Live(lambda recent: {"n": len(recent)}, NoFeed(), poll=60, backlog=3)
    loop = asyncio.new_event_loop()
    try:
        page = live.subscribe(loop)
        for n in range(10):
            live.publish("state", str(n))
        loop.run_until_complete(asyncio.sleep(0))
        assert page.dropped
        assert len(page.messages) <= 3
        assert page not in live.pages
    finally:
        live.close()
        loop.close()


def test_a_negative_limit_is_refused(tmp_path: Path) -> None:
    dashboard = Dashboard(MemoryStore(), audit=AuditLog(tmp_path / "audit.db"))
    client = TestClient(dashboard.app, base_url=BASE)
    assert client.get("/api/decisions?limit=-1").status_code == 400
    assert client.get("/api/decisions?limit=5").status_code == 200
    dashboard.close()


# -- the token stays out of logs; the command binds before it prints ---------------------------


def test_the_token_never_reaches_the_access_log() -> None:
    token = "log-token-98765"
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    access = logging.getLogger("uvicorn.access")
    keep = Keep()
    dashboard = Dashboard(MemoryStore(), token=token)
    with serving(dashboard, log_level="info") as url:
        access.addHandler(keep)
        try:
            assert httpx.get(url + f"?token={token}").status_code == 303
            assert httpx.get(url + f"api/state?token={token}").status_code == 401
            eventually(lambda: len(seen) == 2 or None)  # logged once the response is sent
        finally:
            access.removeHandler(keep)
    assert not [line for line in seen if token in line], seen
    assert "token=[redacted]" in seen[0]


def test_the_command_says_the_port_is_taken_and_prints_no_address(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store = str(tmp_path / "guard.db")
    SQLiteStore(store).close()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli(["dashboard", "--store", store, "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert "http://" not in out
    assert f"cannot listen on 127.0.0.1:{port}" in err
