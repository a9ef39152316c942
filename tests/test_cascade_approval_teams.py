"""Teams that wait for a person every round (``cascade_approval_teams``): a loop through an
approval is caught in time and a team making progress never trips, in langgraph-supervisor
and langgraph-swarm teams, under ``invoke``, ``ainvoke`` and ``astream``; the causal
parents the guard reports are what the graph really did, across every resume.

The oracle for the edges is the thread's own message history (``true_edges``): each
hand-off's parent is the last hand-off delivered to its sender, a user's message starts a
new chain. Every message the monitor observed must be one of those, with that parent and
generation; the only hand-offs allowed to go unreported are a supervisor worker's last
answer, after which the supervisor hands nothing on in that user turn (it is reported with
the supervisor's next hand-off call), and the last one asked for after a trip (the breaker held it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cascade_approval_teams import DRIVERS, KINDS, TEAMS, Outcome, play, true_edges
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin.langgraph import answer

TUNING = range(0, 4)


def _check_edges(o: Outcome) -> None:
    truth = true_edges(o.messages)
    got = {
        s.message.id: (
            s.message.sender,
            s.message.recipient,
            s.message.parent,
            s.message.generation,
        )
        for s in o.seen
    }
    invented = {k: v for k, v in got.items() if truth.get(k, ())[:4] != v}
    assert not invented, {k: (v, truth.get(k)) for k, v in invented.items()}
    senders_later: set[tuple[str, int]] = set()  # (agent, user turn) with a later hand-off
    for i, (mid, (sender, recipient, _, _, turn)) in enumerate(reversed(list(truth.items()))):
        if mid not in got:
            held = i == 0 and o.tripped != "-"  # asked for after the trip: held, not sent
            last_answer = mid.startswith("handback:") and (recipient, turn) not in senders_later
            assert held or last_answer, mid
        senders_later.add((sender, turn))


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("team", TEAMS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", TUNING)
def test_a_loop_through_approvals_is_caught_in_time_and_progress_never_trips(
    seed: int, kind: str, team: str, driver: str
) -> None:
    o = play(kind, team, driver, seed)
    expected = "ok" if kind == "approval_team" else "in time"
    assert o.verdict == expected, (o.tripped, o.st.prefix, o.st.published)
    assert o.approvals >= min(o.st.rounds, o.st.prefix + 1)  # every round waited for a person
    _check_edges(o)


@pytest.mark.parametrize("team", TEAMS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(3))
def test_a_model_repeating_one_tool_call_id_every_round_does_not_hide_its_loop(
    seed: int, kind: str, team: str
) -> None:
    # A hand-off's message id was its tool call's id, which the model writes: a model
    # (or whoever writes its output) repeating one id every round made every later round a
    # duplicate the monitor dropped, and the loop went unseen. The id is now qualified by
    # where the call stands in the thread.
    o = play(kind, team, "invoke", seed, reuse_ids=True)
    expected = "ok" if kind == "approval_team" else "in time"
    assert o.verdict == expected, (o.tripped, o.st.prefix, o.st.published)
    # (no edge check here: the thread's history under reused ids is not an oracle, the
    # framework's tool messages of one id replace each other in it)


@pytest.mark.parametrize("team", TEAMS)
@pytest.mark.parametrize("seed", range(3))
def test_a_new_user_turn_starts_a_new_chain_and_a_resume_does_not(seed: int, team: str) -> None:
    # two user turns on one thread, each with its approvals: the first hand-off of the
    # second turn has no parent (the oracle clears at the user's message), every hand-off
    # after a resume continues its chain
    o = play("approval_team", team, "invoke", seed, turns=2)
    assert o.tripped == "-"
    _check_edges(o)
    roots = [s.message for s in o.seen if s.message.parent is None]
    humans = sum(1 for m in o.messages if type(m).__name__ == "HumanMessage")
    assert humans == 2
    assert len(roots) == 2, [r.id for r in roots]
    assert all(r.generation == 0 for r in roots)


def test_the_generated_kinds_fail_without_the_resume_continuing(monkeypatch: Any) -> None:
    # the check can fail: with the restore of a resumed activation's position disabled,
    # the loop is missed (each resume starts a chain) and the edges are wrong
    from guardrails_plugin.langgraph import _pending

    monkeypatch.setattr(_pending, "restore_position", lambda *a, **k: False)
    o = play("approval_loop", "swarm", "invoke", 0)
    assert o.verdict == "missed"
    with pytest.raises(AssertionError):
        _check_edges(o)


def _steps(folder: Path, seed: int, *extra: str, limit: int = 12) -> list[dict[str, Any]]:
    """Each invocation of the swarm story in a process of its own, until the run ends."""
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
    steps = []
    for _ in range(limit):
        done = subprocess.run(
            [
                sys.executable,
                str(here / "cascade_approval_teams.py"),
                str(folder),
                "approval_team",
                str(seed),
                *extra,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=True,
        )
        steps.append(json.loads(done.stdout))
        if not steps[-1]["waits"] or (extra and len(steps) == 2):  # 2: one resume is enough
            break
    return steps


@pytest.mark.parametrize("seed", [0])
def test_a_resume_in_a_new_process_continues_the_chain(tmp_path: Path, seed: int) -> None:
    # LangGraph's SQLite checkpointer and the guard's SQLiteStore: every invocation and
    # every resume in a process of its own; what each process's monitor observed, put
    # together, is exactly what the thread's history says happened
    steps = _steps(tmp_path, seed)
    assert len(steps) >= 4  # the run waited for a person at least three times
    assert not steps[-1]["waits"]
    truth = steps[-1]["truth"]
    seen = [m for s in steps for m in s["seen"]]
    assert [m[0] for m in seen] == list(truth)  # every hand-off once, in order
    for mid, sender, recipient, parent, generation in seen:
        assert [sender, recipient, parent, generation] == truth[mid][:4], mid


def test_without_the_kept_position_a_new_process_starts_a_new_chain(tmp_path: Path) -> None:
    # the check above can fail: a resume that restores nothing reports its first
    # hand-off as a new chain
    steps = _steps(tmp_path, 0, "forget")
    truth = steps[-1]["truth"]
    resumed = steps[1]["seen"][0]
    assert resumed[3] is None
    assert truth[resumed[0]][2] is not None


def test_a_reused_call_id_after_an_abandoned_approval_grafts_nothing() -> None:
    # An attacker controlling the poster's model reuses the id and arguments of a call
    # whose approval was never answered (the user started a new turn instead), hoping the
    # resume of the new turn continues the old turn's chain. The kept position is bound to
    # the step's root checkpoint: the new turn's chain is its own (the oracle: the thread's
    # history, a user's message starting a new chain).
    from cascade_approval_teams import POLICY, Outcome, Story
    from cascade_graph_scenarios import Recorder
    from langchain.agents import create_agent
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.tools import StructuredTool
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph_swarm import create_handoff_tool, create_swarm

    from guardrails_plugin import Guard
    from guardrails_plugin.cascade import CascadeMonitor
    from guardrails_plugin.cascade._monitor import default_signals
    from guardrails_plugin.langchain import GuardMiddleware
    from guardrails_plugin.testing import ScriptedChatModel, tool_call

    def publish(text: str) -> str:
        """Publish ``text``."""
        return "queued"

    tool = StructuredTool.from_function(publish, name="publish")
    same = {"id": "call_reused", "text": "notes"}
    lead_model = ScriptedChatModel(
        [
            AIMessage("Part 1 of REL-7: post it.", tool_calls=[tool_call("transfer_to_poster")]),
            AIMessage("Part 2 of REL-7: post it.", tool_calls=[tool_call("transfer_to_poster")]),
            "Done.",
        ]
    )
    poster_model = ScriptedChatModel(
        [
            tool_call("publish", id=same["id"], text=same["text"]),  # never answered
            tool_call("publish", id=same["id"], text=same["text"]),  # the id reused
            AIMessage("Posted REL-7.", tool_calls=[tool_call("transfer_to_lead")]),
            "Done.",
        ]
    )
    recorder = Recorder()
    guard = Guard(POLICY, cascade=CascadeMonitor([*default_signals(), recorder]))
    agents = [
        create_agent(
            lead_model,
            tools=[create_handoff_tool(agent_name="poster")],
            name="lead",
            middleware=[GuardMiddleware(guard)],
        ),
        create_agent(
            poster_model,
            tools=[tool, create_handoff_tool(agent_name="lead")],
            name="poster",
            middleware=[GuardMiddleware(guard)],
        ),
    ]
    app = create_swarm(agents, default_active_agent="lead").compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "reused"}}
    out = app.invoke({"messages": [HumanMessage("Post part 1.")]}, config)
    assert out.get("__interrupt__")  # waits for a person; nobody answers
    out = app.invoke({"messages": [HumanMessage("Forget it; post part 2.")]}, config)
    for _ in range(4):
        if not out.get("__interrupt__"):
            break
        out = app.invoke(answer(out, True), config)
    assert not out.get("__interrupt__")
    messages = list(app.get_state(config).values["messages"])
    st = Story("approval_team", 0, "lead", "poster", 2, 10**6, [], [])
    o = Outcome(st, "swarm", "invoke", "-", 0, list(recorder.seen), messages)
    _check_edges(o)
    # the swarm's active agent is still the poster: the new turn starts with its reused
    # call, approved this time; what it hands on was started by the user's new message,
    # not by the first turn's hand-off
    part1 = [s.message for s in recorder.seen if "Part 1" in s.message.content]
    back = [s.message for s in recorder.seen if s.message.sender == "poster"]
    assert len(part1) == 1
    assert len(back) == 1
    assert back[0].parent is None
    assert back[0].generation == 0


@given(
    agent=st.sampled_from(["poster", "lead"]),
    checkpoint=st.sampled_from(["c1", "c2", None]),
    doc=st.fixed_dictionaries(
        {},
        optional={
            "parent": st.one_of(st.none(), st.integers(), st.sampled_from(["m1", "m2"])),
            "generation": st.one_of(st.none(), st.booleans(), st.integers(-2, 5)),
            "agent": st.sampled_from(["poster", "lead", 3]),
            "checkpoint": st.sampled_from(["c1", "c2", None]),
        },
    ),
)
@settings(max_examples=300, deadline=None)
def test_a_kept_position_is_restored_only_for_its_agent_and_its_step(
    agent: str, checkpoint: str | None, doc: dict[str, Any]
) -> None:
    # a document the store returns may be anything (another run's, a forged id's): the
    # chain continues only for the same agent re-running the step whose root checkpoint
    # the document names, from a well-formed position
    from guardrails_plugin.langgraph import _causal
    from guardrails_plugin.langgraph._causal import Inbox, restore_position

    inbox = Inbox()
    old = _causal.INBOX
    _causal.INBOX = inbox
    try:
        done = restore_position(doc, "t", agent, "run2", checkpoint)
    finally:
        _causal.INBOX = old
    gen = doc.get("generation")
    valid = (
        isinstance(doc.get("parent"), str)
        and doc.get("agent") == agent
        and checkpoint is not None
        and doc.get("checkpoint") == checkpoint
        and (gen is None or (type(gen) is int and gen >= 1))
    )
    assert done == valid
    expected = (doc["parent"], gen) if valid else (None, 0)
    assert inbox.started("t", agent, "run2") == expected
