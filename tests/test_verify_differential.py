"""The z3 encoding against the engine: generated policies, generated calls, the same effect.

``Verifier.effect_of`` evaluates the encoding's formula on a concrete call (the call's values
substituted, through the abstraction of ``verify/_values.py``); ``Policy.evaluate`` is the
engine. Policies use the scopes the encoding reads exactly (numbers, one-of, patterns,
paths without symlink resolution, URLs, emails, optional and not), flows with glob sources,
roles, ``unscoped_args: empty`` and layers with ``widen``; calls mix well-formed and odd
values. Every disagreement is a bug in one of the two.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

from guardrails_plugin import (
    Budget,
    DataFlow,
    DelegationError,
    Guard,
    Policy,
    Role,
    ToolCall,
    allow,
    ask,
    deny,
    rate,
)
from guardrails_plugin.policy._rules import LOST
from guardrails_plugin.scopes import (
    Emails,
    Not,
    Number,
    OneOf,
    Paths,
    Pattern,
    Scope,
    ScopeViolation,
    Urls,
    optional,
)
from guardrails_plugin.verify import Repeated, Verifier, replay_sequence
from guardrails_plugin.verify._delegation import delegable_rules, delegation_permits
from guardrails_plugin.verify._sequences import feasible

TOOLS = ["send", "fetch", "read", "delete_x", "transfer"]
TOOL_PATTERNS = [*TOOLS, "delete_*", "*", "[rs]e?d", "f*"]
AGENTS = ["alice", "bob", "carol", "agent"]
AGENT_PATTERNS = [*AGENTS, "a*", "*"]
ARGS = ["n", "mode", "id", "path", "url", "to"]

numbers = st.builds(
    lambda lo, width, integer, strict: Number(
        **({"gt": lo} if strict else {"ge": lo}), le=lo + width, integer=integer
    ),
    st.sampled_from([-10, 0, 0.5, 100]),
    st.sampled_from([1, 10, 1000]),
    st.booleans(),
    st.booleans(),
)
one_ofs = st.lists(
    st.sampled_from(["draft", "final", 1, 2.5, True, None, "", "x1"]), min_size=1, max_size=3
).map(OneOf)
patterns = st.sampled_from(
    [
        r"[a-c]+",
        r"x[0-9]{1,3}",
        r"(ab|cd)*",
        r"draft|final",
        r"\d+",
        r"[a-z]+-\s?",
        r".*",
        r"^x.$",
        r"[^x]y",
    ]
).map(Pattern)
paths = st.builds(
    lambda roots, access: Paths(roots, access=access, resolve_symlinks=False),
    st.lists(st.sampled_from(["/srv/data", "/srv", "/srv/data/in", "/"]), min_size=1, max_size=2),
    st.sampled_from(["read", "write"]),
)
urls = st.builds(
    lambda hosts, schemes, ports, userinfo, networks: Urls(
        hosts, schemes=schemes, ports=ports, allow_userinfo=userinfo, networks=networks
    ),
    st.lists(
        st.sampled_from(["example.com", "*.example.com", "docs.example.org", "10.0.0.1", "::1"]),
        min_size=1,
        max_size=3,
    ),
    st.lists(st.sampled_from(["https", "http", "ftp", "foo"]), min_size=1, max_size=2),
    st.sampled_from([None, [443], [8080, 80], [21]]),
    st.booleans(),
    st.sampled_from([[], ["10.0.0.0/8"], ["192.168.0.0/16", "fe80::/10"]]),
)
emails = st.builds(
    lambda addresses, domains: Emails(addresses=addresses, domains=domains or ["example.com"]),
    st.lists(st.sampled_from(["ceo@partner.org", "Bob@evil.com"]), max_size=2),
    st.lists(st.sampled_from(["example.com", "*.example.com", "partner.org"]), max_size=2),
)
KIND_SCOPES = {
    "n": numbers,
    "mode": one_ofs,
    "id": patterns,
    "path": paths,
    "url": urls,
    "to": emails,
}
MIXED = {"n": one_ofs, "id": one_ofs, "mode": patterns}


def _scope(name: str) -> st.SearchStrategy[Any]:
    base = KIND_SCOPES[name]
    if name in MIXED:
        base = st.one_of(base, MIXED[name])
    return st.one_of(base, base.map(optional), base.map(Not), base.map(Not).map(optional))


@st.composite
def rules(draw: st.DrawFn, roles: list[str]) -> Any:
    make = draw(st.sampled_from([allow, allow, ask, deny]))
    tools = draw(st.lists(st.sampled_from(TOOL_PATTERNS), min_size=1, max_size=2))
    agents = draw(
        st.one_of(st.none(), st.lists(st.sampled_from(AGENT_PATTERNS), min_size=1, max_size=2))
    )
    names = draw(st.lists(st.sampled_from(ARGS), max_size=2, unique=True))
    args = {n: draw(_scope(n)) for n in names}
    kwargs: dict[str, Any] = {"agents": agents, "args": args}
    if roles and draw(st.integers(0, 4)) == 0:
        kwargs["roles"] = draw(st.sampled_from(roles))
    if draw(st.integers(0, 5)) == 0:
        kwargs["shadow"] = True  # decided and marked, never enforced: the encoding leaves it out
    return make(tools, **kwargs)


@st.composite
def policies(draw: st.DrawFn, layered: bool = False) -> Policy:
    roles = [
        Role("staff", agents=["alice", "b*"]),
        Role("lead", agents=["carol"], inherits=["staff"]),
    ]
    use_roles = draw(st.booleans())
    role_names = ["staff", "lead"] if use_roles else []
    flows = draw(
        st.lists(
            st.builds(
                lambda src, sinks, effect, carries: DataFlow(src, sinks, effect, carries=carries),
                st.sampled_from(["fetch", "f*", "read", "[fr]*"]),
                st.sampled_from(["send", "transfer", "*"]),
                st.sampled_from(["ask", "deny"]),
                st.booleans(),
            ),
            max_size=2,
            unique_by=lambda f: f.id,
        )
    )
    closed = draw(st.sampled_from(["any", "empty"]))

    def one(tag: str, widen_ok: bool) -> Policy:
        rs = draw(st.lists(rules(role_names), min_size=1, max_size=6))
        out = []
        for i, r in enumerate(rs):
            widen = widen_ok and r.effect != "deny" and draw(st.integers(0, 3)) == 0
            out.append(
                type(r)(
                    effect=r.effect,
                    tools=r.tools,
                    agents=r.agents,
                    args=r.args,
                    roles=r.roles,
                    id=f"{tag}{i}",
                    widen=widen,
                )
            )
        return Policy(
            out,
            roles=roles if use_roles else (),
            flows=flows if tag == "top" else (),
            unscoped_args=closed,
            name=tag,
        )

    if not layered:
        return one("top", False)
    root = one("root", False)
    middle = one("mid", True)
    middle = Policy(
        middle.rules, roles=middle.roles, extends=[root], name="mid", unscoped_args=closed
    )
    top = one("top", True)
    return Policy(
        top.rules,
        roles=top.roles,
        flows=top.flows,
        extends=[middle],
        name="top",
        unscoped_args=closed,
    )


VALUES: dict[str, list[Any]] = {
    "n": [
        0,
        1,
        10,
        100,
        0.5,
        10.5,
        1000,
        1001,
        -10,
        -9.5,
        True,
        False,
        "10",
        None,
        float("nan"),
        float("inf"),
        2.5,
    ],
    "mode": ["draft", "final", "", None, 1, 2.5, True, "DRAFT", "x1", [], {}, ["draft"]],
    "id": [
        "abc",
        "x12",
        "x1234",
        "abcd",
        "",
        "draft",
        "12",
        "٣",
        "word- ",
        "x\n",
        "xa",
        "zy",
        1,
        None,
    ],
    "path": [
        "/srv/data",
        "/srv/data/x",
        "/srv/data/../etc",
        "/srv//data/./x",
        "/srv/data2",
        "relative",
        "~/x",
        "",
        "/",
        "/srv/data/",
        "/srv/data/in/deep",
        "/srv/data/in",
        "//srv/data",
        "/a\x00",
        None,
        3,
        [],
    ],
    "url": [
        "https://example.com/",
        "https://a.example.com/x",
        "https://example.com:443/",
        "https://example.com:8080/",
        "http://example.com/",
        "HTTPS://Example.COM/",
        "https://u:p@example.com/",
        "https://example.com@evil.com/",
        "https://evil.com/",
        "https://docs.example.org./",
        "https://10.0.0.1/",
        "https://0x0a.0.0.1/",
        "https://[::1]/",
        "https://10.2.3.4:443/",
        "https://192.168.1.1/",
        "https://[fe80::1]/",
        "ftp://example.com/",
        "foo://example.com/",
        "foo://example.com:21/",
        "https://example.com/a b",
        "https://evil.com\\@example.com/",
        "not a url",
        "mailto:x@example.com",
        "",
        "example.com",
        "//example.com/x",
        "https://a..example.com/",
        "https://exa\tmple.com/",
        None,
        1,
        "https://b.a.example.com:80/",
    ],
    "to": [
        "a@example.com",
        "A <b@sub.example.com>",
        "x@evil.com, y@example.com",
        "ceo@partner.org",
        "Ceo@partner.org",
        "bob@evil.com",
        "Bob@evil.com",
        "bad",
        "",
        '"q"@evil.com',
        "a@test",
        "a@EXAMPLE.com",
        ["a@example.com", "c@partner.org"],
        ["a@example.com", ""],
        [],
        None,
        "team: a@example.com, b@evil.com;",
        "a@example.com,",
        5,
    ],
    "other": ["", None, "x", [], 0],
}


@st.composite
def calls(draw: st.DrawFn) -> tuple[ToolCall, tuple[str, ...], bool]:
    tool = draw(st.sampled_from([*TOOLS, "fetch_url", "sea"]))
    agent = draw(st.sampled_from([*AGENTS, "bobby", "zed"]))
    names = draw(st.lists(st.sampled_from([*ARGS, "other"]), max_size=4, unique=True))
    args = {n: draw(st.sampled_from(VALUES[n])) for n in names}
    tainted = tuple(
        draw(st.lists(st.sampled_from(["fetch", "fetch_url", "read"]), max_size=2, unique=True))
    )
    carries = bool(tainted) and draw(st.booleans())
    return ToolCall(tool, args, agent=agent), tainted, carries


def _engine(policy: Policy, call: ToolCall, tainted: tuple[str, ...], carries: bool) -> str:
    labels = frozenset(tainted) | ({LOST} if carries else frozenset())
    return str(policy.evaluate(call, labels).effect)


def _compare(policy: Policy, batch: list[tuple[ToolCall, tuple[str, ...], bool]]) -> int:
    verifier = Verifier(policy)
    compared = 0
    for call, tainted, carries in batch:
        try:
            encoded = verifier.effect_of(call, tainted, carries)
        except ValueError:  # more distinct recipients than the view keeps for this policy
            continue
        engine = _engine(policy, call, tainted, carries)
        assert encoded == engine, (
            f"encoding says {encoded}, engine says {engine}\n"
            f"policy: {policy.to_dict()}\ncall: {call!r}\ntainted: {tainted}, carries: {carries}\n"
            f"engine: {policy.evaluate(call, frozenset(tainted) | ({LOST} if carries else frozenset())).reason}"
        )
        compared += 1
    return compared


PAIRS = {"flat": 0, "layered": 0}


def test_encoding_agrees_with_the_engine_on_flat_policies() -> None:
    @settings(max_examples=140, deadline=None, suppress_health_check=list(HealthCheck))
    @given(policies(), st.lists(calls(), min_size=40, max_size=40))
    def run(policy: Policy, batch: list[tuple[ToolCall, tuple[str, ...], bool]]) -> None:
        PAIRS["flat"] += _compare(policy, batch)

    run()
    print(f"flat: {PAIRS['flat']} policy/call pairs agree")
    assert PAIRS["flat"] >= 5000


def test_encoding_agrees_with_the_engine_on_layered_policies() -> None:
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(policies(layered=True), st.lists(calls(), min_size=40, max_size=40))
    def run(policy: Policy, batch: list[tuple[ToolCall, tuple[str, ...], bool]]) -> None:
        PAIRS["layered"] += _compare(policy, batch)

    run()
    print(f"layered: {PAIRS['layered']} policy/call pairs agree")
    assert PAIRS["layered"] >= 4000


# -- budgets and delegations ------------------------------------------------------------------

BUDGET_ARGS = {"sum": ["n"], "distinct": ["mode", "id"]}
EXAMPLES = int(__import__("os").environ.get("VERIFY_BOUND_EXAMPLES", "130"))


@st.composite
def budgets(draw: st.DrawFn) -> list[Budget]:
    out: list[Budget] = []
    for i in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["calls", "calls", "sum", "distinct", "rate"]))
        common: dict[str, Any] = {
            "tools": draw(st.lists(st.sampled_from(TOOL_PATTERNS), min_size=1, max_size=2)),
            "agents": draw(st.sampled_from([["*"], ["alice"], ["a*", "bob"]])),
            "per": draw(
                st.lists(
                    st.sampled_from(["run", "thread", "agent", "tool", "global"]),
                    min_size=1,
                    max_size=2,
                    unique=True,
                )
            ),
            "id": f"b{i}",
        }
        if kind == "calls":
            out.append(Budget.calls(draw(st.integers(0, 3)), **common))
        elif kind == "rate":
            out.append(rate(draw(st.integers(0, 2)), seconds=60, **common))
        elif kind == "sum":
            out.append(Budget.sum("n", draw(st.sampled_from([0, 10, 100.5, 1000])), **common))
        else:
            arg = draw(st.sampled_from(BUDGET_ARGS["distinct"]))
            out.append(Budget.distinct(arg, draw(st.integers(0, 2)), **common))
    return out


def _with_budgets(policy: Policy, extra: list[Budget]) -> Policy:
    return Policy(
        policy.rules,
        roles=policy.roles,
        flows=policy.flows,
        unscoped_args=policy.unscoped_args,
        budgets=extra,
        name=policy.name,
    )


def _listed(budgets_: list[Budget], sequence: list[ToolCall]) -> bool:
    """Whether a distinct budget's argument holds a list or an object in the sequence (the
    encoding takes a list to add no new value: over-approximated)."""
    for b in budgets_:
        if b.measure != "distinct":
            continue
        for c in sequence:
            if b.applies(c.agent, c.tool) and isinstance(c.args.get(b.arg or ""), list | dict):
                return True
    return False


def test_budgets_as_bounds_agree_with_the_guard_on_call_sequences() -> None:
    """A sequence of generated calls: the encoding lets every call be permitted, budgets
    charged, exactly when one ``Guard`` permits them in order (runs laid out per run, per
    thread, or a thread each)."""
    seen = {"pairs": 0, "permitted": 0, "denied": 0}

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        policies(),
        budgets(),
        st.lists(calls(), min_size=12, max_size=12),
        st.sampled_from(["run", "thread", "total"]),
        st.data(),
    )
    def run(policy: Policy, bs: list[Budget], batch: list[Any], per: str, data: Any) -> None:
        # calls the rules permit, repeated: the budgets decide the rest
        rules_only = Guard(policy)
        allowed = [c for c, _, _ in batch if str(rules_only.check(c).effect) != "deny"]
        pool = allowed or [c for c, _, _ in batch]
        policy = _with_budgets(policy, bs)
        sequence = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        fresh = {"run": "", "thread": "run", "total": "thread"}[per]
        items = [Repeated(c.agent, c.tool, dict(c.args), 1, "", fresh) for c in sequence]
        engine = all(effect != "deny" for effect, _ in replay_sequence(policy, items))
        try:
            encoded = feasible(Verifier(policy), sequence, per)
        except ValueError:  # more distinct recipients than the view keeps for this policy
            return
        if engine:
            assert encoded, f"the guard permits {sequence!r} under {policy.to_dict()}"
        elif encoded:
            assert _listed(bs, sequence), (
                f"the encoding permits {sequence!r} ({per}), the guard does not, "
                f"under {policy.to_dict()}"
            )
        seen["pairs"] += 1
        seen["permitted" if engine else "denied"] += 1

    run()
    print(f"budgets: {seen}")
    assert seen["permitted"] >= 20
    assert seen["denied"] >= 20


DELEGATORS: list[str] = [*AGENTS, "bobby", "zed", "ax"]
HOWS: tuple[Literal["allow", "ask"], ...] = ("allow", "ask")


class Exactly(Scope):
    """The one value ``value`` (compared by type and equality): the narrowest scope a
    delegation can give. ``within`` is exact: every scope accepting the value holds it."""

    kind = "exactly_for_differential_tests"

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def check(self, value: object) -> None:
        if value is not self.value and (type(value) is not type(self.value) or value != self.value):
            raise ScopeViolation(f"expected exactly {self.value!r}")

    def spec(self) -> dict[str, Any]:
        return {"value": self.value}

    def within(self, other: Scope) -> bool:
        return other.contains(self.value)


class Nothing(Scope):
    """No value: within every scope (wrapped in ``optional`` it lets an absent argument,
    and only that, through)."""

    kind = "nothing_for_differential_tests"

    def check(self, value: object) -> None:
        raise ScopeViolation("no value is allowed")

    def spec(self) -> dict[str, Any]:
        return {}

    def within(self, other: Scope) -> bool:
        return True


def _narrowest(policy: Policy, call: ToolCall) -> list[dict[str, Scope]]:
    """The narrowest delegations holding ``call``: each argument a rule scopes pinned to the
    call's value (or, absent, to nothing but absence). Any delegation ``Guard.delegate``
    accepts that holds the call has one of these within it, accepted too (``within`` is
    name-level for agents and tools and these scopes are within whatever holds the value);
    under ``unscoped_args="empty"`` one per set of arguments a parent can scope."""
    names = {n for r in policy.compiled_rules for n in r.args}
    options = [names]
    if policy.unscoped_args == "empty":
        options = [set(), *({*r.args} for r in policy.compiled_rules if r.args)]

    if any(isinstance(v, float) and not math.isfinite(v) for v in call.args.values()):
        return []  # grants are JSON documents: no scope pins such a value

    def pin(name: str) -> Scope:
        return Exactly(call.args[name]) if name in call.args else optional(Nothing())

    out: list[dict[str, Scope]] = []
    for chosen in options:
        args = {n: pin(n) for n in sorted(chosen)}
        if args not in out:
            out.append(args)
    return out


def _engine_delegation(policy: Policy, call: ToolCall, seen: dict[str, int] | None = None) -> bool:
    """Whether some delegation (or none) lets the guard permit ``call``, trying every
    delegator that stands for a class of names, and for every rule a delegation can start
    from its whole region, then the narrowest regions holding the call (``_narrowest``)."""
    if str(Guard(policy).check(call).effect) != "deny":
        return True
    roots = delegable_rules(policy.compiled_rules, call.tool)
    regions: list[tuple[dict[str, Scope], bool]] = [(dict(r.args), False) for r in roots]
    regions += [(args, True) for args in _narrowest(policy, call)] if roots else []
    for (args, narrowed), giver, how in itertools.product(regions, [*DELEGATORS, call.agent], HOWS):
        guard = Guard(policy)
        try:
            guard.delegate(giver, call.agent, [call.tool], args=args, effect=how)
        except DelegationError:
            continue
        if str(guard.check(call).effect) != "deny":
            if seen is not None and narrowed:
                seen["narrowed only"] += 1
            return True
    return False


def _delegations_agree(policy: Policy, batch: list[Any], seen: dict[str, int]) -> None:
    verifier = Verifier(policy)
    for call, _, _ in batch:
        engine = _engine_delegation(policy, call, seen)
        try:
            encoded = delegation_permits(verifier, call)
        except ValueError:  # more distinct recipients than the view keeps
            continue
        assert encoded == engine, (
            f"{call!r}: the guard {'permits' if engine else 'denies'} it after "
            f"delegations, the encoding disagrees; policy: {policy.to_dict()}"
        )
        seen["pairs"] += 1
        seen["permitted"] += engine


def test_delegations_agree_with_the_guard() -> None:
    """For generated calls: the encoding finds a delegation (from a free delegator) under
    which the call is permitted exactly when ``Guard.delegate`` and ``Guard.check`` do,
    with whole or narrowed regions (in a flat policy a narrower region reaches nothing the
    whole one does not: the checks on deny and ask rules are by agent and tool)."""
    seen = {"pairs": 0, "permitted": 0, "narrowed only": 0}

    @settings(max_examples=32, deadline=None, suppress_health_check=list(HealthCheck))
    @given(policies(), st.lists(calls(), min_size=8, max_size=8))
    def run(policy: Policy, batch: list[Any]) -> None:
        _delegations_agree(policy, batch, seen)

    run()
    print(f"delegations: {seen}")
    assert seen["permitted"] >= 20
    assert seen["narrowed only"] == 0


LAYER_ARGS = {"n": numbers, "mode": one_ofs, "to": emails}


@st.composite
def layered_delegations(draw: st.DrawFn) -> Policy:
    """Two or three layers, each permitting the delegator (alice) the tool under scopes on
    one or two arguments (often different ones from layer to layer), beside a few random
    rules: other agents, globs, ``widen``, ask and deny rules, optional scopes."""
    closed = draw(st.sampled_from(["any", "any", "empty"]))

    def scopes(least: int) -> dict[str, Scope]:
        names = draw(
            st.lists(st.sampled_from(sorted(LAYER_ARGS)), min_size=least, max_size=2, unique=True)
        )
        out: dict[str, Scope] = {}
        for n in names:
            scope = draw(LAYER_ARGS[n])
            out[n] = optional(scope) if draw(st.integers(0, 4)) == 0 else scope
        return out

    below: list[Policy] = []
    order = draw(st.permutations(sorted(LAYER_ARGS)))
    for depth in range(draw(st.integers(2, 3))):
        if draw(st.integers(0, 3)) < 3:  # mostly one argument, a different one in each layer
            own = {order[depth]: draw(LAYER_ARGS[order[depth]])}
        else:
            own = scopes(0)
        holder = allow(
            draw(st.sampled_from(["pay", "pay", "p*"])),
            agents=draw(st.sampled_from(["alice", "alice", "a*"])),
            args=own,
            id=f"l{depth}holder",
            **({"widen": True} if depth and draw(st.integers(0, 4)) == 4 else {}),
        )
        rules_ = [holder]
        for i in range(draw(st.sampled_from([0, 0, 1, 2]))):
            make = draw(st.sampled_from([allow, allow, ask, deny]))
            widen = depth > 0 and make is not deny and draw(st.integers(0, 4)) == 0
            rules_.append(
                make(
                    draw(st.sampled_from([["pay"], ["p*"], ["*"], ["send"]])),
                    agents=draw(st.sampled_from([["alice"], ["a*"], ["*"], ["bob"]])),
                    args=scopes(0),
                    id=f"l{depth}r{i}",
                    **({"widen": True} if widen else {}),
                )
            )
        below.append(Policy(rules_, extends=below[-1:], name=f"layer{depth}", unscoped_args=closed))
    return below[-1]


@st.composite
def layered_calls(draw: st.DrawFn, policy: Policy) -> tuple[ToolCall, tuple[str, ...], bool]:
    """A call, its values mostly ones that the scopes the policy puts on them accept."""
    names = draw(st.lists(st.sampled_from([*LAYER_ARGS, "other"]), max_size=4, unique=True))
    if not draw(st.booleans()):
        names = [*LAYER_ARGS]
    args = {}
    for n in names:
        scopes = [s for r in policy.compiled_rules for m, s in r.args.items() if m == n]
        every = [v for v in VALUES[n] if scopes and all(s.contains(v) for s in scopes)]
        some = [v for v in VALUES[n] if any(s.contains(v) for s in scopes)]
        pick = draw(st.integers(0, 3))
        pool = (every if pick <= 1 else some if pick == 2 else []) or some or VALUES[n]
        args[n] = draw(st.sampled_from(pool))
    agent = draw(st.sampled_from(["bob", "bob", "carol", "alice"]))
    return ToolCall(draw(st.sampled_from(["pay", "pay", "send"])), args, agent=agent), (), False


def test_delegations_agree_with_the_guard_in_layered_policies() -> None:
    """Layers scoping different arguments: a delegation narrowed to fit every layer that
    speaks for its holder (a region no single rule covers) is found exactly when
    ``Guard.delegate`` accepts one and the guard then permits the call."""
    seen = {"pairs": 0, "permitted": 0, "narrowed only": 0}

    @settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=list(HealthCheck))
    @given(layered_delegations(), st.data())
    def run(policy: Policy, data: Any) -> None:
        batch = data.draw(st.lists(layered_calls(policy), min_size=8, max_size=8))
        _delegations_agree(policy, batch, seen)

    run()
    print(f"layered delegations: {seen}")
    assert seen["permitted"] >= 20
    assert seen["narrowed only"] >= 3
