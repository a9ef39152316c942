"""Reasons for two audiences: the model reads which rule and what was wrong, never what the
rule allows; the operator, the audit log and approval requests read everything.

Policies are generated for every built-in scope kind with allowed values made of random
tokens, so a token appearing in the model's text can only have come from the policy (or
from the call itself, which the model wrote and may read back).
"""

from __future__ import annotations

import json
from typing import Any

from fakes import tool_messages, user
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.tools import tool

from guardrails_plugin import Guard, Policy, ToolCall, allow, ask, deny
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.scopes import (
    Emails,
    Not,
    Number,
    OneOf,
    Paths,
    Pattern,
    Predicate,
    Returned,
    Scope,
    Shell,
    Sql,
    Text,
    Urls,
    optional,
)
from guardrails_plugin.testing import ScriptedChatModel, tool_call


def is_even(value: object) -> bool:
    if not isinstance(value, int):
        raise TypeError("not an integer")
    return value % 2 == 0


tokens = st.text(alphabet="bcdfghjkmnpqrstvwxz", min_size=6, max_size=9)


@st.composite
def scoped(draw: st.DrawFn) -> tuple[Scope, list[str], list[Any]]:
    """A scope of one built-in kind, the policy's own tokens, and values to try on it
    (inside, outside, odd)."""
    a, b, c = draw(tokens), draw(tokens), draw(tokens)
    kind = draw(
        st.sampled_from(
            [
                "email",
                "url",
                "path",
                "number",
                "one_of",
                "pattern",
                "predicate",
                "shell",
                "sql",
                "text",
                "returned",
                "optional",
            ]
        )
    )
    outside_text = ["see evil.com", "mail x@evil.com", 42, None]
    if kind in ("email", "optional"):
        scope: Scope = Emails(addresses=[f"{a}@{b}.com"], domains=[f"{c}.org"])
        if kind == "optional":
            scope = optional(scope)
        values: list[Any] = [f"{a}@{b}.com", f"x@{c}.org", "x@evil.com", "", [], 7, "a@b@c"]
        secrets = [a, b, c]
    elif kind == "url":
        port = draw(st.integers(20000, 29999))
        scope = Urls([f"{a}.com", f"*.{b}.net"], schemes=["https", "wss"], ports=[port])
        values = [f"https://{a}.com:{port}/", "https://evil.com/", "ftp://x.com", "http://[::1]/"]
        values += [f"https://{a}.com:1/", "wss://10.0.0.1/", 3]
        secrets = [a, b, str(port)]
    elif kind == "path":
        scope = Paths([f"/srv/{a}", f"/var/{b}"], access="write")
        values = [f"/srv/{a}/x", "/etc/passwd", "~/x", "rel/x", f"/srv/{a}", 5]
        secrets = [a, b]
    elif kind == "number":
        lo = draw(st.integers(1000, 4999)) + 0.25
        hi = lo + draw(st.integers(10, 999))
        scope = Number(ge=lo, le=hi)
        values = [lo + 1, lo - 500, hi + 500, "12", True]
        secrets = [repr(lo), repr(hi)]
    elif kind == "one_of":
        scope = OneOf([a, b])
        values = [a, c, 3, None]
        secrets = [a, b]
    elif kind == "pattern":
        scope = Pattern(f"{a}-[0-9]+")
        values = [f"{a}-12", f"{c}-1", 4]
        secrets = [a]
    elif kind == "predicate":
        scope = Predicate(is_even, description=f"one of {b}'s ids")
        values = [2, 3, "x"]
        secrets = [b]
    elif kind == "shell":
        scope = Shell([a, b])
        values = [f"{a} x", "rm -rf /", f"{a} x | {c}", f"{a} $(id)", 9]
        secrets = [a, b]
    elif kind == "sql":
        scope = Sql([a, b])
        values = [f"SELECT * FROM {a}", f"SELECT * FROM {c}", f"DELETE FROM {a}", "SELEC", 1]
        secrets = [a, b]
    elif kind == "returned":
        scope = Returned([f"list_{a}", f"make_{b}"])
        values = [f"{a}", f"id-{c}", 12, None, ["x"]]
        secrets = [a, b]
    else:
        scope = Text(urls=Urls([f"{a}.com"]), emails=Emails(domains=[f"{b}.org"]))
        values = [f"see https://{a}.com/x", f"x@{b}.org", *outside_text]
        secrets = [a, b]
    # the wrappers pass the wrapped scope's refusals on: none may add what it allows
    wrap = draw(st.sampled_from(["none", "not", "optional", "optional-not"]))
    if wrap in ("not", "optional-not") and kind != "optional":
        scope = Not(scope)
    if wrap in ("optional", "optional-not"):
        scope = optional(scope)
    return scope, secrets, values


@st.composite
def policies(draw: st.DrawFn) -> tuple[Policy, list[str], list[ToolCall]]:
    rules, secrets, calls = [], [], []
    for i in range(draw(st.integers(1, 4))):
        scope, mine, values = draw(scoped())
        secrets += mine
        effect = draw(st.sampled_from([allow, allow, ask, deny]))
        rules.append(effect("tool", args={"arg": scope}, id=f"r{i}"))
        calls += [ToolCall("tool", {"arg": v}) for v in values]
    calls.append(ToolCall("tool", {}))
    calls.append(ToolCall("tool", {"other": 1}))
    return Policy(rules), secrets, calls


