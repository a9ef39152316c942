"""``CascadeWatcher``: the cascade monitor for a graph nobody can change, as a callback.

Pass it in the run's config (``graph.invoke(inputs, {"callbacks": [watcher], ...})``): each
time a node of the graph starts, the nodes that finished in the step before have handed it
work, and the watcher reports those hand-offs to the guard as ``AgentMessage``s, with
what the node receives as their content (its input's last message). When the guard says
stop — a cascade tripped the breaker, an operator paused or killed the run, the node's
agent is quarantined — the watcher raises before the node runs (``RunPaused``,
``RunKilled``, ``ToolCallDenied``), and the run ends with that exception. The thread's
checkpoint stays at the step before: once a person lifted the pause,
``graph.invoke(None, config)`` goes on from there.

One watcher serves sync and async runs: its hooks run inline (``run_inline``), so the stop
happens before the node in both. It is deliberately not an ``AsyncCallbackHandler``: in a
sync run LangChain logs and swallows the exceptions of coroutine hooks, which would let a
stopped run go on. Its checks are the guard's sync store calls (microseconds on the
in-memory and SQLite stores).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.errors import ParentCommand

from .._events import AgentMessage, Event, ModelCall
from ..guard import Guard
from ._nodes import _said

_MAX_SCOPES = 10_000


class _Run:
    __slots__ = ("ended", "previous", "step")

    def __init__(self) -> None:
        self.step = -1
        self.ended: list[str] = []  # nodes that finished in ``step``
        self.previous: list[str] = []  # nodes that finished in the step before


class CascadeWatcher(BaseCallbackHandler):
    """Report a graph's node-to-node hand-offs to ``guard`` (its cascade monitor and kill
    switch) and stop the run when the guard says so.

    ``agents``: the node names that are agents (default: every node of the top-level
    graph); others (a router, a tool node) are passed through: a hand-off through them
    counts as one from the agent before. ``ignore`` names nodes never counted — list a
    shared tool node there (``ignore=["tools"]``), or an agent calling the same tool in a
    loop reads as agent -> tools -> agent traffic.
    ``thread_id`` comes from the run's config; without one, the run id is the scope.
    """

    raise_error = True  # LangChain re-raises a handler's exception only when this is set
    run_inline = True  # in async runs too: the stop must happen before the node runs

    def __init__(
        self,
        guard: Guard,
        *,
        agents: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"CascadeWatcher needs a Guard, found {type(guard).__name__}")
        self.guard = guard
        self.agents = None if agents is None else frozenset(agents)
        self.ignore = frozenset(ignore)
        self._nodes: dict[UUID, tuple[str, str]] = {}  # node run id -> (scope, node)
        self._runs: OrderedDict[str, _Run] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CascadeWatcher({self.guard!r}, agents={self.agents!r})"

    def _is_agent(self, node: str) -> bool:
        if node in self.ignore or node.startswith("__"):
            return False
        return self.agents is None or node in self.agents

    def _arrivals(
        self,
        inputs: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        name: Any,
    ) -> list[Event]:
        """What a node start means for the guard: the messages of the nodes that finished
        in the step before, handing work to it, then the node's own kill-switch check."""
        meta = metadata or {}
        node = meta.get("langgraph_node")
        ns = str(meta.get("langgraph_checkpoint_ns") or "")
        if not isinstance(node, str) or name != node or "|" in ns:
            return []  # not a node of the top-level graph
        if not self._is_agent(node):
            return []
        with self._lock:
            if parent_run_id in self._nodes:
                # a compiled subgraph added as the node starts inside it with the same name
                # and metadata: the same arrival, reported once
                return []
        thread = meta.get("thread_id")
        scope = str(thread) if thread is not None else f"run:{parent_run_id or run_id}"
        step = meta.get("langgraph_step")
        step = step if isinstance(step, int) else 0
        with self._lock:
            self._nodes[run_id] = (scope, node)
            senders = list(self._run(scope, step).previous)
        thread_id = None if thread is None else str(thread)
        monitor = self.guard.cascade
        said = _said(inputs)
        events: list[Event] = [
            AgentMessage(
                sender,
                node,
                said,
                run_id=None if thread is not None else scope[4:],
                thread_id=thread_id,
                step=step,
                path=monitor.provenance(scope, sender) if monitor is not None else (),
                id=f"{ns or node}<-{sender}",
                passive=True,
            )
            for sender in senders
        ]
        events.append(ModelCall(agent=node, thread_id=thread_id, step=step))
        return events

    def on_chain_start(
        self,
        serialized: Mapping[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for event in self._arrivals(inputs, run_id, parent_run_id, metadata, kwargs.get("name")):
            decision = self.guard.check(event)
            if not decision.allowed:
                with self._lock:  # the node will not run: LangChain reports no end for it
                    self._nodes.pop(run_id, None)
                raise decision.error()

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            found = self._nodes.pop(run_id, None)
            if found is None:
                return
            scope, node = found
            run = self._runs.get(scope)
            if run is not None and node not in run.ended:
                run.ended.append(node)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if isinstance(error, ParentCommand):
            # a node inside a subgraph handed off to the parent graph: the node is done
            self.on_chain_end(None, run_id=run_id)
            return
        with self._lock:
            self._nodes.pop(run_id, None)

    def _run(self, scope: str, step: int) -> _Run:
        run = self._runs.get(scope)
        if run is None:
            run = self._runs[scope] = _Run()
            if len(self._runs) > _MAX_SCOPES:
                self._runs.popitem(last=False)
        else:
            self._runs.move_to_end(scope)
        if step != run.step:  # a new step: what ended in the last one hands off now
            if run.ended:
                run.previous = run.ended
            run.ended = []
            run.step = step
        return run
