"""Cascade scenarios on real LangGraph graphs: each runaway pattern trips its signal early,
at a known message, and the breaker contains it; busy but healthy teams never trip.

Graphs are built in ``cascade_scenarios.py`` (``StateGraph``, ``create_agent``,
langgraph-swarm, langgraph-supervisor; scripted models; ``InMemorySaver``) and run under the
guard through ``guard_node`` / ``GuardedToolNode`` / ``GuardMiddleware`` or, for graphs
nobody changed, ``CascadeWatcher``. Message indices are the index (from 0) in the thread of
the message that tripped, as ``Trip.at_message`` reports it. Every run is recorded for the
table ``tests/conftest.py`` prints at the end of the session.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from cascade_graphs import (
    BENIGN,
    DESK,
    EMAIL,
    GIVE_UP,
    HONEST,
    INFECTION,
    REWORDED,
    STUCK_TASK,
    TEAM,
    Log,
    Outcome,
    Tally,
    broadcast,
    busy_plan,
    editorial,
    heartbeats,
    map_reduce,
    monitor,
    ping_pong,
    record,
    relay,
    review_loop,
    spawner,
    stuck_plan,
    supervisor_app,
    supervisor_team,
    swarm_deputy,
    three_agent_cycle,
    toolnode_deputy,
)
from langchain_core.messages import ToolMessage
from langgraph.types import Command
from langgraph_apps import MODES, run

from guardrails_plugin import (
    Guard,
    Policy,
    RunKilled,
    RunPaused,
    ToolCallDenied,
    allow,
    deny,
)
from guardrails_plugin.cascade import (
    Breaker,
    CascadeMonitor,
    Cycles,
    Depth,
    Escalation,
    Replication,
    Response,
    Storms,
)
from guardrails_plugin.controls import State
from guardrails_plugin.langgraph import HANDOFF_TOOL, CascadeWatcher

POLICY = Policy(
    [
        allow(HANDOFF_TOOL),
        allow("transfer_to_*"),
        deny("send_email", agents="assistant", id="assistant-no-mail"),
        allow("send_email", agents="deputy"),
    ]
)
USER = {"messages": [("user", "go")]}


def guarded(*, storms: Storms | None = None, breaker: Breaker | None = None) -> tuple[Guard, Tally]:
    """A guard with the default cascade signals (plus a message counter) and breaker."""
    tally = Tally()
    return Guard(POLICY, cascade=monitor(tally, storms=storms), breaker=breaker), tally


def config(thread: str, *callbacks: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}, "callbacks": list(callbacks)}


def paused(out: dict[str, Any]) -> dict[str, Any]:
    """The one pause interrupt of a graph's output."""
    [interrupt] = out["__interrupt__"]
    payload: dict[str, Any] = interrupt.value
    assert payload["type"] == "paused"
    return payload


def flags(guard: Guard) -> list[tuple[str, str, State]]:
    return [(f.level, f.target, f.state) for f in guard.controls.flags()]


def assert_benign(outcome: Outcome, guard: Guard, scope: str, at_least: int) -> None:
    assert guard.trips(scope) == []
    assert guard.controls.flags() == []
    assert outcome.seen >= at_least  # long enough to mean something


# -- 1. two agents handing the same request back and forth --------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_ping_pong_trips_cycles_at_the_sixth_handoff_and_pauses_the_run(mode: str) -> None:
    guard, tally = guarded()
    log: Log = []
    graph = ping_pong(guard, log)

    out = await run(graph, USER, config("pp"), mode)

    outcome = record(
        "ping-pong booker<->finance",
        "cycles",
        guard,
        tally,
        "pp",
        adapter="guard_node",
        mode=mode,
        containment="interrupt (paused)",
    )
    [trip] = guard.trips("pp")
    assert (trip.signal, trip.at_message, trip.agents) == ("cycles", 5, ("booker", "finance"))
    assert (trip.culprit, trip.response) == ("finance", "interrupt")
    assert "booker -> finance -> booker 3 times" in trip.reason
    payload = paused(out)
    assert (payload["agent"], payload["tool"]) == ("finance", HANDOFF_TOOL)
    assert "hand-offs went round the loop" in payload["reason"]
    # Three rounds ran; the third hand-off back to the booker never happened.
    assert log == ["booker", "finance"] * 3
    assert graph.get_state(config("pp")).next == ("finance",)
    assert flags(guard) == [("thread", "pp", State.PAUSED)]
    assert outcome.seen == 6