@settings(max_examples=300, deadline=None)
@given(policies())
def test_no_allowed_value_reaches_the_model(
    drawn: tuple[Policy, list[str], list[ToolCall]],
) -> None:
    policy, secrets, calls = drawn
    for call in calls:
        decision = policy.evaluate(call)
        said = json.dumps(dict(call.args), default=str)
        for_model = decision.for_model()
        for secret in secrets:
            if secret not in said:
                assert secret not in for_model, (call, for_model)
        # the model still learns which rule and which argument
        if decision.denied and "argument 'arg'" in decision.reason:
            assert "argument 'arg'" in for_model
            assert decision.rule in for_model


@settings(max_examples=100, deadline=None)
@given(policies())
def test_the_operator_reads_what_the_rule_allows(
    drawn: tuple[Policy, list[str], list[ToolCall]],
) -> None:
    """The full reason keeps the allowed values: each denial that says a value is outside
    the allowed ones names some of the policy's tokens to the operator."""
    policy, secrets, calls = drawn
    outside = ("not in allowed", "is not allowed;", "outside the allowed roots", "allowed values")
    for call in calls:
        decision = policy.evaluate(call)
        if decision.denied and any(p in decision.reason for p in outside):
            assert any(s in decision.reason for s in secrets), decision.reason


TRUSTED = [f"person{i}@partner{i % 7}.com" for i in range(60)]


def send_email_policy() -> Policy:
    trusted = Emails(addresses=TRUSTED, domains=["corp.com"])
    return Policy(
        [
            allow("send_email", args={"to": trusted, "cc": optional(trusted)}, id="mail-a"),
            allow("send_email", args={"to": trusted, "bcc": optional(trusted)}, id="mail-b"),
            allow("send_email", args={"recipients": trusted}, id="mail-c"),
            allow("send_email", args={"to": Emails(domains=["corp.com"])}, id="mail-d"),
        ]
    )


def test_a_denied_send_email_tells_the_model_little_and_the_operator_everything() -> None:
    decision = Guard(send_email_policy()).check(
        ToolCall("send_email", {"to": "attacker@evil.com", "body": "hi"})
    )
    assert decision.denied
    assert len(decision.reason) > 1500
    assert all(a in decision.reason for a in TRUSTED)
    model = decision.for_model()
    assert len(model) <= 500
    assert not any(a in model for a in TRUSTED)
    assert "corp.com" not in model
    assert "attacker@evil.com" in model
    # a stored decision keeps both texts
    again = type(decision).from_doc(json.loads(json.dumps(decision.to_doc())))
    assert again.for_model() == model
    assert again.reason == decision.reason


def test_the_middleware_shows_the_model_the_short_reason() -> None:
    sent: list[str] = []

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        sent.append(to)
        return "sent"

    model = ScriptedChatModel([[tool_call("send_email", to="attacker@evil.com", body="x")], "done"])
    agent = create_agent(
        model, tools=[send_email], middleware=[GuardMiddleware(Guard(send_email_policy()))]
    )
    out = agent.invoke(user("mail"), {"configurable": {"thread_id": "t"}})
    (message,) = tool_messages(out)
    assert message.status == "error"
    assert sent == []
    text = str(message.content)
    assert "attacker@evil.com" in text
    assert "argument 'to'" in text
    assert not any(a in text for a in TRUSTED)
    assert "corp.com" not in text


def test_an_approval_request_carries_the_full_reason() -> None:
    from guardrails_plugin import Approval

    seen: list[dict[str, Any]] = []

    def answer(request: Any) -> Approval:
        seen.append(request.to_dict())
        return Approval.edit({"to": "attacker@evil.com", "body": "x"})

    policy = Policy(
        [
            ask("send_email", args={"to": Emails(domains=["corp.com"])}, id="ask-mail"),
            allow("send_email", args={"to": Emails(addresses=TRUSTED)}, id="mail"),
        ]
    )
    guard = Guard(policy, approver=answer)
    decision = guard.decide(ToolCall("send_email", {"to": "a@corp.com", "body": "x"}))
    assert seen
    assert seen[0]["reason"] == "rule 'ask-mail' requires a person's approval"
    # the person's edit is out of policy: the operator sees the trusted list, the model not
    assert decision.denied
    assert all(a in decision.reason for a in TRUSTED[:5])
    assert not any(a in decision.for_model() for a in TRUSTED)


def test_a_custom_scope_only_says_the_argument_is_outside() -> None:
    class Secretive(Scope):
        kind = ""

        def check(self, value: object) -> None:
            from guardrails_plugin import ScopeViolation

            raise ScopeViolation("only the vault ids v-7781 and v-9932", unreadable=value == "?")

        def spec(self) -> dict[str, Any]:
            return {}

    decision = Policy([allow("open", args={"id": Secretive()}, id="vault")]).evaluate(
        ToolCall("open", {"id": "x"})
    )
    assert "v-7781" in decision.reason
    assert "v-7781" not in decision.for_model()
    assert "argument 'id' is outside what rule 'vault' allows" in decision.for_model()
    # a built-in wrapper does not make a custom scope's message the model's
    for wrapped, value in (
        (optional(Secretive()), "x"),
        (Not(Secretive()), "?"),
        (optional(Not(Secretive())), "?"),
    ):
        decision = Policy([allow("open", args={"id": wrapped}, id="vault")]).evaluate(
            ToolCall("open", {"id": value})
        )
        assert decision.denied
        assert "v-7781" not in decision.for_model(), wrapped
        assert "argument 'id' is outside what rule 'vault' allows" in decision.for_model()
