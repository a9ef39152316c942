"""The model controls the tool call: generated calls never make a tool run with arguments
the policy would deny, through any adapter (the tools record what they received; the
policy, asked again about that, is the oracle). ``scripts/enforcement_fuzz.py`` runs the same
harness for 100,000 calls."""

from __future__ import annotations

from typing import Any

from enforcement import Target, tool_calls, tool_input, violations
from hypothesis import HealthCheck, given, settings

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_callback = Target("callback")
_middleware = Target("middleware")
_toolnode = Target("toolnode")


@SETTINGS
@given(tool_input())
def test_callback_never_runs_a_denied_call(sent: tuple[str, Any]) -> None:
    name, tool_input = sent
    _callback.received.clear()
    _callback.invoke(name, tool_input)
    assert violations(_callback.received) == []


@SETTINGS
@given(tool_calls())
def test_middleware_never_runs_a_denied_call(calls: list[dict[str, Any]]) -> None:
    _middleware.received.clear()
    _middleware.turn(calls)
    assert violations(_middleware.received) == []


@SETTINGS
@given(tool_calls())
def test_guarded_toolnode_never_runs_a_denied_call(calls: list[dict[str, Any]]) -> None:
    _toolnode.received.clear()
    _toolnode.turn(calls)
    assert violations(_toolnode.received) == []


def test_the_harness_sees_allowed_calls_run() -> None:
    # the oracle is not vacuous: allowed calls do run, through every adapter
    for target in (Target("callback"), Target("middleware"), Target("toolnode")):
        call = {
            "name": "read_file",
            "args": {"file_path": "/srv/data/ok.txt"},
            "id": "c1",
            "type": "tool_call",
        }
        if target.kind == "callback":
            target.invoke("read_file", {"file_path": "/srv/data/ok.txt"})
            target.invoke("shell", "ls")
        else:
            target.turn([call])
        assert target.received[0] == (
            "read_file",
            {"path": "/srv/data/ok.txt", "encoding": "utf-8"},
        )
        assert violations(target.received) == []
        assert violations([("read_file", {"path": "/etc/passwd"})]) != []


def test_toolnode_calls_sharing_an_id_in_one_step_do_not_run() -> None:
    # found by scripts/enforcement_fuzz.py: a denied and an allowed call under one id both ran
    target = Target("toolnode")
    target.turn(
        [
            {"name": "read_file", "args": {"path": "/etc/passwd"}, "id": "c", "type": "tool_call"},
            {
                "name": "read_file",
                "args": {"path": "/srv/data/ok.txt"},
                "id": "c",
                "type": "tool_call",
            },
        ]
    )
    assert target.received == []
    assert target.errors == 0