@pytest.mark.parametrize("mode", MODES)
async def test_interrupt_a_person_resumes_and_the_graph_goes_on_to_its_end(mode: str) -> None:
    guard, tally = guarded()
    log: Log = []
    graph = ping_pong(guard, log, attempts=3)  # the booker gives up at its fourth turn
    cfg = config("pp-resume")
    paused(await run(graph, USER, cfg, mode))
    assert log == ["booker", "finance"] * 3

    assert guard.controls.resume(thread="pp-resume")
    out = await run(graph, Command(resume=True), cfg, mode)

    record(
        "ping-pong, person resumes",
        "cycles",
        guard,
        tally,
        "pp-resume",
        adapter="guard_node",
        mode=mode,
        containment="interrupt -> resumed -> ran to END",
    )
    assert "__interrupt__" not in out
    assert out["messages"][-1].text == "I give up on this booking."
    assert log[-2:] == ["finance", "booker"]  # the paused hand-off went through
    assert [t.at_message for t in guard.trips("pp-resume")] == [5]  # the re-run counted once
    assert tally.seen("pp-resume") == 6
    assert guard.controls.flags() == []


def test_resuming_before_the_pause_is_lifted_does_not_cost_an_extra_resume() -> None:
    # The node's kill-switch hold is its entry gate: once a task got past it and was
    # interrupted later, its re-runs do not hold again (that took the resume value of the
    # hand-off's own pause, and cost one extra resume per early resume).
    guard, _ = guarded()
    log: Log = []
    graph = ping_pong(guard, log, attempts=3)
    cfg = config("pp-early")
    paused(graph.invoke(USER, cfg))
    # Someone resumes the graph before a person lifted the pause: still paused.
    assert "cascade-breaker" in paused(graph.invoke(Command(resume=True), cfg))["reason"]

    guard.controls.resume(thread="pp-early")
    out = graph.invoke(Command(resume=True), cfg)

    assert "__interrupt__" not in out
    assert out["messages"][-1].text == "I give up on this booking."


