"""``Guard.explain``: what a decision considered, computed by the deciding code itself."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import Guard, Policy, Role, ToolCall, ToolResult
from guardrails_plugin.policy import Budget, DataFlow, allow, ask, deny, rate
from guardrails_plugin.scopes import Not, Number, OneOf

TOOLS = ["a", "b", "src"]
AGENTS = ["x", "y"]


@st.composite
def layer(draw: st.DrawFn, i: int) -> dict[str, Any]:
    rules: list[Any] = []
    for j in range(draw(st.integers(0, 5))):
        effect = draw(st.sampled_from([allow, ask, deny]))
        tool = draw(st.sampled_from([*TOOLS, "*"]))
        who = draw(st.sampled_from(["agents", "roles", "all"]))
        kwargs: dict[str, Any] = {"id": f"L{i}r{j}"}
        if who == "agents":
            kwargs["agents"] = draw(st.sampled_from(AGENTS))
        elif who == "roles":
            kwargs["roles"] = "team"
        scope = draw(st.sampled_from(["none", "number", "not", "one_of"]))
        if scope == "number":
            kwargs["args"] = {"n": Number(ge=draw(st.integers(0, 5)), le=9)}
        elif scope == "not":
            kwargs["args"] = {"n": Not(Number(ge=3, le=6))}
        elif scope == "one_of":
            kwargs["args"] = {"s": OneOf(["p", "q"])}
        if effect is not deny and i > 0 and draw(st.booleans()):
            kwargs["widen"] = True
        rules.append(effect(tool, **kwargs))
    budgets = []
    if draw(st.booleans()):
        budgets.append(
            Budget.calls(
                draw(st.integers(0, 3)), tools=draw(st.sampled_from(TOOLS)), id=f"L{i}calls"
            )
        )
    if draw(st.booleans()):
        budgets.append(Budget.sum("n", draw(st.integers(0, 12)), tools="*", id=f"L{i}sum"))
    if draw(st.booleans()):
        budgets.append(Budget.distinct("s", 1, tools="*", id=f"L{i}distinct"))
    if draw(st.booleans()):
        budgets.append(rate(2, seconds=60, tools="a", id=f"L{i}rate"))
    flows = []
    if draw(st.booleans()):
        flows.append(
            DataFlow(
                "src",
                sinks=draw(st.sampled_from(["a", "b"])),
                effect=draw(st.sampled_from(["ask", "deny"])),
                id=f"L{i}flow",
            )
        )
    roles = [Role("team", agents=[draw(st.sampled_from(AGENTS))])] if i == 0 else []
    return {"rules": rules, "budgets": budgets, "flows": flows, "roles": roles, "name": f"L{i}"}


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    policy: Policy | None = None
    for i in range(draw(st.integers(1, 3))):
        made = draw(layer(i))
        rules = made.pop("rules")
        policy = Policy(rules, **made, extends=[policy] if policy is not None else [])
    assert policy is not None
    return policy


_events = st.one_of(
    st.builds(
        lambda tool, agent, n, s: ToolCall(
            tool, {k: v for k, v in (("n", n), ("s", s)) if v is not None}, agent=agent, run_id="r"
        ),
        st.sampled_from(TOOLS),
        st.sampled_from(AGENTS),
        st.one_of(st.none(), st.integers(-1, 12), st.just("4")),
        st.one_of(st.none(), st.sampled_from(["p", "q", "z"])),
    ),
    st.builds(
        lambda agent: ToolResult("src", "untrusted text", agent=agent, run_id="r"),
        st.sampled_from(AGENTS),
    ),
)


def _same(explained: Any, checked: Any) -> None:
    assert (explained.effect, explained.rule, explained.reason, explained.kind) == (
        checked.effect,
        checked.rule,
        checked.reason,
        checked.kind,
    )


@settings(max_examples=200, deadline=None)
@given(policy=policies(), events=st.lists(_events, min_size=1, max_size=10))
def test_explain_decides_exactly_as_check_on_generated_policies(
    policy: Policy, events: list[Any]
) -> None:
    guard = Guard(policy)
    for event in events:
        if isinstance(event, ToolResult):
            guard.record(event)
            continue
        first = guard.explain(event)
        second = guard.explain(event)  # a dry run: explaining twice changes nothing
        _same(first.decision, second.decision)
        _same(first.decision, guard.check(event))


@settings(max_examples=40, deadline=None)
@given(policy=policies(), events=st.lists(_events, min_size=1, max_size=6))
def test_async_explain_decides_as_acheck(policy: Policy, events: list[Any]) -> None:
    async def run() -> None:
        guard = Guard(policy)
        for event in events:
            if isinstance(event, ToolResult):
                await guard.arecord(event)
                continue
            _same((await guard.aexplain(event)).decision, await guard.acheck(event))

    asyncio.run(run())


@settings(max_examples=100, deadline=None)
@given(policy=policies(), call=_events.filter(lambda e: isinstance(e, ToolCall)))
def test_explain_lists_every_rule_about_the_call_or_says_why_not(
    policy: Policy, call: ToolCall
) -> None:
    explanation = Guard(policy).explain(call)
    named = [(s.layer, s.name) for s in explanation.steps if s.kind in ("rule", "flow")]
    first_words = [  # "overridden" is a second word on a rule already named
        (s.layer, s.name)
        for s in explanation.steps
        if s.kind in ("rule", "flow") and s.said != "overridden"
    ]
    layered = len(policy.layers) > 1
    for layer in policy.layers:
        for r in layer._own_rules:  # its rules and flow gates, roles bound
            if r.about(call.agent, call.tool):
                assert ((layer.name if layered else ""), r.id) in named, (r.id, str(explanation))
    assert len(first_words) == len(set(first_words))  # each once
    assert str(explanation).splitlines()[-1].startswith(f"=> {explanation.decision.effect}")


def test_explain_names_the_kill_switch_grants_budgets_and_overrides() -> None:
    policy = Policy(
        [allow("send"), ask("send", args={"n": Number(ge=10)}, id="big")],
        budgets=[Budget.calls(1, tools="send", id="one-send")],
    )
    guard = Guard(policy)
    text = str(guard.explain(ToolCall("send", {"n": 20})))
    assert "rule 'big' matched" in text
    assert "rule 'allow send' overridden: by 'big'" in text
    assert "budget 'one-send' has room" in text
    assert guard.check(ToolCall("send", {"n": 1})).allowed
    text = str(guard.explain(ToolCall("send", {"n": 1})))
    assert "budget 'one-send' exhausted" in text
    assert text.endswith("1 of 1 calls used")
    guard.grant("x", "other")
    assert "grant 'grant:" in str(guard.explain(ToolCall("other", {}, agent="x")))
    guard.controls.kill(agent="x", reason="runaway")
    killed = guard.explain(ToolCall("other", {}, agent="x"))
    assert killed.steps[0].kind == "control"
    assert killed.steps[0].said == "stops it"
    assert killed.decision.kind == "control"
    assert killed.to_dict()["decision"]["kind"] == "control"


def test_explain_tells_no_listener_and_charges_nothing() -> None:
    seen: list[Any] = []
    guard = Guard(
        Policy([allow("t")], budgets=[Budget.calls(1, tools="t")]),
        listeners=[lambda e, d: seen.append(d)],
    )
    for _ in range(3):
        assert guard.explain(ToolCall("t", {})).decision.allowed
    assert seen == []
    assert guard.check(ToolCall("t", {})).allowed
    assert guard.check(ToolCall("t", {})).denied


def test_an_unreadable_call_is_explained() -> None:
    call = ToolCall("t", "not an object")  # type: ignore[arg-type]
    explanation = Guard(Policy([allow("t")])).explain(call)
    assert explanation.decision.rule == "malformed-call"
    assert explanation.steps[-1].said == "unreadable"
