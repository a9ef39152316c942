"""The policy engine on its own: precedence, default deny, fail closed, ids and reasons."""

from __future__ import annotations

import pytest

from guardrails_plugin import Effect, Policy, PolicyError, ToolCall, allow, ask, deny
from guardrails_plugin.policy import DEFAULT_DENY, MALFORMED
from guardrails_plugin.scopes import Number, OneOf, Paths, Predicate


def call(tool: str, agent: str = "agent", **args: object) -> ToolCall:
    return ToolCall(tool, args, agent=agent)


def test_tool_no_rule_names_is_denied_by_default() -> None:
    d = Policy([allow("search")]).evaluate(call("delete_db"))
    assert d.effect is Effect.DENY
    assert d.rule == DEFAULT_DENY
    assert "no rule allows tool 'delete_db' for agent 'agent'" in d.reason


def test_empty_policy_denies_everything() -> None:
    assert Policy().evaluate(call("anything")).effect is Effect.DENY


def test_explicit_deny_beats_allow_whatever_the_order() -> None:
    for rules in ([allow("*"), deny("shell")], [deny("shell"), allow("*")]):
        d = Policy(rules).evaluate(call("shell", cmd="ls"))
        assert d.effect is Effect.DENY
        assert d.rule == "deny shell"


def test_ask_beats_allow() -> None:
    p = Policy([allow("send_email"), ask("send_email", id="confirm-mail")])
    d = p.evaluate(call("send_email", to="a@example.com"))
    assert d.effect is Effect.ASK
    assert d.rule == "confirm-mail"


def test_glob_patterns_match_tools_and_agents() -> None:
    p = Policy([allow("search_*", agents="research*")])
    assert p.evaluate(call("search_web", agent="researcher")).effect is Effect.ALLOW
    assert p.evaluate(call("search_web", agent="writer")).effect is Effect.DENY
    assert p.evaluate(call("fetch", agent="researcher")).effect is Effect.DENY


def test_rules_are_per_agent() -> None:
    p = Policy([allow("transfer", agents="billing", args={"amount": Number(gt=0, le=100)})])
    assert p.evaluate(call("transfer", agent="billing", amount=50)).effect is Effect.ALLOW
    assert p.evaluate(call("transfer", agent="support", amount=50)).effect is Effect.DENY


def test_argument_out_of_scope_is_denied_with_the_rule_and_argument_named() -> None:
    p = Policy([allow("transfer", args={"amount": Number(le=100)})])
    d = p.evaluate(call("transfer", amount=5000))
    assert d.effect is Effect.DENY
    assert d.rule == "default-deny"
    assert "argument 'amount'" in d.reason
    # one rule per denial text: the one that decided, not the allow that did not match
    assert d.message().count("rule '") == 1
    assert d.message().startswith("'transfer' denied by rule 'default-deny': argument 'amount'")


def test_missing_scoped_argument_is_denied() -> None:
    p = Policy([allow("read_file", args={"path": Paths(["/data"], resolve_symlinks=False)})])
    d = p.evaluate(call("read_file", filename="/data/x"))
    assert d.effect is Effect.DENY
    assert "'path' is required" in d.reason


def test_tiered_amounts_allow_small_ask_medium_deny_large() -> None:
    p = Policy(
        [
            allow("transfer", args={"amount": Number(gt=0, le=100)}, id="small"),
            ask("transfer", args={"amount": Number(gt=100, le=10_000)}, id="medium"),
        ]
    )
    assert p.evaluate(call("transfer", amount=50)).rule == "small"
    assert p.evaluate(call("transfer", amount=50)).effect is Effect.ALLOW
    assert p.evaluate(call("transfer", amount=500)).effect is Effect.ASK
    assert p.evaluate(call("transfer", amount=50_000)).effect is Effect.DENY


