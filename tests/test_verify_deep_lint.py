"""``deep_lint`` (engine-decided sample calls first, then rules grouped by tool, per-group
encodings, hinted questions) gives exactly the warnings of the per-rule reference (one
solver per rule over the whole policy's encoding), on every shipped policy, on generated
ones and on the benchmark's 200-rule policy."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

pytest.importorskip("z3")

from test_verify_differential import policies

from guardrails_plugin import Policy, allow, ask, deny
from guardrails_plugin.scopes import Emails, Number, Paths, Urls
from guardrails_plugin.verify import Verifier, deep_lint
from guardrails_plugin.verify._lint import _deep_lint_per_rule, _Lint

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 5.0
# The comparisons run both paths without a resource limit, under this wall-clock budget:
# the per-rule reference spends far more solver steps than the fast path on some questions.


def _policy(path: Path) -> Policy | None:
    try:
        return Policy.from_yaml(path)
    except Exception:  # simulation scenarios and the like are not policies
        return None


SHIPPED = sorted(
    p
    for p in {
        *ROOT.glob("cookbook/*.yaml"),
        *ROOT.glob("integrations/*/policy.yaml"),
        *ROOT.glob("integrations/agentdojo/*.yaml"),
    }
    if _policy(p) is not None
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_policies_lint_as_the_reference_does(path: Path) -> None:
    policy = Policy.from_yaml(path)
    assert deep_lint(policy, rlimit=0, timeout=BUDGET) == _deep_lint_per_rule(
        policy, rlimit=0, timeout=BUDGET
    )


def test_shipped_policies_are_linted() -> None:
    assert len(SHIPPED) >= 8


def test_views_with_many_names_lint_as_the_reference_does() -> None:
    rules = [
        deny("fetch", args={"url": Urls(["evil.example.com"])}, id="no-evil"),
        allow("fetch", args={"url": Urls(["evil.example.com"])}, id="dead-url"),
        allow("fetch", args={"url": Urls(["docs.example.com", "*.example.org"])}, id="live-url"),
        allow("fetch", agents="a", args={"url": Urls(["*.s1.example.org"])}, id="url-a"),
        ask("mail", args={"to": Emails(domains=["example.com"])}, id="ask-mail"),
        allow("mail", args={"to": Emails(domains=["example.com"])}, id="shadowed-mail"),
        allow("read", args={"path": Paths(["/srv/a"], resolve_symlinks=False)}, id="read"),
        deny("read", args={"path": Paths(["/srv"], resolve_symlinks=False)}, id="no-srv"),
        allow("pay", args={"n": Number(integer=True, gt=1, lt=2)}, id="empty"),
    ]
    policy = Policy(rules)
    got = deep_lint(policy, rlimit=0, timeout=BUDGET)
    assert got == _deep_lint_per_rule(policy, rlimit=0, timeout=BUDGET)
    text = "\n".join(got)
    for rid in ("dead-url", "shadowed-mail", "read", "empty"):
        assert repr(rid) in text
    assert "'live-url'" not in text


def test_shadow_rules_lint_as_the_reference_does() -> None:
    """The encoding decides with shadow rules enforced; the engine-decided samples too."""
    policy = Policy(
        [
            deny("send", args={"to": Emails(domains=["evil.example.com"])}, shadow=True, id="s"),
            allow("send", args={"to": Emails(domains=["evil.example.com"])}, id="dead"),
            allow("send", args={"to": Emails(domains=["example.com"])}, id="live"),
        ]
    )
    got = deep_lint(policy, rlimit=0, timeout=BUDGET)
    assert got == _deep_lint_per_rule(policy, rlimit=0, timeout=BUDGET)
    assert any("'dead'" in w for w in got)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(policies())
def test_generated_policies_lint_as_the_reference_does(policy: Policy) -> None:
    assert deep_lint(policy, rlimit=0, timeout=BUDGET) == _deep_lint_per_rule(
        policy, rlimit=0, timeout=BUDGET
    )


def _generated() -> Policy:
    """``generated()`` of ``benchmarks/bench_verify.py``: 200 rules, 40 tools, 10 agents."""
    spec = importlib.util.spec_from_file_location(
        "bench_verify", ROOT / "benchmarks" / "bench_verify.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    policy: Policy = module.generated()
    return policy


def _rule_of(warning: str) -> str:
    found = re.match(r"(?:ask )?rule '([^']*)'", warning)
    assert found is not None, warning
    return found.group(1)


def test_the_200_rule_policy_lints_as_the_reference_does_on_a_sample() -> None:
    """The benchmark's policy, with rules added that shadow some of its rules (a deny
    over a URL scope, an agent's deny, an ask over a tool's allows, a deny over an email
    ask) and a rule whose scope accepts nothing: the whole lint finishes, and on a sample
    of rules of every kind its warnings are the reference's (which takes minutes on the
    whole policy)."""
    big = _generated()
    planted = [
        deny(
            "fetch_2",
            agents="agent2",
            args={"url": Urls(["docs.example.com", "*.example.org"])},
            id="x-no-fetch",
        ),
        deny("refund_0", agents="agent0", id="x-no-refund"),
        ask("tool_4", id="x-ask-tool"),
        deny("send_email_1", agents="agent5", id="x-no-mail"),
        deny("read_3", agents="agent9", id="x-no-read"),
        allow("refund_1", args={"amount": Number(integer=True, gt=1, lt=2)}, id="x-empty"),
    ]
    policy = Policy([*big.rules, *planted], name="generated-200-planted")
    # A question the solver does not settle gives no warning, so both sides get a resource
    # limit (the same on any machine and load) no question here comes near: the largest
    # took 10.6M steps (the whole test takes ~10 s on an idle machine; its speed is
    # benchmarks/bench_verify.py --deep's business, not this test's). Steps are counted
    # the same in every fresh process, not within one (z3 shares its terms between
    # questions), so both sides run in a process of their own.
    got, want = _in_a_fresh_process(policy, SAMPLE)
    assert {"r2", "r4", "r25", "r40", "r59", "x-empty"} <= {_rule_of(w) for w in got}
    assert [w for w in got if _rule_of(w) in SAMPLE] == want


SAMPLE = ("r0", "r1", "r2", "r4", "r5", "r25", "r40", "r59", "x-empty")
_CHILD = """
import json, sys
from guardrails_plugin import Policy
from guardrails_plugin.verify import deep_lint
from guardrails_plugin.verify._lint import _deep_lint_per_rule
policy = Policy.from_dict(json.loads(sys.stdin.read()))
sample = set(sys.argv[1:])
got = deep_lint(policy, rlimit=40_000_000, timeout=None)
want = _deep_lint_per_rule(policy, rlimit=40_000_000, timeout=None, only=sample)
print(json.dumps([got, want]))
"""


def _in_a_fresh_process(policy: Policy, sample: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``deep_lint`` and its per-rule reference on ``policy``, in a new Python process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *sample],
        input=json.dumps(policy.to_dict()),
        capture_output=True,
        text=True,
        env=env,
        timeout=1_800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2_000:]
    got, want = json.loads(done.stdout)
    return got, want


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(policies())
def test_witnesses_are_decided_by_the_encoding_as_by_the_engine(policy: Policy) -> None:
    """What the fast path rests on: every call it takes as a witness (a sample the engine
    decided, or a solver's model the engine confirmed) gets the same effect from the
    encoding (the formula with the call's values substituted), so a question a witness
    answers is satisfiable in the reference's encoding too."""
    lint = _Lint(policy, (0, BUDGET))
    for r in policy.compiled_rules:
        lint.rule(r)
    verifier = Verifier(policy)
    for witnesses in lint.witnesses.values():
        for w in witnesses:
            assert verifier.effect_of(w.call, w.tainted, w.carries) == w.effect, w.call
