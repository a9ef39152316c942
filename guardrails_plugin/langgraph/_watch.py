"""``CascadeWatcher``: the cascade monitor for a graph nobody can change, as a callback.

Pass it in the run's config (``graph.invoke(inputs, {"callbacks": [watcher], ...})``): when
a node of the graph starts, the watcher works out which nodes of the step before handed it
work, reports each of those hand-offs to the guard as an ``AgentMessage`` (with its causal
parent and generation), then checks the kill switch. When the guard says stop — a cascade
tripped the breaker, an operator paused or killed the run, the node's agent is
quarantined — the watcher raises before the node runs (``RunPaused``, ``RunKilled``,
``ToolCallDenied``), and the run ends with that exception. The thread's checkpoint stays
at the step before: once a person lifted the pause, ``graph.invoke(None, config)`` goes on
from there.

Who handed a node its work, from what a callback sees (each task is a run; its output and
the output of the routing functions it ran are visible, its channel writes are not):

- a ``Send`` packet: the task that wrote it (the packet's argument is the recipient's
  input, the very object): one message per packet, so a fan-out of ten packets to one
  worker node is ten messages;
- a ``Command(goto=...)`` (also one raised to the parent graph from a subgraph inside the
  node) or a routing function whose result names the node: that task;
- a static edge: with ``graph=`` (the compiled graph) the watcher reads the graph's edges
  and is exact. Without it, a task of the step before that routed nowhere explicitly is
  taken for a static-edge sender of the nodes no explicit hand-off explains: exact in a
  sequential graph, it may attribute a parallel static fan-out to every branch; and a
  routing function that returns ``path_map`` keys is understood only with ``graph=``.

A node that is not an agent (a router node, a tool node; ``agents``/``ignore``) passes its
senders on: a hand-off through it counts as one from the agent before.

One watcher serves sync and async runs: its hooks run inline (``run_inline``), so the stop
happens before the node in both. It is deliberately not an ``AsyncCallbackHandler``: in a
sync run LangChain logs and swallows the exceptions of coroutine hooks, which would let a
stopped run go on. Its checks are the guard's sync store calls (microseconds on the
in-memory and SQLite stores).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.constants import END
from langgraph.errors import ParentCommand
from langgraph.types import Command, Send

from .._events import AgentMessage, Event, ModelCall
from ..guard import Guard
from ._nodes import _last_update, _said

_MAX_SCOPES = 10_000
_PUSH = "__pregel_push"
_SEQUENCE = (list, tuple)


def _key(run_id: Any) -> Hashable:
    """A run id as a dict key: a ``UUID``'s integer (equal exactly when the UUIDs are, and
    hashed in C: ``UUID.__hash__`` is Python code, called several times per callback),
    anything else wrapped in a tuple so that it never equals such an integer."""
    return run_id.int if isinstance(run_id, UUID) else (run_id,)


class _Task:
    """One run of a node: what started it, where it handed off."""

    __slots__ = (
        "agent",
        "carried",
        "fanned",
        "generation",
        "graph",
        "id",
        "node",
        "output",
        "parent",
        "routed",
        "said",
        "sends",
        "step",
        "targets",
    )

    def __init__(self, tid: str, node: str, graph: str, step: int, agent: bool) -> None:
        self.id = tid
        self.node = node
        self.graph = graph
        self.step = step
        self.agent = agent
        self.parent: str | None = None
        self.generation: int | None = 0
        self.carried: list[tuple[_Task, str]] = []  # non-agents: (agent task, message id)
        self.sends: list[Send] = []
        self.targets: set[str] = set()
        self.routed = False  # a Command, a routing function or a Send named where it went
        self.output: Any = None
        self.fanned = False  # all its Send packets told (by the first recipient to start)
        self.said: str | None = None  # what ``output`` says, once a recipient asked

    def route(self, value: Any) -> None:
        """Take the hand-offs in a node's output or a routing function's result."""
        items = value if isinstance(value, _SEQUENCE) else (value,)
        for item in items:
            if isinstance(item, Send):
                self.routed = True
                self.sends.append(item)
            elif isinstance(item, Command):
                gotos = item.goto if isinstance(item.goto, _SEQUENCE) else (item.goto,)
                for g in gotos:
                    if isinstance(g, Send):
                        self.routed = True
                        self.sends.append(g)
                    elif isinstance(g, str) and g:
                        self.routed = True
                        if g != END:
                            self.targets.add(g)
            elif isinstance(item, str) and item:
                self.routed = True
                if item != END:
                    self.targets.add(item)


_NO_TASKS: list[_Task] = []  # never written to


class _Graph:
    """Tasks of one graph (one run, one namespace) for the last two steps."""

    __slots__ = ("steps", "telling")

    def __init__(self) -> None:
        self.steps: dict[int, list[_Task]] = {}
        # held by a task a packet started while it tells the step's packets and passes its
        # hold: no recipient passes it before every packet is counted (and a pause set)
        self.telling = threading.RLock()

    def add(self, task: _Task) -> list[_Task]:
        """Register ``task``; return the tasks of the step before it (the graph's own list:
        read it under the watcher's lock)."""
        steps = self.steps
        step = task.step
        if any(s < step - 1 or s > step for s in steps):
            for old in [s for s in steps if s < step - 1 or s > step]:
                del steps[old]
        here = steps.get(step)
        if here is None:
            here = steps[step] = []
        else:
            tid = task.id
            if any(t.id == tid for t in here):
                here[:] = [t for t in here if t.id != tid]  # a re-run task replaces itself
        here.append(task)
        return steps.get(step - 1, _NO_TASKS)


class CascadeWatcher(BaseCallbackHandler):
    """Report a graph's node-to-node hand-offs to ``guard`` (its cascade monitor and kill
    switch) and stop the run when the guard says so.

    ``agents``: the node names that are agents (default: every node of the top-level
    graph; a team nested as a subgraph is watched when ``agents`` names its members);
    others (a router, a tool node) pass their senders on. ``ignore`` names nodes never
    counted — list a shared tool node there (``ignore=["tools"]``).
    ``graph``: the compiled graph, to read its static edges (exact attribution; without
    it, see the module's notes). ``thread_id`` comes from the run's config; without one,
    the run id is the scope.
    """

    raise_error = True  # LangChain re-raises a handler's exception only when this is set
    run_inline = True  # in async runs too: the stop must happen before the node runs

    def __init__(
        self,
        guard: Guard,
        *,
        agents: Iterable[str] | None = None,
        ignore: Iterable[str] = (),
        graph: Any = None,
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"CascadeWatcher needs a Guard, found {type(guard).__name__}")
        self.guard = guard
        self.agents = None if agents is None else frozenset(agents)
        self.ignore = frozenset(ignore)
        self._ends: dict[tuple[tuple[str, ...], str, str], str] = {}
        self._edges = _static_edges(graph, self._ends) if graph is not None else None
        # run ids are keyed by ``_key``
        self._nodes: dict[Hashable, _Task] = {}  # running task: run id -> task
        self._children: dict[Hashable, _Task] = {}  # a task's child runs (routing functions)
        self._tasks: dict[str, _Task] = {}  # running task: task id -> task (subgraph parents)
        # a starting task -> the senders whose Send packets it tells (marked when told)
        self._fanning: dict[UUID, list[_Task]] = {}
        self._telling: dict[UUID, threading.RLock] = {}  # and its graph's _Graph.telling
        self._roots: dict[Hashable, str] = {}  # run id -> the scope of its root run
        self._agent: dict[tuple[str, bool], bool] = {}  # _is_agent's answers
        self._graphs: OrderedDict[tuple[str, str], _Graph] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CascadeWatcher({self.guard!r}, agents={self.agents!r})"

    def _is_agent(self, node: str, nested: bool) -> bool:
        if node in self.ignore or node.startswith("__"):
            return False
        if self.agents is None:
            return not nested
        return node in self.agents

    def _arrivals(
        self,
        inputs: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        name: Any,
    ) -> list[Event]:
        """What a node start means for the guard: the messages of the nodes that handed
        work to it in the step before, then the node's own kill-switch check."""
        meta = metadata or {}
        node = meta.get("langgraph_node")
        ns = str(meta.get("langgraph_checkpoint_ns") or "")
        step = meta.get("langgraph_step")
        thread = meta.get("thread_id")
        parent = _key(parent_run_id) if parent_run_id else None
        with self._lock:
            parent_task = self._nodes.get(parent) if parent is not None else None
            root = self._roots.get(parent) if parent is not None else None
            if root is None:
                root = str(thread) if thread is not None else f"run:{parent_run_id or run_id}"
            run = _key(run_id)
            self._roots[run] = root
            if len(self._roots) > 4 * _MAX_SCOPES:
                self._roots.pop(next(iter(self._roots)))
            if not isinstance(node, str) or name != node or not isinstance(step, int):
                if parent_task is not None:
                    self._children[run] = parent_task  # a routing function, say
                return []
            if parent_task is not None and parent_task.node == node:
                # a compiled subgraph added as the node starts inside it with the same name
                # and metadata: the same arrival, reported once
                return []
            graph, _, last = ns.rpartition("|")
            tid = last.rpartition(":")[2] or f"{ns}@{step}"
            nested = bool(graph)
            agent = self._agent.get((node, nested))
            if agent is None:
                agent = self._agent[(node, nested)] = self._is_agent(node, nested)
                if len(self._agent) > _MAX_SCOPES:
                    self._agent.clear()
            task = _Task(tid, node, graph, step, agent)
            self._nodes[run] = task
            self._tasks[tid] = task
            key = (root, graph)
            g = self._graphs.get(key)
            if g is None:
                g = self._graphs[key] = _Graph()
                if len(self._graphs) > _MAX_SCOPES:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            before = g.add(task)
            triggers = tuple(meta.get("langgraph_triggers") or ())
            senders = self._senders(task, before, triggers, inputs)
            anything_before = bool(before)
            outer = self._tasks.get(graph.rpartition("|")[2].rpartition(":")[2]) if graph else None
        messages = self._messages(task, senders, inputs, outer, anything_before)
        if not task.agent:
            return []
        packets = {f"{t.id}>{task.node}#{k}" for t, k in senders if k is not None}
        # a node's own packets to a copy of itself are hand-offs; its loop back is not
        if any(sender.node == task.node for sender, _, _ in messages):
            messages = [m for m in messages if m[0].node != task.node or m[1] in packets]
        thread_id = None if thread is None else str(thread)
        scope_run = None if thread is not None else root[4:]
        monitor = self.guard.cascade
        events: list[Event] = [
            AgentMessage(
                sender.node,
                task.node,
                said,
                run_id=scope_run,
                thread_id=thread_id,
                step=step,
                path=monitor.provenance(root, sender.node) if monitor is not None else (),
                id=mid,
                passive=True,
                parent=sender.parent,
                generation=sender.generation,
            )
            for sender, mid, said in messages
        ]
        if packets:
            # the step's other Send packets, told by the first of their recipients to start
            # (same ids as their own recipients report: each counts once), so a fan-out is
            # counted whole before any recipient acts; a held one does not stop this node
            fanning = [t for t in before if t.agent and not t.fanned and t.sends]
            self._fanning[run_id] = fanning
            self._telling[run_id] = g.telling
            for t in fanning:
                for k, send in enumerate(t.sends):
                    mid = f"{t.id}>{send.node}#{k}"
                    if mid in packets or not self._is_agent(send.node, nested):
                        continue
                    events.append(
                        AgentMessage(
                            t.node,
                            send.node,
                            _said(send.arg),
                            run_id=scope_run,
                            thread_id=thread_id,
                            step=step,
                            path=monitor.provenance(root, t.node) if monitor else (),
                            id=mid,
                            passive=True,
                            parent=t.parent,
                            generation=t.generation,
                        )
                    )
        events.append(ModelCall(agent=node, thread_id=thread_id, step=step))
        return events

    def _senders(
        self, task: _Task, before: list[_Task], triggers: tuple[str, ...], inputs: Any
    ) -> list[tuple[_Task, int | None]]:
        """The tasks of the step before that handed ``task`` its work (and the packet)."""
        if triggers == (_PUSH,):
            for t in before:
                for k, send in enumerate(t.sends):
                    if send.node == task.node and send.arg is inputs:
                        return [(t, k)]
            for t in before:  # a copied packet (a run resumed from a checkpoint)
                for k, send in enumerate(t.sends):
                    if send.node == task.node and send.arg == inputs:
                        return [(t, k)]
            return []
        path = _graph_path(task.graph) if self._edges is not None else ()
        ends = self._ends
        found: list[tuple[_Task, int | None]] = [
            (t, None)
            for t in before
            if task.node in t.targets
            or any(ends.get((path, t.node, x)) == task.node for x in t.targets)
        ]
        if self._edges is not None:
            edges = self._edges.get(path, set())
            found += [
                (t, None)
                for t in before
                if (t.node, task.node) in edges and all(t is not f for f, _ in found)
            ]
        elif not found:
            found = [(t, None) for t in before if not t.routed]
        return found

    def _messages(
        self,
        task: _Task,
        senders: list[tuple[_Task, int | None]],
        inputs: Any,
        outer: _Task | None,
        anything_before: bool,
    ) -> list[tuple[_Task, str, str]]:
        """The messages ``senders`` delivered to ``task`` — ``(sender agent task, id,
        content)`` — and ``task``'s place in the causal tree."""
        out: list[tuple[_Task, str, str]] = []
        for t, k in senders:
            if k is not None:
                said = _said(t.sends[k].arg)
                if t.agent:
                    out.append((t, f"{t.id}>{task.node}#{k}", said))
                else:  # a router's or the input's packet: from the agents it carries
                    for a, _ in t.carried:
                        out.append((a, f"{t.id}>{task.node}#{k}@{a.id}", said))
                continue
            if t.output is None:
                said = ""
            elif t.said is not None:  # once per sender, however many nodes it handed work to
                said = t.said
            else:
                said = t.said = _said(_last_update(t.output))
            said = said or _said(inputs)
            if t.agent:
                out.append((t, f"{t.id}>{task.node}", said))
            else:
                for a, _ in t.carried:
                    out.append((a, f"{t.id}>{task.node}@{a.id}", said))
        if out:
            first = (
                out[0]
                if len(out) == 1
                else min(
                    out,
                    key=lambda m: (
                        m[0].generation if m[0].generation is not None else 1 << 30,
                        m[1],
                    ),
                )
            )
            if task.agent:
                task.parent = first[1]
                gen = first[0].generation
                task.generation = None if gen is None else gen + 1
            else:  # passes its senders on
                task.carried = [(a, mid) for a, mid, _ in out]
                task.parent, task.generation = first[0].parent, first[0].generation
        elif senders:  # only non-agents that carried nothing (the graph's input task)
            first_sender = min(senders, key=lambda s: s[0].id)[0]
            task.parent, task.generation = first_sender.parent, first_sender.generation
        elif outer is not None:
            task.parent, task.generation = outer.parent, outer.generation
            if not task.agent:
                task.carried = list(outer.carried) if not outer.agent else []
        elif anything_before:
            task.parent, task.generation = None, None
        return out

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
        events = self._arrivals(inputs, run_id, parent_run_id, metadata, kwargs.get("name"))
        node = (metadata or {}).get("langgraph_node")
        with self._telling.pop(run_id, None) or nullcontext():  # a packet's recipients in turn
            for event in events:
                decision = self.guard.check(event)
                if not decision.allowed and (
                    decision.kind == "control"
                    or not isinstance(event, AgentMessage)
                    or event.recipient == node  # not another task's packet
                ):
                    with self._lock:  # the node will not run: LangChain reports no end for it
                        self._forget(_key(run_id))
                    self._fanning.pop(run_id, None)
                    raise decision.error()
        for sender in self._fanning.pop(run_id, ()):
            sender.fanned = True  # its packets told: later recipients need not tell them

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        run = _key(run_id)
        with self._lock:
            child = self._children.pop(run, None)
            if child is not None:
                child.route(outputs)  # a routing function's result
                self._roots.pop(run, None)
                return
            task = self._nodes.get(run)
            if task is not None:
                task.output = outputs
                task.said = None
                task.route(outputs)
            self._forget(run)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if isinstance(error, ParentCommand):
            # a hand-off from a subgraph inside the node: the node's own hand-off
            self.on_chain_end(error.args[0] if error.args else None, run_id=run_id)
            return
        run = _key(run_id)
        with self._lock:
            self._children.pop(run, None)
            self._forget(run)

    def _forget(self, run: Hashable) -> None:
        """Drop the running task and the scope of run ``run`` (a ``_key``)."""
        task = self._nodes.pop(run, None)
        if task is not None and self._tasks.get(task.id) is task:
            del self._tasks[task.id]
        self._roots.pop(run, None)


def _graph_path(graph: str) -> tuple[str, ...]:
    """The node names leading to a graph namespace (``"team:ab12|inner:cd34"``)."""
    if not graph:
        return ()
    return tuple(p.rpartition(":")[0] for p in graph.split("|") if not p.isdigit())


def _static_edges(
    graph: Any, ends: dict[tuple[tuple[str, ...], str, str], str]
) -> dict[tuple[str, ...], set[tuple[str, str]]]:
    """Static edges of a compiled ``StateGraph`` and of the compiled graphs among its nodes,
    by the node path leading to each (``()`` for the graph itself). Fills ``ends`` with
    each routing function's ``path_map``: ``(path, node, key) -> target``."""
    found: dict[tuple[str, ...], set[tuple[str, str]]] = {}

    def walk(g: Any, path: tuple[str, ...]) -> None:
        builder = getattr(g, "builder", None)
        if builder is None:
            return
        edges = {(a, b) for a, b in getattr(builder, "edges", ())}
        for starts, end in getattr(builder, "waiting_edges", ()):
            edges.update((a, end) for a in starts)
        found[path] = edges
        for start, branches in getattr(builder, "branches", {}).items():
            for branch in branches.values():
                mapping = getattr(branch, "ends", None)
                if isinstance(mapping, Mapping):
                    for key, target in mapping.items():
                        if isinstance(key, str) and isinstance(target, str):
                            ends[(path, start, key)] = target
        for name, spec in getattr(builder, "nodes", {}).items():
            inner = getattr(spec, "runnable", None)
            inner = getattr(inner, "node", inner)  # a GuardedNode's runnable wraps it
            if getattr(inner, "builder", None) is not None:
                walk(inner, (*path, name))

    walk(graph, ())
    return found
