"""Roles and layers: ``roles:`` with inheritance, ``extends:`` between files, and the
precedence the Policy docstring and docs/policy-reference.md state."""

from __future__ import annotations

import shutil
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
    Role,
    ToolCall,
)
from guardrails_plugin.cli import main
from guardrails_plugin.policy import Budget, allow, ask, deny
from guardrails_plugin.scopes import Number, Paths

ROOT = Path(__file__).resolve().parent.parent
LAYERED = ROOT / "cookbook" / "layered"


# -- roles -------------------------------------------------------------------------------------


def test_a_rule_for_a_role_binds_its_agents_and_those_of_roles_inheriting_it() -> None:
    roles = [
        Role("staff", agents=["clerk"]),
        Role("analyst", agents=["ana-*"], inherits=["staff"]),
        Role("lead", agents=["boss"], inherits=["analyst"]),
    ]
    policy = Policy(
        [
            allow("read", roles="staff"),
            allow("query", roles="analyst"),
            deny("query", roles="lead"),
        ],
        roles=roles,
    )
    decide = policy.evaluate
    assert decide(ToolCall("read", {}, agent="clerk")).allowed
    assert decide(ToolCall("read", {}, agent="ana-1")).allowed  # inherits staff
    assert decide(ToolCall("read", {}, agent="boss")).allowed  # inherits analyst, then staff
    assert decide(ToolCall("read", {}, agent="visitor")).denied
    assert decide(ToolCall("query", {}, agent="clerk")).denied  # staff does not inherit analyst
    assert decide(ToolCall("query", {}, agent="ana-2")).allowed
    assert decide(ToolCall("query", {}, agent="boss")).rule == "deny query"
    assert policy.roles_of("boss") == ("staff", "analyst", "lead")


def test_a_rule_for_roles_outside_any_policy_binds_nobody() -> None:
    rule = allow("read", roles="staff")
    assert not rule.about("anyone", "read")


@pytest.mark.parametrize(
    ("roles", "rules", "problem"),
    [
        ([Role("a", inherits="b"), Role("b", inherits="a")], [], "cycle: a -> b -> a"),
        ([Role("a", inherits="zz")], [], "inherits 'zz', which is not a role"),
        ([Role("a")], [allow("t", roles="nobody")], "names role 'nobody'"),
        ([Role("a"), Role("a")], [], "two roles have the name 'a'"),
    ],
)
def test_bad_roles_are_errors(roles: list[Role], rules: list[Any], problem: str) -> None:
    with pytest.raises(PolicyError, match=problem):
        Policy(rules, roles=roles)


def test_roles_in_a_file_and_their_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "roles:\n  staff: {agents: [clerk]}\n  boss: {inherits: [staff], agents: [b]}\n"
        "rules:\n  - {allow: read, roles: staff}\n"
    )
    policy = Policy.from_yaml(str(path))
    assert policy.evaluate(ToolCall("read", {}, agent="b")).allowed
    assert Policy.from_dict(policy.to_dict()) == policy
    path.write_text("roles:\n  staff: {agent: [clerk]}\nrules: []\n")
    with pytest.raises(PolicyFileError, match=r"roles\.staff: unknown key 'agent'"):
        Policy.from_yaml(str(path))


# -- extends: files ------------------------------------------------------------------------------


