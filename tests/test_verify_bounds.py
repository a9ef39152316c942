"""Bounds over call sequences (budgets encoded as bounds) and delegation properties.

Every refutation is a sequence of calls, or a delegation and a call, replayed here through a
fresh ``Guard`` in order: each call must be decided as the verifier reported.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

from guardrails_plugin import (
    Budget,
    DelegationError,
    Guard,
    Policy,
    ToolCall,
    allow,
    ask,
    deny,
    rate,
)
from guardrails_plugin.scopes import Emails, Number, OneOf, Pattern
from guardrails_plugin.verify import PropertyError, Result, Verifier, parse, replay_sequence


def _replays(policy: Policy, result: Result) -> None:
    """The counterexample, replayed through the engine, is decided as reported."""
    cex = result.counterexample
    assert cex is not None
    if cex.sequence:  # the delegations the sequence uses made first
        got = replay_sequence(policy, cex.sequence, cex.delegations)
        wanted = [c.effect for c in cex.sequence for _ in range(c.times)]
        assert [g for g, _ in got] == wanted
        assert all(e != "deny" for e in wanted)
        assert got[-1][0] == cex.effect
        return
    guard = Guard(policy)
    for d in cex.delegations:
        guard.delegate(d.delegator, d.agent, list(d.tools), args=dict(d.args), effect=d.effect)  # type: ignore[arg-type]
    assert str(guard.check(cex.call()).effect) == cex.effect != "deny"


SHARED = Policy(
    [allow("send_email"), allow("refund", args={"amount": Number(ge=0, le=1000)})],
    budgets=[
        Budget.calls(20, tools="send_email", per="thread"),  # shared by every agent
        Budget.sum("amount", 3000, tools="refund", per=("agent",)),
    ],
)


@pytest.mark.parametrize(
    ("prop", "status"),
    [
        ("no agent calls send_email more than 20 times per thread", "proven"),
        ("agents together never call send_email more than 20 times per thread", "proven"),
        ("no agent calls send_email more than 20 times in total", "refuted"),
        ("no agent calls send_email more than 3 times per run", "refuted"),
        ("agent billing never calls refund with total amount > 3000 in total", "proven"),
        ("agent billing never calls refund with total amount >= 3000 in total", "refuted"),
        ("agents together never call refund with total amount > 3000 in total", "refuted"),
    ],
)
def test_a_budget_shared_by_agents_bounds_them_together(prop: str, status: str) -> None:
    result = Verifier(SHARED).check(prop)
    assert result.status == status, str(result)
    if status == "refuted":
        _replays(SHARED, result)


def test_a_budget_per_agent_does_not_bound_agents_together() -> None:
    policy = Policy(
        [allow("send_email")], budgets=[Budget.calls(2, tools="send_email", per=("run", "agent"))]
    )
    v = Verifier(policy)
    assert v.check("no agent calls send_email more than 2 times per run").holds
    result = v.check("agents together never call send_email more than 2 times per run")
    assert result.status == "refuted"
    _replays(policy, result)
    agents = {c.agent for c in result.counterexample.sequence}  # type: ignore[union-attr]
    assert len(agents) >= 2


def test_a_rate_bounds_speed_not_totals() -> None:
    policy = Policy([allow("search")], budgets=[rate(5, seconds=60, tools="search")])
    result = Verifier(policy).check("no agent calls search more than 5 times per run")
    assert result.status == "refuted"
    _replays(policy, result)  # the replay's clock spaces the calls past the window
    assert any("window" in a for a in result.assumptions)


def test_a_sum_budget_fails_closed_on_calls_without_a_number() -> None:
    policy = Policy(
        [allow("refund")], budgets=[Budget.sum("amount", 10, tools="refund", per="run")]
    )
    v = Verifier(policy)
    # a refund without an amount is denied by the budget, so the total bounds the count
    result = v.check("no agent calls refund with amount = 0 more than 3 times per run")
    assert result.status == "refuted"  # zero amounts cost nothing
    _replays(policy, result)
    assert v.check("no agent calls refund with amount >= 4 more than 2 times per run").holds


def test_a_distinct_budget_lets_one_value_repeat() -> None:
    policy = Policy(
        [allow("send_email")],
        budgets=[Budget.distinct("to", 1, tools="send_email", per="run")],
    )
    v = Verifier(policy)
    result = v.check("no agent calls send_email more than 4 times per run")
    assert result.status == "refuted"
    _replays(policy, result)
    # one call repeated: the same value (or an empty list, which adds none)
    assert len(result.counterexample.sequence) == 1  # type: ignore[union-attr]


def test_per_tool_budgets_are_dodged_by_other_tools_a_glob_names() -> None:
    policy = Policy(
        [allow("delete_*")], budgets=[Budget.calls(1, tools="delete_*", per=("run", "tool"))]
    )
    result = Verifier(policy).check("no agent calls delete_* more than 2 times per run")
    assert result.status == "refuted"
    _replays(policy, result)
    tools = {c.tool for c in result.counterexample.sequence}  # type: ignore[union-attr]
    assert len(tools) == 3


def test_counterexample_agents_are_names_the_policy_lists() -> None:
    policy = Policy([allow("send_email", agents=["mailer", "billing"])])
    result = Verifier(policy).check("no agent calls send_email more than 1 times per run")
    assert result.status == "refuted"
    assert {c.agent for c in result.counterexample.sequence} <= {"mailer", "billing"}  # type: ignore[union-attr]
    single = Verifier(Policy([allow("send_email")])).check("no agent calls send_email")
    assert single.counterexample is not None
    assert single.counterexample.agent.isidentifier()


# -- delegation ---------------------------------------------------------------------------


def test_an_ask_that_binds_the_delegator_binds_the_delegation() -> None:
    """An ask rule binding alice, not bob, keeps an ``allow`` delegation from alice to bob
    refused: the grant she can give is ``ask``, so bob is asked too; with the ask binding
    bob as well, an ``allow`` delegation is accepted and the ask still asks."""
    policy = Policy([allow("send_email", agents=["alice"]), ask("send_email", agents=["alice"])])
    v = Verifier(policy)
    assert v.check("agent alice never calls send_email without an ask").holds
    assert v.check("no delegation lets agent bob call send_email without an ask").holds
    result = v.check("no delegation lets agent bob call send_email")
    assert result.status == "refuted"
    _replays(policy, result)
    (step,) = result.counterexample.delegations  # type: ignore[union-attr]
    assert (step.delegator, step.agent, step.effect) == ("alice", "bob", "ask")
    with pytest.raises(DelegationError, match="ask rule"):
        Guard(policy).delegate("alice", "bob", "send_email")
    both = Policy([allow("send_email", agents=["alice"]), ask("send_email", agents=["*"])])
    assert Verifier(both).check("no delegation lets agent bob call send_email without an ask").holds


def test_a_delegation_passes_no_layer_its_holder_cannot() -> None:
    """A grant stands in for every layer, so ``Guard.delegate`` refuses a delegation from a
    team rule the organisation's layer does not cover; the encoding asks the same."""
    org = Policy([allow("send", args={"n": Number(le=3)})], name="org")
    team = Policy([allow("send", agents="alice")], extends=[org], name="team")
    v = Verifier(team)
    assert v.check("no delegation lets agent bob call send with n > 3").holds
    with pytest.raises(DelegationError, match="layer 'org'"):
        Guard(team).delegate("alice", "bob", "send")
    wide = Policy([allow("send", agents="alice", widen=True)], extends=[org], name="team")
    result = Verifier(wide).check("no delegation lets agent bob call send with n > 3")
    assert result.status == "refuted"  # a widen rule stands in for the layer above
    _replays(wide, result)


