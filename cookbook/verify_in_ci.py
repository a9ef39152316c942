"""Fail a build when a policy change widens permissions, or breaks what the team promised.

Run it as a test (``pytest cookbook/verify_in_ci.py``) or as a script. It needs the
``verify`` extra (``pip install 'guardrails-plugin[verify]'``). The same checks on the
command line, for a CI job that has no Python test suite::

    guardrails-plugin verify cookbook/policy.yaml \\
        --assert "agent billing never calls refund with amount > 1000" \\
        --assert "no agent reaches send_email.to outside example.com" \\
        --assert "agent billing never calls refund with total amount > 2000 per thread"
    git show main:cookbook/policy.yaml > /tmp/old.yaml
    guardrails-plugin diff /tmp/old.yaml cookbook/policy.yaml   # exit 1: it widens

The promises are sentences (see docs/verification.md); each is proven for every call, or the
check fails with a concrete call that breaks it, replayed through the guard itself.
"""

from __future__ import annotations

from pathlib import Path

from guardrails_plugin import Policy
from guardrails_plugin.verify import assert_never_widens, assert_proves, diff

HERE = Path(__file__).resolve().parent

PROMISES = [
    "agent billing never calls refund with amount > 1000",
    "agent billing never calls refund with amount > 100 without an ask",
    "no agent reaches send_email.to outside example.com",
    "every call of delete_* is denied",
    "untrusted content never reaches a sink without an ask",
    # budgets as bounds: over every sequence of calls the guard permits, budgets charged
    "agent billing never calls refund with total amount > 2000 per thread",
    # run-time grants: whatever delegations of the policy's rules Guard.delegate accepts
    "no delegation lets agent support call refund with amount > 100 without an ask",
]


def test_policy_keeps_its_promises() -> None:
    assert_proves(Policy.from_yaml(str(HERE / "policy.yaml")), *PROMISES)


def test_a_tighter_policy_does_not_widen() -> None:
    old = Policy.from_yaml(str(HERE / "policy.yaml"))
    data = old.to_dict()
    data["rules"] = [r for r in data["rules"] if r["id"] != "docs-only"]  # drop a permission
    assert_never_widens(old, Policy.from_dict(data))


def main() -> None:
    old = Policy.from_yaml(str(HERE / "policy.yaml"))
    for result in assert_proves(old, *PROMISES):
        print(f"{result.property}: {result.summary()}")
    # a change someone proposes: refunds up to 5000 with a person's approval
    data = old.to_dict()
    for rule in data["rules"]:
        if rule["id"] == "big-refunds":
            rule["args"]["amount"]["number"]["le"] = 5000
    new = Policy.from_dict(data)
    for region in diff(old, new):
        print(region)
    try:
        assert_never_widens(old, new)
    except AssertionError:
        print("the proposed policy widens permissions: the build fails")


if __name__ == "__main__":
    main()
