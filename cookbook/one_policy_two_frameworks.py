"""Recipe: one policy file guards a LangChain agent and an OpenAI Agents SDK agent, sharing one
store, so budgets count both.

    python cookbook/one_policy_two_frameworks.py [store.db]    # offline: scripted models

A support team runs two apps on one conversation (thread ``customer-42``): a chat assistant
built with LangChain's ``create_agent`` and an email assistant built with the OpenAI Agents
SDK. Both load ``shared_policy.yaml`` and keep their state in one SQLite file, as two
processes would: the refund budget of the conversation (250) and its model-token budget are
counted in that file, so what one app spends the other cannot spend again.

The only additions to each app: a ``Guard`` on the shared store, and
``GuardMiddleware(guard)`` (LangChain) or ``guard_agent(agent, guard, thread=...)``
(Agents SDK).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call
from agents.usage import Usage
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from guardrails_plugin import Guard, Policy, ToolCall
from guardrails_plugin.agents_sdk import guard_agent
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.store import SQLiteStore
from guardrails_plugin.testing import ScriptedChatModel, tool_call

POLICY = Path(__file__).with_name("shared_policy.yaml")
THREAD = "customer-42"
REFUNDS: list[tuple[str, str, float]] = []


def refund_body(app: str, order_id: str, amount: float) -> str:
    REFUNDS.append((app, order_id, amount))
    return f"refunded {amount:g} on {order_id}"


# -- app 1: a LangChain chat assistant ---------------------------------------------------------


def chat_assistant(guard: Guard) -> Any:
    @tool
    def refund(order_id: str, amount: float) -> str:
        """Refund part of an order."""
        return refund_body("chat", order_id, amount)

    def turn(*calls: dict[str, Any], text: str = "") -> AIMessage:
        usage = {"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000}
        return AIMessage(content=text, tool_calls=list(calls), usage_metadata=usage)

    model = ScriptedChatModel(
        [
            turn(tool_call("refund", order_id="A-1", amount=100)),
            turn(tool_call("refund", order_id="A-2", amount=90)),
            turn(text="Refunded both items."),
        ]
    )
    return create_agent(model, tools=[refund], middleware=[GuardMiddleware(guard)], name="billing")


# -- app 2: an Agents SDK email assistant ----------------------------------------------------


def email_assistant(guard: Guard) -> Agent[Any]:
    @function_tool
    def refund(order_id: str, amount: float) -> str:
        """Refund part of an order."""
        return refund_body("email", order_id, amount)

    def turn(*items: Any) -> ModelStep:
        return ModelStep(
            output=list(items), usage=Usage(requests=1, input_tokens=900, output_tokens=100)
        )

    model = ScriptedModel(
        [
            turn(function_call("refund", {"order_id": "A-3", "amount": 80}, call_id="e1")),
            turn(function_call("refund", {"order_id": "A-3", "amount": 60}, call_id="e2")),
            turn(assistant_message("I refunded what the policy allows; a person will follow up.")),
        ]
    )
    agent = Agent(name="billing", model=model, tools=[refund])
    return guard_agent(agent, guard, thread=THREAD)


def main(store_path: str) -> None:
    set_tracing_disabled(True)  # the SDK exports traces to OpenAI by default; not here
    policy = Policy.from_yaml(str(POLICY))
    # Two guards on one SQLite file: what two processes, one per app, would hold.
    chat_guard = Guard(policy, store=SQLiteStore(store_path))
    email_guard = Guard(Policy.from_yaml(str(POLICY)), store=SQLiteStore(store_path))

    chat = chat_assistant(chat_guard)
    out = chat.invoke(
        {"messages": [{"role": "user", "content": "refund A-1 and A-2"}]},
        config={"configurable": {"thread_id": THREAD}},
    )
    print("chat assistant:", out["messages"][-1].content)

    result = Runner.run_sync(email_assistant(email_guard), "refund A-3")
    for item in result.new_items:
        raw = item.raw_item
        if isinstance(raw, dict) and raw.get("type") == "function_call_output":
            print(f"email assistant, call {raw['call_id']}: {raw['output']}")
    print("email assistant:", result.final_output)

    refunds = policy.budgets[0].key(ToolCall("refund", thread_id=THREAD))
    tokens = policy.budgets[1].key(ToolCall("refund", thread_id=THREAD))
    store = SQLiteStore(store_path)
    print("refunds made:", REFUNDS)
    print(f"refund budget used by both apps: {store.total(refunds):g} of 250")
    print(f"model tokens used by both apps: {store.total(tokens):g} of 6000")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(str(Path(tmp) / "guardrails.db"))