def test_deny_with_scope_fires_only_inside_the_scope() -> None:
    p = Policy([allow("shop"), deny("shop", args={"item": OneOf(["weapons", "drugs"])})])
    assert p.evaluate(call("shop", item="books")).effect is Effect.ALLOW
    d = p.evaluate(call("shop", item="drugs"))
    assert d.effect is Effect.DENY
    assert d.rule == "deny shop"


def test_crashing_condition_fails_closed() -> None:
    def boom(_: ToolCall) -> bool:
        raise RuntimeError("lookup failed")

    p = Policy([allow("x"), deny("x", when=boom, id="guarded")])
    d = p.evaluate(call("x"))
    assert d.effect is Effect.DENY
    assert d.rule == "guarded"
    assert "fail closed" in d.reason
    assert "lookup failed" in d.reason


def test_condition_returning_non_bool_fails_closed() -> None:
    p = Policy([ask("x", when=lambda c: "yes", id="weird")])  # type: ignore[arg-type,return-value]
    d = p.evaluate(call("x"))
    assert d.effect is Effect.DENY
    assert "expected True or False" in d.reason


def explode(value: object) -> bool:
    raise ValueError("kaboom")


def test_crashing_scope_fails_closed() -> None:
    p = Policy([deny("x", args={"a": Predicate(explode, "explodes")}), allow("x")])
    d = p.evaluate(call("x", a=1))
    assert d.effect is Effect.DENY
    assert "kaboom" in d.reason


def test_unreadable_arguments_are_denied() -> None:
    p = Policy([allow("*")])
    d = p.evaluate(ToolCall("search", "just a string"))  # type: ignore[arg-type]
    assert d.effect is Effect.DENY
    assert d.rule == MALFORMED
    assert "expected an object of named arguments, found str" in d.reason


def test_non_string_argument_keys_are_denied() -> None:
    d = Policy([allow("*")]).evaluate(ToolCall("search", {1: "x"}))  # type: ignore[dict-item]
    assert d.rule == MALFORMED


def test_wrong_argument_type_is_denied_with_reason() -> None:
    p = Policy([allow("transfer", args={"amount": Number(le=100)})])
    d = p.evaluate(call("transfer", amount="12"))
    assert d.effect is Effect.DENY
    assert "str" in d.reason


def test_rule_with_a_non_scope_argument_is_refused_at_build_time() -> None:
    with pytest.raises(PolicyError, match="must have a Scope"):
        allow("x", args={"a": 5})  # type: ignore[dict-item]


def test_duplicate_rule_ids_are_refused() -> None:
    with pytest.raises(PolicyError, match="two rules have the id"):
        Policy([allow("x", id="r"), allow("y", id="r")])


def test_reason_template_names_the_tool() -> None:
    p = Policy([deny("rm*", reason="{tool} deletes data")])
    assert p.evaluate(call("rmdir")).reason == "rmdir deletes data"


def test_visible_hides_tools_denied_outright_and_unnamed() -> None:
    p = Policy([allow("*"), deny("shell"), deny("http", args={"url": OneOf(["x"])})])
    assert p.visible("agent", "search")
    assert not p.visible("agent", "shell")
    assert p.visible("agent", "http")  # only some calls are denied
    assert not Policy([allow("a")]).visible("agent", "b")


def test_lint_warns_about_rules_that_can_never_apply() -> None:
    p = Policy([allow("shell_exec"), deny("shell_*")])
    assert any("can never apply" in w for w in p.lint())


def test_policy_repr_and_equality() -> None:
    a = Policy([allow("x")], name="p")
    b = Policy([allow("x")], name="p")
    assert a == b
    assert repr(a) == "Policy(name='p', rules=1, budgets=0, flows=0)"


def test_arguments_given_as_none_are_denied() -> None:
    c = ToolCall("search", None)  # type: ignore[arg-type]
    assert not c.readable
    d = Policy([allow("*")]).evaluate(c)
    assert d.rule == MALFORMED
    assert "found NoneType None" in d.reason
