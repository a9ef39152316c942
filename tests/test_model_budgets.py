"""Model budgets (``of="model"``): tokens and cost of a model's answers, charged from the usage
an adapter records (``Guard.record_usage``), after the fact; then the next model call and the
tool calls they cover are denied. Checked against a running total computed here, over
generated sequences of answers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import Effect, Guard, ModelCall, ModelUsage, Policy, ToolCall, allow
from guardrails_plugin._errors import PolicyError
from guardrails_plugin.policy import Budget
from guardrails_plugin.store import MemoryStore

PRICES = {"gpt-mini*": (0.5, 1.5), "gpt-*": (5.0, 15.0)}


@settings(max_examples=60, deadline=None)
@given(
    answers=st.lists(
        st.tuples(
            st.sampled_from(["gpt-mini-2", "gpt-big", "gpt-mini"]),
            st.integers(0, 40_000),
            st.integers(0, 10_000),
        ),
        max_size=8,
    ),
    token_limit=st.integers(0, 120_000),
    dollar_limit=st.floats(0, 1.0),
    sync=st.booleans(),
)
async def test_denies_exactly_once_the_running_total_reaches_a_limit(
    answers: list[tuple[str, int, int]], token_limit: int, dollar_limit: float, sync: bool
) -> None:
    budgets = [
        Budget.tokens(token_limit, of="model", per="thread"),
        Budget.cost(dollar_limit, prices=PRICES, per="thread"),
    ]
    guard = Guard(Policy([allow("search")], budgets=budgets))
    tokens = dollars = 0.0
    for model, used_in, used_out in answers:
        usage = ModelUsage(model, used_in, used_out, thread_id="t")
        recorded = guard.record_usage(usage) if sync else await guard.arecord_usage(usage)
        assert recorded.effect is Effect.ALLOW
        tokens += used_in + used_out
        per_in, per_out = PRICES["gpt-mini*"] if model.startswith("gpt-mini") else PRICES["gpt-*"]
        dollars += (used_in * per_in + used_out * per_out) / 1e6
        spent = tokens >= token_limit or dollars >= dollar_limit - 1e-12
        near = abs(dollars - dollar_limit) < 1e-9  # float sums: no claim at the boundary
        model_call = guard.check(ModelCall(thread_id="t"))
        tool_call = guard.check(ToolCall("search", {"q": "x"}, thread_id="t"))
        other_thread = guard.check(ToolCall("search", {"q": "x"}, thread_id="u"))
        assert other_thread.allowed is (token_limit > 0 and dollar_limit > 0)  # nothing used
        if not near:
            assert model_call.allowed is (not spent)
            assert tool_call.allowed is (not spent)
        if not tool_call.allowed:
            assert tool_call.kind == "budget"
            assert model_call.error().__class__.__name__ == "BudgetExceeded"


def test_an_unpriced_model_uses_the_budget_up() -> None:
    guard = Guard(Policy([allow("x")], budgets=[Budget.cost(1, prices={"gpt-4o": (1, 1)})]))
    recorded = guard.record_usage(ModelUsage("gpt-4o-mini", 1, 1))
    assert recorded.effect is Effect.DENY
    assert "no price for model 'gpt-4o-mini'" in recorded.reason
    assert guard.check(ToolCall("x")).kind == "budget"


class Flaky(MemoryStore):
    fail = True

    def charge(self, *args: Any, **kwargs: Any) -> bool:
        if self.fail:
            raise OSError("disk full")
        return super().charge(*args, **kwargs)


def test_usage_the_store_fails_to_take_is_held_and_still_counts() -> None:
    store = Flaky()
    guard = Guard(Policy([allow("x")], budgets=[Budget.tokens(10, of="model")]), store=store)
    guard.record_usage(ModelUsage("m", 8, 4))
    assert guard.unwritten == 1
    assert not guard.check(ModelCall()).allowed
    store.fail = False
    assert not guard.check(ToolCall("x")).allowed
    assert guard.unwritten == 0
    assert store.total("budget/tokens in model per run/run=-") == 12


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Budget.tokens(5, of="model", tools="x"), "no tools="),
        (lambda: Budget.tokens(5, of="model", per="tool"), "per='tool'"),
        (lambda: Budget.calls(5, of="model"), "only token and cost budgets"),
        (lambda: Budget.cost(5, prices={}), "needs prices="),
        (lambda: Budget.cost(5, prices={"m": (1, -1)}), "not a price"),
        (lambda: Budget.cost(5, prices={"m": (1,)}), "expected model glob"),
        (lambda: Budget.tokens(5, of="model", prices={"m": (1, 1)}), "only cost budgets"),
        (lambda: Budget.tokens(5, prices={"m": (1, 1)}), "only cost budgets"),
    ],
)
def test_bad_model_budgets_are_policy_errors(make: Any, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        make()


def test_policy_files_round_trip() -> None:
    data = {
        "rules": [{"allow": "x"}],
        "budgets": [
            {"tokens": {"limit": 1000, "of": "model"}, "per": "thread"},
            {"cost": {"limit": 2.5, "prices": {"gpt-4o*": [2.5, 10]}}, "id": "dollars"},
        ],
    }
    policy = Policy.from_dict(data)
    assert [b.id for b in policy.budgets] == ["tokens in model per thread", "dollars"]
    again = Policy.from_dict(policy.to_dict())
    assert again.digest == policy.digest
    assert again.budgets[1].prices == (("gpt-4o*", 2.5, 10.0),)
