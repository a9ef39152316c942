"""A delegation never multiplies a budget: a call made under a delegated grant is charged to
the delegate's own budgets and to every budget that would have charged the same call by each
delegator up the grant's chain, so the delegator and everyone it delegated to together do no
more than the delegator could.

The property test generates policies (an allow or ask rule for alice over a range of ``n``,
sometimes an own rule for bob over another range), 1-3 budgets (calls, sum of ``n``, distinct
``n``; for all agents or one; per run, agent and/or tool), delegations alice -> bob and then
alice or bob -> carol (a grant delegated twice, a chain) over generated ranges, and a
sequence of calls by the three agents, each ask approved or rejected. Two oracles:

- attenuation, independent of how charging is done: for every delegator and every budget
  that covers it, the calls it made itself plus the calls made under grants it delegated
  (directly or down the chain) stay within the budget's limit;
- a reference model of the charging (the rule decisions are the engine's, the budget
  arithmetic is the model's): every call's effect agrees, so no call the delegate's own
  authority permits is charged to a delegator, and nothing is denied but by a budget that
  is really full.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import Approval, Budget, DelegationError, Effect, Guard, Policy, ToolCall
from guardrails_plugin.policy import allow, ask
from guardrails_plugin.policy._budgets import Measure
from guardrails_plugin.scopes import Number

DELEGATES = ("bob", "carol")
AGENTS = ("alice", *DELEGATES)


@st.composite
def ranges(draw: st.DrawFn) -> dict[str, Number]:
    if draw(st.integers(0, 3)) == 0:
        return {}
    lo = draw(st.integers(0, 5))
    return {"n": Number(ge=lo, le=draw(st.integers(lo, 5)))}


@st.composite
def budgets(draw: st.DrawFn, i: int) -> Budget:
    measure = draw(st.sampled_from(("calls", "sum", "distinct")))
    who = draw(st.sampled_from(("*", "alice", "alice", "bob", "carol")))
    per = draw(st.lists(st.sampled_from(("run", "agent", "tool")), min_size=1, unique=True))
    common: dict[str, Any] = {"tools": "send", "agents": who, "per": per, "id": f"b{i}"}
    if measure == "calls":
        return Budget.calls(draw(st.integers(0, 4)), **common)
    if measure == "sum":
        return Budget.sum("n", draw(st.integers(0, 12)), **common)
    return Budget.distinct("n", draw(st.integers(0, 3)), **common)


@dataclass(frozen=True)
class Case:
    policy: Policy
    delegations: tuple[tuple[str, str, dict[str, Number], str], ...]
    calls: tuple[tuple[str, int, bool], ...]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rules = [draw(st.sampled_from((allow, ask)))("send", agents="alice", args=draw(ranges()))]
    if draw(st.booleans()):  # bob's own authority over part of the calls
        rules.append(allow("send", agents="bob", args=draw(ranges())))
    found = [draw(budgets(i)) for i in range(draw(st.integers(1, 3)))]
    policy = Policy(rules, budgets=found)
    effects = st.sampled_from(("allow", "ask"))
    delegations = [("alice", "bob", draw(ranges()), draw(effects))]
    if draw(st.booleans()):
        giver = draw(st.sampled_from(("alice", "bob")))
        delegations.append((giver, "carol", draw(ranges()), draw(effects)))
    calls = draw(
        st.lists(st.tuples(st.sampled_from(AGENTS), st.integers(0, 6), st.booleans()), max_size=14)
    )
    return Case(policy, tuple(delegations), tuple(calls))


def _delegate(guard: Guard, case: Case) -> dict[str, tuple[str, ...]]:
    """Make the case's delegations; the chain of delegators of each delegate holding one."""
    chains: dict[str, tuple[str, ...]] = {}
    for giver, taker, args, effect in case.delegations:
        if giver != "alice" and giver not in chains:
            continue  # bob holds nothing to delegate
        try:
            guard.delegate(giver, taker, "send", args=args, effect=effect)  # type: ignore[arg-type]
        except DelegationError:
            continue
        chains[taker] = (giver, *chains.get(giver, ()))
    return chains


class Reference:
    """The charging the engine must do, written out: a call under a delegated grant (one its
    agent's own rules deny) pays the budgets of its agent and of each delegator up the chain,
    as that agent's call, each partition once; all fit or none is charged."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.totals: dict[str, float] = {}
        self.sets: dict[str, set[str]] = {}

    def payers(self, call: ToolCall, chains: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
        own = self.policy.evaluate(call).effect is not Effect.DENY
        return (call.agent,) if own else (call.agent, *chains.get(call.agent, ()))

    def charge(self, call: ToolCall, payers: tuple[str, ...]) -> bool:
        entries: dict[str, Budget] = {}
        for who in payers:
            as_who = replace(call, agent=who)
            for b in self.policy.budgets:
                if b.applies(who, call.tool):
                    entries.setdefault(b.key(as_who), b)
        n = call.args["n"]
        for key, b in entries.items():
            if b.measure is Measure.DISTINCT:
                if len(self.sets.get(key, set()) | {str(n)}) > b.limit:
                    return False
            elif self.totals.get(key, 0) + (1 if b.measure is Measure.CALLS else n) > b.limit:
                return False
        for key, b in entries.items():
            if b.measure is Measure.DISTINCT:
                self.sets.setdefault(key, set()).add(str(n))
            else:
                self.totals[key] = self.totals.get(key, 0) + (
                    1 if b.measure is Measure.CALLS else n
                )
        return True


def _measured(b: Budget, calls: list[ToolCall]) -> float:
    if b.measure is Measure.DISTINCT:
        return len({str(c.args["n"]) for c in calls})
    if b.measure is Measure.CALLS:
        return len(calls)
    return sum(c.args["n"] for c in calls)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_delegates_and_delegator_together_stay_within_the_delegators_budgets(case: Case) -> None:
    guard = Guard(case.policy)
    chains = _delegate(guard, case)
    ref = Reference(case.policy)
    under: dict[str, list[ToolCall]] = {a: [] for a in AGENTS}  # allowed, under a's authority
    for agent, n, approve in case.calls:
        call = ToolCall("send", {"n": n}, agent=agent, run_id="r1")
        decided = guard.check(call)
        if decided.effect is Effect.ASK:  # charged when asked; a rejection gives it back
            decided = guard.resolve(
                call, decided, Approval.approve() if approve else Approval.reject("no")
            )
        ruled = case.policy.evaluate(call, extra=_grant_rules(guard, agent)).effect
        payers = ref.payers(call, chains)
        expected = (
            ruled is not Effect.DENY
            and (ruled is Effect.ALLOW or approve)
            and ref.charge(call, payers)
        )
        assert (decided.effect is Effect.ALLOW) == expected, (decided, payers, ref.totals)
        if not expected and ruled is not Effect.DENY and (ruled is Effect.ALLOW or approve):
            assert decided.kind == "budget", decided
        if decided.effect is Effect.ALLOW:
            for who in payers:
                under[who].append(call)
    for who in AGENTS:
        mine = under[who]
        for b in case.policy.budgets:
            if b.applies(who, "send"):
                assert _measured(b, mine) <= b.limit, (who, b, mine)


def _grant_rules(guard: Guard, agent: str) -> list[Any]:
    return [g.rule() for g in guard.grants(agent)]
