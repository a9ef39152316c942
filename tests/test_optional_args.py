"""Optional arguments and ``unscoped_args``: absent, ``None`` or empty passes, a value given
must be in scope; a policy can require every argument a rule does not scope to be empty.

The oracles are written independently of the code under test: a plain-Python ``when=``
condition states the intended rule over the whole call, and real LangChain tools (with a
pydantic alias) record what their bodies received.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from fakes import Ran, tool_messages, user
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field

from guardrails_plugin import Guard, Policy, ToolCall, allow, deny
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.scopes import Emails, OneOf, arg_data, arg_scope, is_empty, optional
from guardrails_plugin.testing import ScriptedChatModel, tool_call

INSIDE = Emails(domains=["corp.example"])
GOOD = ["a@corp.example", "b@corp.example", "Team <t@corp.example>"]
BAD = ["x@evil.com", "a@corp.example.evil.com", "a@corp.example, x@evil.com"]
ODD: list[Any] = [0, False, " ", {}, [""], [None], ["", "a@corp.example"], b"a@corp.example", 1.5]
EMPTY: list[Any] = [None, "", [], ()]

# A value for an argument: left out (the MISSING marker), empty, odd, inside, outside, mixed.
MISSING = object()
values = st.one_of(
    st.just(MISSING),
    st.sampled_from(EMPTY),
    st.sampled_from(ODD),
    st.sampled_from(GOOD + BAD),
    st.lists(st.sampled_from(GOOD + BAD), min_size=1, max_size=3),
    st.text(max_size=12),
)


def call_with(tool: str = "send_email", **given_args: Any) -> ToolCall:
    return ToolCall(tool, {k: v for k, v in given_args.items() if v is not MISSING})


def in_scope(value: Any) -> bool:
    """The oracle: an optional argument passes when absent or empty, else when the required
    scope accepts it (the definition of "empty" spelled out, not imported)."""
    if value is MISSING or value is None:
        return True
    if type(value) in (str, list, tuple) and len(value) == 0:
        return True
    return INSIDE.contains(value)


def oracle(call: ToolCall) -> bool:
    args = call.args
    return (
        "to" in args
        and INSIDE.contains(args["to"])
        and all(in_scope(args.get(k, MISSING)) for k in ("cc", "bcc"))
    )


SCOPED = {"to": INSIDE, "cc": optional(INSIDE), "bcc": optional(INSIDE)}
POLICY = Policy([allow("send_email", args=SCOPED)])
ORACLE_POLICY = Policy([allow("send_email", when=oracle)])


@settings(max_examples=400, deadline=None)
@given(to=values, cc=values, bcc=values)
def test_optional_arguments_decide_as_the_plain_python_rule(to: Any, cc: Any, bcc: Any) -> None:
    call = call_with(to=to, cc=cc, bcc=bcc)
    assert POLICY.evaluate(call).allowed == ORACLE_POLICY.evaluate(call).allowed


@settings(max_examples=200, deadline=None)
@given(to=values, cc=values, bcc=values)
def test_a_grant_with_optional_arguments_decides_as_the_rule(to: Any, cc: Any, bcc: Any) -> None:
    guard = Guard(Policy([]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cc and bcc are scoped: nothing to warn about
        guard.grant("agent", "send_email", args=SCOPED)
    call = call_with(to=to, cc=cc, bcc=bcc)
    assert guard.check(call).allowed == oracle(call)


@settings(max_examples=200, deadline=None)
@given(to=values, cc=values, bcc=values)
def test_a_deny_rule_treats_an_absent_optional_argument_as_inside(
    to: Any, cc: Any, bcc: Any
) -> None:
    outside = Emails(domains=["evil.com"])
    policy = Policy(
        [
            allow("send_email"),
            deny("send_email", args={"to": outside, "cc": optional(outside)}, id="no-evil"),
        ]
    )
    call = call_with(to=to, cc=cc, bcc=bcc)
    args = call.args
    fires = (
        "to" in args
        and outside.contains(args["to"])
        and (is_empty(args.get("cc")) or outside.contains(args["cc"]))
    )
    decision = policy.evaluate(call)
    if fires:
        assert decision.denied
        assert decision.rule == "no-evil"
    elif decision.denied:  # an unreadable value: deny rules fail closed
        assert decision.reason.startswith("fail closed")


@pytest.mark.parametrize("value", EMPTY, ids=repr)
def test_none_missing_and_empty_pass(value: Any) -> None:
    assert POLICY.evaluate(call_with(to="a@corp.example", cc=value)).allowed
    assert POLICY.evaluate(call_with(to="a@corp.example")).allowed


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_values_that_only_look_empty_go_to_the_scope(value: Any) -> None:
    """Zero, False, whitespace, an empty mapping and a list of empty strings are values: the
    email scope refuses every one of them."""
    decision = POLICY.evaluate(call_with(to="a@corp.example", cc=value))
    assert decision.denied
    assert "'cc'" in decision.reason


def test_a_required_argument_is_still_required() -> None:
    for value in [MISSING, *EMPTY]:
        assert POLICY.evaluate(call_with(to=value, cc="a@corp.example")).denied


# -- plain data: Python, YAML, stored grants ---------------------------------------------------

scopes = st.sampled_from(
    [INSIDE, Emails(addresses=["boss@corp.example"]), OneOf(["low", "high"]), OneOf([1, 2])]
)
arg_scopes = st.builds(lambda s, o: optional(s) if o else s, scopes, st.booleans())


@settings(max_examples=150, deadline=None)
@given(
    args=st.dictionaries(st.sampled_from(["to", "cc", "bcc", "priority"]), arg_scopes),
    closed=st.booleans(),
    effect=st.sampled_from([allow, deny]),
)
def test_round_trip_through_yaml_is_exact(
    tmp_path_factory: pytest.TempPathFactory, args: dict[str, Any], closed: bool, effect: Any
) -> None:
    policy = Policy(
        [effect("send_email", args=args, id="r")], unscoped_args="empty" if closed else "any"
    )
    path = tmp_path_factory.mktemp("p") / "policy.yaml"
    path.write_text(yaml.safe_dump(policy.to_dict()), encoding="utf-8")
    loaded = Policy.from_yaml(str(path))
    assert loaded == policy
    assert loaded.to_dict() == policy.to_dict()
    assert loaded.digest == policy.digest
    assert dict(loaded.rules[0].args) == args
    for _name, scope in args.items():
        assert arg_scope(arg_data(scope)) == scope


def test_a_stored_grant_keeps_its_optional_arguments() -> None:
    guard = Guard(Policy([]))
    g = guard.grant("agent", "send_email", args=SCOPED)
    again = Guard(Policy([]), store=guard.store)
    (found,) = again.grants("agent")
    assert found.id == g.id
    assert dict(found.args) == SCOPED
    assert again.check(call_with(to="a@corp.example", cc=None)).allowed
    assert again.check(call_with(to="a@corp.example", bcc="x@evil.com")).denied


def test_policy_file_errors_name_the_optional_key(tmp_path: Path) -> None:
    from guardrails_plugin import PolicyFileError

    bad = {
        "rules": [
            {
                "allow": "send_email",
                "args": {"cc": {"email": {"domains": ["x"]}, "optional": "yes"}},
            }
        ]
    }
    with pytest.raises(PolicyFileError, match=r"args\.cc: optional: expected true or false"):
        Policy.from_dict(bad)
    with pytest.raises(PolicyFileError, match="unscoped_args"):
        Policy.from_dict({"rules": [], "unscoped_args": "none"})


# -- unscoped_args ----------------------------------------------------------------------------

extra_names = st.sampled_from(["cc", "bcc", "reply_to", "attachments", "CC", "to "])


@settings(max_examples=300, deadline=None)
@given(
    extra=st.dictionaries(extra_names, st.sampled_from([MISSING, *EMPTY, *ODD, *GOOD, *BAD])),
)
def test_unscoped_args_empty_refuses_every_unmentioned_value(extra: dict[str, Any]) -> None:
    rule = allow("send_email", args={"to": INSIDE}, id="to-only")
    open_policy = Policy([rule])
    closed_policy = Policy([rule], unscoped_args="empty")
    call = call_with(to="a@corp.example", **extra)
    given_extra = {
        k: v
        for k, v in call.args.items()
        if k != "to" and not (v is None or (type(v) in (str, list, tuple) and not v))
    }
    assert open_policy.evaluate(call).allowed
    decision = closed_policy.evaluate(call)
    assert decision.allowed == (not given_extra)
    if given_extra:
        assert "must be absent or empty" in decision.reason


def test_unscoped_args_leaves_whole_tool_rules_alone() -> None:
    policy = Policy([allow("search")], unscoped_args="empty")
    assert policy.evaluate(ToolCall("search", {"q": "x", "limit": 5})).allowed


def test_cc_smuggled_through_a_recipient_grant() -> None:
    """A grant that scopes ``recipients`` says nothing about ``cc``: under the default it
    lets a copy go anywhere (and says so when granted); under ``unscoped_args: empty`` the
    copy is refused."""
    attack = call_with(recipients=["a@corp.example"], cc=["x@evil.com"])
    open_guard = Guard(Policy([]))
    with pytest.warns(UserWarning, match=r"scopes 'recipients' but not 'cc', 'bcc'"):
        open_guard.grant("agent", "send_email", args={"recipients": INSIDE})
    assert open_guard.check(attack).allowed  # today's behaviour, now warned about

    closed_guard = Guard(Policy([], unscoped_args="empty"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        closed_guard.grant("agent", "send_email", args={"recipients": INSIDE})
    assert closed_guard.check(attack).denied
    assert closed_guard.check(call_with(recipients=["a@corp.example"], cc=[])).allowed


def test_lint_warns_where_a_rule_leaves_copies_open() -> None:
    rules = [
        allow("send_email", args={"to": INSIDE}, id="open"),
        allow("send_email", args={"to": INSIDE, "cc": optional(INSIDE)}, id="half"),
        allow("mail", args={"to": INSIDE, "cc": optional(INSIDE), "bcc": optional(INSIDE)}),
        allow("reply", args={**SCOPED, "reply_to": optional(INSIDE)}, id="closed"),
        deny("send_email", args={"to": INSIDE}, id="a-deny"),
    ]
    found = [w for w in Policy(rules).lint() if "but not" in w]
    assert [w.split(":")[0] for w in found] == [
        "rule 'open' scopes 'to' but not 'cc', 'bcc'",
        "rule 'half' scopes 'to' but not 'bcc'",
    ]
    assert not [w for w in Policy(rules, unscoped_args="empty").lint() if "but not" in w]


# -- aliases: the adapter decides on what the tool receives ---------------------------------


class MailArgs(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    to: str
    cc: list[str] | None = Field(default=None, alias="carbon_copy")


def mail_tool(ran: Ran) -> StructuredTool:
    def send_email(to: str, cc: list[str] | None = None) -> str:
        ran.append(("send_email", {"to": to, "cc": cc}))
        return "sent"

    return StructuredTool.from_function(send_email, description="Send.", args_schema=MailArgs)


@pytest.mark.parametrize("closed", [False, True])
def test_an_aliased_copy_is_judged_as_the_field_it_sets(closed: bool) -> None:
    ran: Ran = []
    policy = Policy(
        [allow("send_email", args={"to": INSIDE, "cc": optional(INSIDE)})],
        unscoped_args="empty" if closed else "any",
    )
    model = ScriptedChatModel(
        [
            [tool_call("send_email", to="a@corp.example", carbon_copy=["x@evil.com"])],
            [tool_call("send_email", to="a@corp.example", cc=["x@evil.com"])],
            [tool_call("send_email", to="a@corp.example")],
            [tool_call("send_email", to="a@corp.example", carbon_copy=["b@corp.example"])],
            "done",
        ]
    )
    agent = create_agent(model, tools=[mail_tool(ran)], middleware=[GuardMiddleware(Guard(policy))])
    out = agent.invoke(user("mail"), {"configurable": {"thread_id": "t"}})
    statuses = [m.status for m in tool_messages(out)]
    assert statuses == ["error", "error", "success", "success"]
    assert ran == [
        ("send_email", {"to": "a@corp.example", "cc": None}),
        ("send_email", {"to": "a@corp.example", "cc": ["b@corp.example"]}),
    ]