def test_a_delegation_narrowed_to_fit_every_layer_is_found() -> None:
    """Each layer scopes a different argument: no rule covers another's region, yet a
    delegation within both (amount and recipient scoped) passes both layers; the verifier
    finds it and the counterexample's delegation, narrower than its root rule, replays."""
    org = Policy(
        [allow("pay", agents="alice", args={"amount": Number(lt=100)}, id="org-pay")], name="org"
    )
    team = Policy(
        [allow("pay", agents="alice", args={"to": Emails(domains=["corp.com"])}, id="team-pay")],
        name="team",
        extends=[org],
    )
    v = Verifier(team)
    result = v.check("no delegation lets agent bob call pay")
    assert result.status == "refuted"
    _replays(team, result)
    assert result.counterexample is not None
    (d,) = result.counterexample.delegations
    assert set(d.args) == {"amount", "to"}
    assert v.check("no delegation lets agent bob call pay with amount >= 100").holds
    assert v.check("no delegation lets agent bob call pay with to outside corp.com").holds
    # ranges of two layers on one argument: their common range is delegated
    both = Policy(
        [allow("pay", agents="alice", args={"amount": Number(gt=10)})], name="t", extends=[org]
    )
    result = Verifier(both).check("no delegation lets agent bob call pay")
    assert result.status == "refuted"
    _replays(both, result)
    assert Verifier(both).check("no delegation lets agent bob call pay with amount <= 10").holds


