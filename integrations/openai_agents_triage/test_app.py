"""The guarded Agents SDK triage team (app.py) keeps its promises, run for real: the SDK's run
loop, its hand-offs, its approval interruptions saved and restored as strings, scripted
models."""

from __future__ import annotations

from typing import Any

import pytest
from agents import Runner, set_tracing_disabled

from guardrails_plugin import Approval, Effect, Guard, Policy, RunKilled, ToolCallDenied
from guardrails_plugin.cascade import CascadeMonitor

from .app import POLICY, Team, World, build_team, main, run, story_models

set_tracing_disabled(True)


def effects(team: Team, tool: str) -> list[tuple[Any, Effect, str]]:
    return [(dict(e.event.args), e.decision.effect, e.decision.rule) for e in team.audit.of(tool)]


def test_refunds_within_policy_run_a_big_one_waits_for_a_person_the_budget_holds() -> None:
    world = World()
    team = build_team(world, story_models("refund"), thread="r-1")

    result = run(team, "refund my kettle")

    assert world.refunds == [("ORD-7", 40.0), ("ORD-7", 180.0)]
    assert [(a["amount"], eff) for a, eff, _ in effects(team, "refund")] == [
        (40, Effect.ALLOW),
        (180, Effect.ASK),
        (180, Effect.ALLOW),
        (90, Effect.DENY),
    ]
    assert effects(team, "refund")[-1][2] == "refunds-per-conversation"
    assert effects(team, "handoff") == [({"to": "billing"}, Effect.ALLOW, "triage-routes")]
    assert "needs a manager" in result.final_output


def test_a_person_can_refuse_the_big_refund() -> None:
    world = World()
    team = build_team(world, story_models("refund"), thread="r-2")

    run(team, "refund my kettle", answers={"refund": Approval.reject("too much")})

    assert world.refunds == [("ORD-7", 40.0), ("ORD-7", 90.0)]  # the budget had room again
    assert [eff for _, eff, _ in effects(team, "refund")] == [
        Effect.ALLOW,
        Effect.ASK,
        Effect.DENY,
        Effect.ALLOW,
    ]


def test_tech_reads_only_app_logs_and_an_edited_restart_is_rechecked() -> None:
    world = World()
    team = build_team(world, story_models("outage"), thread="o-1")

    run(team, "502s", answers={"restart_service": Approval.edit({"service": "worker"})})

    assert world.restarts == ["worker"]
    reads = effects(team, "read_log")
    assert [(a["path"], eff) for a, eff, _ in reads] == [
        ("/var/log/app/web.log", Effect.ALLOW),
        ("/etc/shadow", Effect.DENY),
    ]
    assert [eff for _, eff, _ in effects(team, "restart_service")] == [Effect.ASK, Effect.MODIFY]


def test_an_edit_out_of_policy_restarts_nothing() -> None:
    world = World()
    team = build_team(world, story_models("outage"), thread="o-2")

    run(team, "502s", answers={"restart_service": Approval.edit({"service": "database"})})

    assert world.restarts == []
    assert effects(team, "restart_service")[-1][1] is Effect.DENY


def test_the_injected_lateral_hand_off_is_denied_and_reported() -> None:
    world = World()
    team = build_team(world, story_models("injection"), thread="i-1")

    with pytest.raises(ToolCallDenied) as info:
        run(team, "why is the site slow?")

    assert info.value.decision.rule == "no-lateral-handoffs"
    assert world.refunds == []
    # the permitted hand-off reached the cascade monitor, the denied one did not
    assert team.monitor.provenance("i-1", "tech") == ("triage",)
    assert team.monitor.provenance("i-1", "billing") == ()


def test_the_kill_switch_stops_the_team_at_its_next_model_turn() -> None:
    world = World()
    guard = Guard(Policy.from_yaml(str(POLICY)), cascade=CascadeMonitor())
    guard.controls.kill(thread="k-1", reason="incident", by="ops")
    team = build_team(world, story_models("refund"), thread="k-1", guard=guard)

    with pytest.raises(RunKilled):
        Runner.run_sync(team.triage, "refund my kettle")
    assert team.audit.entries == []


def test_main_runs_the_three_conversations(capsys: pytest.CaptureFixture[str]) -> None:
    main()
    out = capsys.readouterr().out
    assert "refunds made: [('ORD-7', 40.0), ('ORD-7', 180.0)] restarts: ['worker']" in out
    assert "stopped: ToolCallDenied" in out
