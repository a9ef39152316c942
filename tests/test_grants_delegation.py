"""Delegation never widens: with generated policies (allow, ask and deny rules binding the
delegator, the delegate or both, over different argument regions), generated delegations
and generated calls, a delegated grant gives the delegate no decision more permissive than
the delegator's own for the same call (deny < ask < allow), or ``Guard.delegate`` refuses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import DelegationError, Effect, Guard, Policy, ToolCall
from guardrails_plugin.policy import Rule, allow, ask, deny
from guardrails_plugin.scopes import Number, OneOf, Scope

RANK = {Effect.DENY: 0, Effect.ASK: 1, Effect.ALLOW: 2}
AGENTS = ("alice", "bob", "*")
VALUES = range(0, 7)


@st.composite
def regions(draw: st.DrawFn) -> dict[str, Number]:
    """No constraint, or ``n`` in a range of small integers."""
    if draw(st.booleans()):
        return {}
    lo = draw(st.integers(0, 6))
    hi = draw(st.integers(lo, 6))
    return {"n": Number(ge=lo, le=hi)}


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    make = draw(st.sampled_from((allow, ask, deny)))
    agents = draw(st.sampled_from(AGENTS))
    return make("send", agents=agents, args=draw(regions()))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    found = draw(st.lists(rules(), min_size=1, max_size=5))
    unique = list({r.id: r for r in found}.values())
    closed = draw(st.booleans())
    if draw(st.booleans()):  # a layer below an organisation's policy
        above = draw(st.lists(rules(), max_size=3))
        root = Policy(
            list({r.id: r for r in above}.values()),
            name="org",
            unscoped_args="empty" if closed else "any",
        )
        if closed:
            return Policy(unique, extends=[root], unscoped_args="empty")
        return Policy(unique, extends=[root])
    if closed:
        return Policy(unique, unscoped_args="empty")
    return Policy(unique)


def decide(guard: Guard, agent: str, args: dict[str, Any]) -> Effect:
    return guard.check(ToolCall("send", dict(args), agent=agent)).effect


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies(),
    region=regions(),
    extra=st.booleans(),
    effect=st.sampled_from(("allow", "ask")),
)
def test_a_delegated_grant_never_widens_the_delegators_decision(
    policy: Policy, region: dict[str, Number], extra: bool, effect: Any
) -> None:
    args: dict[str, Scope] = dict(region)
    if extra:  # a delegation may scope an argument its parent leaves free
        args["m"] = OneOf(["x"])
    guard = Guard(policy)
    cases = _all_calls()
    before = {(a, i): decide(guard, a, n) for a in ("alice", "bob") for i, n in enumerate(cases)}
    try:
        guard.delegate("alice", "bob", "send", args=args, effect=effect)
    except DelegationError:
        return
    for i, n in enumerate(cases):
        got = decide(guard, "bob", n)
        mine, theirs = before[("bob", i)], before[("alice", i)]
        assert RANK[got] <= max(RANK[mine], RANK[theirs]), (
            f"bob: {got} on {n} with the grant; alice: {theirs}; bob before: {mine}"
        )


def _all_calls() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{}, {"m": "x"}]
    for v in VALUES:
        out += [{"n": v}, {"n": v, "m": "x"}, {"n": v, "m": ""}]
    return out


def test_an_ask_on_the_delegator_binds_an_allow_delegation() -> None:
    policy = Policy(
        [
            allow("send", agents="alice"),
            ask("send", agents="alice", args={"n": Number(ge=5)}),
        ]
    )
    guard = Guard(policy)
    with pytest.raises(DelegationError, match="ask rule"):
        guard.delegate("alice", "bob", "send")
    child = guard.delegate("alice", "bob", "send", effect="ask")  # the ask travels with it
    assert child.effect == "ask"
    assert decide(guard, "bob", {"n": 6}) is Effect.ASK


def test_a_delegation_passes_no_layer_the_delegator_cannot() -> None:
    org = Policy([allow("send", args={"n": Number(le=3)})], name="org")
    team = Policy([allow("send", agents="alice")], extends=[org], name="team")
    guard = Guard(team)
    assert decide(guard, "alice", {"n": 5}) is Effect.DENY  # the root layer refuses it
    with pytest.raises(DelegationError, match="layer 'org'"):
        guard.delegate("alice", "bob", "send")
    guard.delegate("alice", "bob", "send", args={"n": Number(le=2)})
    assert decide(guard, "bob", {"n": 2}) is Effect.ALLOW
    assert decide(guard, "bob", {"n": 5}) is Effect.DENY


def test_a_rule_that_waits_for_taint_is_not_delegated() -> None:
    # the grant would carry no taint condition: bob would be allowed before any taint
    policy = Policy([Rule("allow", ("send",), agents=("alice",), tainted_by=("fetch",))])
    guard = Guard(policy)
    assert decide(guard, "alice", {}) is Effect.DENY
    with pytest.raises(DelegationError, match="tainted the run"):
        guard.delegate("alice", "bob", "send")
