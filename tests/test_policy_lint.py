"""``Policy.lint``: the indexed check gives exactly the warnings of the pairwise definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import Policy, allow, ask, deny
from guardrails_plugin.policy import Budget, Rule, RuleEffect
from guardrails_plugin.scopes import Number


def pairwise_lint(policy: Policy) -> list[str]:
    """The definition: every pair of rules, as lint first did it."""
    warnings: list[str] = []
    rules = policy.rules
    for i, r in enumerate(rules):
        if r.effect is RuleEffect.DENY:
            continue
        for d in rules[:i] + rules[i + 1 :]:
            if (
                d.effect is RuleEffect.DENY
                and d.unconditional
                and all(d._tools.covers(t) for t in r.tools)
                and all(d._agents.covers(a) for a in r.agents)
            ):
                warnings.append(f"rule {r.id!r} can never apply: rule {d.id!r} denies it outright")
                break
    dead = {w.split("'")[1] for w in warnings}
    for r in rules:
        if r.effect is not RuleEffect.ALLOW or r.id in dead:
            continue
        for o in rules:
            if (
                o.effect is not RuleEffect.ALLOW
                and o.when is None
                and not o.tainted_by
                and (o.effect is RuleEffect.ASK or o.args)
                and all(o._tools.covers(t) for t in r.tools)
                and all(o._agents.covers(a) for a in r.agents)
                and all(k in r.args and r.args[k].within(v) for k, v in o.args.items())
            ):
                warnings.append(
                    f"rule {r.id!r} never takes effect: rule {o.id!r} ({o.effect}) covers every "
                    "call it allows (the same or wider tools, agents and argument scopes)"
                )
                break
    for b in policy.budgets:
        if b.limit == 0:
            warnings.append(f"budget {b.id!r} has limit 0: every call it covers is denied")
    return warnings


# Few letters, so names, prefixes and globs collide often.
names = st.text("abc", min_size=1, max_size=4)
globs = st.one_of(
    names,
    names.map(lambda n: n + "*"),  # prefix glob
    names.map(lambda n: "*" + n),  # starts with a wildcard
    st.tuples(names, names).map(lambda p: f"{p[0]}?{p[1]}"),
    st.tuples(names, names).map(lambda p: f"{p[0]}*{p[1]}"),
    names.map(lambda n: f"[ab]{n}"),
    st.just("*"),
)
patterns = st.lists(globs, min_size=1, max_size=3)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    rules: list[Rule] = []
    for i in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from([allow, ask, deny]))
        agents = draw(st.one_of(st.none(), patterns))
        scoped = draw(st.sampled_from([None, "n", "m"]))
        args = {scoped: Number(le=draw(st.sampled_from([1, 2])))} if scoped else None
        rules.append(kind(draw(patterns), agents=agents, args=args, id=f"r{i}"))
    budgets = [
        Budget.calls(draw(st.integers(0, 2)), id=f"b{i}") for i in range(draw(st.integers(0, 2)))
    ]
    return Policy(rules, budgets=budgets)


@settings(max_examples=500, deadline=None)
@given(policies())
def test_lint_gives_exactly_the_pairwise_warnings(policy: Policy) -> None:
    assert policy.lint() == pairwise_lint(policy)


def test_an_allow_an_ask_always_overrides_is_reported() -> None:
    from guardrails_plugin.scopes import Emails

    policy = Policy(
        [
            allow("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail"),
            ask("send_email", args={"to": Emails(domains=["acme.com"])}, id="mail-ask"),
            allow("read_file", args={"n": Number(le=5)}, id="read"),
            deny("read_file", args={"n": Number(le=10)}, id="no-read"),
            allow("fetch", args={"n": Number(le=50)}, id="fetch"),
            ask("fetch", args={"n": Number(le=10)}, id="fetch-small"),  # narrower: allow lives
            allow("search", id="search"),
            ask("search", args={"q": Number(le=1)}, id="search-q"),  # scopes what allow does not
        ]
    )
    # (the cc/bcc warnings about the email rules are tested in test_optional_args.py)
    warnings = [w for w in policy.lint() if "never takes effect" in w]
    assert [w.split("'")[1] for w in warnings] == ["mail", "read"]
    assert "rule 'mail-ask' (ask) covers every call it allows" in warnings[0]
    assert "rule 'no-read' (deny)" in warnings[1]


def test_an_outright_deny_is_named_first_in_policy_order() -> None:
    policy = Policy(
        [
            allow("read_file", agents="bot", id="read"),
            deny("read_*", id="later-prefix"),
            deny("*", agents="bot", id="everything-for-bot"),
            deny("delete_*", args={"n": Number(le=1)}, id="scoped"),
            allow("delete_all", id="del"),
        ],
        budgets=[Budget.calls(0, id="none")],
    )
    assert policy.lint() == [
        "rule 'read' can never apply: rule 'later-prefix' denies it outright",
        "budget 'none' has limit 0: every call it covers is denied",
    ]
