"""Shadow mode: decided and recorded as usual, enforced never (the kill switch aside).

The oracle is an enforcing guard with the same policy on the same traffic: in shadow mode,
every call it denies or asks about is allowed, and the shadow decision names the effect
and rule the enforcing guard gave.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from fakes import Ran, recording_tool, tool_call, user
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent

from guardrails_plugin import (
    Effect,
    EventKind,
    Guard,
    ModelCall,
    ModelUsage,
    Policy,
    ToolCall,
    ToolResult,
    allow,
    event_kind,
    subscribe,
)
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.policy import Budget
from guardrails_plugin.shadow import Shadow
from guardrails_plugin.store import MemoryStore
from guardrails_plugin.testing import ScriptedChatModel

TOOLS = ("read_file", "send_email", "refund", "delete_file")


@st.composite
def policies(draw: Any) -> Policy:
    rules: list[dict[str, Any]] = []
    for i, name in enumerate(draw(st.lists(st.sampled_from(TOOLS), min_size=1, max_size=5))):
        effect = draw(st.sampled_from(["allow", "ask", "deny"]))
        rule: dict[str, Any] = {"id": f"r{i}", effect: name}
        if name == "refund" and draw(st.booleans()):
            rule["args"] = {"amount": {"number": {"le": 100}}}
        rules.append(rule)
    data: dict[str, Any] = {"rules": rules}
    if draw(st.booleans()):
        data["budgets"] = [{"id": "calls", "calls": draw(st.integers(1, 6)), "per": ["thread"]}]
    return Policy.from_dict(data)


def traffic(seed: int, n: int) -> list[ToolCall]:
    rng = random.Random(seed)
    calls = []
    for i in range(n):
        name = rng.choice(TOOLS)
        args: dict[str, Any] = {"amount": rng.choice([5, 500])} if name == "refund" else {"x": i}
        if rng.random() < 0.05:
            args = {"bad": {1, 2}}  # not JSON: the guard cannot read it
        calls.append(
            ToolCall(name, args, agent=rng.choice(["a", "b"]), thread_id=rng.choice(["t1", "t2"]))
        )
    return calls


@settings(max_examples=60, deadline=None)
@given(policy=policies(), seed=st.integers(0, 10_000), run_async=st.booleans())
def test_shadow_decisions_are_the_enforced_ones_let_through(
    policy: Policy, seed: int, run_async: bool
) -> None:
    enforcing = Guard(policy)
    shadow = Guard(policy, mode="shadow")
    for call in traffic(seed, 40):
        real = enforcing.check(call)
        if run_async:
            import asyncio

            seen = asyncio.run(shadow.acheck(call))
        else:
            seen = shadow.check(call)
        assert seen.allowed, seen
        assert seen.rule == real.rule
        assert (seen.shadow or "allow") == real.effect.value
        if seen.shadow is not None:
            assert seen.reason.startswith(f"shadow mode, not enforced: would {seen.shadow}: ")
            assert real.reason in seen.reason


def test_kills_and_quarantines_are_still_enforced_in_shadow_mode() -> None:
    guard = Guard(Policy.from_dict({"rules": [{"allow": "*"}]}), mode="shadow")
    guard.controls.kill(thread="t1", reason="runaway")
    assert guard.check(ToolCall("read_file", {}, thread_id="t1")).effect is Effect.DENY
    assert guard.check(ModelCall(thread_id="t1")).effect is Effect.DENY
    assert guard.check(ToolCall("read_file", {}, thread_id="t2")).allowed
    guard.controls.quarantine("mole", reason="spreading")
    quarantined = guard.check(ToolCall("read_file", {}, agent="mole", thread_id="t2"))
    assert quarantined.effect is Effect.DENY
    assert quarantined.rule == "quarantine"
    assert quarantined.shadow is None


def test_an_ask_never_reaches_the_approver_in_shadow_mode() -> None:
    asked: list[Any] = []
    guard = Guard(
        Policy.from_dict({"rules": [{"ask": "refund"}]}),
        mode="shadow",
        approver=lambda request: asked.append(request) or False,
    )
    decision = guard.decide(ToolCall("refund", {"amount": 1}))
    assert decision.allowed
    assert decision.shadow == "ask"
    assert asked == []


def test_audit_records_mark_what_would_have_been_denied(tmp_path: Path) -> None:
    with AuditLog(str(tmp_path / "audit.db")) as log:
        guard = Guard(
            Policy.from_dict({"rules": [{"id": "reads", "allow": "read_file"}]}),
            mode="shadow",
            audit=log,
        )
        guard.check(ToolCall("read_file", {"path": "/a"}))
        guard.check(ToolCall("rm", {"path": "/"}))
        records = list(log.iter(kind="decision"))
    assert [(r.tool, r.outcome, r.rule, r.detail.get("shadow")) for r in records] == [
        ("read_file", "allow", "reads", None),
        ("rm", "allow", "default-deny", "deny"),
    ]


def test_a_real_agent_in_shadow_mode_runs_what_the_policy_denies(tmp_path: Path) -> None:
    ran: Ran = []
    tools = [
        recording_tool("read_file", ran, "path", returns="data"),
        recording_tool("delete_file", ran, "path", returns="deleted"),
    ]
    policy = Policy.from_dict(
        {"rules": [{"allow": "read_file"}, {"id": "never-delete", "deny": "delete_file"}]}
    )
    with AuditLog(str(tmp_path / "audit.jsonl")) as log:
        guard = Guard(policy, mode="shadow", audit=log)
        model = ScriptedChatModel(
            [tool_call("read_file", path="/a"), tool_call("delete_file", path="/a"), "done"]
        )
        agent = create_agent(model, tools=tools, middleware=[GuardMiddleware(guard)])
        agent.invoke(user("tidy up"))
        shadowed = [(r.tool, r.rule) for r in log.iter(kind="decision") if r.detail.get("shadow")]
    assert ran == [("read_file", {"path": "/a"}), ("delete_file", {"path": "/a"})]
    assert shadowed == [("delete_file", "never-delete")]


def test_a_candidate_policy_beside_the_enforcing_one(tmp_path: Path) -> None:
    live_policy = Policy.from_dict(
        {"rules": [{"allow": "read_file"}, {"ask": "send_email"}, {"allow": "refund"}]}
    )
    candidate = Policy.from_dict(
        {
            "rules": [
                {"id": "reads", "allow": "read_file"},
                {
                    "id": "small-refunds",
                    "allow": "refund",
                    "args": {"amount": {"number": {"le": 100}}},
                },
            ]
        }
    )
    with AuditLog(str(tmp_path / "shadow.db")) as shadow_log:
        follower = Shadow(Guard(candidate, mode="shadow", store=MemoryStore(), audit=shadow_log))
        live = Guard(live_policy, approver=lambda request: True, listeners=[follower])
        calls = [
            ToolCall("read_file", {"path": "/a"}, call_id="c1"),
            ToolCall("send_email", {"to": "x@y.z"}, call_id="c2"),
            ToolCall("refund", {"amount": 500}, call_id="c3"),
            ToolCall("refund", {"amount": 50}, call_id="c4"),
        ]
        for call in calls:
            assert live.decide(call).allowed  # the live policy lets all four run
            live.record(ToolResult(call.tool, "ok", call_id=call.call_id))
        # a refusal the adapter adds to a call already decided is not a new call
        live.refuse(calls[3], "changed-after-decision", "the call changed")
        live.refuse(calls[2], "held", "a person refused the held call", kind="rule")
        decisions = [(r.tool, r.detail.get("shadow")) for r in shadow_log.iter(kind="decision")]
        results = list(shadow_log.iter(kind="result"))
    assert decisions == [
        ("read_file", None),
        ("send_email", "deny"),
        ("refund", "deny"),
        ("refund", None),
    ]
    assert len(results) == 4
    assert follower.errors == 0


def test_a_failing_shadow_never_breaks_the_live_guard() -> None:
    def boom(event: Any, decision: Any) -> None:
        raise RuntimeError("the shadow's listener broke")

    follower = Shadow(Guard(Policy.from_dict({"rules": []}), mode="shadow", listeners=[boom]))
    live = Guard(Policy.from_dict({"rules": [{"allow": "*"}]}), listeners=[follower])
    assert live.check(ToolCall("read_file", {})).allowed
    assert live.check(ToolCall("write_file", {})).allowed
    assert follower.errors == 2
    assert isinstance(follower.last_error, RuntimeError)


def test_bad_arguments() -> None:
    policy = Policy.from_dict({"rules": []})
    with pytest.raises(ValueError, match="mode must be"):
        Guard(policy, mode="audit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shadow mode"):
        Shadow(Guard(policy))
    assert "errors=0" in repr(Shadow(Guard(policy, mode="shadow")))


def test_a_policy_rule_named_quarantine_is_shadowed_like_any_rule() -> None:
    guard = Guard(Policy.from_dict({"rules": [{"id": "quarantine", "deny": "rm"}]}), mode="shadow")
    decision = guard.check(ToolCall("rm", {"path": "/"}))
    assert decision.allowed
    assert (decision.rule, decision.shadow) == ("quarantine", "deny")


# -- model usage reaches the candidate's model budgets ----------------------------------------

_usage_events = st.lists(
    st.one_of(
        st.builds(lambda t: ModelCall(thread_id=t), st.sampled_from(["t1", "t2"])),
        st.builds(
            lambda i, o, t: ModelUsage("m", i, o, thread_id=t),
            st.integers(0, 40),
            st.integers(0, 40),
            st.sampled_from(["t1", "t2"]),
        ),
    ),
    max_size=25,
)


@settings(max_examples=80, deadline=None)
@given(events=_usage_events, limit=st.integers(1, 120))
def test_a_candidates_model_budget_counts_the_live_usage(events: list[Any], limit: int) -> None:
    """Oracle: an enforcing guard with the candidate policy, fed the same events directly.
    The candidate (behind a live guard without model budgets) would deny exactly the model
    calls the oracle denies, and its report names the budget iff the oracle ever denied."""
    candidate = Policy(
        [allow("*")], budgets=[Budget.tokens(limit, of="model", per="thread", id="model-tokens")]
    )
    oracle = Guard(candidate)
    follower = Shadow(Guard(candidate, mode="shadow"))
    live = Guard(Policy([allow("*")]), listeners=[follower])
    assert live.wants_usage("agent")
    assert not Guard(Policy([allow("*")])).wants_usage("agent")
    denied = 0
    for event in events:
        if isinstance(event, ModelUsage):
            live.record_usage(event)
            oracle.record_usage(event)
            continue
        assert live.check(event).allowed
        expect = oracle.check(event)
        denied += expect.denied
    report = follower.report()
    assert report.would == ({("deny", "model-tokens"): denied} if denied else {})
    assert ("model-tokens" in report.budgets) == bool(denied)
    assert follower.errors == 0


def test_model_usage_reaches_only_listeners_that_ask_for_it() -> None:
    heard: dict[str, list[Any]] = {"plain": [], "calls": [], "usage": []}
    guard = Guard(
        Policy([allow("x")]),
        listeners=[
            lambda e, d: heard["plain"].append(e),
            subscribe(lambda e, d: heard["calls"].append(e), "tool_call"),
            subscribe(lambda e, d: heard["usage"].append((e, d.rule)), EventKind.MODEL_USAGE),
        ],
    )
    usage = ModelUsage("m", 3, 4)
    assert guard.wants_usage("agent")
    guard.record_usage(usage)
    guard.check(ToolCall("x", {}))
    assert heard["usage"] == [(usage, "usage")]
    assert [type(e) for e in heard["plain"]] == [ToolCall]
    assert [type(e) for e in heard["calls"]] == [ToolCall]
    assert event_kind(usage) is EventKind.MODEL_USAGE


def test_a_real_agent_beside_a_candidate_whose_model_budget_runs_out(tmp_path: Path) -> None:
    """The live policy has no model budget; the candidate's (20 model tokens a thread) runs
    out during the run: every tool still runs, and the shadow report and audit log say when."""
    ran: Ran = []
    tools = [recording_tool("read_file", ran, "path", returns="data " * 20)]
    candidate = Policy(
        [allow("read_file")],
        budgets=[Budget.tokens(20, of="model", per="thread", id="model-tokens")],
    )
    with AuditLog(str(tmp_path / "shadow.db")) as shadow_log:
        follower = Shadow(Guard(candidate, mode="shadow", audit=shadow_log))
        live = Guard(Policy([allow("read_file")]), listeners=[follower])
        model = ScriptedChatModel([tool_call("read_file", path=f"/{i}") for i in range(4)] + ["ok"])
        agent = create_agent(model, tools=tools, middleware=[GuardMiddleware(live)])
        agent.invoke(user("read them all, " * 10), {"configurable": {"thread_id": "t1"}})
        stopped = [
            (r.detail.get("shadow"), r.rule)
            for r in shadow_log.iter(kind="decision")
            if r.detail.get("shadow")
        ]
    assert len(ran) == 4
    report = follower.report()
    assert "model-tokens" in report.budgets
    assert report.would[("deny", "model-tokens")] == len(stopped) >= 1
    assert set(stopped) == {("deny", "model-tokens")}
    assert "budget 'model-tokens' would have run out" in str(report)
    assert report.to_dict()["would"] == {"deny": {"model-tokens": len(stopped)}}
