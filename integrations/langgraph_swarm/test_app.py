"""The guarded langgraph-swarm travel team (app.py) keeps its promises, run for real: the
swarm graph, its create_agent agents, scripted models, an in-memory checkpointer."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langgraph.types import Command

from guardrails_plugin import Effect
from guardrails_plugin.controls import State
from guardrails_plugin.testing import ScriptedChatModel, tool_call

from .app import (
    ESCALATION,
    LOOPING,
    NORMAL,
    Entry,
    Swarm,
    build_swarm,
    config,
    escalation_models,
    handoff,
    looping_models,
    main,
    normal_models,
)

FLIGHTS, HOTELS = "flight_assistant", "hotel_assistant"


def start(swarm: Swarm, request: str, thread: str) -> dict[str, Any]:
    out: dict[str, Any] = swarm.graph.invoke({"messages": [("user", request)]}, config(thread))
    return out


def handoffs(swarm: Swarm) -> list[Entry]:
    return [e for e in swarm.audit.entries if e.to is not None]


def told(model: ScriptedChatModel, tool: str) -> list[ToolMessage]:
    """The ToolMessages for ``tool`` in the last prompt ``model`` saw."""
    return [m for m in model.seen[-1] if isinstance(m, ToolMessage) and m.name == tool]


# -- a normal run -----------------------------------------------------------------------------


def test_normal_run_completes_untouched() -> None:
    models = normal_models()
    swarm = build_swarm(models)

    out = start(swarm, NORMAL, "t-normal")

    assert "__interrupt__" not in out
    assert swarm.guard.trips() == []
    assert swarm.guard.controls.flags() == []
    assert all(e.decision.allowed for e in swarm.audit.entries)
    assert [(e.agent, e.to) for e in handoffs(swarm)] == [(FLIGHTS, HOTELS)]
    assert swarm.world.booked == ["DL-402", "H-TSQ"]
    assert swarm.world.refunded == []
    assert out["messages"][-1].name == HOTELS
    assert "Times Square Inn" in out["messages"][-1].text


def test_each_agent_sees_only_the_tools_its_policy_allows() -> None:
    models = normal_models()
    swarm = build_swarm(models)

    start(swarm, NORMAL, "t-tools")

    assert models[FLIGHTS].bound_tools[-1] == [
        "search_flights",
        "book_flight",
        "refund_booking",
        "transfer_to_hotel_assistant",
    ]
    assert models[HOTELS].bound_tools[-1] == [
        "search_hotels",
        "book_hotel",
        "refund_booking",
        "transfer_to_flight_assistant",
    ]


# -- a looping run ----------------------------------------------------------------------------


def assert_loop_contained(swarm: Swarm, models: dict[str, Any], out: dict[str, Any]) -> None:
    [waiting] = out["__interrupt__"]
    assert waiting.value["type"] == "paused"
    assert (waiting.value["agent"], waiting.value["tool"]) == (
        HOTELS,
        "transfer_to_flight_assistant",
    )
    assert "went round the loop" in waiting.value["reason"]

    [trip] = swarm.guard.trips("t-loop")
    assert (trip.signal, trip.at_message, trip.response) == ("cycles", 5, "interrupt")
    assert trip.agents == (FLIGHTS, HOTELS)
    assert [(e["sender"], e["recipient"]) for e in trip.evidence] == [
        (FLIGHTS, HOTELS),
        (HOTELS, FLIGHTS),
    ] * 3
    [flag] = swarm.guard.controls.flags()
    assert (flag.level, flag.target, flag.state, flag.by) == (
        "thread",
        "t-loop",
        State.PAUSED,
        "cascade-breaker",
    )
    # Early and contained: the 6th hand-off (3 rounds of a 2-agent loop) waits, and no model
    # was called after it.
    sent = handoffs(swarm)
    assert len(sent) == 6
    assert all(e.decision.allowed for e in sent[:5])
    assert (sent[5].decision.effect, sent[5].decision.rule) == (Effect.ASK, "cascade:cycles")
    assert (models[FLIGHTS].calls, models[HOTELS].calls) == (3, 3)
    assert swarm.world.booked == []


def test_looping_run_trips_cycles_early_and_is_contained() -> None:
    models = looping_models()
    swarm = build_swarm(models)

    out = start(swarm, LOOPING, "t-loop")

    assert_loop_contained(swarm, models, out)


def test_the_loop_stays_paused_until_a_person_lifts_the_pause() -> None:
    models = looping_models()
    swarm = build_swarm(models)
    start(swarm, LOOPING, "t-loop")

    out = swarm.graph.invoke(Command(resume=True), config("t-loop"))  # nobody lifted it

    assert out["__interrupt__"][0].value["type"] == "paused"
    assert models[FLIGHTS].calls == 3

    assert swarm.guard.controls.resume(thread="t-loop")
    out = swarm.graph.invoke(Command(resume=True), config("t-loop"))

    assert "__interrupt__" not in out
    assert out["messages"][-1].name == FLIGHTS
    assert "DL-402" in out["messages"][-1].text
    assert models[FLIGHTS].calls == 5  # the held hand-off went, then the flight search
    assert len(swarm.guard.trips()) == 1  # the resumed hand-off is not counted twice
    assert swarm.guard.controls.flags() == []


async def test_async_looping_run_is_contained_and_resumes() -> None:
    models = looping_models()
    swarm = build_swarm(models)
    cfg = config("t-loop")

    out = await swarm.graph.ainvoke({"messages": [("user", LOOPING)]}, cfg)
    assert_loop_contained(swarm, models, out)

    assert await swarm.guard.controls.aresume(thread="t-loop")
    out = await swarm.graph.ainvoke(Command(resume=True), cfg)

    assert "__interrupt__" not in out
    assert out["messages"][-1].name == FLIGHTS
    assert len(await swarm.guard.atrips()) == 1


# -- escalation: a confused deputy --------------------------------------------------------


def assert_escalation_stopped(swarm: Swarm, models: dict[str, Any]) -> None:
    # The sensitive tool never ran: the hotel assistant's call was denied, and its request
    # to the flight assistant was held before the flight assistant could act on it.
    assert swarm.world.refunded == []
    [by_hotels] = swarm.audit.of("refund_booking")
    assert (by_hotels.agent, by_hotels.decision.effect) == (HOTELS, Effect.DENY)
    assert by_hotels.decision.rule == "default-deny"
    assert "argument " in by_hotels.decision.reason  # why the closest rule did not allow it
    assert by_hotels.decision.message().count("rule '") == 1  # one rule per denial text

    [trip] = swarm.guard.trips("t-esc")
    assert (trip.signal, trip.response, trip.culprit) == ("escalation", "quarantine", HOTELS)
    assert trip.agents == (HOTELS, FLIGHTS)
    assert "possible confused deputy, held before it acts" in trip.reason
    assert "flt-2201" in trip.reason
    [flag] = swarm.guard.controls.flags()
    assert (flag.level, flag.target, flag.state) == ("agent", HOTELS, State.QUARANTINED)

    # The culprit's model was told why; the flight assistant never saw the request.
    [held] = [
        m for m in told(models[HOTELS], "transfer_to_flight_assistant") if "escalation" in m.text
    ]
    assert held.status == "error"
    assert "did not run" in held.text
    assert "confused deputy" in held.text
    last = handoffs(swarm)[-1]
    assert (last.agent, last.to, last.decision.rule) == (HOTELS, FLIGHTS, "cascade:escalation")
    assert models[FLIGHTS].calls == 3
    assert swarm.world.booked == ["UA-318"]  # what the user asked for still happened


def test_escalation_is_stopped_and_the_refund_never_runs() -> None:
    models = escalation_models()
    swarm = build_swarm(models)

    out = start(swarm, ESCALATION, "t-esc")

    assert "__interrupt__" not in out
    assert_escalation_stopped(swarm, models)
    assert out["messages"][-1].name == HOTELS


async def test_async_escalation_is_stopped() -> None:
    models = escalation_models()
    swarm = build_swarm(models)

    await swarm.graph.ainvoke({"messages": [("user", ESCALATION)]}, config("t-esc"))

    assert_escalation_stopped(swarm, models)


def test_a_released_agent_takes_hand_offs_again() -> None:
    models = escalation_models()
    swarm = build_swarm(models)
    start(swarm, ESCALATION, "t-esc")
    models[FLIGHTS].script += [handoff(HOTELS, "The refund was stopped; please book the hotel.")]
    models[HOTELS].script += [
        tool_call("book_hotel", hotel_id="H-LOOP", check_in="2026-06-03", nights=2),
        "Booked two nights at Loop Suites.",
    ]

    assert swarm.guard.controls.resume(agent=HOTELS)
    out = start(swarm, "Go ahead with the hotel, please.", "t-esc")

    assert swarm.guard.controls.flags() == []
    assert swarm.world.booked == ["UA-318", "H-LOOP"]
    assert swarm.world.refunded == []
    assert out["messages"][-1].text == "Booked two nights at Loop Suites."
    assert len(swarm.guard.trips()) == 1


# -- the story as printed -------------------------------------------------------------------


def test_main_tells_the_story(capsys: pytest.CaptureFixture[str]) -> None:
    main()

    story = capsys.readouterr().out
    normal, looping, escalation = story.split("== ")[1:]
    assert "=>" not in normal
    assert "trip:" not in normal
    assert "hotel_assistant  -> flight_assistant  => ASK [cascade:cycles]" in looping
    assert "trip: cycles at message #5 -> interrupt" in looping
    assert "hotel_assistant  -> flight_assistant  => DENY [cascade:escalation]" in escalation
    assert "flight_assistant  refund_booking" not in escalation
    assert "flag: agent 'hotel_assistant' quarantined by cascade-breaker" in escalation
    assert story.count("refunded: []") == 3
