"""Recipe: catch a supervisor team going round in circles, and hand it to a person.

    python cookbook/cascade_supervisor.py      # offline: scripted models play the LLMs

A langgraph-supervisor team: a supervisor over a researcher and a writer (``create_agent``
agents), guarded as in integrations/langgraph_supervisor/app.py: ``GuardMiddleware`` on
each worker, the supervisor's hand-off tools in a ``GuardedToolNode``. The guard gets a
cascade monitor, ``Guard(policy, cascade=CascadeMonitor())``, whose breaker by default
pauses the run for a person when agents start looping.

The monitor sees both directions: each ``transfer_to_*`` call going out, and each
worker's answer coming back (langgraph-supervisor returns it over a plain edge, marked as a
hand-back; the guarded tool node reports it when the supervisor next acts).

What it shows:

1. The supervisor keeps sending the researcher back for a price nobody publishes. The
   third identical round trip trips the ``cycles`` signal; the supervisor's next hand-off
   waits in an interrupt.
2. A person reads the trip (signal, message index, reason, the messages it rests on) and
   the pause flag the breaker set.
3. The person lifts the pause and resumes the run: the supervisor moves on to the writer
   and the team finishes.

Scripted models play the LLMs: the story needs them to misbehave on cue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from langgraph_supervisor import create_handoff_tool, create_supervisor

from guardrails_plugin import AgentMessage, Decision, Event, Guard, Policy, ToolCall, allow
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.langchain import GuardMiddleware
from guardrails_plugin.langgraph import GuardedToolNode
from guardrails_plugin.testing import ScriptedChatModel, tool_call

THREAD = "pricing-1"
CONFIG: RunnableConfig = {"configurable": {"thread_id": THREAD}}

POLICY = Policy(
    [
        allow("transfer_to_*", agents="supervisor", id="dispatch"),
        allow("search", agents="researcher", id="research"),
    ]
)

REQUEST = "Compare the list prices of Acme, Globex and Initech for our pricing page."
DISPATCH = "Find the current monthly list prices of Acme, Globex and Initech, with sources."
FINDINGS = (
    "Acme: $49/month (acme.com/pricing). Globex: $59/month (globex.com/plans). "
    "Initech publishes no list price; its site says 'contact sales'."
)


def scripted_models() -> dict[str, ScriptedChatModel]:
    """The supervisor never accepts that Initech has no list price, until a person steps in."""
    write = "Write the comparison table from these findings; mark Initech 'on request'."
    return {
        "supervisor": ScriptedChatModel(
            [
                # the third round trip trips the breaker before a fourth dispatch
                *(
                    AIMessage(DISPATCH, tool_calls=[tool_call("transfer_to_researcher")])
                    for _ in range(3)
                ),
                AIMessage(write, tool_calls=[tool_call("transfer_to_writer")]),
                "Done: the comparison table is ready for the pricing page.",
            ]
        ),
        "researcher": ScriptedChatModel(
            [tool_call("search", query="Acme Globex Initech pricing"), FINDINGS] * 3
        ),
        "writer": ScriptedChatModel(
            ["| Acme | $49/mo |\n| Globex | $59/mo |\n| Initech | on request |"]
        ),
    }


@tool
def search(query: str) -> str:
    """Search the web."""
    return "acme.com/pricing: $49; globex.com/plans: $59; initech.com: contact sales"


def build_team(guard: Guard, models: dict[str, ScriptedChatModel]) -> Any:
    def worker(name: str, tools: list[Any]) -> Any:
        middleware = [GuardMiddleware(guard)]
        return create_agent(models[name], tools=tools, middleware=middleware, name=name)

    workers: list[Any] = [worker("researcher", [search]), worker("writer", [])]
    return create_supervisor(
        workers,
        model=models["supervisor"],
        tools=GuardedToolNode([create_handoff_tool(agent_name=w.name) for w in workers], guard),
        prompt="You lead a researcher and a writer. Hand each task to the right one.",
    ).compile(checkpointer=InMemorySaver())


def show_handoffs() -> Callable[[Event, Decision], None]:
    """A guard listener: print each message between agents, once, as the monitor sees it."""
    shown: set[str | None] = set()

    def listen(event: Event, decision: Decision) -> None:
        message = event.message if isinstance(event, ToolCall) else event
        if isinstance(message, AgentMessage) and message.id not in shown:
            shown.add(message.id)
            verdict = (
                "" if decision.allowed else f"  => {decision.effect.upper()} [{decision.rule}]"
            )
            text = " ".join(message.content.split())[:56]
            print(f"  {message.sender} -> {message.recipient}: {text}...{verdict}")

    return listen


def main() -> None:
    guard = Guard(POLICY, cascade=CascadeMonitor(), listeners=[show_handoffs()])
    models = scripted_models()
    team = build_team(guard, models)

    print("== 1. the supervisor keeps sending the researcher back")
    print(f"user: {REQUEST}")
    out = team.invoke({"messages": [("user", REQUEST)]}, CONFIG)
    for waiting in out.get("__interrupt__", ()):
        print(f"  the run waits ({waiting.value['type']}): {waiting.value['reason']}")

    print("\n== 2. a person looks at what tripped")
    for trip in guard.trips(THREAD):
        print(f"  trip: {trip.signal} at message #{trip.at_message} -> {trip.response}")
        print(f"    reason: {trip.reason}")
        evidence = ", ".join(
            f"#{e['index']} {e['sender']} -> {e['recipient']}" for e in trip.evidence
        )
        print(f"    evidence: {evidence}")
    for flag in guard.controls.flags():
        print(f"  flag: {flag.describe()}")
    calls = {name: model.calls for name, model in models.items()}
    print(f"  model calls so far: {calls}")  # none since the trip: nothing runs while it waits

    print("\n== 3. the person lifts the pause; the team finishes")
    print(f"  guard.controls.resume(thread={THREAD!r}) -> {guard.controls.resume(thread=THREAD)}")
    out = team.invoke(Command(resume=True), CONFIG)
    print(f"  supervisor: {out['messages'][-1].text}")
    print(f"  trips: {len(guard.trips(THREAD))}; flags in force: {len(guard.controls.flags())}")


if __name__ == "__main__":
    main()
