"""The verifier: properties proven or refuted, every counterexample replayed through the engine,
and proofs checked against generated calls (a proof a call breaks is a bug)."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("z3")

from test_verify_differential import calls, policies

from guardrails_plugin import Policy, ToolCall
from guardrails_plugin.verify import Property, PropertyError, Verifier, parse, replay

COOKBOOK = "cookbook/policy.yaml"
TRIAGE = "integrations/openai_agents_triage/policy.yaml"
SUPERVISOR = "integrations/langgraph_supervisor/policy.yaml"


def _confirmed(policy: Policy, prop: Property, result: Any) -> None:
    """A refutation's counterexample is decided by the engine as the property forbids."""
    cex = result.counterexample
    assert cex is not None
    decision = replay(policy, cex.call(), cex.tainted, cex.carries)
    assert str(decision.effect) == cex.effect
    if prop.kind != "reach_agent":
        assert cex.effect in prop.effects
    for step in cex.chain:
        assert step.effect != "deny"
        assert (
            str(replay(policy, ToolCall(step.tool, dict(step.args), agent=step.agent)).effect)
            == step.effect
        )


@pytest.mark.parametrize(
    ("path", "prop", "status"),
    [
        (COOKBOOK, "agent billing never calls refund with amount > 1000", "proven"),
        (COOKBOOK, "agent billing never calls refund with amount > 100 without an ask", "proven"),
        (COOKBOOK, "agent billing never calls refund with amount > 50 without an ask", "refuted"),
        (COOKBOOK, "no agent calls refund", "refuted"),
        (COOKBOOK, "no agent reaches send_email.to outside example.com", "proven"),
        (COOKBOOK, "no agent reaches send_email.to outside sub.example.com", "refuted"),
        (COOKBOOK, "every call of delete_* is denied", "proven"),
        (COOKBOOK, "every call of send_email is asked", "refuted"),
        (COOKBOOK, "untrusted content never reaches a sink without an ask", "proven"),
        (COOKBOOK, "no agent calls fetch_url with url outside docs.example.com", "refuted"),
        (COOKBOOK, "no agent calls read_file with path outside /srv/tickets", "proven"),
        (TRIAGE, "agent triage never reaches refund", "refuted"),
        (TRIAGE, "agent triage never reaches refund with amount > 500", "proven"),
        (TRIAGE, "agent billing never reaches agent tech", "proven"),
        (TRIAGE, "agent triage never reaches agent tech", "refuted"),
        (SUPERVISOR, "agent researcher never reaches send_email", "proven"),
        (
            SUPERVISOR,
            "agent supervisor never reaches send_email with to outside example.com without an ask",
            "proven",
        ),
        (SUPERVISOR, "agent supervisor never reaches send_email", "refuted"),
    ],
)
def test_properties_of_the_shipped_policies(path: str, prop: str, status: str) -> None:
    policy = Policy.from_yaml(path)
    result = Verifier(policy).check(prop)
    assert result.status == status, str(result)
    if status == "refuted":
        _confirmed(policy, parse(prop), result)
    else:
        assert result.counterexample is None


def test_a_hand_off_chain_is_shown() -> None:
    policy = Policy.from_yaml(TRIAGE)
    result = Verifier(policy).check("agent triage never reaches refund")
    cex = result.counterexample
    assert cex is not None
    assert cex.agent == "billing"
    assert cex.tool == "refund"
    assert [(s.agent, s.tool, dict(s.args), s.to) for s in cex.chain] == [
        ("triage", "handoff", {"to": "billing"}, "billing")
    ]
    assert "triage --handoff" in str(result)
    assert result.to_dict()["counterexample"]["chain"][0]["to"] == "billing"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "agent",
        "agent billing calls refund",
        "no agent calls refund with amount >",
        "no agent calls refund with amount > abc",
        "every call of x is maybe",
        "no agent reaches send_email outside x",
        "no agent calls x with y matches (",
        "no agent calls refund trailing words",
    ],
)
def test_property_errors_say_where(text: str) -> None:
    with pytest.raises(PropertyError):
        parse(text)


NEVER = st.builds(
    lambda who, tool, cond, approval: f"{who} {tool}{cond}{' without an ask' if approval else ''}",
    st.sampled_from(["no agent calls", "agent alice never calls", "agent bob never calls"]),
    st.sampled_from(["send", "fetch", "delete_x", "read", "transfer", "*"]),
    st.sampled_from(
        ["", " with n > 10", " with n <= 1", " with mode = draft", " with path is absent"]
    ),
    st.booleans(),
)


