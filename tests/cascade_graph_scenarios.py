"""The generated scenarios of ``cascade_scenarios`` played through real LangGraph graphs.

``play_graph(scenario, wiring)`` builds a ``StateGraph`` with one node per agent of the
scenario (story agents, the shape's relaying hubs, desks and team leads, the noisy shape's
bystanders; a spawn storm's agents to a fixed depth) and runs it. Each node is the
scenario's scripted, paraphrasing agent: it reads the delivery that started it, calls its
tools as real LangChain tools (checked by the guard through ``GuardCallbackHandler``; a
tool's body is the side effect, so "the mail was sent" means the tool really ran), and
hands its messages on as the graph carries them:

- ``send``: ``Command(goto=[Send(recipient, packet), ...])`` from each node wrapped in
  ``guard_node`` (one packet per message, ``packets=k`` as k ``Send``s to one node);
- ``router``: nodes wrapped in ``guard_node`` return their messages as a state update and a
  routing function turns them into ``Send``s (deliveries the senders never report: the
  recipients' ``guard_node`` reports them as arrivals);
- ``watcher``: the ``send`` graph with plain nodes, watched by ``CascadeWatcher`` only;
- ``nested``: the ``send`` graph as a subgraph node (wrapped in ``guard_node``) of an outer
  graph that starts it.

Heartbeats' timer ticks are separate invocations of the graph on the same thread (a
scheduled run), as a deployment would start them.

What the monitor observed (in its order, after its de-duplication) is recorded by a signal
that never trips, and matched back to the story's messages by (sender, recipient, text);
``allowed`` is whether the recipient's node really started with the message. The outcome is
judged by ``cascade_scenarios.judge``, with the same definitions of onset and "in time".
"""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from cascade_scenarios import (
    POLICY,
    Call,
    Delivery,
    Outcome,
    Say,
    Scenario,
    Sent,
    judge,
    table,
)
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import StructuredTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, Send

from guardrails_plugin import Guard, Policy, allow
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.cascade._monitor import default_signals
from guardrails_plugin.cascade._signals import Observed
from guardrails_plugin.langchain import GuardCallbackHandler
from guardrails_plugin.langgraph import HANDOFF_TOOL, CascadeWatcher, guard_node

__all__ = ["GRAPH_RESULTS", "WIRINGS", "play_graph", "table"]

WIRINGS = ("send", "router", "watcher", "nested")
SPAWN_DEPTH = 5  # spawn storms: agents of the first 5 generations exist as nodes
MAX_MESSAGES = 400  # as ``play``: a run that nothing stops sends no more
GRAPH_RESULTS: list[Outcome] = []
GRAPH_POLICY = Policy([*POLICY.rules, allow(HANDOFF_TOOL)], flows=POLICY.flows)
"""The scenarios' policy; hand-offs between nodes are allowed (``guard_node`` checks each
as a call of ``HANDOFF_TOOL``)."""


