"""OTelListener: decisions as span events (or spans) and a counter, on the real OpenTelemetry SDK.

Providers are passed explicitly (an in-memory span exporter, an in-memory metric reader); no
test sets or resets the global providers.
"""

from __future__ import annotations

import doctest
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from fakes import Ran, recording_tool, tool_call, tool_messages, user
from langchain.agents import create_agent
from langchain_core.runnables import RunnableConfig
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import guardrails_plugin.otel
from guardrails_plugin import (
    AgentMessage,
    Approval,
    ApprovalRequest,
    Budget,
    Effect,
    Guard,
    MemoryStore,
    Policy,
    ToolCall,
    ToolResult,
    allow,
    ask,
    deny,
)
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.otel import OTelListener
from guardrails_plugin.scopes import Paths, Sql
from guardrails_plugin.testing import ScriptedChatModel

SECRET = "hunter2-s3cr3t"


class Telemetry:
    """An SDK tracer provider and meter provider that keep what they record in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer = self.tracer_provider.get_tracer("tests")

    def listener(self, **options: Any) -> OTelListener:
        return OTelListener(self.tracer_provider, self.meter_provider, **options)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        [found] = [s for s in self.spans() if s.name == name]
        return found

    def events(self, span: str = "run") -> list[dict[str, Any]]:
        return [
            dict(e.attributes or {})
            for e in self.span(span).events
            if e.name == "guardrails.decision"
        ]

    def counts(self) -> dict[frozenset[tuple[str, Any]], int]:
        """``guardrails.decisions`` data points: attributes -> count."""
        data = self.reader.get_metrics_data()
        out: dict[frozenset[tuple[str, Any]], int] = {}
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == "guardrails.decisions":
                        assert metric.unit == "{decision}"
                        assert sm.scope.name == "guardrails_plugin"
                        for point in metric.data.data_points:
                            out[frozenset((point.attributes or {}).items())] = int(point.value)  # type: ignore[union-attr]
        return out


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


def every_attribute_value(otel: Telemetry) -> list[str]:
    values: list[str] = []
    for span in otel.spans():
        values += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            values += [str(v) for v in (event.attributes or {}).values()]
    for attributes in otel.counts():
        values += [str(v) for _, v in attributes]
    return values


# -- span events on the current span -----------------------------------------------------------


def test_each_decision_is_an_event_on_the_current_span(otel: Telemetry) -> None:
    guard = Guard(
        Policy([allow("search", id="search-ok"), deny("rm", id="never-rm")]),
        listeners=[otel.listener()],
    )

    with otel.tracer.start_as_current_span("run"):
        guard.check(
            ToolCall("search", {"q": "llamas"}, agent="researcher", call_id="c1", thread_id="t1")
        )
        guard.check(ToolCall("rm", {"path": "/"}, agent="researcher", call_id="c2"))

    assert otel.events() == [
        {
            "guardrails.event.type": "tool_call",
            "guardrails.decision.effect": "allow",
            "guardrails.decision.rule": "search-ok",
            "guardrails.decision.kind": "rule",
            "gen_ai.tool.name": "search",
            "gen_ai.agent.name": "researcher",
            "gen_ai.tool.call.id": "c1",
            "gen_ai.conversation.id": "t1",
        },
        {
            "guardrails.event.type": "tool_call",
            "guardrails.decision.effect": "deny",
            "guardrails.decision.rule": "never-rm",
            "guardrails.decision.kind": "rule",
            "gen_ai.tool.name": "rm",
            "gen_ai.agent.name": "researcher",
            "gen_ai.tool.call.id": "c2",
        },
    ]
    assert [s.name for s in otel.spans()] == ["run"]  # events only: no spans of its own


def test_without_a_current_span_no_event_is_recorded_but_the_decision_is_counted(
    otel: Telemetry,
) -> None:
    guard = Guard(Policy([allow("search")]), listeners=[otel.listener()])

    assert guard.check(ToolCall("search", {"q": "x"})).allowed

    assert otel.spans() == []
    assert sum(otel.counts().values()) == 1


def test_a_tool_result_is_recorded_with_its_call_id(otel: Telemetry) -> None:
    guard = Guard(Policy([allow("search")]), listeners=[otel.listener()])

    with otel.tracer.start_as_current_span("run"):
        guard.record(ToolResult("search", f"the password is {SECRET}", call_id="c9"))

    [event] = otel.events()
    assert event["guardrails.event.type"] == "tool_result"
    assert event["gen_ai.tool.name"] == "search"
    assert event["gen_ai.tool.call.id"] == "c9"
    assert event["guardrails.decision.rule"] == "record"
    assert "error.type" not in event  # recording is the guard's bookkeeping, not a failure
    assert not any(SECRET in v for v in every_attribute_value(otel))


def test_a_message_between_agents_names_sender_and_recipient(otel: Telemetry) -> None:
    guard = Guard(Policy([]), listeners=[otel.listener()])

    with otel.tracer.start_as_current_span("run"):
        guard.check(AgentMessage("planner", "coder", f"use key {SECRET}", thread_id="t7"))

    [event] = otel.events()
    assert event["guardrails.event.type"] == "agent_message"
    assert event["guardrails.message.sender"] == "planner"
    assert event["guardrails.message.recipient"] == "coder"
    assert event["gen_ai.agent.name"] == "planner"
    assert event["gen_ai.conversation.id"] == "t7"
    assert "gen_ai.tool.name" not in event
    assert not any(SECRET in v for v in every_attribute_value(otel))


def test_the_person_who_approved_is_recorded(otel: Telemetry) -> None:
    def approver(request: ApprovalRequest) -> Approval:
        return Approval.approve(approver="alice")

    guard = Guard(
        Policy([ask("send_email", id="mail-needs-ok")]),
        approver=approver,
        listeners=[otel.listener()],
    )

    with otel.tracer.start_as_current_span("run"):
        decision = guard.decide(ToolCall("send_email", {"to": "bob@example.com"}))

    assert decision.effect is Effect.ALLOW
    asked, approved = otel.events()
    assert asked["guardrails.decision.effect"] == "ask"
    assert "guardrails.decision.approver" not in asked
    assert approved["guardrails.decision.effect"] == "allow"
    assert approved["guardrails.decision.kind"] == "approval"
    assert approved["guardrails.decision.rule"] == "mail-needs-ok"
    assert approved["guardrails.decision.approver"] == "alice"


# -- argument values stay in the process -------------------------------------------------------


@pytest.mark.parametrize("spans", [False, True])
def test_argument_values_never_reach_any_attribute(otel: Telemetry, spans: bool) -> None:
    guard = Guard(
        Policy(
            [
                allow("read_file", args={"path": Paths(["/data"])}),
                allow("query", args={"sql": Sql(tables=["orders"])}),
            ]
        ),
        listeners=[otel.listener(spans=spans)],
    )

    with otel.tracer.start_as_current_span("run"):
        # Both denials quote the offending value in their reason.
        read = guard.check(ToolCall("read_file", {"path": f"/etc/{SECRET}"}))
        query = guard.check(ToolCall("query", {"sql": f"UPDATE users SET pw='{SECRET}'"}))

    assert SECRET in read.reason
    assert SECRET in query.reason
    values = every_attribute_value(otel)
    assert "read_file" in values  # the tool is named...
    assert not any(SECRET in v for v in values)  # ...what it was asked to touch is not


def test_reasons_are_recorded_only_when_asked_for(otel: Telemetry) -> None:
    guard = Guard(
        Policy([deny("rm", id="never-rm", reason="{tool} is never allowed")]),
        listeners=[otel.listener(reasons=True)],
    )

    with otel.tracer.start_as_current_span("run"):
        guard.check(ToolCall("rm", {"path": "/"}))

    [event] = otel.events()
    assert event["guardrails.decision.reason"] == "rm is never allowed"
    assert all("guardrails.decision.reason" not in dict(a) for a in otel.counts())


# -- metrics -----------------------------------------------------------------------------------


def test_decisions_are_counted_by_effect_rule_kind_tool_and_agent(otel: Telemetry) -> None:
    guard = Guard(
        Policy([allow("search", id="search-ok"), deny("rm", id="never-rm")]),
        listeners=[otel.listener()],
    )

    for i in range(3):
        guard.check(ToolCall("search", {"q": f"q{i}"}, agent="a", call_id=f"c{i}", thread_id="t"))
    guard.check(ToolCall("rm", {"path": "/"}, agent="b", call_id="c9", thread_id="t"))

    def point(effect: str, rule: str, tool: str, agent: str) -> frozenset[tuple[str, Any]]:
        return frozenset(
            {
                "guardrails.event.type": "tool_call",
                "guardrails.decision.effect": effect,
                "guardrails.decision.kind": "rule",
                "guardrails.decision.rule": rule,
                "gen_ai.tool.name": tool,
                "gen_ai.agent.name": agent,
            }.items()
        )

    # Call ids and thread ids are per call and per run: never metric attributes.
    assert otel.counts() == {
        point("allow", "search-ok", "search", "a"): 3,
        point("deny", "never-rm", "rm", "b"): 1,
    }


def test_run_time_grants_share_one_series(otel: Telemetry) -> None:
    guard = Guard(Policy([]), listeners=[otel.listener()])
    first = guard.grant("agent", "deploy")

    with otel.tracer.start_as_current_span("run"):
        guard.check(ToolCall("deploy", {}))
        guard.revoke(first)
        guard.grant("agent", "deploy")
        guard.check(ToolCall("deploy", {}))

    [(attributes, count)] = otel.counts().items()
    assert dict(attributes)["guardrails.decision.rule"] == "grant:*"
    assert dict(attributes)["guardrails.decision.kind"] == "grant"
    assert count == 2
    rules = [e["guardrails.decision.rule"] for e in otel.events()]  # spans keep the grant id
    assert rules[0] == f"grant:{first.id}"
    assert rules[1] != rules[0]


# -- spans=True --------------------------------------------------------------------------------


def test_spans_records_one_internal_child_span_per_decision(otel: Telemetry) -> None:
    guard = Guard(
        Policy([allow("search", id="search-ok"), deny("rm", id="never-rm")]),
        listeners=[otel.listener(spans=True)],
    )

    with otel.tracer.start_as_current_span("run"):
        guard.check(ToolCall("search", {"q": "x"}, call_id="c1", thread_id="t1"))
        guard.check(ToolCall("rm", {"path": "/"}, call_id="c2", thread_id="t1"))
        guard.record(ToolResult("search", "3 results", call_id="c1", thread_id="t1"))

    run = otel.span("run")
    assert run.events == ()  # a span per decision replaces the event
    checks = [s for s in otel.spans() if s.name != "run"]
    assert [s.name for s in checks] == [
        "guardrails.check search",
        "guardrails.check rm",
        "guardrails.record search",
    ]
    for span in checks:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None
        assert span.parent.span_id == run.context.span_id
        assert span.status.status_code is StatusCode.UNSET  # a deny is the check working
        assert (span.attributes or {})["gen_ai.conversation.id"] == "t1"
    assert (checks[1].attributes or {})["guardrails.decision.effect"] == "deny"
    assert (checks[1].attributes or {})["guardrails.decision.rule"] == "never-rm"
    assert (checks[2].attributes or {})["guardrails.event.type"] == "tool_result"


def test_spans_without_a_parent_are_roots(otel: Telemetry) -> None:
    guard = Guard(Policy([allow("search")]), listeners=[otel.listener(spans=True)])

    guard.check(ToolCall("search", {"q": "x"}))

    [span] = otel.spans()
    assert span.name == "guardrails.check search"
    assert span.parent is None


class BrokenStore(MemoryStore):
    def total(self, *args: Any, **kwargs: Any) -> float:
        raise OSError("io error")


@pytest.mark.parametrize("spans", [False, True])
def test_a_guard_failure_is_an_error_with_its_rule_as_error_type(
    otel: Telemetry, spans: bool
) -> None:
    guard = Guard(
        Policy([allow("search")], budgets=[Budget.calls(5)]),
        store=BrokenStore(),
        listeners=[otel.listener(spans=spans)],
    )

    with otel.tracer.start_as_current_span("run"):
        decision = guard.check(ToolCall("search", {"q": "x"}))
        unknown = guard.check("not an event")  # type: ignore[arg-type]

    assert (decision.rule, unknown.rule) == ("store-error", "unknown-event")
    if spans:
        failed = [s for s in otel.spans() if s.name != "run"]
        assert [s.name for s in failed] == ["guardrails.check search", "guardrails.check str"]
        assert [s.status.status_code for s in failed] == [StatusCode.ERROR, StatusCode.ERROR]
        recorded = [dict(s.attributes or {}) for s in failed]
    else:
        recorded = otel.events()
    assert [a["error.type"] for a in recorded] == ["store-error", "unknown-event"]
    assert [a["guardrails.decision.kind"] for a in recorded] == ["guard", "guard"]
    assert recorded[1]["guardrails.event.type"] == "str"


# -- never breaks the guarded run --------------------------------------------------------------


class ExplodingProcessor(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        raise RuntimeError("exporter misconfigured")


def test_an_error_inside_the_listener_is_logged_and_never_raised(
    otel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    otel.tracer_provider.add_span_processor(ExplodingProcessor())
    guard = Guard(Policy([deny("rm", id="never-rm")]), listeners=[otel.listener(spans=True)])

    with caplog.at_level(logging.WARNING, logger="guardrails_plugin.otel"):
        first = guard.check(ToolCall("rm", {"path": "/"}))
        second = guard.check(ToolCall("rm", {"path": "/"}))

    assert first.rule == second.rule == "never-rm"
    assert first.effect is Effect.DENY
    [record, _] = caplog.records
    assert record.name == "guardrails_plugin.otel"
    assert "'never-rm'" in record.getMessage()
    assert record.exc_info is not None
    assert "exporter misconfigured" in str(record.exc_info[1])
    assert sum(otel.counts().values()) == 2  # what could be recorded still was


def test_without_an_sdk_the_guard_decides_as_before() -> None:
    # The default providers are the API's: no-op until an application installs an SDK.
    guard = Guard(Policy([allow("search")]), listeners=[OTelListener(spans=True)])

    assert guard.check(ToolCall("search", {"q": "x"})).allowed
    assert repr(OTelListener()) == "OTelListener(spans=False, reasons=False)"


def test_docstring_example_holds() -> None:
    result = doctest.testmod(guardrails_plugin.otel)
    assert result.failed == 0
    assert result.attempted >= 1


# -- imports -----------------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_package_imports_without_opentelemetry() -> None:
    result = run_python(
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import guardrails_plugin, guardrails_plugin.langchain, guardrails_plugin.langgraph\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_importing_otel_without_opentelemetry_names_the_extra() -> None:
    result = run_python(
        "import sys; sys.modules['opentelemetry'] = None\nimport guardrails_plugin.otel"
    )
    assert result.returncode != 0
    assert "pip install 'guardrails-plugin[otel]'" in result.stderr


# -- end to end: a real agent inside a traced run ----------------------------------------------


@pytest.mark.parametrize("asynchronous", [False, True])
async def test_a_real_agents_decisions_land_on_the_run_span(
    otel: Telemetry, asynchronous: bool
) -> None:
    ran: Ran = []
    tools = [
        recording_tool("search", ran, "query", returns="3 results"),
        recording_tool("delete_file", ran, "path", returns="deleted"),
    ]
    guard = Guard(
        Policy([allow("search", id="search-ok"), deny("delete_file", id="never-delete")]),
        listeners=[otel.listener()],
    )
    model = ScriptedChatModel(
        [
            tool_call("search", id="call_1", query="llamas"),
            tool_call("delete_file", id="call_2", path=f"/data/{SECRET}"),
            "done",
        ]
    )
    agent = create_agent(model, tools=tools, middleware=[GuardMiddleware(guard)], name="helper")
    config: RunnableConfig = {"configurable": {"thread_id": "thread-1"}}

    with otel.tracer.start_as_current_span("run"):
        if asynchronous:
            result = await agent.ainvoke(user("find llamas, then clean up"), config)
        else:
            result = agent.invoke(user("find llamas, then clean up"), config)

    assert ran == [("search", {"query": "llamas"})]
    assert [m.status for m in tool_messages(result)] == ["success", "error"]
    summary = [
        (
            e["guardrails.event.type"],
            e.get("gen_ai.tool.name"),
            e.get("gen_ai.tool.call.id"),
            e["guardrails.decision.effect"],
            e["guardrails.decision.rule"],
        )
        for e in otel.events()
    ]
    assert summary == [
        ("model_call", None, None, "allow", "no-rule"),
        ("tool_call", "search", "call_1", "allow", "search-ok"),
        ("tool_result", "search", "call_1", "allow", "record"),
        ("model_call", None, None, "allow", "no-rule"),
        ("tool_call", "delete_file", "call_2", "deny", "never-delete"),
        ("model_call", None, None, "allow", "no-rule"),
    ]
    for event in otel.events():
        assert event["gen_ai.conversation.id"] == "thread-1"
        assert event["gen_ai.agent.name"] == "helper"
    assert not any(SECRET in v for v in every_attribute_value(otel))
