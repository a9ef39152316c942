"""The cookbook recipes run offline, and the examples in docstrings hold."""

from __future__ import annotations

import doctest
import importlib
import runpy
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"


def test_guard_create_agent_recipe_runs_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    runpy.run_path(str(COOKBOOK / "guard_create_agent.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "refund: refunded 40.0 on A-1" in out
    assert "approval needed: refund" in out
    assert "refund: refunded 400.0 on A-2" in out  # approved by the non-interactive approver
    assert "refunded 4000" not in out
    assert "emailed" not in out
    assert "deleted C-9" not in out


def test_grants_recipe_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(COOKBOOK / "grants_and_delegation.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "helper reads /srv/reports/2026-q3/summary.txt: allow" in out
    assert "helper reads /srv/reports/2026-q2/summary.txt: deny" in out
    assert "refused:" in out
    assert "lead reads /srv/reports/2026-q3/a.txt: allow" in out
    assert "helper reads /srv/reports/2026-q3/b.txt: allow" in out
    assert "helper reads /srv/reports/2026-q3/c.txt: deny (budget 'lead-3' exhausted" in out
    assert "after revoking the lead's grant, helper: deny" in out


def test_openai_tool_loop_recipe_runs_offline(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(COOKBOOK / "openai_tool_loop.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "refund: allow (refunds) -> refunded 40.0 on A-1" in out
    assert "refund: allow (big-refunds) -> refunded 400.0 on A-2" in out
    assert "delete_customer: deny (no-deletes)" in out
    assert "send_email: deny (mail-customers)" in out
    assert "refund: deny (malformed-call)" in out
    assert "refunded 4000" not in out
    assert "stopped: denied by rule 'kill-switch'" in out


def test_verify_in_ci_recipe_runs(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("z3")
    runpy.run_path(str(COOKBOOK / "verify_in_ci.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "every call of delete_* is denied: proven" in out
    assert "widens: refund: deny -> ask" in out
    assert "the build fails" in out
    module = runpy.run_path(str(COOKBOOK / "verify_in_ci.py"))
    module["test_policy_keeps_its_promises"]()
    module["test_a_tighter_policy_does_not_widen"]()


@pytest.mark.parametrize(
    "module",
    [
        "guardrails_plugin.guard",
        "guardrails_plugin.scopes.emails",
        "guardrails_plugin.scopes.values",
        "guardrails_plugin.rollback._compensations",
        "guardrails_plugin.approvers",
        "guardrails_plugin.langchain",
    ],
)
def test_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0
    assert result.attempted >= 1
