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

import asyncio
import threading
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import (
    Approval,
    Budget,
    Decision,
    DelegationError,
    Effect,
    Guard,
    Policy,
    ToolCall,
    ToolResult,
)
from guardrails_plugin.policy import allow, ask
from guardrails_plugin.policy._budgets import Measure
from guardrails_plugin.scopes import Number
from guardrails_plugin.store import MemoryStore, SQLiteStore, Store, open_store

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
    """Make the case's delegations; the chain of delegators of each delegate holding one.
    A delegation made from the giver's own policy rule carries the giver's authority only
    (bob delegating his own rule to carol owes nothing to alice); one made from a grant the
    giver holds carries that grant's chain too."""
    chains: dict[str, tuple[str, ...]] = {}
    for giver, taker, args, effect in case.delegations:
        if (
            giver != "alice"
            and giver not in chains
            and not case.policy.bucket(giver, "send").allows
        ):
            continue  # bob holds nothing to delegate
        try:
            grant = guard.delegate(giver, taker, "send", args=args, effect=effect)  # type: ignore[arg-type]
        except DelegationError:
            continue
        own = grant.parent is not None and grant.parent.startswith("rule:")
        chains[taker] = (giver,) if own else (giver, *chains.get(giver, ()))
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


# -- the cases the property generates, spelled out ------------------------------------------


def _alice_guard(*budgets: Budget, store: Store | None = None, **kw: Any) -> Guard:
    policy = Policy(
        [allow("send", agents="alice"), allow("send", agents="bob", args={"n": Number(le=0)})],
        budgets=list(budgets) or [Budget.calls(5, tools="send", agents="alice", id="alice5")],
    )
    return Guard(policy, store=store, **kw)


def _send(guard: Guard, agent: str, n: int = 1, run: str = "r1") -> Decision:
    return guard.check(ToolCall("send", {"n": n}, agent=agent, run_id=run))


def test_alice_and_bob_together_make_alices_five_calls() -> None:
    guard = _alice_guard()
    guard.delegate("alice", "bob", "send")
    got = [_send(guard, agent).effect for agent in ("alice", "bob") * 6]
    assert got.count(Effect.ALLOW) == 5
    denied = _send(guard, "bob")
    assert denied.kind == "budget"
    assert denied.rule == "alice5"
    assert "charged to 'alice'" in denied.reason
    assert guard.store.total("budget/alice5/run=r1") == 5
    # another run starts afresh, as it would for alice
    assert _send(guard, "bob", run="r2").effect is Effect.ALLOW


def test_a_chain_and_a_grant_delegated_twice_share_the_root_budget() -> None:
    guard = _alice_guard()
    to_bob = guard.delegate("alice", "bob", "send")
    guard.delegate("bob", "carol", "send")  # a chain: alice -> bob -> carol
    guard.delegate("alice", "dave", "send")  # alice's grant delegated a second time
    assert guard._chains[f"grant:{to_bob.id}"] == ("alice",)
    got = [_send(guard, a).effect for a in ("carol", "dave", "bob", "alice") * 3]
    assert got.count(Effect.ALLOW) == 5


def test_a_call_the_delegates_own_authority_permits_is_charged_to_it_alone() -> None:
    # bob's own rule permits n <= 0, and bob's own budget (10) is larger than alice's (5)
    guard = _alice_guard(
        Budget.calls(5, tools="send", agents="alice", id="alice5"),
        Budget.calls(10, tools="send", agents="bob", id="bob10"),
    )
    guard.delegate("alice", "bob", "send")
    mine = [_send(guard, "bob", n=0).effect for _ in range(3)]  # own authority: bob's only
    assert mine == [Effect.ALLOW] * 3
    assert guard.store.total("budget/alice5/run=r1") == 0
    delegated = [_send(guard, "bob", n=1).effect for _ in range(8)]  # alice's authority
    assert delegated.count(Effect.ALLOW) == 5
    assert guard.store.total("budget/bob10/run=r1") == 8
    assert _send(guard, "bob", n=0).effect is Effect.ALLOW  # bob's own still has room (9)
    assert _send(guard, "bob", n=0).effect is Effect.ALLOW  # 10
    assert _send(guard, "bob", n=0).effect is Effect.DENY


