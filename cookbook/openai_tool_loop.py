"""Recipe: guard a plain ``openai`` tool loop (no framework) with the same policy file.

    python cookbook/openai_tool_loop.py          # offline: scripted answers play the model
    OPENAI_API_KEY=... python cookbook/openai_tool_loop.py --live   # a real model

The loop is the one the ``openai`` SDK's docs show; the additions are ``GuardedTools`` (the
tool registry, run only as the guard decides), ``tools.before_model()`` before each model
call (the kill switch, model budgets) and ``tools.run(answer)`` in place of running the tool
calls by hand. Model budgets read each answer's real ``usage``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from openai.types.chat import ChatCompletion

from guardrails_plugin import Approval, ApprovalRequest, BudgetExceeded, Guard, Policy, RunKilled
from guardrails_plugin.openai import GuardedTools
from guardrails_plugin.policy import Budget

POLICY = Path(__file__).with_name("policy.yaml")  # the LangChain recipe's policy file


def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return f"refunded {amount} on {order_id}"


def send_email(to: str, body: str) -> str:
    """Email a customer."""
    return f"emailed {to}"


def delete_customer(customer_id: str) -> str:
    """Delete a customer record."""
    return f"deleted {customer_id}"


def approver(request: ApprovalRequest) -> Approval:
    """A person's answers, scripted: big refunds approved, emails rejected."""
    print(f"  approval asked: {request.call.tool} {dict(request.call.args)}")
    if request.call.tool == "refund":
        return Approval.approve(approver="dana")
    return Approval.reject("no emails today", approver="dana")


class ScriptedModel:
    """Stands in for ``client.chat.completions``: the SDK's own ``ChatCompletion`` objects,
    one per call, with the usage a real model would report."""

    def __init__(self, script: list[list[tuple[str, str]] | str]) -> None:
        self.script = list(script)

    def create(self, *, model: str, messages: Any, tools: Any) -> ChatCompletion:
        step = self.script.pop(0)
        calls = [] if isinstance(step, str) else step
        message: dict[str, Any] = {
            "role": "assistant",
            "content": step if isinstance(step, str) else None,
        }
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{len(self.script)}_{i}",
                    "type": "function",
                    "function": {"name": n, "arguments": a},
                }
                for i, (n, a) in enumerate(calls)
            ]
        return ChatCompletion.model_validate(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                ],
                "usage": {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960},
            }
        )


SCRIPT: list[list[tuple[str, str]] | str] = [
    [
        ("refund", '{"order_id": "A-1", "amount": 40}'),  # within policy
        ("refund", '{"order_id": "A-2", "amount": 400}'),  # a person approves
        ("refund", '{"order_id": "A-3", "amount": 4000}'),  # over every rule
        ("delete_customer", '{"customer_id": "C-9"}'),  # never allowed
    ],
    [("send_email", '{"to": "ann@example.com", "body": "done"}')],  # a person rejects
    [("refund", '{"order_id": "A-4", "amount": "12", "note": "x"}')],  # a key refund does not take
    "All done.",
]


def main(live: bool = False) -> None:
    base = Policy.from_yaml(str(POLICY))
    policy = Policy(
        base.rules,
        budgets=[
            *base.budgets,
            Budget.tokens(20_000, of="model", per="thread"),
            Budget.cost(0.05, prices={"gpt-4o-mini*": (0.15, 0.60), "gpt-4o*": (2.50, 10.00)}),
        ],
        flows=base.flows,
        name=base.name,
        version=base.version,
    )
    guard = Guard(policy, approver=approver)
    tools = GuardedTools(
        guard, [refund, send_email, delete_customer], agent="billing", thread_id="ticket-42"
    )
    if live:
        import openai

        completions: Any = openai.OpenAI().chat.completions
    else:
        completions = ScriptedModel(SCRIPT)

    messages: list[Any] = [{"role": "user", "content": "Refund A-1..A-3, then tell Ann."}]
    while True:
        tools.before_model()
        answer = completions.create(model="gpt-4o-mini", messages=messages, tools=tools.tools())
        messages.append(answer.choices[0].message.model_dump(exclude_none=True))
        outputs = tools.run(answer)
        if not outputs:
            print(f"model: {answer.choices[0].message.content}")
            break
        for outcome in outputs.outcomes:
            print(
                f"{outcome.tool}: {outcome.decision.effect} ({outcome.decision.rule}) -> {outcome.output[:70]}"
            )
        messages.extend(outputs)

    # an operator stops the ticket: the next model call does not happen
    guard.controls.kill(thread="ticket-42", reason="customer escalated")
    try:
        tools.before_model()
    except (RunKilled, BudgetExceeded) as stop:
        print(f"stopped: {stop}")


if __name__ == "__main__":
    main(live="--live" in sys.argv)