class Recorder:
    """A signal that never trips: the messages the monitor observed, in its order."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[Observed] = []

    def track(self) -> Recorder:
        return self

    def observe(self, seen: Observed) -> None:
        self.seen.append(seen)


def _replace(_old: list[Any], new: list[Any]) -> list[Any]:
    return new


class Room(TypedDict, total=False):
    start: list[dict[str, Any]]  # the deliveries an invocation starts with
    outbox: Annotated[list[dict[str, Any]], _replace]  # router wiring: a node's messages
    ran: Annotated[int, operator.add]


_SCHEMAS = {
    "fetch_url": ("url",),
    "lookup": ("invoice", "ticket"),
    "read_contract": ("id",),
    "run_job": ("job",),
    "send_email": ("to", "body"),
    "delete_record": ("record",),
}


def _tool(call: Call, harm: list[str]) -> StructuredTool:
    """``call``'s tool as a LangChain tool whose body is the side effect: it returns the
    scripted result and, for a harmful call, records that the harm happened."""

    def body(**kwargs: Any) -> str:
        if call.harmful:
            harm.append(f"{call.tool}({kwargs})")
        return call.result

    schema = {
        "type": "object",
        "properties": {k: {"type": "string"} for k in _SCHEMAS.get(call.tool, tuple(call.args))},
    }
    return StructuredTool.from_function(
        func=body, name=call.tool, description=f"{call.tool} (scripted)", args_schema=schema
    )


def _agents(scenario: Scenario) -> list[str]:
    names = list(scenario.behaviours)
    if scenario.kind == "spawn_storm":
        frontier = ["agent0", "agent1"]
        for _ in range(SPAWN_DEPTH):
            names += frontier
            frontier = [f"{a}.{c}" for a in frontier for c in range(2)]
    return list(dict.fromkeys(names))


class _Run:
    """One scenario's graph run: what happened, for the judge."""

    def __init__(self, scenario: Scenario, named: bool) -> None:
        self.scenario = scenario
        self.named = named  # plain nodes: the agent names its tool runs itself
        self.harm: list[str] = []
        self.attempted: list[str] = []  # harmful calls made (the guard decides whether they run)
        self.tags: dict[tuple[str, str, str], deque[dict[str, Any]]] = defaultdict(deque)
        self.delivered: set[int] = set()
        self.uids = itertools.count(1)

    def packets(self, sender: str, says: list[Say], step: int) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for say in says:
            for _ in range(say.packets):
                uid = next(self.uids)
                if uid > MAX_MESSAGES:
                    return out  # the story's bound (a storm nothing stopped)
                tags = {**say.tags, "_uid": uid, "_step": step}
                self.tags[(sender, say.recipient, say.text)].append(tags)
                packet = {
                    "messages": [AIMessage(say.text, name=sender)],
                    "sender": sender,
                    "text": say.text,
                    "tags": tags,
                }
                out.append((say.recipient, packet))
        return out

    def act(self, name: str, packet: dict[str, Any], config: RunnableConfig) -> list[Say]:
        """The scenario's agent ``name`` on ``packet``: its tool calls run (as far as the
        guard allows) and its messages are returned."""
        tags = dict(packet.get("tags") or {})
        uid = tags.pop("_uid", None)
        tags.pop("_step", None)
        if uid is not None:
            self.delivered.add(uid)
        d = Delivery(
            packet.get("sender", "user"),
            name,
            packet.get("text", ""),
            None if uid is None else str(uid),
            -1,
            tags,
        )
        behaviour = self.scenario.behaviours.get(name)
        says: list[Say] = []
        for action in behaviour(d) if behaviour is not None else []:
            if isinstance(action, Call):
                if self.named:  # as ``create_agent(name=...)`` names its tools' runs
                    meta = {**(config.get("metadata") or {}), "lc_agent_name": name}
                    config = {**config, "metadata": meta}
                if action.harmful:
                    self.attempted.append(action.tool)
                try:
                    _tool(action, self.harm).invoke(action.args, config)
                except Exception as exc:  # denied: the agent goes on without the result
                    if "denied" not in type(exc).__name__.lower() and not _guard_error(exc):
                        raise
                continue
            says.append(action)
        return says


def _guard_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("guardrails_plugin")


def build(scenario: Scenario, wiring: str, guard: Guard, run: _Run) -> Any:
    """The scenario's graph, compiled with an in-memory checkpointer."""
    if wiring not in WIRINGS:
        raise ValueError(f"unknown wiring {wiring!r}")
    agents = _agents(scenario)
    inner = _team(agents, "router" if wiring == "router" else "send", guard, run, wiring)
    if wiring != "nested":
        return inner.compile(checkpointer=InMemorySaver())
    outer = StateGraph(Room)
    outer.add_node("team", guard_node(inner.compile(), guard))
    outer.add_edge(START, "team")
    return outer.compile(checkpointer=InMemorySaver())