def test_extends_reads_paths_relative_to_the_file_and_a_diamond_once(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "teams").mkdir()
    (tmp_path / "base" / "org.yaml").write_text(
        "name: org\nrules: [{allow: read}, {allow: write}]\nbudgets: [{id: org-reads, calls: 2, tools: read}]\n"
    )
    (tmp_path / "teams" / "a.yaml").write_text("name: a\nextends: ../base/org.yaml\nrules: []\n")
    (tmp_path / "teams" / "b.yaml").write_text(
        "name: b\nextends: [../base/org.yaml]\nrules: [{deny: write}]\n"
    )
    (tmp_path / "agent.yaml").write_text("extends: [teams/a.yaml, teams/b.yaml]\nrules: []\n")
    policy = Policy.from_yaml(str(tmp_path / "agent.yaml"))
    assert [layer.name for layer in policy.layers] == ["org", "a", "b", "policy"]
    assert policy.evaluate(ToolCall("write", {})).rule == "deny write"
    guard = Guard(policy)  # the shared budget counts once, not once per path to it
    assert [guard.check(ToolCall("read", {})).effect for _ in range(3)] == [
        Effect.ALLOW,
        Effect.ALLOW,
        Effect.DENY,
    ]
    again = Policy.from_dict(policy.to_dict())  # printed inline, the diamond still one layer
    assert [layer.name for layer in again.layers] == ["org", "a", "b", "policy"]
    assert again == policy


def test_an_extends_cycle_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nrules: []\n")
    (tmp_path / "b.yaml").write_text("extends: [c.yaml]\nrules: []\n")
    (tmp_path / "c.yaml").write_text("extends: [a.yaml]\nrules: []\n")
    with pytest.raises(PolicyFileError) as info:
        Policy.from_yaml(str(tmp_path / "a.yaml"))
    message = str(info.value)
    assert "cycle" in message
    assert all(f"{n}.yaml" in message for n in "abc")
    (tmp_path / "self.yaml").write_text("extends: self.yaml\nrules: []\n")
    with pytest.raises(PolicyFileError, match="cycle"):
        Policy.from_yaml(str(tmp_path / "self.yaml"))


@pytest.mark.parametrize(
    ("extends", "problem"),
    [("missing.yaml", "no policy file at"), ("[3]", "expected a file path or a policy mapping")],
)
def test_bad_extends_are_file_errors(tmp_path: Path, extends: str, problem: str) -> None:
    (tmp_path / "p.yaml").write_text(f"extends: {extends}\nrules: []\n")
    with pytest.raises(PolicyFileError, match=problem):
        Policy.from_yaml(str(tmp_path / "p.yaml"))


def test_budgets_with_one_id_in_two_layers_are_an_error() -> None:
    org = Policy(budgets=[Budget.calls(5, tools="x")], name="org")
    with pytest.raises(PolicyError, match="different layers"):
        Policy(budgets=[Budget.calls(3, tools="x")], extends=[org])


# -- precedence ----------------------------------------------------------------------------------

ORG = Policy(
    [
        allow("read", args={"path": Paths(["/srv"])}),
        allow("mail"),
        deny("shell"),
        ask("pay", args={"amount": Number(ge=0, le=1000)}),
    ],
    name="org",
)


def _team(*rules: Any) -> Policy:
    return Policy(list(rules), name="team", extends=[ORG])


def test_a_lower_layer_narrows() -> None:
    team = _team(allow("read", args={"path": Paths(["/srv/team"])}))
    assert team.evaluate(ToolCall("read", {"path": "/srv/team/x"})).allowed
    denied = team.evaluate(ToolCall("read", {"path": "/srv/other"}))
    assert denied.denied
    assert "layer 'team' does not permit it" in denied.reason


def test_a_lower_layer_cannot_widen_without_saying_so() -> None:
    team = _team(allow("read", args={"path": Paths(["/"])}), allow("deploy"), allow("shell"))
    assert team.evaluate(ToolCall("read", {"path": "/etc/passwd"})).denied
    assert team.evaluate(ToolCall("deploy", {})).denied
    assert team.evaluate(ToolCall("shell", {})).rule == "deny shell"  # deny anywhere wins


