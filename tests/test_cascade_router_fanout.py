"""A routing function's ``Send`` fan-out is counted whole before any of its recipients acts.

Neither ``guard_node`` nor ``CascadeWatcher`` sees a routing function's ``Send`` packets
before their recipients start; the recipients report them. LangGraph runs a step's tasks in parallel, so if each recipient told
only its own packet, the first recipients would act before the fan-out was counted. The
first recipient to start tells the step's other packets too (same ids: each counts once).
The recipients of one step tell its packets and pass their holds one at a time (the
graph's lock), so none passes its hold between a trip and the pause it sets.
Generated: node names, fan-out widths, parallel or one task at a time, both adapters. A storm (every
recipient fans out again) trips ``storms`` before any recipient of its third fan-out
sends anything; a wide map-reduce (one fan-out, answers reduced once) never trips.
"""

from __future__ import annotations

import asyncio
import operator
import random
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from guardrails_plugin import Guard, Policy, RunPaused, allow
from guardrails_plugin.cascade import CascadeMonitor
from guardrails_plugin.langgraph import CascadeWatcher, guard_node
from guardrails_plugin.store import MemoryStore

NAMES = ("planner", "splitter", "scout", "helper", "drafter", "mapper")


class State(TypedDict, total=False):
    depth: int
    sent: Annotated[list[int], operator.add]
    done: Annotated[list[str], operator.add]


def _storm(
    seed: int, wiring: str, is_async: bool = False, store: Any = None
) -> tuple[Any, list[int], dict[str, Any]]:
    rng = random.Random(seed)
    lead, worker = rng.sample(NAMES, 2)
    k = rng.randint(3, 4)
    made: list[int] = []  # the depth of every fan-out made (a routing function's Sends)

    def act(state: State) -> dict[str, Any]:
        depth = state.get("depth", 0) + 1
        made.append(depth)
        return {"sent": [depth]}

    async def aact(state: State) -> dict[str, Any]:
        await asyncio.sleep(0)  # the step's other tasks run meanwhile
        return act(state)

    def route(state: State) -> list[Send]:
        depth = (state.get("sent") or [0])[-1]
        if depth > 5:
            return []
        return [Send(worker, {"depth": depth}) for _ in range(k)]

    extra = {} if store is None else {"store": store}
    guard = Guard(Policy([allow("handoff")]), cascade=CascadeMonitor(), **extra)
    wrap = (lambda f: guard_node(f, guard)) if wiring == "guard_node" else (lambda f: f)
    g = StateGraph(State)
    node = aact if is_async else act
    g.add_node(lead, wrap(node))
    g.add_node(worker, wrap(node))
    g.add_edge(START, lead)
    g.add_conditional_edges(lead, route)
    g.add_conditional_edges(worker, route)
    graph = g.compile(checkpointer=InMemorySaver())
    config: dict[str, Any] = {"configurable": {"thread_id": f"storm-{wiring}-{seed}"}}
    if wiring == "watcher":
        config["callbacks"] = [CascadeWatcher(guard, graph=graph)]
    if rng.random() < 0.3:
        config["max_concurrency"] = 1
    return graph, made, {"guard": guard, "config": config}


@pytest.mark.parametrize("wiring", ["guard_node", "watcher"])
@pytest.mark.parametrize("seed", range(12))
def test_a_routing_function_storm_trips_before_its_third_fan_out_is_acted_on(
    seed: int, wiring: str
) -> None:
    graph, made, ctx = _storm(seed, wiring)
    if wiring == "watcher":
        with pytest.raises(RunPaused):  # the watcher pauses by raising
            graph.invoke({"depth": 0}, ctx["config"])
    else:
        out = graph.invoke({"depth": 0}, ctx["config"])
        assert "__interrupt__" in out  # paused by the breaker
    assert [t.signal for t in ctx["guard"].trips()][:1] == ["storms"]
    # depth 1: the lead; its fan-out's recipients act at depth 2, theirs at 3, ...: the
    # third fan-out (made at depth 3) is counted before any of its recipients acts, in
    # parallel too (a step's recipients tell its packets and pass their holds in turn)
    assert max(made) <= 3, made