# -- 2. three agents going round a loop, in a graph nobody changed -------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_three_agent_cycle_trips_at_the_tenth_handoff_through_the_watcher(
    mode: str,
) -> None:
    guard, tally = guarded()
    log: Log = []
    graph = three_agent_cycle(log, planner_visits=4)
    cfg = config("cyc", CascadeWatcher(guard))

    with pytest.raises(RunPaused, match="cascade:cycles"):
        await run(graph, USER, cfg, mode)

    record(
        "3-agent cycle planner>searcher>critic",
        "cycles",
        guard,
        tally,
        "cyc",
        adapter="CascadeWatcher",
        mode=mode,
        containment="RunPaused -> resumed -> ran to END",
    )
    [trip] = guard.trips("cyc")
    # The planner's second plan names new dates (13-14 May): news. Two rounds with nothing
    # new after it trip, at the planner's fourth hand-off.
    assert (trip.signal, trip.at_message) == ("cycles", 9)
    assert trip.agents == ("searcher", "critic", "planner")
    assert "searcher -> critic -> planner -> searcher" in trip.reason
    # Stopped before the searcher's fourth start.
    assert log == ["planner", "searcher", "critic"] * 3 + ["planner"]
    assert graph.get_state(cfg).next == ("searcher",)
    assert flags(guard) == [("thread", "cyc", State.PAUSED)]

    # A person lifts the pause; the run goes on from its checkpoint to the end.
    guard.controls.resume(thread="cyc")
    out = await run(graph, None, cfg, mode)
    assert out["messages"][-1].text == GIVE_UP
    assert log[-1] == "planner"
    assert len(guard.trips("cyc")) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_stop_kills_the_run_and_the_thread_stays_stopped(mode: str) -> None:
    guard, tally = guarded(breaker=Breaker({"cycles": "stop"}))
    log: Log = []
    graph = three_agent_cycle(log)
    cfg = config("cyc-stop", CascadeWatcher(guard))

    with pytest.raises(RunKilled, match="the run was stopped"):
        await run(graph, USER, cfg, mode)

    record(
        "3-agent cycle, breaker stops",
        "cycles",
        guard,
        tally,
        "cyc-stop",
        adapter="CascadeWatcher",
        mode=mode,
        containment="RunKilled, thread stays killed",
    )
    assert [(t.signal, t.at_message, t.response) for t in guard.trips("cyc-stop")] == [
        ("cycles", 9, "stop")
    ]
    assert flags(guard) == [("thread", "cyc-stop", State.KILLED)]
    runs = len(log)
    # The thread stays stopped: going on from the checkpoint is killed again, nothing runs.
    with pytest.raises(RunKilled, match="kill-switch"):
        await run(graph, None, cfg, mode)
    assert len(log) == runs == 10
    assert flags(guard) == [("thread", "cyc-stop", State.KILLED)]


# -- 3. a supervisor re-dispatching the same task -------------------------------------------------


@pytest.mark.parametrize("adapter", ["guard_node", "CascadeWatcher"])
def test_supervisor_redispatch_loop_trips_five_messages_into_the_loop(adapter: str) -> None:
    guard, tally = guarded()
    log: Log = []
    plan, answers = stuck_plan(varied=8, stuck=20)  # 16 healthy messages, then the loop
    watched = adapter == "CascadeWatcher"
    graph = supervisor_team(None if watched else guard, log, plan, answers)
    cfg = config("sup-loop", *([CascadeWatcher(guard)] if watched else []))

    if watched:
        with pytest.raises(RunPaused, match="cascade:cycles"):
            graph.invoke(USER, cfg)
    else:
        payload = paused(graph.invoke(USER, cfg))
        assert (payload["agent"], payload["tool"]) == ("analyst", HANDOFF_TOOL)

    record(
        "supervisor re-dispatch loop",
        "cycles",
        guard,
        tally,
        "sup-loop",
        adapter=adapter,
        containment="RunPaused" if watched else "interrupt (paused)",
    )
    [trip] = guard.trips("sup-loop")
    assert (trip.signal, trip.at_message) == ("cycles", 16 + 5)
    assert trip.agents == ("supervisor", "analyst")
    stuck = [e for e in trip.evidence if e["sender"] == "supervisor"]
    assert {e["content"] for e in stuck} == {STUCK_TASK}
    # The analyst answered the stuck task three times; its third answer never reached the
    # supervisor (guard_node: the hand-off paused; watcher: stopped at the supervisor's start).
    assert log.count("analyst") == 2 + 3  # two healthy analyst tasks before the loop
    assert log[-1] == "analyst"
    assert log.count("supervisor") == 8 + 3


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
@pytest.mark.parametrize(
    "adapter",
    [
        "CascadeWatcher",
        "GuardedToolNode",
        # both on one graph: once the tool node reports hand-offs in a thread, the
        # watcher's (passive) reports there are ignored, so each hand-off counts once
        "GuardedToolNode+CascadeWatcher",
    ],
)
def test_langgraph_supervisor_redispatch_loop_trips_at_the_sixth_handoff(adapter: str) -> None:
    guard, tally = guarded()
    graph, _, analyst_model = supervisor_app(12, guard if "GuardedToolNode" in adapter else None)
    watcher = [CascadeWatcher(guard)] if "CascadeWatcher" in adapter else []
    cfg = config("lgs-loop", *watcher)

    stopped = "none: ran all 12 rounds"
    try:
        out = graph.invoke({"messages": [("user", "EMEA Q3 numbers please")]}, cfg)
        if "__interrupt__" in out:
            stopped = "interrupt (paused)"
            payload = paused(out)
            assert (payload["agent"], payload["tool"]) == ("supervisor", "transfer_to_analyst")
    except RunPaused:
        stopped = "RunPaused"

    record(
        "langgraph-supervisor re-dispatch loop",
        "cycles",
        guard,
        tally,
        "lgs-loop",
        adapter=adapter,
        containment=stopped,
    )
    trips = guard.trips("lgs-loop")
    assert [(t.signal, t.at_message) for t in trips[:1]] == [("cycles", 5)]
    assert trips[0].agents == ("supervisor", "analyst")
    assert analyst_model.calls == 3  # its third answer never reached the supervisor's model
    assert stopped != "none: ran all 12 rounds"


