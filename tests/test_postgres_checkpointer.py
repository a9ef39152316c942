"""LangGraph's Postgres checkpointers against a real PostgreSQL server (the ``postgres_url`` fixture).

A smoke test of the fixture and of what our rollback feature relies on: state persisted per
thread, readable from a fresh connection, its history listed, and a thread forked back to an old
checkpoint with ``update_state(..., as_node="__copy__")``.
"""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph


class Counter(TypedDict, total=False):
    count: int
    log: Annotated[list[str], operator.add]


def step(state: Counter) -> Counter:
    count = state.get("count", 0) + 1
    return {"count": count, "log": [f"step {count}"]}


def build(checkpointer: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any, Any, Any, Any]:
    graph = StateGraph(Counter)
    graph.add_node("step", step)
    graph.add_edge(START, "step")
    graph.add_edge("step", END)
    return graph.compile(checkpointer=checkpointer)


def new_thread() -> RunnableConfig:
    # One database serves the whole session: keep every test on threads of its own.
    return {"configurable": {"thread_id": f"thread-{uuid.uuid4()}"}}


AFTER_ONE = {"count": 1, "log": ["user", "step 1"]}
AFTER_TWO = {"count": 2, "log": ["user", "step 1", "user", "step 2"]}


def test_postgres_saver_persists_lists_and_forks(postgres_url: str) -> None:
    thread = new_thread()
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        saver.setup()
        graph = build(saver)
        assert graph.invoke({"log": ["user"]}, thread) == AFTER_ONE
        assert graph.invoke({"log": ["user"]}, thread) == AFTER_TWO  # resumed from Postgres

    # A fresh connection sees the same thread: it lives in the database, not in memory.
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        graph = build(saver)
        assert graph.get_state(thread).values == AFTER_TWO

        history = list(graph.get_state_history(thread))  # newest first, every superstep
        finished = [snapshot for snapshot in history if not snapshot.next]
        assert [snapshot.values for snapshot in finished] == [AFTER_TWO, AFTER_ONE]
        assert history[0] == finished[0]
        end_of_first_run = finished[1]

        # Fork the thread back to the end of the first run: the rollback our guard performs.
        forked = graph.update_state(end_of_first_run.config, None, as_node="__copy__")
        assert forked["configurable"]["thread_id"] == thread["configurable"]["thread_id"]
        assert graph.get_state(thread).values == AFTER_ONE
        assert graph.get_state(thread).config == forked
        assert len(list(graph.get_state_history(thread))) == len(history) + 1

        # And the thread carries on from there.
        assert graph.invoke({"log": ["user"]}, thread) == AFTER_TWO
        assert graph.get_state(thread).values == AFTER_TWO


async def test_async_postgres_saver_persists_lists_and_forks(postgres_url: str) -> None:
    thread = new_thread()
    async with AsyncPostgresSaver.from_conn_string(postgres_url) as saver:
        await saver.setup()
        graph = build(saver)
        assert await graph.ainvoke({"log": ["user"]}, thread) == AFTER_ONE
        assert await graph.ainvoke({"log": ["user"]}, thread) == AFTER_TWO

    async with AsyncPostgresSaver.from_conn_string(postgres_url) as saver:
        graph = build(saver)
        assert (await graph.aget_state(thread)).values == AFTER_TWO

        history = [snapshot async for snapshot in graph.aget_state_history(thread)]
        finished = [snapshot for snapshot in history if not snapshot.next]
        assert [snapshot.values for snapshot in finished] == [AFTER_TWO, AFTER_ONE]
        end_of_first_run = finished[1]

        forked = await graph.aupdate_state(end_of_first_run.config, None, as_node="__copy__")
        assert (await graph.aget_state(thread)).values == AFTER_ONE
        assert (await graph.aget_state(thread)).config == forked

        assert await graph.ainvoke({"log": ["user"]}, thread) == AFTER_TWO


def test_threads_are_isolated(postgres_url: str) -> None:
    first, second = new_thread(), new_thread()
    with PostgresSaver.from_conn_string(postgres_url) as saver:
        saver.setup()
        graph = build(saver)
        graph.invoke({"log": ["user"]}, first)
        graph.invoke({"log": ["user"]}, first)
        assert graph.invoke({"log": ["user"]}, second) == AFTER_ONE
        assert graph.get_state(first).values == AFTER_TWO