def test_partitions_sums_and_distinct_values_are_charged_as_the_delegators_call() -> None:
    guard = _alice_guard(
        Budget.calls(3, tools="send", per=("run", "agent"), id="each3"),
        Budget.sum("n", 10, tools="send", agents="alice", per="thread", id="sum10"),
        Budget.distinct("n", 2, tools="send", agents="alice", id="two"),
    )
    guard.delegate("alice", "bob", "send")
    assert _send(guard, "bob", n=4).effect is Effect.ALLOW
    assert guard.store.total("budget/each3/run=r1/agent=bob") == 1
    assert guard.store.total("budget/each3/run=r1/agent=alice") == 1
    assert guard.store.total("budget/sum10/thread=-") == 4
    assert guard.store.members("budget/two/run=r1") == frozenset({"4"})
    assert _send(guard, "bob", n=5).effect is Effect.ALLOW  # 9 of 10, values {4, 5}
    d = _send(guard, "alice", n=1)  # a third value (the sum would reach 10: room)
    assert d.effect is Effect.DENY
    assert d.rule == "two"
    d = _send(guard, "bob", n=4)  # sum 13 > 10
    assert d.effect is Effect.DENY
    assert d.rule == "sum10"
    assert guard.store.total("budget/each3/run=r1/agent=bob") == 2  # the denied call refunded


def test_a_rate_of_the_delegator_binds_the_delegate() -> None:
    from guardrails_plugin import rate

    now = [1000.0]
    guard = _alice_guard(
        rate(2, seconds=60, tools="send", agents="alice", id="r2"), clock=lambda: now[0]
    )
    guard.delegate("alice", "bob", "send")
    assert [_send(guard, a).effect for a in ("alice", "bob", "bob")] == [
        Effect.ALLOW,
        Effect.ALLOW,
        Effect.DENY,
    ]
    now[0] += 61
    assert _send(guard, "bob").effect is Effect.ALLOW


def test_refunds_give_back_the_delegators_share() -> None:
    policy = Policy(
        [ask("send", agents="alice")],
        budgets=[Budget.calls(1, tools="send", agents="alice", id="one")],
    )
    guard = Guard(policy)
    guard.delegate("alice", "bob", "send", effect="ask")
    call = ToolCall("send", {"n": 1}, agent="bob", run_id="r1")
    asked = guard.check(call)
    assert asked.effect is Effect.ASK
    assert guard.store.total("budget/one/run=r1") == 1
    guard.resolve(call, asked, Approval.reject("no"))  # rejected: given back
    assert guard.store.total("budget/one/run=r1") == 0
    asked = guard.check(call)
    guard.expire(call, asked, "nobody answered")  # unanswered: given back
    assert guard.store.total("budget/one/run=r1") == 0
    asked = guard.check(call)
    approved = guard.resolve(call, asked, Approval.approve())
    assert approved.effect is Effect.ALLOW
    guard.release(approved)  # the call did not run
    assert guard.store.total("budget/one/run=r1") == 0
    asked = guard.check(call)
    guard.refuse(call, "adapter", "in doubt", refund=asked)
    assert guard.store.total("budget/one/run=r1") == 0


def test_a_revoked_grant_charges_nothing_more() -> None:
    guard = _alice_guard()
    g = guard.delegate("alice", "bob", "send")
    assert [_send(guard, "bob").effect for _ in range(2)] == [Effect.ALLOW] * 2
    guard.revoke(g)
    d = _send(guard, "bob")
    assert d.effect is Effect.DENY
    assert d.kind == "rule"
    assert guard.store.total("budget/alice5/run=r1") == 2  # what was made stays made
    assert [_send(guard, "alice").effect for _ in range(4)].count(Effect.ALLOW) == 3


def test_explain_names_the_delegators_and_charges_nothing() -> None:
    guard = _alice_guard()
    guard.delegate("alice", "bob", "send")
    found = guard.explain(ToolCall("send", {"n": 1}, agent="bob", run_id="r1"))
    text = str(found)
    assert "authority 'alice' delegated" in text
    assert "alice5" in text
    assert guard.store.total("budget/alice5/run=r1") == 0


class _FailingOn(MemoryStore):
    """A store whose charges of keys containing ``part`` fail."""

    def __init__(self, part: str) -> None:
        super().__init__()
        self.part = part

    def charge(self, key: str, *args: Any, **kwargs: Any) -> bool:
        if self.part in key:
            raise ConnectionError("store down")
        return super().charge(key, *args, **kwargs)

    async def acharge(self, key: str, *args: Any, **kwargs: Any) -> bool:
        return self.charge(key, *args, **kwargs)


@pytest.mark.parametrize("sync", [True, False])
def test_a_store_fault_on_the_delegators_budget_fails_closed(sync: bool) -> None:
    guard = _alice_guard(
        Budget.calls(5, tools="send", agents="bob", id="bob5"),
        Budget.calls(5, tools="send", agents="alice", id="alice5"),
        store=_FailingOn("alice5"),
    )
    guard.delegate("alice", "bob", "send")
    call = ToolCall("send", {"n": 1}, agent="bob", run_id="r1")
    d = guard.check(call) if sync else asyncio.run(guard.acheck(call))
    assert d.effect is Effect.DENY
    assert d.rule == "store-error"


# -- concurrency, on every store ------------------------------------------------------------

