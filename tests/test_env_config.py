"""Configuration from the environment: ``GUARDRAILS_POLICY``, ``GUARDRAILS_STORE``,
``GUARDRAILS_AUDIT``, read by ``Guard.from_env`` and by the command line where a flag is
not given (a flag wins over the environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails_plugin import Effect, Guard, Policy, PolicyError, SQLiteStore, ToolCall, allow
from guardrails_plugin.audit import AuditLog
from guardrails_plugin.cli import main

POLICY = """\
rules:
  - id: search
    allow: search
budgets:
  - id: two
    calls: 2
    tools: [search]
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return {
        "GUARDRAILS_POLICY": str(policy),
        "GUARDRAILS_STORE": str(tmp_path / "guard.db"),
        "GUARDRAILS_AUDIT": str(tmp_path / "audit.db"),
    }


def test_from_env_reads_policy_store_and_audit(env: dict[str, str]) -> None:
    first, second = Guard.from_env(env), Guard.from_env(env)
    assert isinstance(first.store, SQLiteStore)
    assert first.check(ToolCall("search")).allowed
    assert second.check(ToolCall("search")).allowed
    # the budget is shared through the store the environment names: the third call is over
    third = first.check(ToolCall("search"))
    assert third.effect is Effect.DENY
    assert third.kind == "budget"
    assert first.check(ToolCall("rm")).rule == "default-deny"
    log = AuditLog(env["GUARDRAILS_AUDIT"])
    assert [r.outcome for r in log.tail(10)] == ["allow", "allow", "deny", "deny"]


def test_from_env_takes_a_store_url_and_options_win(env: dict[str, str]) -> None:
    guard = Guard.from_env({**env, "GUARDRAILS_STORE": "memory://"}, audit=None)
    assert not isinstance(guard.store, SQLiteStore)
    assert guard.audit is None
    chosen = Guard.from_env(env, policy=Policy([allow("other")]))
    assert chosen.check(ToolCall("other")).allowed
    assert not chosen.check(ToolCall("search")).allowed


def test_from_env_reads_os_environ(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert Guard.from_env().check(ToolCall("search")).allowed


def test_from_env_without_a_policy_says_what_to_set() -> None:
    with pytest.raises(PolicyError, match="GUARDRAILS_POLICY is not set"):
        Guard.from_env({})


def test_cli_reads_policy_store_and_audit_from_the_environment(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["lint"]) == 0
    assert capsys.readouterr().out.startswith(f"# {env['GUARDRAILS_POLICY']}: valid")
    assert main(["init"]) == 0
    AuditLog(env["GUARDRAILS_AUDIT"]).close()  # the guards' log exists
    assert main(["pause", "--thread", "t-1", "--by", "alice"]) == 0
    capsys.readouterr()
    assert main(["flags"]) == 0
    assert "thread 't-1' paused by alice" in capsys.readouterr().out
    # the pause was recorded in the audit log the environment names
    assert main(["audit", "tail"]) == 0
    assert "pause" in capsys.readouterr().out
    # a guard configured from the same environment sees the pause
    held = Guard.from_env().check(ToolCall("search", thread_id="t-1"))
    assert held.kind == "control"


def test_cli_flags_win_over_the_environment(
    env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GUARDRAILS_STORE", str(tmp_path / "missing.db"))
    assert main(["init", "--store", env["GUARDRAILS_STORE"]]) == 0
    assert main(["flags", "--store", env["GUARDRAILS_STORE"]]) == 0
    capsys.readouterr()
    assert main(["flags"]) == 1  # the environment's store does not exist: never made
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "says"), [(["lint"], "GUARDRAILS_POLICY"), (["flags"], "GUARDRAILS_STORE")]
)
def test_cli_without_flag_or_environment_is_one_error_line(
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k in ("GUARDRAILS_POLICY", "GUARDRAILS_STORE", "GUARDRAILS_AUDIT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert says in err
