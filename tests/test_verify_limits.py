"""The verifier's answers depend on its resource limit, not on the machine or its load.

Each solver call is limited by z3's ``rlimit`` (a count of the solver's steps); a
wall-clock ceiling is only a last resort, and an ``unknown`` names the limit it met. The
load test answers the same questions in a fresh process with the machine idle and with
busy processes competing for every core, and wants the same answers, word for word.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("z3")

from guardrails_plugin import Budget, Policy, allow
from guardrails_plugin.cli import main
from guardrails_plugin.scopes import Number
from guardrails_plugin.verify import Verifier
from guardrails_plugin.verify._z3 import RESOURCE, TIME, check, gave_up, limit, z3

ROOT = Path(__file__).resolve().parent.parent

# Questions of every kind the verifier answers (a bound the search refutes, a bound with
# tool names as any strings, a bound proven over several distinct calls, a delegation, a
# single call), each under the default limit and under limits small enough that some end
# "unknown (resource limit)".
_WORKER = r"""
import json, sys
from guardrails_plugin import Budget, Policy, allow, ask
from guardrails_plugin.scopes import Number
from guardrails_plugin.verify import Verifier
from guardrails_plugin.verify._sequences import check_bounded
from guardrails_plugin.verify._props import parse

distinct = Policy([allow("send_email")],
                  budgets=[Budget.distinct("to", 1, tools="send_email", per="run")])
per_tool = Policy([allow("delete_*")],
                  budgets=[Budget.calls(1, tools="delete_*", per=("run", "tool"))])
mixed = Policy(
    [allow("pay", agents="alice", args={"n": Number(le=3)}), ask("pay", agents="bob")],
    budgets=[Budget.sum("n", 5, agents="alice", id="a5"), Budget.calls(3, agents="bob")],
)
questions = [
    (distinct, "no agent calls send_email more than 4 times per run"),
    (per_tool, "no agent calls delete_* more than 2 times per run"),
    (mixed, "agents together never call pay more than 5 times per run"),
    (mixed, "agent alice never calls pay with total n > 5 per run"),
    (mixed, "no delegation lets agent carol call pay with n > 3"),
    (mixed, "agent bob never calls pay"),
]
out = []
for rlimit in [int(x) for x in sys.argv[1:]]:
    for policy, text in questions:
        r = Verifier(policy, rlimit=rlimit).check(text)
        out.append([rlimit, text, r.status, r.limit, r.detail, str(r.counterexample),
                    list(r.assumptions)])
    r = check_bounded(Verifier(per_tool, rlimit=rlimit),
                      parse("no agent calls delete_* more than 2 times per run"),
                      representatives=False)
    out.append([rlimit, "free tool names", r.status, r.limit, r.detail,
                str(r.counterexample), list(r.assumptions)])
print(json.dumps(out))
"""


def _answers(*rlimits: int) -> list[list[object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    run = subprocess.run(
        [sys.executable, "-c", _WORKER, *map(str, rlimits)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=True,
    )
    # a grant's id is random (uuid): the one word a replayed delegation may change
    answers: list[list[object]] = json.loads(re.sub(r"grant:[0-9a-f]+", "grant:*", run.stdout))
    return answers


def test_the_same_question_gets_the_same_answer_under_cpu_load() -> None:
    limits = (Verifier.__init__.__kwdefaults__["rlimit"], 20_000, 2_000, 300)
    idle = _answers(*limits)
    statuses = {(a[0], a[2], a[3]) for a in idle}
    # the small limits leave some questions unknown, and say it was the resource limit
    assert any(s == "unknown" and lim == RESOURCE for _, s, lim in statuses), statuses
    assert all(s != "unknown" for rl, s, _ in statuses if rl == limits[0]), idle
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(2 * (os.cpu_count() or 2))
    ]
    try:
        time.sleep(0.5)
        loaded = _answers(*limits)
    finally:
        for p in busy:
            p.kill()
        for p in busy:
            p.wait()
    assert loaded == idle


def test_a_resource_limit_is_reported_as_such() -> None:
    policy = Policy(
        [allow("send_email")], budgets=[Budget.distinct("to", 1, tools="send_email", per="run")]
    )
    r = Verifier(policy, rlimit=1).check("no agent calls send_email more than 4 times per run")
    assert (r.status, r.limit) == ("unknown", RESOURCE)
    assert r.summary().startswith("unknown (resource limit): ")
    assert r.to_dict()["limit"] == RESOURCE


def test_the_wall_clock_ceiling_is_reported_apart_from_the_resource_limit() -> None:
    Z = z3()
    x, y, w = Z.Ints("x y w")
    hard = [x * x * x + y * y * y + w * w * w == 1729 * 7 + 3, x > 1, y > 1]
    timed = limit(Z.Solver(), 0, 0.05)
    timed.add(*hard)
    assert check(timed) == Z.unknown
    assert gave_up(timed) == TIME
    counted = limit(Z.Solver(), 50_000, None)
    counted.add(*hard)
    assert check(counted) == Z.unknown
    assert gave_up(counted) == RESOURCE


def test_the_limits_are_checked_and_shown() -> None:
    policy = Policy([allow("refund", args={"amount": Number(le=100)})])
    with pytest.raises(ValueError, match="rlimit"):
        Verifier(policy, rlimit=-1)
    v = Verifier(policy, rlimit=0, timeout=None)  # no limit at all
    assert v.check("no agent calls refund with amount > 100").status == "proven"
    assert "rlimit=0" in repr(v)


def test_the_cli_takes_a_resource_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = Policy(
        [allow("send_email")], budgets=[Budget.distinct("to", 1, tools="send_email", per="run")]
    )
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(policy.to_dict()))
    prop = "no agent calls send_email more than 4 times per run"
    assert main(["verify", str(path), "--assert", prop]) == 1
    capsys.readouterr()
    assert main(["verify", str(path), "--assert", prop, "--rlimit", "1"]) == 2
    assert "unknown (resource limit)" in capsys.readouterr().out
    assert main(["verify", str(path), "--assert", prop, "--rlimit", "1_000_000"]) == 1
    capsys.readouterr()
    for bad in (["--rlimit", "-5"], ["--rlimit", "lots"], ["--timeout", "-1"]):
        with pytest.raises(SystemExit) as exc:
            main(["verify", str(path), "--assert", prop, *bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len([e for e in err if "error:" in e]) == 1
        assert "Traceback" not in "\n".join(err)