def test_supervisor_loop_with_guard_node_and_watcher_together_trips_cycles() -> None:
    guard, tally = guarded()
    log: Log = []
    plan, answers = stuck_plan(varied=8, stuck=20)
    graph = supervisor_team(guard, log, plan, answers)

    with contextlib.suppress(RunPaused):
        graph.invoke(USER, config("sup-both", CascadeWatcher(guard)))

    record(
        "supervisor re-dispatch loop",
        "cycles",
        guard,
        tally,
        "sup-both",
        adapter="guard_node+CascadeWatcher",
    )
    # Caught as early as with guard_node alone: the watcher's reports are ignored once
    # guard_node reports hand-offs in the thread.
    first = guard.trips("sup-both")[0]
    assert (first.signal, first.at_message) == ("cycles", 16 + 5)


# -- 4. storms: one agent broadcasting, agents spawning agents ------------------------------------


def test_broadcast_to_thirty_agents_trips_fan_out_at_the_twenty_first_send() -> None:
    # One broadcast is not a storm in logical time (it does not multiply); the wall-clock
    # window, an option, still counts distinct recipients per sender.
    guard, tally = guarded(storms=Storms(window=10.0))
    log: Log = []
    graph = broadcast(guard, log, agents=30)

    out = graph.invoke(USER, config("bcast"))

    record(
        "fan-out: 1 agent Sends to 30",
        "storms",
        guard,
        tally,
        "bcast",
        adapter="guard_node",
        containment="interrupt before any Send ran",
    )
    [trip] = guard.trips("bcast")
    assert (trip.signal, trip.at_message, trip.culprit) == ("storms", 20, "announcer")
    assert "announcer sent to more than 20 distinct agents" in trip.reason
    assert len(trip.agents) == 1 + 21
    payload = paused(out)
    assert (payload["agent"], payload["tool"]) == ("announcer", HANDOFF_TOOL)
    assert log == ["announcer"]  # the node's Sends are held: not one of the 30 ran
    assert tally.seen("bcast") == 21


def test_agents_spawning_agents_trip_storms_and_the_breaker_stops_the_run() -> None:
    # Each agent splits its task between two fresh copies of itself: 2, 4, 8, ... hand-offs
    # per causal generation (guard_node reports each Send packet with its generation).
    guard, tally = guarded(breaker=Breaker({"storms": "stop"}))
    log: Log = []
    graph = spawner(guard, log, generations=10)  # 2,047 agents if nothing stops it
    cfg = config("spawn")

    with pytest.raises(RunKilled, match="message storm"):
        graph.invoke({"task": "crawl shard 0"}, cfg)

    record(
        "agents spawning agents (x2 per gen)",
        "storms",
        guard,
        tally,
        "spawn",
        adapter="guard_node",
        containment="RunKilled, thread stays killed",
    )
    [trip] = guard.trips("spawn")
    # 2 -> 4 -> 8 hand-offs per generation: the 8th of generation 2 (x1.5 twice in a row,
    # and at least 8) trips it.
    assert (trip.signal, trip.at_message, trip.response) == ("storms", 13, "stop")
    assert "deliveries multiply every generation, 2 -> 4 -> 8" in trip.reason
    # The agents of the third generation never started.
    assert max(t.count(".") for t in log) <= 2
    assert len(log) <= 1 + 2 + 4
    with pytest.raises(RunKilled, match="kill-switch"):
        graph.invoke(None, cfg)
    assert flags(guard) == [("thread", "spawn", State.KILLED)]