def test_widen_true_permits_past_the_layers_above_and_lint_says_so() -> None:
    team = _team(allow("deploy", widen=True), allow("shell", widen=True))
    assert team.evaluate(ToolCall("deploy", {})).allowed
    assert team.evaluate(ToolCall("shell", {})).denied  # widen never beats a deny
    warnings = team.lint()
    assert any("'allow deploy' has widen: true" in w for w in warnings)
    agent = Policy(
        [allow("deploy", agents="bot", args={"n": Number(le=1)})], name="agent", extends=[team]
    )
    assert agent.evaluate(ToolCall("deploy", {"n": 1}, agent="bot")).allowed
    assert agent.evaluate(ToolCall("deploy", {"n": 5}, agent="bot")).denied  # narrowed below
    assert agent.evaluate(ToolCall("deploy", {"n": 5}, agent="other")).allowed  # not about it


def test_ask_anywhere_beats_allow_and_silent_layers_leave_the_tool_alone() -> None:
    team = _team(ask("mail"))
    assert team.evaluate(ToolCall("mail", {})).effect is Effect.ASK
    assert _team(allow("other")).evaluate(ToolCall("mail", {})).allowed
    # the org's ask stays an ask under a team allow
    assert _team(allow("pay")).evaluate(ToolCall("pay", {"amount": 5})).effect is Effect.ASK


