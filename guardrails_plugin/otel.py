"""OpenTelemetry for the guard's decisions: span events, optional spans, a decision counter.

Built on ``opentelemetry-api`` alone (``pip install 'guardrails-plugin[otel]'``): without an
SDK configured every call is a no-op; with one, decisions show up next to your traces::

    from guardrails_plugin import Guard
    from guardrails_plugin.otel import OTelListener

    guard = Guard(policy, listeners=[OTelListener()])

Each decision becomes a ``guardrails.decision`` event on the span current when the guard
decides (your agent's, graph's or tool's span, if you trace them), and counts once in the
``guardrails.decisions`` counter. ``spans=True`` records a short ``guardrails.check {tool}``
span per decision instead of the event, for runs with no span of their own to hang it on.

Argument values never leave the process: attributes name the tool, the rule, the effect, the
agent and the run, never what the tool was asked to touch. A decision's reason quotes the
arguments it objects to (``path '/etc/shadow' is outside ...``), so it is recorded only when
you ask (``reasons=True``), as the GenAI conventions do for message content.
"""

from __future__ import annotations

import logging
from typing import Final

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.util.types import AttributeValue
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "guardrails_plugin.otel needs OpenTelemetry: pip install 'guardrails-plugin[otel]'"
    ) from exc

from . import __version__
from ._decision import Decision, Effect
from ._events import AgentMessage, Event, ModelCall, ToolCall, ToolResult

__all__ = [
    "DECISION_APPROVER",
    "DECISION_EFFECT",
    "DECISION_KIND",
    "DECISION_REASON",
    "DECISION_RULE",
    "DECISION_SHADOW",
    "DECISION_WOULD",
    "DECISION_WOULD_RULE",
    "DECISIONS_METRIC",
    "EVENT_NAME",
    "EVENT_TYPE",
    "MESSAGE_RECIPIENT",
    "MESSAGE_SENDER",
    "OTelListener",
]

logger = logging.getLogger("guardrails_plugin.otel")

SCOPE: Final = "guardrails_plugin"
"""The instrumentation scope of the tracer and meter."""

# -- attribute names --------------------------------------------------------------------------
# Semantic-convention names, spelled out so that users need opentelemetry-api only (the
# semconv package is not a dependency). Values as in opentelemetry-semantic-conventions
# 0.66b2: gen_ai.* from semconv._incubating.attributes.gen_ai_attributes (development status),
# error.type from semconv.attributes.error_attributes (stable).
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
ERROR_TYPE: Final = "error.type"

# Ours, under the ``guardrails`` namespace (no convention covers policy decisions).
EVENT_NAME: Final = "guardrails.decision"
"""The span event recorded for each decision."""
DECISIONS_METRIC: Final = "guardrails.decisions"
"""The counter of decisions (unit ``{decision}``)."""
DECISION_EFFECT: Final = "guardrails.decision.effect"
"""``allow``, ``deny``, ``ask``, ``modify`` or ``respond``."""
DECISION_RULE: Final = "guardrails.decision.rule"
"""The id of the rule that decided (``default-deny`` when none matched)."""
DECISION_KIND: Final = "guardrails.decision.kind"
"""What the rule is: ``rule``, ``budget``, ``grant``, ``approval``, ``guard``, ``control``,
``cascade``."""
DECISION_REASON: Final = "guardrails.decision.reason"
"""Why, in words; quotes argument values, so recorded only with ``reasons=True``."""
DECISION_APPROVER: Final = "guardrails.decision.approver"
"""Who answered, for a decision a person made."""
DECISION_SHADOW: Final = "guardrails.decision.shadow"
"""Shadow mode: what the policy decided (``deny``, ``ask``) for a call let through anyway."""
DECISION_WOULD: Final = "guardrails.decision.would"
"""Shadow rules: what the policy with them enforced decides (``deny``, ``ask``, ``allow``),
when that differs from the decision."""
DECISION_WOULD_RULE: Final = "guardrails.decision.would_rule"
"""Shadow rules: the rule that would have decided (spans only; metrics carry ``would``)."""
EVENT_TYPE: Final = "guardrails.event.type"
"""What the guard was asked about: ``tool_call``, ``tool_result``, ``agent_message``,
``model_call``."""
MESSAGE_SENDER: Final = "guardrails.message.sender"
MESSAGE_RECIPIENT: Final = "guardrails.message.recipient"

_TYPES: Final[dict[type, str]] = {
    ToolCall: "tool_call",
    ToolResult: "tool_result",
    AgentMessage: "agent_message",
    ModelCall: "model_call",
}
_SPAN_VERB: Final[dict[type, str]] = {ToolResult: "guardrails.record"}
_GRANT = "grant:"
_CACHE_SIZE = 1024

Attributes = dict[str, AttributeValue]
_MetricKey = tuple[str, str, str, str, str | None, str | None, str | None, str | None]


