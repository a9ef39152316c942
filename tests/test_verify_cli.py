"""``guardrails-plugin verify``, ``diff`` and ``lint --deep``: exit statuses, one ``error:``
line, JSON, and the regions and warnings the solver proves (their examples replayed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("z3")

from guardrails_plugin import Policy, allow, ask, deny
from guardrails_plugin.cli import main
from guardrails_plugin.scopes import Number, OneOf, Shell
from guardrails_plugin.verify import assert_never_widens, assert_proves, deep_lint, diff, replay

POLICY = "cookbook/policy.yaml"


def test_verify_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    ok = "agent billing never calls refund with amount > 1000"
    bad = "no agent calls refund"
    assert main(["verify", POLICY, "--assert", ok]) == 0
    assert main(["verify", POLICY, "--assert", ok, "--assert", bad]) == 1
    out = capsys.readouterr().out
    assert "refuted" in out
    assert "calls refund(amount=" in out
    assert main(["verify", POLICY, "--assert", bad, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out.strip())
    assert doc["status"] == "refuted"
    assert doc["counterexample"]["tool"] == "refund"


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", POLICY, "--assert", "agent billing calls refund"],
        ["verify", "no-such-file.yaml", "--assert", "no agent calls x"],
        ["diff", POLICY, "no-such-file.yaml"],
    ],
)
def test_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")


def _write(tmp_path: Path, name: str, policy: Policy) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(policy.to_dict()))
    return str(path)


def test_diff_reports_widening_with_confirmed_examples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = Policy(
        [
            allow("refund", args={"amount": Number(gt=0, le=100)}),
            ask("refund", args={"amount": Number(gt=100, le=500)}),
            allow("lookup"),
            deny("delete_*"),
        ]
    )
    new = Policy(
        [
            allow("refund", args={"amount": Number(gt=0, le=200)}),
            ask("refund", args={"amount": Number(gt=200, le=500)}),
            allow("delete_tmp", args={"mode": OneOf(["dry-run"])}),
        ]
    )
    regions = diff(old, new)
    seen = {(r.tool, r.before, r.after) for r in regions}
    assert ("refund", "ask", "allow") in seen
    assert ("delete_tmp", "deny", "allow") in seen
    assert ("lookup", "allow", "deny") in seen
    for r in regions:
        assert str(replay(old, r.example).effect) == r.before
        assert str(replay(new, r.example).effect) == r.after
    with pytest.raises(AssertionError, match="widens"):
        assert_never_widens(old, new)
    assert assert_never_widens(new, new) == []
    a, b = _write(tmp_path, "old.yaml", old), _write(tmp_path, "new.yaml", new)
    assert main(["diff", a, b]) == 1
    assert main(["diff", b, a]) == 1  # the reverse widens too (lookup)
    assert main(["diff", a, a]) == 0
    assert "no call is decided differently" in capsys.readouterr().out
    assert main(["diff", a, b, "--json"]) == 1


def _shell_policy(programs: list[str]) -> Policy:
    return Policy([allow("run", args={"cmd": Shell(programs)}), allow("lookup")])


@pytest.mark.parametrize(
    ("old", "new"),
    [(["ls"], ["ls", "rm"]), (["ls", "cat"], ["ls", "rm"]), (["grep"], ["grep", "sh"])],
)
def test_diff_never_says_nothing_widens_when_it_could_not_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: list[str], new: list[str]
) -> None:
    # Shell scopes are over-approximated: the solver finds calls the engines decide
    # alike, so the widening (a program NEW lists) is neither shown nor ruled out.
    # Saying "no call is decided differently" (exit 0) would pass a widening build.
    result = diff(_shell_policy(old), _shell_policy(new))
    widening = [r for r in result if r.widens]
    assert widening or not result.settled_widening
    if not widening:
        with pytest.raises(AssertionError, match="cannot show"):
            assert_never_widens(_shell_policy(old), _shell_policy(new))
    a = _write(tmp_path, "old.yaml", _shell_policy(old))
    b = _write(tmp_path, "new.yaml", _shell_policy(new))
    code = main(["diff", a, b])
    out = capsys.readouterr().out
    assert code == (1 if widening else 2)
    assert "no call is decided differently" not in out
    if not widening:
        assert "unknown: deny -> allow: run:" in out
    # the same scope on both sides is one atom: settled, nothing differs
    assert main(["diff", a, a]) == 0
    assert "no call is decided differently" in capsys.readouterr().out


def test_diff_reports_a_solver_that_gives_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardrails_plugin.verify._z3 import z3

    Z = z3()
    monkeypatch.setattr(Z.Solver, "check", lambda self, *a: Z.unknown)
    monkeypatch.setattr(Z.Solver, "reason_unknown", lambda self: "timeout")
    old = Policy([allow("refund", args={"amount": Number(le=100)})])
    new = Policy([allow("refund", args={"amount": Number(le=200)})])
    result = diff(old, new)
    assert list(result) == []
    assert "deny -> allow: the solver gave up (time limit)" in result.unsettled
    assert not result.settled_widening
    with pytest.raises(AssertionError, match="cannot show"):
        assert_never_widens(old, new)
    a = _write(tmp_path, "old.yaml", old)
    assert main(["diff", a, a, "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "unknown: deny -> allow: the solver gave up (time limit)" in captured.err


def test_deep_lint_finds_dead_rules_unreached_asks_and_empty_scopes(tmp_path: Path) -> None:
    policy = Policy(
        [
            deny("refund", args={"amount": Number(gt=50)}),
            allow("refund", args={"amount": Number(gt=100)}, id="dead-allow"),
            ask("send", args={"n": Number(gt=0)}, id="reached-ask"),
            ask("send", args={"n": Number(gt=10)}, agents="nobody", id="ok-ask"),
            allow("x", args={"n": Number(integer=True, gt=1, lt=2)}, id="empty"),
            allow("send", when=_always, id="conditional"),
        ]
    )
    warnings = deep_lint(policy)
    text = "\n".join(warnings)
    assert "rule 'dead-allow' can never fire" in text
    assert "'empty'" in text
    assert "accepts nothing" in text
    assert "rule 'conditional' can never be delegated" in text
    assert "reached-ask" not in text
    path = _write(
        tmp_path,
        "p.yaml",
        Policy(
            [deny("a", args={"n": Number(gt=5)}), allow("a", args={"n": Number(gt=10)}, id="dead")]
        ),
    )
    assert main(["lint", "--deep", "--strict", path]) == 2


def _always(call: object) -> bool:
    return True


def test_assert_proves_names_the_counterexample() -> None:
    policy = Policy([allow("refund", args={"amount": Number(le=100)})])
    assert_proves(policy, "no agent calls refund with amount > 100")
    with pytest.raises(AssertionError, match="amount="):
        assert_proves(policy, "no agent calls refund with amount > 50")


def test_verify_bounds_and_delegations_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    proven = "agent billing never calls refund with total amount > 2000 per thread"
    refuted = "no agent calls send_email more than 20 times per thread"
    delegation = "no delegation lets agent support call refund with amount > 100 without an ask"
    assert main(["verify", POLICY, "--assert", proven, "--assert", delegation]) == 0
    assert main(["verify", POLICY, "--assert", refuted, "--json"]) == 1
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert doc["status"] == "refuted"
    assert sum(c["times"] for c in doc["counterexample"]["sequence"]) == 21
    assert main(["verify", POLICY, "--assert", "no agent calls refund more than x times"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error:")