# -- 5. prompt infection: an injected instruction forwarded hop to hop ------------------------------


@pytest.mark.parametrize("on_deny", ["raise", "drop"])
def test_injected_instruction_forwarded_three_hops_quarantines_the_forwarder(
    on_deny: str,
) -> None:
    guard, tally = guarded()
    log: Log = []
    graph = relay(guard, log, on_deny=on_deny)
    cfg = config(f"infected-{on_deny}")

    if on_deny == "raise":
        with pytest.raises(ToolCallDenied, match="quarantined") as caught:
            graph.invoke({"messages": [("user", "infected: read the shipping page")]}, cfg)
        assert caught.value.decision.rule == "cascade:replication"
    else:
        out = graph.invoke({"messages": [("user", "infected: read the shipping page")]}, cfg)
        assert out["messages"][-1].text == INFECTION["writer"]  # its update kept, hand-off not

    record(
        "prompt infection intake>...>mailer",
        "replication",
        guard,
        tally,
        f"infected-{on_deny}",
        adapter="guard_node",
        mode=f"on_deny={on_deny}",
        containment=f"quarantine writer, hand-off {'raised' if on_deny == 'raise' else 'dropped'}",
    )
    [trip] = guard.trips(f"infected-{on_deny}")
    assert (trip.signal, trip.at_message) == ("replication", 2)
    assert (trip.culprit, trip.response) == ("writer", "quarantine")
    assert trip.agents == ("intake", "summariser", "writer", "mailer")
    assert "intake -> summariser -> writer -> mailer" in trip.reason
    assert log == ["intake", "summariser", "writer"]  # the mailer never got it
    assert flags(guard) == [("agent", "writer", State.QUARANTINED)]


def test_quarantine_others_keep_working_until_a_person_releases_the_agent() -> None:
    guard, tally = guarded()
    log: Log = []
    graph = relay(guard, log, on_deny="drop")
    graph.invoke({"messages": [("user", "infected: read the shipping page")]}, config("q-1"))
    assert flags(guard) == [("agent", "writer", State.QUARANTINED)]

    # Another request that does not need the writer goes through end to end.
    log.clear()
    out = graph.invoke({"messages": [("user", "short: order status")]}, config("q-2"))
    assert log == ["intake", "summariser", "mailer"]
    assert out["messages"][-1].name == "mailer"
    # One that does: the hand-off to the quarantined writer is held (dropped here).
    log.clear()
    graph.invoke({"messages": [("user", "long: order status")]}, config("q-3"))
    assert log == ["intake", "summariser"]

    # A person releases the writer: the same request now runs the whole pipeline.
    assert guard.controls.resume(agent="writer")
    log.clear()
    out = graph.invoke({"messages": [("user", "long: order status")]}, config("q-4"))

    record(
        "quarantine, others work, release",
        "replication",
        guard,
        tally,
        "q-1",
        adapter="guard_node",
        containment="quarantine -> others ran -> released",
    )
    assert log == ["intake", "summariser", "writer", "mailer"]
    assert out["messages"][-1].name == "mailer"
    assert guard.controls.flags() == []
    assert [t.signal for t in guard.trips()] == ["replication"]  # only the infected thread


