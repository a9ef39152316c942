"""Shadow rules: a rule marked ``shadow`` is decided and marked, never enforced.

Two oracles, both built from the policy's plain data without the code under test: the
enforced decision equals that of the policy with its shadow rules removed, and the mark
(``would``) equals what the policy with its shadow rules enforced decides, whenever that
differs. Flat and layered policies, and a guard with budgets and an audit log.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import (
    DelegationError,
    Effect,
    Guard,
    Policy,
    PolicyError,
    PolicyFileError,
    ToolCall,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.otel import DECISION_WOULD, DECISION_WOULD_RULE
from guardrails_plugin.policy import allow, ask, deny

TOOLS = ["a", "b", "c"]
AGENTS = ["x", "y"]


@st.composite
def rule_data(draw: st.DrawFn, prefix: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 5))):
        effect = draw(st.sampled_from(["allow", "ask", "deny"]))
        rule: dict[str, Any] = {"id": f"{prefix}{i}", effect: draw(st.sampled_from([*TOOLS, "*"]))}
        agents = draw(st.sampled_from([None, "x", "y"]))
        if agents is not None:
            rule["agents"] = agents
        if draw(st.booleans()):
            lo, hi = draw(st.integers(0, 5)), draw(st.integers(5, 10))
            rule["args"] = {"n": {"number": {"ge": lo, "le": hi}}}
        if draw(st.booleans()):
            rule["shadow"] = True
        out.append(rule)
    return out


@st.composite
def policy_data(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "child", "rules": draw(rule_data("r"))}
    if draw(st.booleans()):  # a parent layer, which may hold shadow rules too
        data["extends"] = [{"name": "parent", "rules": draw(rule_data("p"))}]
    if draw(st.booleans()):
        data["budgets"] = [{"id": "calls", "calls": draw(st.integers(1, 4)), "per": ["thread"]}]
    return data


def _map_rules(data: dict[str, Any], change: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    out["rules"] = [r for r in map(change, out["rules"]) if r is not None]
    out["extends"] = [_map_rules(p, change) for p in out.get("extends", [])]
    return out


def removed(data: dict[str, Any]) -> Policy:
    """The policy without its shadow rules."""
    return Policy.from_dict(_map_rules(data, lambda r: None if r.get("shadow") else r))


def enforced(data: dict[str, Any]) -> Policy:
    """The policy with its shadow rules enforced like any rule."""
    return Policy.from_dict(
        _map_rules(data, lambda r: {k: v for k, v in r.items() if k != "shadow"})
    )


calls = st.builds(
    lambda tool, agent, n, thread: ToolCall(
        tool, {} if n is None else {"n": n}, agent=agent, thread_id=thread
    ),
    st.sampled_from(TOOLS),
    st.sampled_from(AGENTS),
    st.one_of(st.none(), st.integers(-2, 12), st.just("7")),
    st.sampled_from(["t1", "t2"]),
)


@settings(max_examples=300, deadline=None)
@given(data=policy_data(), batch=st.lists(calls, min_size=1, max_size=8))
def test_a_shadow_rule_is_marked_never_enforced(
    data: dict[str, Any], batch: list[ToolCall]
) -> None:
    policy = Policy.from_dict(data)
    without, full = removed(data), enforced(data)
    for call in batch:
        got = policy.evaluate(call)
        expect = without.evaluate(call)
        assert (got.effect, got.rule, got.reason) == (expect.effect, expect.rule, expect.reason)
        would = full.evaluate(call)
        if would.effect is got.effect:
            assert (got.would, got.would_rule) == (None, None), (call, data)
        else:
            assert (got.would, got.would_rule) == (str(would.effect), would.rule), (call, data)
        assert policy.visible(call.agent, call.tool) == without.visible(call.agent, call.tool)


@settings(max_examples=60, deadline=None)
@given(data=policy_data(), batch=st.lists(calls, min_size=1, max_size=12))
def test_a_guard_enforces_and_spends_as_without_its_shadow_rules(
    data: dict[str, Any], batch: list[ToolCall]
) -> None:
    """Budgets too: a guard with shadow rules spends exactly what the guard without them
    spends, and the marks are those of the enforced policy's rules."""
    policy = Policy.from_dict(data)
    with_shadow = Guard(policy)
    oracle = Guard(removed(data))
    for call in batch:
        got, expect = with_shadow.check(call), oracle.check(call)
        assert (got.effect, got.rule, got.kind) == (expect.effect, expect.rule, expect.kind)
        if got.kind == "rule":  # decided by the rules: marked as the rules mark it
            rules_say = policy.evaluate(call)
            assert (got.would, got.would_rule) == (rules_say.would, rules_say.would_rule)
        else:  # a budget's deny, or the guard's own: no rule's mark
            assert got.would is None


