"""The one-policy-two-frameworks recipe runs offline, and its shared store counts both apps:
the Agents SDK app is refused a refund only because the LangChain app spent the budget."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from agents import Runner

from guardrails_plugin import Guard, Policy, ToolCall
from guardrails_plugin.store import SQLiteStore

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook"
RECIPE = COOKBOOK / "one_policy_two_frameworks.py"


def test_budgets_count_both_apps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store_path = tmp_path / "shared.db"
    monkeypatch.setattr(sys, "argv", [str(RECIPE), str(store_path)])
    recipe = runpy.run_path(str(RECIPE), run_name="__main__")
    out = capsys.readouterr().out

    assert recipe["REFUNDS"] == [
        ("chat", "A-1", 100.0),
        ("chat", "A-2", 90.0),
        ("email", "A-3", 60.0),
    ]
    assert "call e1: Error: 'refund' denied by rule 'refunds-per-conversation'" in out
    policy = Policy.from_yaml(str(COOKBOOK / "shared_policy.yaml"))
    store = SQLiteStore(str(store_path))
    key = lambda b: b.key(ToolCall("refund", thread_id=recipe["THREAD"]))  # noqa: E731
    assert store.total(key(policy.budgets[0])) == 100 + 90 + 60
    assert store.total(key(policy.budgets[1])) == 3 * 1000 + 3 * 1000  # 3 turns per app

    # Alone, on a store of its own, the Agents SDK app gets the refund the chat app's
    # spending cost it.
    recipe["REFUNDS"].clear()
    alone = Guard(policy, store=SQLiteStore(str(tmp_path / "alone.db")))
    result: Any = Runner.run_sync(recipe["email_assistant"](alone), "refund A-3")
    assert recipe["REFUNDS"] == [("email", "A-3", 80.0), ("email", "A-3", 60.0)]
    assert result.final_output