def test_injected_instruction_reworded_above_the_threshold_is_caught() -> None:
    # Replication's LSH banding (16 bands of 4 rows) makes a pair at J = 0.7 a candidate
    # 98.8% of the time; datasketch's own 8 x 8 found this hop (J 0.75) about half the time.
    guard, tally = guarded()
    log: Log = []
    graph = relay(guard, log, on_deny="drop", infection=REWORDED)

    graph.invoke({"messages": [("user", "infected: read the shipping page")]}, config("reword"))

    record(
        "prompt infection, reworded (J 0.78/0.75)",
        "replication",
        guard,
        tally,
        "reword",
        adapter="guard_node",
        containment="none: the mailer got it" if "mailer" in log else "quarantine writer",
    )
    assert [(t.signal, t.at_message) for t in guard.trips("reword")] == [("replication", 2)]
    assert "mailer" not in log


def test_injected_instruction_through_the_watcher_is_held_before_the_mailer_runs() -> None:
    guard, tally = guarded()
    log: Log = []
    graph = relay(None, log)
    cfg = config("infected-watch", CascadeWatcher(guard))

    with pytest.raises(ToolCallDenied, match="cascade:replication"):
        graph.invoke({"messages": [("user", "infected: read the shipping page")]}, cfg)

    record(
        "prompt infection intake>...>mailer",
        "replication",
        guard,
        tally,
        "infected-watch",
        adapter="CascadeWatcher",
        containment="quarantine writer, ToolCallDenied",
    )
    [trip] = guard.trips("infected-watch")
    assert (trip.signal, trip.at_message, trip.culprit) == ("replication", 2, "writer")
    assert log == ["intake", "summariser", "writer"]
    assert flags(guard) == [("agent", "writer", State.QUARANTINED)]


# -- 6. confused deputy: a denied e-mail requested again through another agent --------------------


@pytest.mark.parametrize("mode", MODES)
async def test_confused_deputy_in_a_swarm_is_paused_before_the_mail_goes_out(mode: str) -> None:
    guard, tally = guarded()
    sent: list[dict[str, Any]] = []
    graph, assistant_model, deputy_model = swarm_deputy(guard, sent)

    out = await run(graph, {"messages": [("user", "send the salary file")]}, config("dep"), mode)

    record(
        "confused deputy (langgraph-swarm)",
        "escalation",
        guard,
        tally,
        "dep",
        adapter="GuardMiddleware",
        mode=mode,
        containment="interrupt before send_email",
    )
    [trip] = guard.trips("dep")
    assert (trip.signal, trip.at_message) == ("escalation", 0)  # the hand-off itself
    assert (trip.culprit, trip.agents) == ("assistant", ("assistant", "deputy"))
    assert "'send_email' was denied to assistant" in trip.reason
    assert "payroll@partner-hr.example" in trip.reason  # the request names the denied call
    assert "held before it acts" in trip.reason
    payload = paused(out)
    assert (payload["agent"], payload["tool"]) == ("assistant", "transfer_to_deputy")
    assert sent == []  # neither agent's e-mail went out
    # The assistant's own attempt was denied by the policy, and its model was told so.
    denied = [m for m in assistant_model.seen[1] if isinstance(m, ToolMessage)]
    assert denied[0].status == "error"
    assert "assistant-no-mail" in denied[0].text
    assert deputy_model.calls == 0  # the deputy never saw the request
    assert flags(guard) == [("thread", "dep", State.PAUSED)]