def _holds_for(prop: Property, call: ToolCall) -> bool:
    """Whether ``call`` is one the property speaks about (its agent, tool and conditions)."""
    import fnmatch

    if not fnmatch.fnmatchcase(call.tool, prop.tool):
        return False
    if prop.agent is not None and call.agent != prop.agent:
        return False
    for c in prop.conds:
        value = call.args.get(c.arg)
        if c.op == "absent":
            if c.arg in call.args:
                return False
            continue
        if c.op in (">", "<="):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                return False
            if not (value > c.values[0] if c.op == ">" else value <= c.values[0]):  # type: ignore[operator]
                return False
        if c.op == "==" and not (isinstance(value, str) and value == c.values[0]):
            return False
    return True


def test_proofs_hold_and_refutations_replay_on_generated_policies() -> None:
    seen = {"proven": 0, "refuted": 0}

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(policies(), NEVER, st.lists(calls(), min_size=30, max_size=30))
    def run(policy: Policy, text: str, batch: list[Any]) -> None:
        prop = parse(text)
        result = Verifier(policy).check(prop)
        assert result.status in ("proven", "refuted"), str(result)
        seen[result.status] += 1
        if result.status == "refuted":
            _confirmed(policy, prop, result)
            return
        for call, _tainted, _carries in batch:  # untainted runs: what the proof covers too
            if _holds_for(prop, call):
                effect = str(replay(policy, call).effect)
                assert effect not in prop.effects, f"{text} was proven, but {call!r} is {effect}"

    run()
    assert seen["proven"]
    assert seen["refuted"]


def test_import_works_without_z3() -> None:
    code = (
        "import sys; sys.modules['z3'] = None\n"
        "import guardrails_plugin\n"
        "from guardrails_plugin import Policy, allow\n"
        "from guardrails_plugin.verify import Verifier, VerifyUnavailable\n"
        "try:\n"
        "    Verifier(Policy([allow('x')])).check('no agent calls x')\n"
        "except VerifyUnavailable as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "guardrails-plugin[verify]" in out.stdout


def test_provenance_scopes_are_over_approximated_never_proven_away() -> None:
    """``optional(Returned)`` lets an absent value pass in the engine, and ``not`` /
    ``optional`` around ``Returned`` are judged on the run's provenance, which the encoding
    cannot see: a property those rules break is refuted (by a call the engine allows) or
    unknown, never proven; deep lint reads such rules."""
    from guardrails_plugin import allow
    from guardrails_plugin.scopes import Not, Returned, optional
    from guardrails_plugin.verify import deep_lint

    policy = Policy(
        [
            allow("share", args={"file_id": optional(Returned(["create_file"]))}),
            allow("archive", args={"file_id": Not(Returned(["create_file"]))}),
            allow("delete_file", args={"file_id": Returned(["create_file"])}),
            allow("create_file"),
        ]
    )
    for tool in ("share", "archive", "delete_file"):
        result = Verifier(policy).check(f"no agent calls {tool}")
        assert result.status != "proven", result
    shared = Verifier(policy).check("no agent calls share")
    assert shared.status == "refuted"
    assert shared.counterexample is not None
    assert "file_id" not in shared.counterexample.args  # absent: the engine allows it
    deep_lint(policy)  # reads rules with provenance scopes without failing


@pytest.mark.parametrize("effect", ["deny", "ask"])
def test_shadow_rules_are_not_enforced_in_proofs_or_diffs(effect: str) -> None:
    # The engine decides and marks a shadow rule but never enforces it: a proof may not
    # rest on one, and adding one changes no decision.
    from guardrails_plugin import Guard, allow, ask, deny
    from guardrails_plugin.verify import diff

    make = {"deny": deny, "ask": ask}[effect]
    base = Policy([allow("delete_file")])
    trial = Policy([allow("delete_file"), make("delete_file", shadow=True)])
    decided = Guard(trial).check(ToolCall("delete_file", {}, agent="a"))
    assert str(decided.effect) == "allow"
    assert decided.would == effect
    result = Verifier(trial).check("every call of delete_file is denied")
    assert result.status == "refuted"
    assert result.counterexample is not None
    assert str(replay(trial, result.counterexample.call()).effect) == "allow"
    changed = diff(base, trial)
    assert list(changed) == []
    assert changed.unsettled == ()
