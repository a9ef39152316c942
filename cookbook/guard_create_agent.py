"""Recipe: guard an existing ``create_agent`` agent with a YAML policy and a console approver.

    python cookbook/guard_create_agent.py            # offline: a scripted model plays the LLM
    OPENAI_API_KEY=... python cookbook/guard_create_agent.py   # a real OpenAI-compatible model
                                                     # (needs: pip install langchain-openai;
                                                     #  without it the scripted model runs)

The agent is the app's own; the only additions are the Guard and one middleware.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.tools import tool

from guardrails_plugin import Approval, ApprovalRequest, Guard, Policy
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.testing import ScriptedChatModel, tool_call

POLICY = Path(__file__).with_name("policy.yaml")


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    return f"refunded {amount} on {order_id}"


@tool
def send_email(to: str, body: str) -> str:
    """Email a customer."""
    return f"emailed {to}"


@tool
def delete_customer(customer_id: str) -> str:
    """Delete a customer record."""
    return f"deleted {customer_id}"


def approver(request: ApprovalRequest) -> Approval:
    """Ask at the terminal; with no terminal (CI), approve only small refunds."""
    info = request.to_dict()
    print(
        f"\napproval needed: {info['tool']} {info['args']}\n  rule {info['rule']}: {info['reason']}"
    )
    if os.isatty(0):
        answer = input("  approve? [y/N] ").strip().lower()
        return (
            Approval.approve(approver="console")
            if answer == "y"
            else Approval.reject("operator said no")
        )
    amount = info["args"].get("amount", 0)
    return Approval.approve(approver="auto") if amount <= 500 else Approval.reject("too large")


def model() -> object:
    if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("langchain_openai"):
        from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]

        return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    return ScriptedChatModel(
        [
            tool_call("refund", order_id="A-1", amount=40),  # allowed: rule refunds
            tool_call("refund", order_id="A-2", amount=400),  # asks: rule big-refunds
            tool_call("refund", order_id="A-3", amount=4000),  # denied: out of every scope
            tool_call("send_email", to="vip@competitor.com", body="hi"),  # denied: domain
            tool_call("delete_customer", customer_id="C-9"),  # denied: never-deletes
            "Refunds processed where policy allowed.",
        ]
    )


def main() -> None:
    guard = Guard(Policy.from_yaml(str(POLICY)), approver=approver)
    agent = create_agent(
        model(),  # type: ignore[arg-type]
        tools=[refund, send_email, delete_customer],
        middleware=[GuardMiddleware(guard)],
        name="billing",
    )
    result = agent.invoke(
        {"messages": [{"role": "user", "content": "Process today's refund requests."}]},
        config={"configurable": {"thread_id": "refunds-1"}},
    )
    for message in result["messages"]:
        if message.type == "tool":
            print(f"{message.name}: {message.content}")
    print(result["messages"][-1].content)


if __name__ == "__main__":
    main()