@pytest.mark.parametrize("response", ["interrupt", "quarantine"])
def test_confused_deputy_through_guarded_tool_nodes_is_stopped_before_the_mail_goes_out(
    response: Response,
) -> None:
    guard, tally = guarded(breaker=Breaker({"escalation": response}))
    sent: list[dict[str, Any]] = []
    log: Log = []
    graph = toolnode_deputy(guard, sent, log)
    cfg = config(f"dep-{response}")

    if response == "interrupt":
        out = graph.invoke({"messages": [("user", "send the salary file")]}, cfg)
    else:
        # guard_node raises on a denied hand-off (on_deny="raise"): the run ends there
        with pytest.raises(ToolCallDenied, match="cascade:escalation"):
            graph.invoke({"messages": [("user", "send the salary file")]}, cfg)

    record(
        "confused deputy (hand-built graph)",
        "escalation",
        guard,
        tally,
        f"dep-{response}",
        adapter="GuardedToolNode",
        containment="interrupt before send_email"
        if response == "interrupt"
        else "quarantine assistant, deputy's call denied",
    )
    [trip] = guard.trips(f"dep-{response}")
    assert (trip.signal, trip.at_message, trip.culprit) == ("escalation", 0, "assistant")
    assert sent == []
    # Held at the request: the assistant's hand-off naming the denied mail never reached
    # the deputy.
    assert log == ["assistant", "assistant"]
    if response == "interrupt":
        payload = paused(out)
        assert (payload["agent"], payload["tool"]) == ("assistant", HANDOFF_TOOL)
        assert flags(guard) == [("thread", f"dep-{response}", State.PAUSED)]
    else:
        assert flags(guard) == [("agent", "assistant", State.QUARANTINED)]


def test_a_deputy_sending_its_own_different_mail_is_not_an_escalation() -> None:
    # The assistant's hand-off names the denied mail's address: by default that request is
    # held (above). Without request checks, the deputy's own, different mail goes out.
    tally = Tally()
    guard = Guard(
        POLICY, cascade=CascadeMonitor([Cycles(), Escalation(requests=False), Depth(), tally])
    )
    sent: list[dict[str, Any]] = []
    graph, _, _ = swarm_deputy(guard, sent, deputy_mail=HONEST)

    out = graph.invoke({"messages": [("user", "send the salary file")]}, config("dep-ok"))

    outcome = record(
        "deputy sends a different mail",
        BENIGN,
        guard,
        tally,
        "dep-ok",
        adapter="GuardMiddleware",
    )
    assert "__interrupt__" not in out
    assert sent == [HONEST]
    assert guard.trips("dep-ok") == []
    assert outcome.seen == 1
    assert EMAIL not in sent


# -- benign controls: long, busy, healthy runs that must never trip -------------------------------


@pytest.mark.parametrize("adapter", ["guard_node", "CascadeWatcher"])
def test_busy_supervisor_team_never_trips(adapter: str) -> None:
    guard, tally = guarded()
    log: Log = []
    plan, answers = busy_plan()  # 24 varied tasks over 4 workers
    watched = adapter == "CascadeWatcher"
    graph = supervisor_team(None if watched else guard, log, plan, answers)

    out = graph.invoke(USER, config("busy", *([CascadeWatcher(guard)] if watched else [])))

    outcome = record("busy supervisor, 4 workers", BENIGN, guard, tally, "busy", adapter=adapter)
    assert_benign(outcome, guard, "busy", at_least=48)
    assert outcome.seen == 48
    assert sum(log.count(w) for w in TEAM) == 24
    assert all(log.count(w) >= 5 for w in TEAM)
    assert out["messages"][-1].text == "All tasks are done, thanks."


@pytest.mark.parametrize("adapter", ["guard_node", "CascadeWatcher"])
def test_review_cycles_edited_in_plain_prose_are_a_blind_spot(adapter: str) -> None:
    # Reviews that converge, but whose later rounds change wording only, with no new
    # identifier, number, name or quoted value (the end of the second document, LGTM, the
    # third's opening): Cycles cannot tell them from agents repeating themselves (the
    # documented blind spot of information-based staleness; the generated reviews, which
    # cite what they change, never trip). This pins where it trips.
    guard, _tally = guarded()
    log: Log = []
    watched = adapter == "CascadeWatcher"
    graph = review_loop(None if watched else guard, log)
    cfg = config("review", *([CascadeWatcher(guard)] if watched else []))

    if watched:
        with pytest.raises(RunPaused, match="cascade:cycles"):
            graph.invoke(USER, cfg)
    else:
        out = graph.invoke(USER, cfg)
        assert paused(out)["agent"] == "writer"

    [trip] = guard.trips("review")
    assert (trip.signal, trip.at_message) == ("cycles", 16)
    assert "the last 2 rounds brought no new fact" in trip.reason