class _Suspending(MemoryStore):
    """A store whose async verbs suspend their task 0-3 times first, as a network store's
    do (Redis, PostgreSQL): the step's other tasks run meanwhile."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self._rng = random.Random(seed)

    async def _yield(self) -> None:
        for _ in range(self._rng.randrange(4)):
            await asyncio.sleep(0)

    async def aget(self, key: str) -> Any:
        await self._yield()
        return await super().aget(key)

    async def aput(self, key: str, value: Any) -> None:
        await self._yield()
        await super().aput(key, value)

    async def atotal(
        self, key: str, *, window: float | None = None, now: float | None = None
    ) -> float:
        await self._yield()
        return await super().atotal(key, window=window, now=now)

    async def ascan(self, prefix: str) -> Any:
        await self._yield()
        return await super().ascan(prefix)

    async def acharge(
        self,
        key: str,
        amount: float,
        limit: float,
        *,
        window: float | None = None,
        now: float | None = None,
    ) -> bool:
        await self._yield()
        return await super().acharge(key, amount, limit, window=window, now=now)

    async def adelete(self, key: str) -> bool:
        await self._yield()
        return await super().adelete(key)


async def _arun(graph: Any, config: Any, stream: bool) -> Any:
    if not stream:
        return await graph.ainvoke({"depth": 0}, config)
    out: dict[str, Any] = {}
    async for chunk in graph.astream({"depth": 0}, config, stream_mode="updates"):
        if "__interrupt__" in chunk:
            out["__interrupt__"] = chunk["__interrupt__"]
    return out


@pytest.mark.parametrize("wiring", ["guard_node", "watcher"])
@pytest.mark.parametrize("seed", range(24))
def test_an_async_routing_function_storm_trips_before_its_third_fan_out_is_acted_on(
    seed: int, wiring: str, tmp_path: Any
) -> None:
    # the async twin: async nodes under ``ainvoke`` / ``astream`` run a step's tasks as
    # tasks of one event loop, interleaved at every ``await`` (a network store's async
    # verbs suspend the task: here each suspends 0-3 times, drawn per seed)
    graph, made, ctx = _storm(seed, wiring, is_async=True, store=_Suspending(seed))
    stream = seed % 2 == 1
    if wiring == "watcher":
        with pytest.raises(RunPaused):
            asyncio.run(_arun(graph, ctx["config"], stream))
    else:
        out = asyncio.run(_arun(graph, ctx["config"], stream))
        assert "__interrupt__" in out
    assert [t.signal for t in ctx["guard"].trips()][:1] == ["storms"]
    assert max(made) <= 3, made


@pytest.mark.parametrize("seed", range(4))
def test_a_wide_routing_function_map_reduce_never_trips(seed: int) -> None:
    rng = random.Random(seed)
    split, mapper, reducer = rng.sample(NAMES, 3)
    width = rng.randint(8, 40)
    guard = Guard(Policy([allow("handoff")]), cascade=CascadeMonitor())
    g = StateGraph(State)
    g.add_node(split, guard_node(lambda s: {"sent": [1]}, guard))
    g.add_node(mapper, guard_node(lambda s: {"done": ["part"]}, guard))
    g.add_node(reducer, guard_node(lambda s: {"done": ["total"]}, guard))
    g.add_edge(START, split)
    g.add_conditional_edges(split, lambda s: [Send(mapper, {"depth": 1}) for _ in range(width)])
    g.add_edge(mapper, reducer)
    g.add_edge(reducer, END)
    config: Any = {"configurable": {"thread_id": f"mr-{seed}"}}
    out = g.compile(checkpointer=InMemorySaver()).invoke({"depth": 0}, config)
    assert "__interrupt__" not in out
    assert out["done"].count("part") == width
    assert guard.trips() == []