def test_precedence_in_words() -> None:
    policy = Policy(
        [
            allow("read"),
            deny("read", args=None, shadow=True, reason="reads are going away"),
            deny("wipe"),
            allow("wipe", shadow=True),
            allow("mail"),
            ask("mail", shadow=True),
            allow("fetch", shadow=True),
        ]
    )
    read = policy.evaluate(ToolCall("read", {}))
    assert (read.effect, read.would, read.would_rule) == (Effect.ALLOW, "deny", "shadow deny read")
    wipe = policy.evaluate(ToolCall("wipe", {}))  # a deny rule still wins: nothing to mark
    assert (wipe.effect, wipe.would) == (Effect.DENY, None)
    mail = policy.evaluate(ToolCall("mail", {}))
    assert (mail.effect, mail.would) == (Effect.ALLOW, "ask")
    fetch = policy.evaluate(ToolCall("fetch", {}))  # a shadow allow opens nothing
    assert (fetch.effect, fetch.rule, fetch.would) == (Effect.DENY, "default-deny", "allow")
    assert not policy.visible("agent", "fetch")
    assert policy.shadow_rules == tuple(r for r in policy.rules if r.shadow)


def test_shadow_ids_rules_and_files_round_trip(tmp_path: Path) -> None:
    policy = Policy([deny("x"), deny("x", shadow=True), allow("y", agents="a", shadow=True)])
    assert [r.id for r in policy.rules] == ["deny x", "shadow deny x", "shadow allow y for a"]
    assert "shadow=True" in repr(policy.rules[1])
    data = policy.to_dict()
    assert data["rules"][1] == {"id": "shadow deny x", "deny": "x", "shadow": True}
    assert Policy.from_dict(data) == policy
    assert Policy.from_dict(data).to_dict() == data
    path = tmp_path / "p.yaml"
    path.write_text("rules:\n  - {allow: y}\n  - {deny: y, shadow: true}\n")
    loaded = Policy.from_yaml(str(path))
    assert loaded.evaluate(ToolCall("y", {})).would == "deny"
    assert Policy.from_dict(loaded.to_dict()) == loaded
    assert policy.digest != Policy([deny("x"), deny("x", id="shadow deny x")]).digest
    path.write_text("rules:\n  - {deny: y, shadow: 'yes'}\n")
    with pytest.raises(PolicyFileError, match=r"rules\[0\]: shadow: expected true or false"):
        Policy.from_yaml(str(path))
    with pytest.raises(PolicyError, match="'shadow' must be true or false"):
        deny("y", shadow="yes")  # type: ignore[arg-type]


def test_the_mark_reaches_the_audit_log_otel_and_explain(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from guardrails_plugin.otel import OTelListener

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    audit = AuditLog(str(tmp_path / "audit.db"))
    policy = Policy([allow("rm"), deny("rm", shadow=True, id="no-rm")])
    listener = OTelListener(tracer_provider=provider)
    guard = Guard(policy, audit=audit, listeners=[listener])
    with provider.get_tracer("t").start_as_current_span("run"):
        d = guard.check(ToolCall("rm", {"path": "/x"}))
    assert (d.effect, d.would, d.would_rule) == (Effect.ALLOW, "deny", "no-rm")
    (record,) = list(audit.iter(kind="decision"))
    assert (record.outcome, record.detail["would"], record.detail["would_rule"]) == (
        "allow",
        "deny",
        "no-rm",
    )
    (span,) = exporter.get_finished_spans()
    (event,) = span.events
    assert event.attributes is not None
    assert (event.attributes[DECISION_WOULD], event.attributes[DECISION_WOULD_RULE]) == (
        "deny",
        "no-rm",
    )
    steps = [str(s) for s in guard.explain(ToolCall("rm", {})).steps]
    assert any(s.startswith("shadow 'no-rm' would deny (not enforced)") for s in steps), steps


def test_in_a_shadow_guard_both_marks_stand() -> None:
    """A whole guard in shadow mode over a policy with a shadow rule: the call runs, the
    policy's own decision is ``shadow`` and the shadow rule's is ``would``."""
    policy = Policy([ask("pay"), deny("pay", shadow=True, id="no-pay")])
    d = Guard(policy, mode="shadow").check(ToolCall("pay", {}))
    assert (d.effect, d.shadow, d.would, d.would_rule) == (Effect.ALLOW, "ask", "deny", "no-pay")


def test_shadow_rules_neither_bind_nor_permit_a_delegation() -> None:
    policy = Policy(
        [
            allow("read", agents="lead"),
            deny("read", agents="lead", shadow=True, id="no-lead-reads"),
            allow("write", agents="lead", shadow=True, id="lead-writes-soon"),
        ]
    )
    guard = Guard(policy)
    child = guard.delegate("lead", "helper", "read")  # the shadow deny does not bind it
    assert child.parent == "rule:allow read for lead"
    assert guard.check(ToolCall("read", {}, agent="helper")).allowed
    with pytest.raises(DelegationError):
        guard.delegate("lead", "helper", "write")  # a shadow allow permits nothing


def test_lint_names_shadow_rules_and_checks_only_the_enforced_ones() -> None:
    policy = Policy([allow("read"), deny("read", shadow=True, id="no-reads")])
    assert policy.lint() == [
        "rule 'no-reads' has shadow: true: it is decided and marked, never enforced"
    ]
    assert any("can never apply" in w for w in Policy([allow("read"), deny("read")]).lint())
