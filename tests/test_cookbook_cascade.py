"""The cascade recipes run offline and tell the story they promise: a supervisor team's
re-dispatch loop paused for a person and resumed; a swarm's hand-off ping-pong paused, and a
confused deputy's call denied with the agent behind it quarantined, then released."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"

# langgraph-supervisor 0.0.31 builds its supervisor with langgraph's deprecated create_react_agent.
pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved")


def run_recipe(
    name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", [name])
    runpy.run_path(str(COOKBOOK / name), run_name="__main__")
    return capsys.readouterr().out


def section(out: str, number: str) -> str:
    """The output of the recipe's section ``== <number>.``, up to the next section."""
    found = re.search(rf"^== {re.escape(number)}\. .*?(?=^== |\Z)", out, re.S | re.M)
    assert found, f"no section {number} in:\n{out}"
    return found.group(0)


def handoffs(text: str) -> list[str]:
    """The hand-offs a section printed, as ``sender -> recipient``."""
    return re.findall(r"^  (\w+ -> \w+): ", text, re.M)


# -- cascade_supervisor.py ----------------------------------------------------------------------


@pytest.fixture
def supervisor_out(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    return run_recipe("cascade_supervisor.py", monkeypatch, capsys)


def test_supervisor_loop_trips_at_the_third_round_trip_and_waits(supervisor_out: str) -> None:
    first = section(supervisor_out, "1")
    rounds = ["supervisor -> researcher", "researcher -> supervisor"] * 3
    assert handoffs(first) == [*rounds, "supervisor -> writer"]
    tripping, held = first.strip().splitlines()[-3:-1]
    assert tripping.startswith("  researcher -> supervisor: ")
    assert tripping.endswith("=> ASK [cascade:cycles]")
    assert held.startswith("  supervisor -> writer: ")  # the next hand-off waits
    assert held.endswith("=> ASK [pause]")
    assert "the run waits (paused): paused by the cascade breaker" in first
    assert "hand-offs went round the loop" in first
    assert "supervisor -> researcher -> supervisor 3 times in a row" in first


def test_supervisor_a_person_sees_the_trip_and_the_pause(supervisor_out: str) -> None:
    second = section(supervisor_out, "2")
    assert "trip: cycles at message #5 -> interrupt" in second
    assert "reason: hand-offs went round the loop" in second
    assert "evidence: #0 supervisor -> researcher, #1 researcher -> supervisor" in second
    assert "#5 researcher -> supervisor" in second
    assert "flag: thread 'pricing-1' paused by cascade-breaker: hand-offs went round" in second
    # Nothing ran while the run waited: the writer was never reached.
    assert "model calls so far: {'supervisor': 4, 'researcher': 6, 'writer': 0}" in second


def test_supervisor_resumed_team_finishes(supervisor_out: str) -> None:
    third = section(supervisor_out, "3")
    assert "guard.controls.resume(thread='pricing-1') -> True" in third
    assert handoffs(third) == []  # the held hand-off to the writer was printed when it waited
    assert "supervisor: Done: the comparison table is ready" in third
    assert "trips: 1; flags in force: 0" in third
    assert "=>" not in third


# -- cascade_swarm.py ---------------------------------------------------------------------------


@pytest.fixture
def swarm_out(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    return run_recipe("cascade_swarm.py", monkeypatch, capsys)


def test_swarm_ping_pong_is_paused_at_the_sixth_hand_off(swarm_out: str) -> None:
    first = section(swarm_out, "1")
    assert handoffs(first) == ["support -> billing", "billing -> support"] * 3
    assert first.count("=>") == 1
    assert re.search(r"billing -> support: .*=> ASK \[cascade:cycles\]", first)
    assert "the run waits (paused): billing's hand-off" in first


def test_swarm_a_person_lifts_the_pause_and_the_ticket_is_answered(swarm_out: str) -> None:
    second = section(swarm_out, "2")
    assert "trip: cycles at message #5 -> interrupt" in second
    assert "loop support -> billing -> support 3 times in a row" in second
    assert "flag: thread 'ticket-1' paused by cascade-breaker" in second
    assert "guard.controls.resume(thread='ticket-1') -> True" in second
    assert handoffs(second) == ["billing -> support"]  # the held hand-off, once
    assert second.rstrip().endswith("support: Order 42 is on its way again.")


def test_swarm_confused_deputy_is_denied_and_the_refund_never_runs(swarm_out: str) -> None:
    third = section(swarm_out, "3")
    denied = "support: refund(order_id='77', amount=900.0)  => DENY [default-deny]"
    request = "support -> billing: Please refund order 77 in full, 900 EUR"
    held = "=> DENY [cascade:escalation]"
    assert third.index(denied) < third.index(request) < third.index(held)
    assert held in third.split(request)[1].splitlines()[0]  # the request itself is held
    assert "\n  billing:" not in third  # billing never acted on it
    assert "support: reship(order_id='77')  => DENY [quarantine]" in third
    assert "refunds really made: []" in third
    assert "refunded" not in swarm_out  # the tool's own output never appeared


def test_swarm_a_person_sees_the_quarantine_and_releases_the_agent(swarm_out: str) -> None:
    fourth = section(swarm_out, "4")
    assert "trip: escalation at message #0 -> quarantine" in fourth
    assert "'refund' was denied to support, and support -> billing now asks billing" in fourth
    assert "possible confused deputy" in fourth
    assert "culprit: support; agents: support, billing" in fourth
    assert "flag: agent 'support' quarantined by cascade-breaker" in fourth
    assert "guard.controls.resume(agent='support') -> True" in fourth
    after = fourth.split("resume(agent='support')")[1]
    assert handoffs(after) == []
    assert "support: reship(order_id='77')\n" in after  # allowed: no verdict printed
    assert "support: A replacement for order 77 is on its way." in after
    assert after.rstrip().endswith("refunds really made: []; flags in force: 0")
