"""The guarded langgraph-supervisor team (app.py) keeps its promises, run for real: the
supervisor graph, its create_agent sub-agents, scripted models, an in-memory checkpointer."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from guardrails_plugin import Approval, Effect, Policy, ask
from guardrails_plugin.langgraph import answer, approval_requests
from guardrails_plugin.testing import ScriptedChatModel, tool_call

from .app import (
    PASTE_PAGE,
    POLICY,
    RELEASE_PAGE,
    REQUEST,
    Team,
    build_team,
    main,
    run,
    story_models,
)

# langgraph-supervisor 0.0.31 builds its supervisor with langgraph's deprecated create_react_agent.
pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")

CONFIG = {"configurable": {"thread_id": "t-1"}}


def recipients(team: Team) -> list[str]:
    return [mail["to"] for mail in team.world.sent]


def decisions(team: Team, tool: str, agent: str | None = None) -> list[Any]:
    return [e.decision for e in team.audit.of(tool) if agent is None or e.agent == agent]


def tool_messages(model: ScriptedChatModel, name: str) -> list[ToolMessage]:
    """The ToolMessages for ``name`` in the last prompt ``model`` saw."""
    return [m for m in model.seen[-1] if isinstance(m, ToolMessage) and m.name == name]


@pytest.fixture
def models() -> dict[str, Any]:
    return story_models()


@pytest.fixture
def team(models: dict[str, Any]) -> Team:
    return build_team(models)


def test_allowed_calls_run(team: Team) -> None:
    out = run(team)

    assert team.world.fetched == [RELEASE_PAGE]
    assert recipients(team) == ["team@example.com", "ceo@acme.org"]
    assert out["messages"][-1].name == "supervisor"
    assert "went to the team" in out["messages"][-1].text


def test_fetch_off_the_docs_site_is_denied_naming_the_rule(
    team: Team, models: dict[str, Any]
) -> None:
    run(team)

    [denied] = [d for d in decisions(team, "fetch_url") if d.denied]
    assert denied.rule == "default-deny"  # no rule allows it; why the closest rule did not:
    assert "argument 'url'" in denied.reason
    assert "paste.example.net" in denied.reason
    assert denied.message().count("rule '") == 1  # one rule per denial text
    assert PASTE_PAGE not in team.world.fetched
    # The researcher's model was told, and went on.
    blocked = [m for m in tool_messages(models["researcher"], "fetch_url") if m.status == "error"]
    assert len(blocked) == 1
    assert "default-deny" in blocked[0].text
    assert "paste.example.net" in blocked[0].text


def test_mail_to_an_outside_address_is_denied_even_next_to_a_colleague(team: Team) -> None:
    run(team)

    mixed = [e for e in team.audit.of("send_email") if "drop@example.net" in e.args["to"]]
    assert [e.decision.effect for e in mixed] == [Effect.DENY]
    assert "argument 'to'" in mixed[0].decision.reason
    assert "drop@example.net" in mixed[0].decision.reason
    assert not any("drop@example.net" in to for to in recipients(team))


def test_lateral_handoff_is_denied_and_never_reaches_the_agent() -> None:
    models = story_models()
    # This time the supervisor never hands off to the mailer itself.
    models["supervisor"] = ScriptedChatModel([tool_call("transfer_to_researcher"), "Done."])
    team = build_team(models)

    run(team)

    [lateral] = decisions(team, "transfer_to_mailer", agent="researcher")
    assert lateral.effect is Effect.DENY
    assert lateral.rule == "no-lateral-handoffs"
    assert models["mailer"].calls == 0
    assert team.world.sent == []
    # The policy never lets the researcher hand off, so its model was not offered the tool.
    assert all("transfer_to_mailer" not in tools for tools in models["researcher"].bound_tools)
    assert all("fetch_url" in tools for tools in models["researcher"].bound_tools)


def test_supervisor_handoff_outside_the_policy_never_reaches_the_agent() -> None:
    base = Policy.from_yaml(str(POLICY))
    # The same team under a policy that does not let the supervisor reach the mailer.
    policy = Policy([r for r in base.rules if r.id != "supervisor-to-mailer"])
    models = story_models()
    team = build_team(models, policy=policy)

    run(team)

    [handoff] = decisions(team, "transfer_to_mailer", agent="supervisor")
    assert handoff.effect is Effect.DENY
    assert handoff.rule == "default-deny"
    assert models["mailer"].calls == 0
    assert team.world.sent == []
    [told] = tool_messages(models["supervisor"], "transfer_to_mailer")
    assert told.status == "error"
    assert "did not run" in told.text


def test_partner_mail_waits_for_a_person_at_the_top_level(team: Team) -> None:
    out = team.graph.invoke({"messages": [("user", REQUEST)]}, CONFIG)

    # The mailer's interrupt reached the caller of the supervisor graph.
    [pending] = approval_requests(out)
    assert (pending.agent, pending.tool, pending.rule) == ("mailer", "send_email", "mail-partner")
    assert pending.args["to"] == "ceo@acme.org"
    assert pending.thread_id == "t-1"
    assert recipients(team) == ["team@example.com"]  # nothing else sent while it waits

    out = team.graph.invoke(answer(out, Approval.approve()), CONFIG)

    assert approval_requests(out) == []
    assert recipients(team) == ["team@example.com", "ceo@acme.org"]
    [asked, approved] = decisions(team, "send_email")[1:3]
    assert (asked.effect, approved.effect) == (Effect.ASK, Effect.ALLOW)
    assert approved.kind == "approval"


def test_handoff_that_needs_a_person_waits_then_goes_once_approved() -> None:
    base = Policy.from_yaml(str(POLICY))
    policy = Policy(
        [r for r in base.rules if r.id != "supervisor-to-mailer"]
        + [ask("transfer_to_mailer", agents="supervisor", id="mailer-needs-a-person")]
    )
    models = story_models()
    team = build_team(models, policy=policy)

    out = team.graph.invoke({"messages": [("user", REQUEST)]}, CONFIG)
    [pending] = approval_requests(out)
    assert (pending.agent, pending.tool) == ("supervisor", "transfer_to_mailer")
    assert models["mailer"].calls == 0

    out = team.graph.invoke(answer(out, Approval.approve()), CONFIG)  # the hand-off goes
    [pending] = approval_requests(out)  # and the mailer asks about the partner mail
    assert (pending.agent, pending.tool) == ("mailer", "send_email")
    team.graph.invoke(answer(out, Approval.approve()), CONFIG)

    assert recipients(team) == ["team@example.com", "ceo@acme.org"]


def test_rejected_partner_mail_is_not_sent(team: Team, models: dict[str, Any]) -> None:
    run(team, decide=lambda _: Approval.reject("not before the launch"))

    assert recipients(team) == ["team@example.com"]
    told = tool_messages(models["mailer"], "send_email")
    assert any("not before the launch" in m.text for m in told)


def test_each_agent_is_checked_under_its_own_name(team: Team, models: dict[str, Any]) -> None:
    run(team)

    who = {(e.agent, e.tool) for e in team.audit.entries}
    assert who == {
        ("supervisor", "transfer_to_researcher"),
        ("supervisor", "transfer_to_mailer"),
        ("researcher", "search"),
        ("researcher", "fetch_url"),
        ("researcher", "transfer_to_mailer"),
        ("mailer", "send_email"),
    }
    allowed = {(e.agent, e.tool): e.decision.rule for e in team.audit.entries if e.decision.allowed}
    assert allowed[("supervisor", "transfer_to_researcher")] == "supervisor-to-researcher"
    assert allowed[("researcher", "search")] == "search-the-web"
    assert models["mailer"].bound_tools[-1] == ["send_email"]


async def test_async_run_keeps_the_same_promises(team: Team) -> None:
    out = await team.graph.ainvoke({"messages": [("user", REQUEST)]}, CONFIG)
    [pending] = approval_requests(out)
    assert pending.args["to"] == "ceo@acme.org"
    await team.graph.ainvoke(answer(out, Approval.approve()), CONFIG)

    assert team.world.fetched == [RELEASE_PAGE]
    assert recipients(team) == ["team@example.com", "ceo@acme.org"]
    effects = [(e.agent, e.tool, e.decision.effect) for e in team.audit.entries]
    assert ("researcher", "transfer_to_mailer", Effect.DENY) in effects
    assert effects.count(("researcher", "fetch_url", Effect.DENY)) == 1


def test_main_tells_the_story(capsys: pytest.CaptureFixture[str]) -> None:
    main()

    story = capsys.readouterr().out
    assert "mailer waits for approval of send_email to 'ceo@acme.org' [mail-partner]" in story
    assert "DENIED [no-lateral-handoffs]" in story
    assert "mailed  ceo@acme.org" in story
    assert "drop@example.net" not in story.split("what really happened:")[1]