SERVER_FIXTURES = {"redis": "redis_url", "postgres": "postgres_url"}


def _opener(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if kind == "memory":
        shared = MemoryStore()
        return lambda: shared
    if kind == "sqlite":
        return lambda: SQLiteStore(tmp_path / "store.db")
    url = request.getfixturevalue(SERVER_FIXTURES[kind])
    if kind == "postgres":
        from guardrails_plugin.store.postgres import PostgresStore

        schema = f"t_{uuid.uuid4().hex[:12]}"
        return lambda: PostgresStore(url, schema=schema)
    return lambda: open_store(url)


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis", "postgres"])
def test_delegator_and_delegates_racing_never_pass_the_budget(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    opener = _opener(kind, request, tmp_path)
    first = _alice_guard(store=opener())
    first.delegate("alice", "bob", "send")
    first.delegate("bob", "carol", "send")
    allowed: list[Effect] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def work(agent: str) -> None:
        guard = _alice_guard(store=opener())  # a guard of its own, as in another process
        start.wait()
        for _ in range(4):
            effect = _send(guard, agent).effect
            with lock:
                allowed.append(effect)

    threads = [threading.Thread(target=work, args=(a,)) for a in AGENTS * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(Effect.ALLOW) == 5  # one budget charged per call: exactly full
    assert first.store.total("budget/alice5/run=r1") == 5


def test_async_delegates_share_the_budget() -> None:
    guard = _alice_guard()
    guard.delegate("alice", "bob", "send")

    async def main() -> list[Decision]:
        calls = [ToolCall("send", {"n": 1}, agent=a, run_id="r1") for a in AGENTS[:2] * 5]
        return list(await asyncio.gather(*(guard.acheck(c) for c in calls)))

    got = asyncio.run(main())
    assert [d.effect for d in got].count(Effect.ALLOW) == 5


def test_a_delegated_calls_result_tokens_count_against_the_delegators_budget() -> None:
    policy = Policy(
        [allow("read", agents="alice")],
        budgets=[Budget.tokens(10, of="results", tools="read", agents="alice", id="alice-10")],
    )
    guard = Guard(policy)
    guard.delegate("alice", "bob", "read")
    assert guard.wants_results("bob", "read") is False  # nothing pending yet
    text = "one two three four five six seven eight"  # 8 tokens
    for i in range(3):
        call = ToolCall("read", {}, agent="bob", call_id=f"c{i}", run_id="r1")
        d = guard.check(call)
        if i < 2:
            assert d.effect is Effect.ALLOW, d
            assert guard.wants_results("bob", "read")
            noted = guard.record(
                ToolResult("read", text, agent="bob", call_id=f"c{i}", run_id="r1")
            )
            assert "of 'alice'" in noted.reason
        else:  # 16 of alice's 10 result tokens used: her grant lets bob read no more
            assert d.effect is Effect.DENY
            assert d.rule == "alice-10"
    assert guard.store.total("budget/alice-10/run=r1") == 16


def test_in_a_layered_policy_the_grant_a_call_needs_is_charged() -> None:
    # the team layer permits everyone, the organisation only alice: bob passes the
    # organisation's layer only with alice's grant, and the decision names the team's rule
    org = Policy([allow("send", agents="alice", id="org-alice")], name="org")
    policy = Policy(
        [allow("send", id="team-all")],
        extends=[org],
        budgets=[Budget.calls(2, tools="send", agents="alice", id="alice2")],
    )
    guard = Guard(policy)
    assert _send(guard, "bob").effect is Effect.DENY
    guard.delegate("alice", "bob", "send")
    got = [_send(guard, "bob") for _ in range(3)]
    assert [d.effect for d in got] == [Effect.ALLOW, Effect.ALLOW, Effect.DENY]
    assert got[0].rule == "team-all"
    assert got[2].rule == "alice2"


def test_a_grant_of_the_delegates_own_spares_the_delegator() -> None:
    guard = _alice_guard()
    guard.delegate("alice", "bob", "send")
    guard.grant("bob", "send")  # an operator's grant: bob's own authority
    assert [_send(guard, "bob").effect for _ in range(7)] == [Effect.ALLOW] * 7
    assert guard.store.total("budget/alice5/run=r1") == 0


def test_a_role_grant_delegated_charges_its_holder() -> None:
    from guardrails_plugin.policy import Role

    policy = Policy(
        [],
        roles=[Role("writer", agents=["alice"])],
        budgets=[Budget.calls(2, tools="send", agents="alice", id="alice2")],
    )
    guard = Guard(policy)
    guard.grant_role("writer", "send")
    guard.delegate("alice", "bob", "send")
    assert [_send(guard, a).effect for a in ("bob", "bob", "alice")] == [
        Effect.ALLOW,
        Effect.ALLOW,
        Effect.DENY,
    ]
