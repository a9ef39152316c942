"""The README's first command runs this demo: it must work offline and show what it says."""

from __future__ import annotations

import pytest

from guardrails_plugin.cli import main


def test_the_offline_demo_guards_a_real_agent_and_keeps_an_intact_audit_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())  # the table wraps its reasons: read them unwrapped
    # a URL that only looks like the allowed host is denied by what a parser says it reaches
    assert "connects to host 'evil.com'" in flat
    # mail outside the allowed domain denied; mail after untrusted content asked and approved
    assert "recipient attacker@evil.com is not allowed" in flat
    assert "[approval requested] send_email" in out
    assert "approved by demo-operator" in out
    assert "tools hidden from the model: delete_file" in out
    ran = next(
        line for line in out.splitlines() if line.startswith("tool bodies that actually ran")
    )
    assert "delete_file" not in ran
    assert ran.count("send_email") == 1
    assert "hash chain intact" in out
    assert "1 approval" in out