def test_a_layer_fit_no_built_in_scope_expresses_is_unknown_not_proven() -> None:
    """Two patterns on one argument: a call both accept exists, but no built-in scope is
    within both (patterns compare by their text), so ``Guard.delegate`` refuses the
    delegations tried; a custom scope could be within both, so the answer is unknown."""
    org = Policy([allow("pay", agents="alice", args={"code": Pattern("a.*")})], name="org")
    team = Policy(
        [allow("pay", agents="alice", args={"code": Pattern(".*b")})], name="team", extends=[org]
    )
    result = Verifier(team).check("no delegation lets agent bob call pay")
    assert result.status == "unknown"
    assert "built-in kinds" in result.detail
    for scope in [Pattern("a.*"), Pattern(".*b"), Pattern("ab")]:
        with pytest.raises(DelegationError):
            Guard(team).delegate("alice", "bob", "pay", args={"code": scope})


def test_a_deny_that_binds_the_delegator_must_bind_the_delegate() -> None:
    policy = Policy(
        [
            allow("refund", agents=["billing"], args={"amount": Number(le=1000)}),
            deny("refund", agents=["billing"], args={"amount": Number(gt=500)}),
        ]
    )
    v = Verifier(policy)
    assert v.check("no delegation lets agent bob call refund with amount > 500").holds
    result = v.check("no delegation lets agent bob call refund")
    # the guard refuses the delegation itself: the deny binds billing, not bob
    with pytest.raises(DelegationError):
        Guard(policy).delegate("billing", "bob", "refund", args={"amount": Number(le=100)})
    assert result.status == "proven"


def test_delegation_never_widens_a_scope() -> None:
    policy = Policy([allow("refund", agents=["billing"], args={"amount": Number(le=1000)})])
    v = Verifier(policy)
    assert v.check("no delegation lets agent bob call refund with amount > 1000").holds
    result = v.check("no delegation lets agent bob call refund with amount > 999")
    assert result.status == "refuted"
    _replays(policy, result)


def test_a_grant_expiring_mid_sequence_takes_its_delegations_with_it() -> None:
    """The question is about grants in force: expiry only narrows. A delegated grant stops
    with its parent's expiry, in the engine the verifier describes."""
    now = [0.0]
    policy = Policy([allow("refund", agents=["billing"], args={"mode": OneOf(["test"])})])
    guard = Guard(policy, clock=lambda: now[0])
    first = guard.delegate("billing", "alice", "refund", args={"mode": OneOf(["test"])}, ttl=10)
    guard.delegate("alice", "bob", "refund", args={"mode": OneOf(["test"])}, ttl=5)
    call = ToolCall("refund", {"mode": "test"}, agent="bob")
    assert str(guard.check(call).effect) == "allow"
    now[0] = 6.0  # bob's grant expired mid-sequence
    assert str(guard.check(call).effect) == "deny"
    assert str(guard.check(ToolCall("refund", {"mode": "test"}, agent="alice")).effect) == "allow"
    with pytest.raises(DelegationError):  # no later expiry than the parent's
        guard.delegate("alice", "carol", "refund", args={"mode": OneOf(["test"])}, ttl=100)
    guard.revoke(first)
    assert str(guard.check(ToolCall("refund", {"mode": "test"}, agent="alice")).effect) == "deny"
    result = Verifier(policy).check("no delegation lets agent bob call refund with mode = test")
    assert result.status == "refuted"
    _replays(policy, result)