def test_a_widen_rule_in_a_file_is_refused_on_a_deny(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("rules: [{deny: x, widen: true}]\n")
    with pytest.raises(PolicyFileError, match="cannot widen"):
        Policy.from_yaml(str(path))


def test_roles_a_lower_layer_defines_do_not_reach_the_rules_above() -> None:
    org = Policy(
        [allow("deploy", roles="ops")], roles=[Role("ops", agents=["ops-bot"])], name="org"
    )
    team = Policy(
        [allow("deploy", roles="ops")],
        roles=[Role("ops", agents=["intruder"]), Role("sneaky", agents=["x"], inherits="ops")],
        name="team",
        extends=[org],
    )
    assert team.evaluate(ToolCall("deploy", {}, agent="ops-bot")).allowed
    assert team.evaluate(ToolCall("deploy", {}, agent="intruder")).denied
    assert team.evaluate(ToolCall("deploy", {}, agent="x")).denied


# -- grants and delegation -------------------------------------------------------------------


def test_delegation_works_from_a_permission_held_through_a_role() -> None:
    policy = Policy(
        [allow("read", roles="analyst", args={"path": Paths(["/srv/reports"])})],
        roles=[Role("analyst", agents=["lead"])],
    )
    guard = Guard(policy)
    child = guard.delegate("lead", "helper", "read", args={"path": Paths(["/srv/reports/q3"])})
    assert child.parent == "rule:allow read"
    assert guard.check(ToolCall("read", {"path": "/srv/reports/q3/a"}, agent="helper")).allowed
    with pytest.raises(DelegationError):
        guard.delegate("nobody", "helper", "read", args={"path": Paths(["/srv/reports/q3"])})


def test_a_deny_given_to_a_role_binds_delegation() -> None:
    policy = Policy(
        [allow("read"), deny("read", roles="contractor")],
        roles=[Role("contractor", agents=["temp"])],
    )
    with pytest.raises(DelegationError, match="binds 'temp' but not 'free'"):
        Guard(policy).delegate("temp", "free", "read")


def test_a_grant_stands_in_for_every_layer_but_not_for_a_deny() -> None:
    team = _team(allow("read", args={"path": Paths(["/srv/team"])}))
    guard = Guard(team)
    assert guard.check(ToolCall("deploy", {}, agent="a")).denied
    guard.grant("a", "deploy")
    guard.grant("a", "shell")
    assert guard.check(ToolCall("deploy", {}, agent="a")).allowed
    assert guard.check(ToolCall("shell", {}, agent="a")).denied


# -- the three-layer cookbook policy, end to end ---------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args", "effect", "rule"),
    [
        ("read_file", {"path": "/srv/support/a.txt"}, "allow", "team-files"),
        ("read_file", {"path": "/srv/hr/pay.csv"}, "deny", "default-deny"),
        ("send_email", {"to": "eve@evil-mail.com"}, "deny", "no-outside-mail"),
        ("send_email", {"to": "ceo@example.com"}, "deny", "default-deny"),
        ("send_email", {"to": "desk@example.com"}, "allow", "bot-mail-desk"),
        ("refund", {"amount": 50}, "allow", "small-refunds"),
        ("refund", {"amount": 200}, "ask", "big-refunds"),
        ("refund", {"amount": 900}, "deny", "default-deny"),
        ("shell", {}, "deny", "no-shell"),
        ("web_search", {"q": "x"}, "deny", "bot-no-search"),
    ],
)
def test_the_layered_cookbook_policy_decides_and_explains(
    tool: str, args: dict[str, Any], effect: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    path = str(LAYERED / "agent.yaml")
    policy = Policy.from_yaml(path)
    assert [layer.name for layer in policy.layers] == ["org", "support-team", "support-bot"]
    call = ToolCall(tool, args, agent="support-bot")
    explanation = Guard(policy).explain(call)
    assert (str(explanation.decision.effect), explanation.decision.rule) == (effect, rule)
    code = main(
        ["check", path, tool, "--agent", "support-bot", "--args", json.dumps(args), "--explain"]
    )
    out = capsys.readouterr().out
    assert code == (0 if effect == "allow" else 3)
    assert out.rstrip().endswith(str(explanation).splitlines()[-1])
    assert str(explanation) in out
    if rule == "default-deny":  # the refusing layer is named
        assert "refuses" in out


def test_the_layered_cookbook_policy_for_another_agent_and_its_budgets() -> None:
    policy = Policy.from_yaml(str(LAYERED / "agent.yaml"))
    guard = Guard(policy)
    other = ToolCall("web_search", {"q": "x"}, agent="support-7")
    assert guard.check(other).allowed  # the bot's deny binds only the bot
    mail = ToolCall("send_email", {"to": "ceo@example.com"}, agent="support-7")
    assert guard.check(mail).allowed  # the bot's narrowing is the bot's
    assert guard.check(
        ToolCall("refund", {"amount": 5}, agent="support-7")
    ).denied  # not a refunder
    bot = [
        ToolCall("refund", {"amount": 100}, agent="support-bot", thread_id="t") for _ in range(4)
    ]
    assert [guard.check(c).effect for c in bot] == [Effect.ALLOW] * 3 + [Effect.DENY]


def test_the_cookbook_layers_lint_with_their_widen_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "layered"
    shutil.copytree(LAYERED, copy)
    assert main(["lint", str(copy / "agent.yaml")]) == 0
    err = capsys.readouterr().err
    assert "'small-refunds' has widen: true" in err
    assert "'bot-tries-shell' can never apply" in err
    assert main(["lint", "--strict", str(copy / "agent.yaml")]) == 2


# -- property: a layer without widen never turns a deny into an allow ----------------------

TOOLS = ["a", "b", "c"]
AGENTS = ["x", "y"]


@st.composite
def rules(draw: st.DrawFn, *, widen: bool, prefix: str) -> list[Any]:
    out = []
    for i in range(draw(st.integers(0, 4))):
        effect = draw(st.sampled_from(["allow", "ask", "deny"]))
        tool = draw(st.sampled_from([*TOOLS, "*"]))
        agents = draw(st.sampled_from([None, "x", "y"]))
        scoped = draw(st.booleans())
        args = (
            {"n": Number(ge=draw(st.integers(0, 5)), le=draw(st.integers(5, 10)))}
            if scoped
            else None
        )
        rid = f"{prefix}{i}"
        if effect == "deny":
            out.append(deny(tool, agents=agents, args=args, id=rid))
        else:
            make = allow if effect == "allow" else ask
            out.append(
                make(tool, agents=agents, args=args, id=rid, widen=widen and draw(st.booleans()))
            )
    return out


def _chain(layers: list[list[Any]]) -> Policy:
    policy: Policy | None = None
    for i, layer_rules in enumerate(layers):
        policy = Policy(layer_rules, name=f"L{i}", extends=[policy] if policy else [])
    assert policy is not None
    return policy


_calls = st.builds(
    lambda tool, agent, n: ToolCall(tool, {} if n is None else {"n": n}, agent=agent),
    st.sampled_from(TOOLS),
    st.sampled_from(AGENTS),
    st.one_of(st.none(), st.integers(-2, 12), st.just("7")),
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.lists(rules(widen=True, prefix="b"), min_size=1, max_size=3),
    added=rules(widen=False, prefix="n"),
    at=st.integers(1, 3),
    calls=st.lists(_calls, min_size=1, max_size=6),
)
def test_adding_a_layer_without_widen_never_turns_a_deny_into_an_allow(
    base: list[list[Any]], added: list[Any], at: int, calls: list[ToolCall]
) -> None:
    before = _chain(base)
    layers = [*base[: min(at, len(base))], added, *base[min(at, len(base)) :]]
    after = _chain([list(rs) for rs in layers])
    for call in calls:
        if before.evaluate(call).denied:
            assert after.evaluate(call).denied, (call, after.to_dict())
        if before.evaluate(call).effect is Effect.ASK:
            assert after.evaluate(call).effect in (Effect.ASK, Effect.DENY)


@settings(max_examples=150, deadline=None)
@given(layer=rules(widen=False, prefix="r"), calls=st.lists(_calls, min_size=1, max_size=6))
def test_one_layer_decides_exactly_like_a_flat_policy(
    layer: list[Any], calls: list[ToolCall]
) -> None:
    flat = Policy(layer)
    single = _chain([layer])
    for call in calls:
        assert flat.evaluate(call) == single.evaluate(call)


def test_a_grant_given_to_a_role_reaches_its_agents_and_can_be_delegated() -> None:
    policy = Policy(
        [allow("read", args={"path": Paths(["/srv"])})],
        roles=[Role("staff", agents=["s-*"]), Role("lead", agents=["boss"], inherits="staff")],
    )
    guard = Guard(policy)
    grant = guard.grant_role("staff", "deploy", args={"n": Number(le=5)})
    assert guard.check(ToolCall("deploy", {"n": 1}, agent="s-1")).allowed
    assert guard.check(ToolCall("deploy", {"n": 1}, agent="boss")).allowed  # inherits staff
    assert guard.check(ToolCall("deploy", {"n": 9}, agent="s-1")).denied
    assert guard.check(ToolCall("deploy", {"n": 1}, agent="visitor")).denied
    assert [g.id for g in guard.grants("s-2")] == [grant.id]
    assert guard.grants("visitor") == []
    child = guard.delegate("s-1", "helper", "deploy", args={"n": Number(le=2)})
    assert child.parent == grant.id
    assert guard.check(ToolCall("deploy", {"n": 2}, agent="helper")).allowed
    with pytest.raises(DelegationError):
        guard.delegate("visitor", "helper", "deploy", args={"n": Number(le=2)})
    guard.revoke(grant)  # and what was delegated from it goes too
    assert guard.check(ToolCall("deploy", {"n": 1}, agent="s-1")).denied
    assert guard.check(ToolCall("deploy", {"n": 2}, agent="helper")).denied
    with pytest.raises(PolicyError, match="names role 'ghost'"):
        guard.grant_role("ghost", "deploy")


def test_tools_only_a_lower_layer_allows_are_hidden_unless_widened() -> None:
    team = _team(
        allow("deploy"), allow("fetch", widen=True), allow("read", args={"path": Paths(["/srv/t"])})
    )
    guard = Guard(team)
    shown = guard.visible_tools("a", ["read", "deploy", "fetch", "shell", "mail"])
    assert shown == ["read", "fetch", "mail"]
    guard.grant("a", "deploy")
    assert "deploy" in guard.visible_tools("a", ["deploy"])