def test_bounded_map_reduce_never_trips() -> None:
    guard, tally = guarded()
    log: Log = []
    graph = map_reduce(guard, log, rounds=5)

    out = graph.invoke(USER, config("mapreduce"))

    outcome = record(
        "map-reduce, 5 workers x 5 rounds", BENIGN, guard, tally, "mapreduce", adapter="guard_node"
    )
    assert_benign(outcome, guard, "mapreduce", at_least=55)
    assert outcome.seen == 5 * (5 + 5 + 1)
    assert log.count("reducer") == 5
    assert all(log.count(f"worker-{i}") == 5 for i in range(5))
    assert out["messages"][-1].text == "All documents summarised."


@pytest.mark.parametrize("verbose", [False, True])
def test_heartbeats_trip_cycles_unless_the_monitor_is_ignored(verbose: bool) -> None:
    # A health check reported without causal parents (the watcher here) is a monitor <->
    # worker ping-pong with nothing new in it: to Cycles it *is* a loop (documented; with
    # parents, each ping starts its own chain). Agents whose messages are bookkeeping are
    # listed in CascadeMonitor(ignore=...).
    guard, tally = guarded()
    log: Log = []
    with pytest.raises(RunPaused, match="cascade:cycles"):
        heartbeats(log, beats=30, verbose=verbose).invoke(
            USER, config("heartbeat-verbose", CascadeWatcher(guard))
        )
    outcome = record(
        "heartbeats, verbose (>64 chars)",
        BENIGN,
        guard,
        tally,
        "heartbeat-verbose",
        adapter="CascadeWatcher",
    )
    assert (outcome.tripped, outcome.at_message) == ("cycles", 5)

    tuned = Tally()
    guard = Guard(POLICY, cascade=monitor(tuned, ignore=("monitor",)))
    log.clear()
    heartbeats(log, beats=30, verbose=verbose).invoke(
        USER, config("heartbeat-ignored", CascadeWatcher(guard))
    )
    record(
        "heartbeats, verbose, ignore=monitor",
        BENIGN,
        guard,
        tuned,
        "heartbeat-ignored",
        adapter="CascadeWatcher",
    )
    assert guard.trips() == []
    assert len(log) == 60


def test_editorial_relay_trips_replication_by_default_and_not_with_more_hops() -> None:
    # One article, lightly edited at each desk: documented as a replication trip with the
    # defaults ("raise hops for pipelines built that way"). Recorded as the false alarm it is.
    guard, tally = guarded()
    log: Log = []
    with pytest.raises(ToolCallDenied, match="cascade:replication"):
        editorial(guard, log).invoke(USER, config("desk"))
    outcome = record(
        "editorial relay, default hops=3", BENIGN, guard, tally, "desk", adapter="guard_node"
    )
    assert (outcome.tripped, outcome.at_message) == ("replication", 2)
    assert log == list(DESK[:3])

    tuned = Tally()
    guard = Guard(POLICY, cascade=monitor(tuned, replication=Replication(hops=4)))
    log.clear()
    out = editorial(guard, log).invoke(USER, config("desk-tuned"))
    outcome = record(
        "editorial relay, Replication(hops=4)",
        BENIGN,
        guard,
        tuned,
        "desk-tuned",
        adapter="guard_node",
    )
    assert_benign(outcome, guard, "desk-tuned", at_least=3)
    assert log == list(DESK)
    assert out["messages"][-1].text == "Published."
