"""The AgentDojo replay on a small slice of the banking suite (the whole run is
``python -m integrations.agentdojo.replay``): the suite's policy is plain YAML that lint
accepts, the allow-all baseline lets every ground-truth call through, and the policy stops
hijacks the baseline lets through while it still lets some user tasks through."""

from __future__ import annotations

import pytest

pytest.importorskip("agentdojo")

from guardrails_plugin import Policy

from .replay import SUITES, main, run_suite, suite_policy


@pytest.mark.parametrize("name", SUITES)
def test_the_policy_is_plain_yaml_that_round_trips(name: str) -> None:
    policy = suite_policy(name)
    assert Policy.from_dict(policy.to_dict()) == policy
    assert all(r.when is None for r in policy.rules)  # no Python predicates


def test_on_a_slice_the_policy_stops_attacks_the_baseline_lets_through() -> None:
    base = run_suite("banking", None, limit=3)
    mine = run_suite("banking", suite_policy("banking"), limit=3)
    assert base.tasks == mine.tasks == 3
    assert base.pairs == mine.pairs == 9
    assert base.utility == 1.0  # the ground truth runs under allow-all
    assert base.attacks == base.pairs
    assert mine.attacks < base.attacks
    assert mine.useful > 0


def test_main_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--suite", "banking", "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "banking" in out
    assert "attack success" in out
