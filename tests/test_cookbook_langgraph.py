"""The LangGraph recipes run offline and tell the story they promise: approvals (with edits,
a restart and a timeout), rollback with undo, and the kill switch from another process."""

from __future__ import annotations

import os
import re
import runpy
import sys
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"


def run_recipe(name: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", [name, *args])
    runpy.run_path(str(COOKBOOK / name), run_name="__main__")


def section(out: str, number: str) -> str:
    """The output of the recipe's section ``== <number>.``, up to the next section."""
    found = re.search(rf"^== {re.escape(number)}\. .*?(?=^== |\Z)", out, re.S | re.M)
    assert found, f"no section {number} in:\n{out}"
    return found.group(0)


# -- langgraph_approvals.py ---------------------------------------------------------------------


@pytest.fixture
def approvals_out(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    run_recipe("langgraph_approvals.py", monkeypatch)
    return capsys.readouterr().out


def test_approvals_free_call_runs_at_once_and_each_gated_call_is_asked_in_turn(
    approvals_out: str,
) -> None:
    first = section(approvals_out, "1-2")
    ran_search = first.index("ran search_status('EU outage')")
    asked_ann = first.index('waiting: assistant -> send_email({"to": "ann@example.com"')
    asked_bob = first.index('waiting: assistant -> send_email({"to": "bob@example.com"')
    sent_ann = first.index("ran send_email(to='ann@example.com')")
    assert ran_search < asked_ann < asked_bob < sent_ann  # emails run once both are answered
    assert "call call-ann, rule mail-needs-ok" in first
    assert "may answer: approve, edit, reject, respond; expires 3600s after asked" in first


def test_approvals_an_edit_runs_with_the_edited_arguments(approvals_out: str) -> None:
    first = section(approvals_out, "1-2")
    assert 'answer: edit {"to": "support@example.com"' in first
    assert "ran send_email(to='support@example.com')" in first
    assert "ran send_email(to='bob@example.com')" not in approvals_out
    assert "outbox: ['ann@example.com', 'support@example.com']" in first


def test_approvals_an_edit_out_of_scope_is_denied(approvals_out: str) -> None:
    third = section(approvals_out, "3")
    assert 'answer: edit {"to": "bob.private@gmail.com"' in third
    assert "the edited call is out of policy" in third
    assert "bob.private@gmail.com is not allowed" in third
    assert "ran send_email" not in third
    assert "outbox: ['ann@example.com', 'support@example.com']" in third


def test_approvals_a_pending_approval_survives_a_restart_and_runs_once(approvals_out: str) -> None:
    fourth = section(approvals_out, "4")
    stopped, restarted = fourth.split("the process stops here")
    assert "ran send_email" not in stopped
    assert "restarted: ['call-carol'] still waiting for a person" in restarted
    assert approvals_out.count("ran send_email(to='carol@example.com')") == 1
    assert "outbox: ['ann@example.com', 'carol@example.com', 'support@example.com']" in restarted


def test_approvals_a_late_answer_is_denied(approvals_out: str) -> None:
    fifth = section(approvals_out, "5")
    assert "answer: approve (by alice)" in fifth
    assert "no answer within 3600s: the approval expired" in fifth
    assert "ran send_email" not in fifth
    assert fifth.rstrip().endswith(
        "outbox: ['ann@example.com', 'carol@example.com', 'support@example.com']"
    )


def test_approvals_console_mode_takes_the_answers_typed_at_the_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    typed = iter(["a", "a", "r", "not to Bob again", "a", "a"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    run_recipe("langgraph_approvals.py", monkeypatch, "--console")
    out = capsys.readouterr().out
    assert next(typed, None) is None  # every answer was asked for
    assert "Approval needed: agent 'assistant' wants to call 'send_email'" in out
    assert "ran send_email(to='bob@example.com')" in out  # approved as asked, not edited
    assert "rejected by" in out
    assert "not to Bob again" in out
    assert "the approval expired" in out
    assert out.rstrip().endswith(
        "outbox: ['ann@example.com', 'bob@example.com', 'carol@example.com']"
    )


# -- langgraph_rollback.py ----------------------------------------------------------------------


@pytest.fixture
def rollback_out(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    run_recipe("langgraph_rollback.py", monkeypatch)
    return capsys.readouterr().out


def test_rollback_the_run_has_side_effects_and_a_violation(rollback_out: str) -> None:
    assert "after:  balances {'acme': 4000, 'treasury': 46000}" in rollback_out
    first = section(rollback_out, "1")
    assert re.search(r"violation at …\w+: pay \(default-deny\): .*900000 is out of range", first)
    assert first.count("safe point") == 5


def test_rollback_to_the_safe_point_before_the_violation(rollback_out: str) -> None:
    second = section(rollback_out, "2")
    assert re.search(r"rollback of thread 'treasury-7' to checkpoint \S+: ok", second)
    assert "last safe point before the violation" in second
    assert re.findall(r"undo: .*", second) == ["undo: removed invoice-1003.txt (call-file-1003)"]
    assert "now: balances {'acme': 4000, 'treasury': 46000}" in second
    assert "next step ('tools',): file_invoice({'number': '1003'" in second


def test_rollback_further_back_undoes_newest_first(rollback_out: str) -> None:
    third = section(rollback_out, "3")
    assert re.search(r"rollback of thread 'treasury-7' to checkpoint \S+: ok", third)
    assert re.findall(r"undo: .*", third) == [
        "undo: refunded 3000 from acme (call-pay-1002)",
        "undo: removed invoice-1002.txt (call-file-1002)",
        "undo: refunded 1000 from acme (call-pay-1001)",
    ]
    assert "now: balances {'acme': 0, 'treasury': 50000}, invoices ['invoice-1001.txt']" in third
    assert "next step ('tools',): pay({'to': 'acme', 'cents': 1000})" in third


def test_rollback_again_undoes_nothing_twice(rollback_out: str) -> None:
    fourth = section(rollback_out, "4")
    assert re.search(r"rollback of thread 'treasury-7' to checkpoint \S+: ok", fourth)
    assert "nothing to undo" in fourth
    assert "undo:" not in fourth
    assert "now: balances {'acme': 0, 'treasury': 50000}" in fourth
    assert "rollback() without a target: thread 'treasury-7' has no violation" in fourth
    assert "NOT OK" not in rollback_out
    assert len(re.findall(r"^  undo: ", rollback_out, re.M)) == 4


# -- langgraph_kill_switch.py -------------------------------------------------------------------


@pytest.fixture
def kill_switch_out(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    run_recipe("langgraph_kill_switch.py", monkeypatch)
    return capsys.readouterr().out


def test_kill_switch_a_denied_handoff_never_reaches_its_target(kill_switch_out: str) -> None:
    first = section(kill_switch_out, "1")
    assert "ToolCallDenied: 'handoff' denied by rule 'default-deny'" in first
    assert "found str 'deployer'" in first
    assert "deployer: shipping" not in kill_switch_out


def test_kill_switch_the_operator_is_another_process(kill_switch_out: str) -> None:
    pids = set(re.findall(r"operator \(pid (\d+)\)\$", kill_switch_out))
    assert len(pids) == 1
    assert pids != {str(os.getpid())}


def test_kill_switch_a_pause_interrupts_and_a_resume_goes_on(kill_switch_out: str) -> None:
    second = section(kill_switch_out, "2")
    assert second.count("supervisor -> researcher") == 3
    assert "operator (pid" in second
    assert "$ pause agent researcher" in second
    assert "interrupted: paused: paused by an operator (agent 'researcher' paused" in second
    assert "waiting at ('researcher',); last message: 'draft v2'" in second
    third = section(kill_switch_out, "3")
    assert "agent 'researcher' resumed" in third
    assert third.count("supervisor -> researcher") == 2  # the loop went on after the resume


def test_kill_switch_a_kill_ends_the_run_and_the_thread_stays_killed(kill_switch_out: str) -> None:
    third = section(kill_switch_out, "3")
    assert "$ kill thread report-1" in third
    assert "RunKilled: denied by rule 'kill-switch'" in third
    fourth = section(kill_switch_out, "4")
    assert "last message: 'draft v4'" in fourth
    assert "resuming it: RunKilled again (kill-switch)" in fourth