class OTelListener:
    """A guard listener that reports every decision to OpenTelemetry.

    ``tracer_provider`` / ``meter_provider``: the providers to use (default: the global ones,
    set by your OpenTelemetry setup; until one is set, nothing is recorded). ``spans``: record
    one ``guardrails.check {tool}`` span per decision (kind ``INTERNAL``) instead of an event
    on the current span. ``reasons``: add the decision's reason, which may quote argument
    values. A failure in here is logged (logger ``guardrails_plugin.otel``) and never reaches
    the guarded run.

    >>> from guardrails_plugin import Guard, Policy, ToolCall, allow
    >>> guard = Guard(Policy([allow("search")]), listeners=[OTelListener()])
    >>> guard.check(ToolCall("search", {"q": "llamas"})).allowed
    True
    """

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        spans: bool = False,
        reasons: bool = False,
    ) -> None:
        self.spans = spans
        self.reasons = reasons
        self._tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(SCOPE, __version__, meter_provider)
        self._decisions = meter.create_counter(
            DECISIONS_METRIC,
            unit="{decision}",
            description="Decisions made by the guard, by effect, rule, tool and agent.",
        )
        self._metric_attributes: dict[_MetricKey, Attributes] = {}

    def __repr__(self) -> str:
        return f"OTelListener(spans={self.spans}, reasons={self.reasons})"

    def __call__(self, event: Event, decision: Decision) -> None:
        try:
            self._record(event, decision)
        except Exception:
            logger.warning(
                "could not record a %s decision of rule %r to OpenTelemetry",
                decision.effect,
                decision.rule,
                exc_info=True,
            )

    def _record(self, event: Event, decision: Decision) -> None:
        event_type = _TYPES.get(type(event), type(event).__name__)
        tool = decision.tool or _field(event, "tool")
        agent = decision.agent or _field(
            event, "sender" if event_type == "agent_message" else "agent"
        )
        self._count(event_type, decision, tool, agent)
        if self.spans:
            target = tool if tool is not None else event_type
            verb = _SPAN_VERB.get(type(event), "guardrails.check")
            span = self._tracer.start_span(
                f"{verb} {target}",
                kind=SpanKind.INTERNAL,
                attributes=self._attributes(event_type, event, decision, tool, agent),
            )
            if _failed(decision):
                # The guard could not decide (store down, unreadable event) and denied to be
                # safe: an error of the check. An ordinary deny is the check working.
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(EVENT_NAME, self._attributes(event_type, event, decision, tool, agent))

    def _count(
        self, event_type: str, decision: Decision, tool: str | None, agent: str | None
    ) -> None:
        # Attribute dicts are cached per combination: the counter sees few distinct ones, and
        # building one per decision would be much of the cost when no SDK is configured.
        rule = decision.rule
        key = (
            event_type,
            decision.effect.value,
            decision.kind,
            rule,
            tool,
            agent,
            decision.shadow,
            decision.would,
        )
        attributes = self._metric_attributes.get(key)
        if attributes is None:
            if rule.startswith(_GRANT):
                rule = _GRANT + "*"  # one series for run-time grants, not one per grant id
            attributes = {
                EVENT_TYPE: event_type,
                DECISION_EFFECT: decision.effect.value,
                DECISION_KIND: decision.kind,
                DECISION_RULE: rule,
            }
            if tool is not None:
                attributes[GEN_AI_TOOL_NAME] = tool
            if agent is not None:
                attributes[GEN_AI_AGENT_NAME] = agent
            if decision.shadow is not None:
                attributes[DECISION_SHADOW] = decision.shadow
            if decision.would is not None:
                attributes[DECISION_WOULD] = decision.would
            if len(self._metric_attributes) >= _CACHE_SIZE:
                self._metric_attributes.clear()
            self._metric_attributes[key] = attributes
        self._decisions.add(1, attributes)

    def _attributes(
        self, event_type: str, event: Event, decision: Decision, tool: str | None, agent: str | None
    ) -> Attributes:
        attributes: Attributes = {
            EVENT_TYPE: event_type,
            DECISION_EFFECT: decision.effect.value,
            DECISION_RULE: decision.rule,
            DECISION_KIND: decision.kind,
        }
        if tool is not None:
            attributes[GEN_AI_TOOL_NAME] = tool
        if agent is not None:
            attributes[GEN_AI_AGENT_NAME] = agent
        call_id = _field(event, "call_id")
        if call_id is not None:
            attributes[GEN_AI_TOOL_CALL_ID] = call_id
        thread_id = _field(event, "thread_id")
        if thread_id is not None:
            attributes[GEN_AI_CONVERSATION_ID] = thread_id
        if isinstance(event, AgentMessage):
            attributes[MESSAGE_SENDER] = event.sender
            attributes[MESSAGE_RECIPIENT] = event.recipient
        if decision.approver is not None:
            attributes[DECISION_APPROVER] = decision.approver
        if decision.shadow is not None:
            attributes[DECISION_SHADOW] = decision.shadow
        if decision.would is not None:
            attributes[DECISION_WOULD] = decision.would
            attributes[DECISION_WOULD_RULE] = decision.would_rule or ""
        if _failed(decision):
            attributes[ERROR_TYPE] = decision.rule
        if self.reasons:
            attributes[DECISION_REASON] = decision.reason
        return attributes


def _field(event: object, name: str) -> str | None:
    # By name, not by type: the guard also reports what it could not read (a decision of
    # rule "unknown-event" about an object that is no event), and that must be recorded too.
    value = getattr(event, name, None)
    return value if isinstance(value, str) else None


def _failed(decision: Decision) -> bool:
    return decision.kind == "guard" and decision.effect is Effect.DENY
