"""Policy files: the same policy from YAML and from Python; errors that name file and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails_plugin import (
    Budget,
    DataFlow,
    Effect,
    Policy,
    PolicyFileError,
    ToolCall,
    allow,
    ask,
    deny,
    rate,
)
from guardrails_plugin.cli import main
from guardrails_plugin.scopes import Emails, Number, Paths

COOKBOOK = Path(__file__).resolve().parent.parent / "cookbook" / "policy.yaml"

YAML = """
name: shop
version: 2
rules:
  - id: small
    allow: transfer
    agents: [billing]
    args:
      amount: {number: {gt: 0, le: 100}}
  - id: mail
    ask: send_email
    args:
      to: {email: {domains: [example.com]}}
  - id: files
    allow: read_file
    args:
      path: {path: {roots: [/data], resolve_symlinks: false}}
  - deny: "delete_*"
budgets:
  - id: total
    sum: {arg: amount, limit: 500}
    tools: [transfer]
  - id: mails
    rate: 3
    window: 60
    tools: [send_email]
flows:
  - sources: [fetch_url]
    sinks: [send_email]
    effect: deny
"""


def python_policy() -> Policy:
    return Policy(
        [
            allow("transfer", agents="billing", args={"amount": Number(gt=0, le=100)}, id="small"),
            ask("send_email", args={"to": Emails(domains=["example.com"])}, id="mail"),
            allow("read_file", args={"path": Paths(["/data"], resolve_symlinks=False)}, id="files"),
            deny("delete_*"),
        ],
        budgets=[
            Budget.sum("amount", 500, tools="transfer", id="total"),
            rate(3, seconds=60, tools="send_email", id="mails"),
        ],
        flows=[DataFlow("fetch_url", "send_email", effect="deny")],
        name="shop",
        version="2",
    )


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return str(p)


def test_yaml_and_python_build_the_same_policy(tmp_path: Path) -> None:
    assert Policy.from_yaml(write(tmp_path, YAML)) == python_policy()


def test_printed_policy_loads_back_to_the_same_policy() -> None:
    p = python_policy()
    assert Policy.from_dict(p.to_dict()) == p


def test_yaml_policy_decides_like_the_python_one(tmp_path: Path) -> None:
    a, b = Policy.from_yaml(write(tmp_path, YAML)), python_policy()
    calls = [
        ToolCall("transfer", {"amount": 50}, agent="billing"),
        ToolCall("transfer", {"amount": 500}, agent="billing"),
        ToolCall("send_email", {"to": "x@example.com"}),
        ToolCall("read_file", {"path": "/data/../etc/passwd"}),
        ToolCall("delete_all", {}),
    ]
    for c in calls:
        assert a.evaluate(c) == b.evaluate(c)
    assert [a.evaluate(c).effect for c in calls] == [
        Effect.ALLOW,
        Effect.DENY,
        Effect.ASK,
        Effect.DENY,
        Effect.DENY,
    ]


def test_cookbook_policy_is_valid() -> None:
    p = Policy.from_yaml(str(COOKBOOK))
    assert p.name == "support-team"
    assert p.evaluate(ToolCall("refund", {"amount": 500}, agent="billing")).rule == "big-refunds"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (
            "rules: [{allow: x, args: {p: {paths: {}}}}]",
            "rules[0]: args.p",
            "unknown scope kind 'paths'",
        ),
        (
            "rules: [{id: r1, allow: x, args: {n: {number: {gt: 'ten'}}}}]",
            "rules[0] (id 'r1'): args.n",
            "",
        ),
        ("rules: [{allow: x, deny: y}]", "rules[0]", "exactly one of 'allow', 'ask' or 'deny'"),
        ("rules: [{allow: x, agent: y}]", "rules[0]", "unknown key 'agent'"),
        ("rules: {allow: x}", "rules", "expected a list"),
        ("budgets: [{calls: 3, per: [week]}]", "budgets[0]", "per= must be some of"),
        ("budgets: [{rate: 3}]", "budgets[0]", "a rate needs 'window'"),
        ("budgets: [{sum: {limit: 3}}]", "budgets[0]", "needs arg="),
        ("flows: [{sources: [a], sinks: [b], effect: allow}]", "flows[0]", "'ask' or 'deny'"),
        ("rulez: []", "top level", "unknown key 'rulez'"),
        ("- just a list", "top level", "expected a mapping"),
        ("rules: [{allow: x}]\n  bad: [indent", "line", "not valid YAML"),
    ],
)
def test_file_errors_name_the_file_the_rule_and_the_problem(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyFileError) as info:
        Policy.from_yaml(path)
    message = str(info.value)
    assert message.startswith(path)
    assert where in message
    assert problem in message


def test_missing_file_is_a_policy_file_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read it"):
        Policy.from_yaml(str(tmp_path / "nope.yaml"))


def test_cli_lint_prints_the_compiled_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lint", write(tmp_path, YAML)]) == 0
    out = capsys.readouterr().out
    assert "valid (4 rules, 2 budgets, 1 flows)" in out
    assert "id: small" in out
    assert "deny delete_*" in out


def test_cli_lint_reports_errors_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "rules: [{allow: x, args: {p: {paths: {}}}}]")
    assert main(["lint", path]) == 1
    err = capsys.readouterr().err
    assert path in err
    assert "unknown scope kind 'paths'" in err


def test_cli_lint_strict_fails_on_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "rules: [{allow: shell_x}, {deny: 'shell_*'}]")
    assert main(["lint", path]) == 0
    assert main(["lint", "--strict", path]) == 2


def test_cli_check_decides_one_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, YAML)
    assert main(["check", path, "transfer", "--agent", "billing", "--args", '{"amount": 5}']) == 0
    assert capsys.readouterr().out.startswith("allow\tsmall")
    assert (
        main(["check", path, "transfer", "--agent", "billing", "--args", '{"amount": 5000}']) == 3
    )