@pytest.mark.parametrize(
    "text",
    [
        "no agent calls x more than y times",
        "no agent calls x per run",
        "every call of x with total amount > 3 is denied",
        "agents together never call x",
        "no delegation lets agent call x",
        "no delegation lets any agent call x with total n > 1",
        "no agent calls x more than -1 times",
    ],
)
def test_bound_and_delegation_errors_say_where(text: str) -> None:
    with pytest.raises(PropertyError, match="cannot read"):
        parse(text)


def test_results_name_what_is_exact() -> None:
    v = Verifier(SHARED)
    r: Any = v.check("agent billing never calls refund with total amount > 3000 in total")
    assert "alone bounds" in r.summary()
    loose = Verifier(Policy([allow("pay", args={"n": Number(ge=1, le=5)})], budgets=[]))
    r = loose.check("no agent calls pay with total n > 1000 per run")
    assert r.status == "refuted"
    _replays(loose.policy, r)


def test_deep_lint_names_rules_no_delegation_of_which_is_accepted() -> None:
    from guardrails_plugin.verify import deep_lint

    policy = Policy(
        [
            allow("send_report", agents=["auditor"], args={"mode": OneOf(["x"])}, id="reports"),
            deny("send_report", agents=["auditor"], args={"mode": OneOf(["y"])}, id="no-y"),
            allow("read", agents=["a*"], id="reading"),
            deny("read", agents=["a*"], args={"mode": OneOf(["secret"])}, id="no-secret"),
        ]
    )
    found = [w for w in deep_lint(policy) if "can never be delegated" in w]
    assert found == [
        "rule 'reports' can never be delegated: a deny rule binding the agents that hold it "
        "binds no other agent (Guard.delegate refuses every delegation)"
    ]
    for taker in ["bob", "auditor2", "a", "*"]:
        with pytest.raises(DelegationError):
            Guard(policy).delegate("auditor", taker, "send_report", args={"mode": OneOf(["x"])})
    # the one not flagged is accepted: the deny binds every holder's peers too
    Guard(policy).delegate("alice", "ab", "read")


@st.composite
def _layered_rules(draw: st.DrawFn) -> Policy:
    """Two or three layers of allow, ask and deny rules over two tools, a glob and a few
    agents (some ``widen``, some scoped), so that a layer often speaks for an agent about a
    tool and permits it nothing."""
    below: list[Policy] = []
    for depth in range(draw(st.integers(2, 3))):
        rules = []
        for i in range(draw(st.integers(0, 3))):
            make = draw(st.sampled_from([allow, allow, ask, deny]))
            extra: dict[str, Any] = {"id": f"l{depth}r{i}"}
            if make is not deny and depth and draw(st.integers(0, 3)) == 3:
                extra["widen"] = True
            if draw(st.booleans()):
                extra["args"] = {"n": Number(le=draw(st.integers(0, 5)))}
            rules.append(
                make(
                    draw(st.sampled_from(["pay", "send", "p*", "*"])),
                    agents=draw(st.sampled_from(["alice", "bob", "a*", "*"])),
                    **extra,
                )
            )
        below.append(Policy(rules, extends=below[-1:], name=f"layer{depth}"))
    return below[-1]