def _team(
    agents: list[str], how: str, guard: Guard, run: _Run, wiring: str
) -> StateGraph[Any, Any, Any, Any]:
    wrapped = wiring != "watcher"
    builder = StateGraph(Room)

    def node(name: str) -> Callable[..., Any]:
        def body(packet: dict[str, Any], config: RunnableConfig) -> Any:
            says = run.act(name, packet, config)
            step = (config.get("metadata") or {}).get("langgraph_step", 0)
            sends = [Send(to, p) for to, p in run.packets(name, says, step)]
            if how == "router":
                return {"outbox": [s.arg | {"to": s.node} for s in sends], "ran": 1}
            return Command(update={"ran": 1}, goto=sends) if sends else {"ran": 1}

        return body

    def route(state: Room) -> list[Send]:
        return [Send(p["to"], p) for p in state.get("outbox") or []]

    for name in agents:
        builder.add_node(name, guard_node(node(name), guard) if wrapped else node(name))
        if how == "router":
            builder.add_conditional_edges(name, route, agents)

    def starts(state: Room) -> list[Send]:
        return [Send(p["to"], p) for p in state.get("start") or []]

    builder.add_conditional_edges(START, starts, agents)
    return builder


def _inputs(deliveries: list[Delivery]) -> dict[str, Any]:
    return {
        "start": [
            {"to": d.recipient, "sender": d.sender, "text": d.text, "tags": dict(d.tags)}
            for d in deliveries
        ],
        "outbox": [],
    }


def play_graph(
    scenario: Scenario,
    wiring: str = "send",
    *,
    mode: str = "sync",
    max_steps: int = 60,
    monitor: bool = True,
    record: bool = True,
) -> tuple[Outcome, list[Sent], Guard, str]:
    """Run ``scenario`` through its graph under the default cascade monitor and breaker
    (``monitor=False``: a monitor of no signal but the recorder, the oracle run); returns
    the outcome, the messages the monitor saw, the guard and how the run ended."""
    recorder = Recorder()
    signals = [*default_signals(), recorder] if monitor else [recorder]
    guard = Guard(GRAPH_POLICY, cascade=CascadeMonitor(signals))
    run = _Run(scenario, named=wiring == "watcher")
    graph = build(scenario, wiring, guard, run)
    thread = f"run-{scenario.name}"
    callbacks: list[Any] = [GuardCallbackHandler(guard)]
    if wiring == "watcher":
        callbacks.append(CascadeWatcher(guard, graph=graph))
    config: RunnableConfig = {
        "configurable": {"thread_id": thread},
        "callbacks": callbacks,
        "recursion_limit": max_steps,
        # one task at a time, in LangGraph's order: the scripted agents share the story's
        # random generator, so a run is the same story every time
        "max_concurrency": 1,
    }
    batches = [scenario.start] + [scenario.timers[s] for s in sorted(scenario.timers)]
    ended = "ran to the end"
    for batch in batches:
        try:
            if mode == "async":
                out = asyncio.run(graph.ainvoke(_inputs(batch), config))
            else:
                out = graph.invoke(_inputs(batch), config)
        except Exception as exc:
            if not _guard_error(exc) and type(exc).__name__ != "GraphRecursionError":
                raise
            ended = type(exc).__name__
            break
        if isinstance(out, dict) and out.get("__interrupt__"):
            ended = "interrupt"
            break
    sent = _sent(recorder, run, thread)
    outcome = judge(scenario, f"{wiring}/{mode}", sent, run.harm, guard, thread, run.attempted)
    if record:
        GRAPH_RESULTS.append(outcome)
    return outcome, sent, guard, ended


def _sent(recorder: Recorder, run: _Run, thread: str) -> list[Sent]:
    sent: list[Sent] = []
    for seen in recorder.seen:
        m = seen.message
        if seen.scope != thread:
            continue
        queue = run.tags.get((m.sender, m.recipient, m.content))
        tags = queue.popleft() if queue else {}
        uid = tags.get("_uid")
        # the sender's step (an arrival is reported at the recipient's): the judge's
        # generations count from it
        step = tags.pop("_step", m.step or 0)
        sent.append(Sent(seen.index, m, tags, uid in run.delivered, step))
    return sent
