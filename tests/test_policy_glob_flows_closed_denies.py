"""Two engine rules the verifier's encoding states and the engine once broke: a data-flow
source written as a glob gates its sinks, and under ``unscoped_args: empty`` an extra
argument does not dodge a scoped deny."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guardrails_plugin import DataFlow, Guard, Policy, ToolCall, ToolResult, allow, deny
from guardrails_plugin.scopes import Emails


@pytest.mark.parametrize("source", ["fetch_*", "fetch_url", "f?tch_url", "[fg]etch_url", "*"])
def test_a_glob_source_gates_its_sinks(source: str) -> None:
    guard = Guard(
        Policy([allow("*")], flows=[DataFlow(sources=source, sinks="send_email", effect="deny")])
    )
    assert str(guard.check(ToolCall("send_email", {}, run_id="r")).effect) == "allow"
    guard.record(ToolResult(tool="fetch_url", content="untrusted text", run_id="r"))
    assert str(guard.check(ToolCall("send_email", {}, run_id="r")).effect) == "deny"
    assert str(guard.check(ToolCall("send_email", {}, run_id="other")).effect) == "allow"


@given(
    st.dictionaries(st.sampled_from(["cc", "bcc", "x", "note"]), st.text(min_size=1), max_size=3)
)
def test_extra_arguments_do_not_dodge_a_scoped_deny(extra: dict[str, str]) -> None:
    policy = Policy(
        [allow("send"), deny("send", args={"to": Emails(domains=["evil.com"])})],
        unscoped_args="empty",
    )
    call = ToolCall("send", {"to": "a@evil.com", **extra})
    assert str(policy.evaluate(call).effect) == "deny"