def test_deep_lint_names_rules_a_layer_makes_undelegable() -> None:
    """A rule a layer above never lets its holders use (and no widen rule below stands in
    for) is reported, and ``Guard.delegate`` refuses every delegation of it: every holder
    among names of each class, every taker, every tool it names, its whole region or none."""
    from guardrails_plugin.verify._delegation import undelegable

    seen = {"flagged": 0, "tried": 0}

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(_layered_rules())
    def run(policy: Policy) -> None:
        flagged = [w for w in undelegable(policy) if "layer" in w]
        by_id = {r.id: r for r in policy.compiled_rules}
        for warning in flagged:
            rule = by_id[warning.split("'")[1]]
            seen["flagged"] += 1
            for giver in ["alice", "bob", "ax", "zed"]:
                if not rule.for_agent(giver):
                    continue
                for taker, tool, args in itertools.product(
                    ["bob", "carol", "alice"],
                    ["pay", "send", "px", *rule.tools],
                    [{}, dict(rule.args), {"n": Number(le=-1)}],
                ):
                    if taker == giver or not rule.about(giver, tool):
                        continue
                    seen["tried"] += 1
                    with pytest.raises(DelegationError):
                        Guard(policy).delegate(giver, taker, tool, args=args, effect="ask")

    run()
    print(f"layer-undelegable: {seen}")
    assert seen["flagged"] >= 5
    assert seen["tried"] >= 20


def test_deep_lint_reports_a_rule_the_root_layer_never_permits() -> None:
    from guardrails_plugin.verify import deep_lint

    org = Policy([allow("send", agents="bob")], name="org")
    team = Policy(
        [allow("pay", agents="alice", id="t-pay"), allow("send", agents="alice", id="t-send")],
        extends=[org],
        name="team",
    )
    found = [w for w in deep_lint(team) if "can never be delegated" in w]
    assert len(found) == 2
    assert all("layer 'org'" in w for w in found)
    with pytest.raises(DelegationError, match="layer 'org'"):
        Guard(team).delegate("alice", "bob", "pay")
    widened = Policy(
        [allow("pay", agents="alice", id="t-pay"), allow("send", agents="alice", widen=True)],
        extends=[org],
        name="team",
    )
    found = [w for w in deep_lint(widened) if "can never be delegated" in w]
    assert len(found) == 1
    assert "'t-pay'" in found[0]
    Guard(widened).delegate("alice", "bob", "send")  # the widen rule stands in for org


_TOOLS = ["refund_a", "refund_b", "refund_ab", "refund_*", "refund_a*", "*_b", "send", "*"]
_GLOBS = ["refund_*", "refund_a*", "*_b", "*"]


@st.composite
def _glob_budget_policies(draw: st.DrawFn) -> tuple[Policy, str]:
    """A policy of a few rules over tool names and overlapping globs, per-tool call budgets,
    and a count bound over a glob (what needs several tools of one glob to refute)."""
    rules = []
    for i in range(draw(st.integers(1, 4))):
        make = draw(st.sampled_from([allow, allow, ask, deny]))
        tools = draw(st.lists(st.sampled_from(_TOOLS[:-1]), min_size=1, max_size=2, unique=True))
        rules.append(make(tools, id=f"r{i}"))
    budgets = [
        Budget.calls(
            draw(st.integers(1, 3)),
            tools=draw(st.sampled_from(_TOOLS)),
            per=draw(st.sampled_from([("run", "tool"), ("tool",), ("run",)])),
            id=f"b{j}",
        )
        for j in range(draw(st.integers(1, 2)))
    ]
    prop = f"no agent calls {draw(st.sampled_from(_GLOBS))} more than {draw(st.integers(2, 6))} "
    return Policy(rules, budgets=budgets), prop + "times per run"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_glob_budget_policies())
def test_tool_representatives_answer_as_any_tool_names(case: tuple[Policy, str]) -> None:
    """Searching tool names among representatives proves and refutes exactly what searching
    every string does (where that search answers at all); each refutation replays through
    the engine."""
    from guardrails_plugin.verify._sequences import check_bounded

    policy, prop = case
    fast = check_bounded(Verifier(policy), parse(prop))
    free = check_bounded(Verifier(policy), parse(prop), representatives=False)
    assert fast.status != "unknown", fast.summary()
    if free.status != "unknown":  # the string search may give up where representatives answer
        assert fast.status == free.status, (fast.summary(), free.summary())
    if fast.status == "refuted":
        _replays(policy, fast)
