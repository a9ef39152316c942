"""Who handed a node its work: the causal parent of each activation, read from the graph.

LangGraph runs a graph in supersteps. A task of step ``s`` runs because tasks of step
``s - 1`` wrote to the channels that trigger it (a static edge, a conditional edge, a
``Command(goto=...)``: all of them are writes to ``branch:to:<node>``), or because one of
them wrote a ``Send`` packet (the task's path is ``(PUSH, i)``: the ``i``-th packet of the
step). Each task collects its writes in a deque that LangGraph hands the task in its config
(``__pregel_send`` is that deque's ``extend``); the deque is complete once the task's
step has ended, whether the writes came from the node's own ``Command``, a routing
function, a static edge or a ``Command.PARENT`` raised from a subgraph inside it.

``guard_node`` registers every activation of a wrapped node here (``Activations.start``): the
task, the agent, its writes deque, and the delivery that started it. When a wrapped node
starts in step ``s``, the activations of step ``s - 1`` in the same graph whose writes
trigger it are its senders: each is one message (a ``Send`` packet is one message of its
own, ``packets=1``), reported before the node runs, with a stable id shared with the
sender's own report of the same hand-off, so it counts once. Nothing is inferred from the
order nodes run in: a node that did not write to a channel that triggers the recipient
did not send it anything.

Causal tree: an activation's parent is the message that started it (the first sender in
the graph's own write order, the lowest generation first); the messages it sends carry
that parent and ``generation`` = the parent's + 1. An activation the run's input started
(nothing wrapped ran in the step before, and no enclosing wrapped node) sends generation
0. A wrapped node inside a subgraph started by the subgraph's input inherits the enclosing
wrapped node's activation (the message delivered to the team is the one that started it).

Resumes: a resumed activation continues its chain. Its parent is the delivery that
started the interrupted activation: the step before is still here in this process; and
the document the gate writes before it interrupts keeps the agent's position
(``saved_position``), restored on the re-run (``restore_position``), bound to the agent
and the step's root checkpoint, so that a resume in another process continues it too when
the guard's store persists.

What it cannot see: a sender that is not wrapped (a plain router node between two agents:
the recipient then reports nothing from it, and its generation is unknown, ``None``), and
state that does not survive the process when the guard did not interrupt (a run resumed
in another process after a node's own ``interrupt()`` reports the deliveries of its first
step without parent). Memory: the last two steps per graph (the
channels each task wrote and its ``Send`` packets, not the state it wrote), for at most
``max_graphs`` graphs (least recently used dropped).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._events import AgentMessage

PUSH = "__pregel_push"
TASKS = "__pregel_tasks"
_SEND_KEY = "__pregel_send"
_READ_KEY = "__pregel_read"
_TASK_ID = "__pregel_task_id"
_SAVER_KEY = "__pregel_checkpointer"


@dataclass(slots=True, eq=False)
class Activation:
    """One run of a wrapped node: what started it and what it wrote."""

    task: str
    """LangGraph's task id (stable across re-runs of the task)."""
    agent: str
    node: str
    parent: str | None = None
    """The id of the message whose delivery started this activation."""
    generation: int | None = 0
    """The generation of the messages this activation sends (``None``: unknown)."""
    writes: deque[tuple[str, Any]] | tuple[tuple[str, Any], ...] | None = None
    """The task's writes: LangGraph's own deque while its step runs, then (once the next
    step starts) only the channels written and the ``Send`` packets."""
    update: Any = None
    """The state update the node returned (what it said is read from it only when a
    recipient reports a message it sent along an edge)."""
    reported: dict[str, AgentMessage] = field(default_factory=dict)
    """Recipient -> message, for hand-offs reported from inside the activation (a hand-off
    tool, a wrapped node in a subgraph handing off to this graph): the recipient reports
    the same message (same id: it counts once)."""
    senders: frozenset[str] = frozenset()
    """The agents whose messages started this activation."""
    arrived: tuple[str, ...] = ()
    """The ids of the messages delivered to this activation."""
    told: set[str] = field(default_factory=set)
    """Ids of the messages this activation's node reported itself (its ``Command`` and
    ``Send`` hand-offs, decided when it returned): their recipients need not tell them
    again."""
    outer: Activation | None = None
    """The wrapped node this one runs inside (a subgraph's node), if any."""
    fanned: bool = False
    """Whether a recipient has told all of this activation's ``Send`` packets (tasks
    starting meanwhile tell the ones not told yet too, so none acts before they are)."""
    telling: Turns | None = None
    """For an activation started by a ``Send`` packet: its graph's ``Turns``, held while it
    tells the step's packets and passes its hold, so no recipient of a fan-out passes its
    hold before every packet of the step is counted (and a trip's pause is set)."""

    def sends(self) -> list[Any]:
        """The ``Send`` packets the activation wrote, in order."""
        if self.writes is None:
            return []
        return [v for c, v in tuple(self.writes) if c == TASKS]


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message that reached an activation: from ``sender``, packet ``packet`` (the
    index among the sender's ``Send`` packets) or an edge write (``None``)."""

    sender: Activation
    packet: int | None
    recipient_node: str
    arg: Any = None

    @property
    def id(self) -> str:
        return message_id(self.sender, self.recipient_node, self.packet)


def message_id(sender: Activation, recipient: str, packet: int | None) -> str:
    """The id of a message from ``sender`` to node ``recipient``: the same when the sender
    reports it and when the recipient does. A hand-off reported from inside the sender
    (a hand-off tool) keeps the id it was reported under."""
    if packet is None:
        reported = sender.reported.get(recipient)
        if reported is not None and reported.id is not None:
            return reported.id
        return f"{sender.task}>{recipient}"
    return f"{sender.task}>{recipient}#{packet}"


class Turns:
    """One at a time, for threads (sync nodes) and event-loop tasks (async nodes) alike: the
    lock a graph's ``Send`` recipients take while they tell the step's packets and pass
    their hold, so that none acts between a trip and the pause it sets.

    ``with turns:`` from a thread; ``async with turns:`` from a coroutine, which waits on
    a future of its own loop (the loop keeps running) and may ``await`` while it holds its
    turn (a store's async verbs): a ``threading.Lock`` is held only for a few assignments,
    never across an ``await``. Re-entrant for its holder (a thread, or an ``asyncio`` task:
    two tasks of one loop are two holders). A turn is handed to the waiter first in line
    when released (no barging); a waiting task that is cancelled leaves the line, or, if the
    turn reached it meanwhile, passes it on.
    """

    __slots__ = ("_depth", "_lock", "_owner", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: object = None
        self._depth = 0
        # who waits: (holder, a thread's event or None, a task's loop and future or None)
        self._waiters: deque[
            tuple[object, threading.Event | None, tuple[Any, asyncio.Future[None]] | None]
        ] = deque()

    def __repr__(self) -> str:
        return f"Turns(held={self._owner is not None}, waiting={len(self._waiters)})"

    @staticmethod
    def _me() -> object:
        loop = asyncio._get_running_loop()  # None, not an exception, outside a loop
        task = None if loop is None else asyncio.current_task(loop)
        return threading.get_ident() if task is None else task

    def __enter__(self) -> Turns:
        me = self._me()
        with self._lock:
            if self._owner is None or self._owner == me:
                self._owner = me
                self._depth += 1
                return self
            event = threading.Event()
            self._waiters.append((me, event, None))
        event.wait()  # the turn is ours when set (handed over by ``_release``)
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._release()

    async def __aenter__(self) -> Turns:
        me = self._me()
        with self._lock:
            if self._owner is None or self._owner == me:
                self._owner = me
                self._depth += 1
                return self
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((me, None, (loop, future)))
        try:
            await future
        except BaseException:  # cancelled while waiting: leave the line, or pass the turn on
            with self._lock:
                if self._owner is me:
                    self._depth = 1
                    self._release()
                else:
                    self._waiters = deque(w for w in self._waiters if w[0] is not me)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        """Give up one level of the turn (``_lock`` held); the last hands it on."""
        self._depth -= 1
        if self._depth > 0:
            return
        self._owner = None
        while self._waiters:
            me, event, waiting = self._waiters.popleft()
            self._owner, self._depth = me, 1
            if event is not None:
                event.set()
                return
            assert waiting is not None
            loop, future = waiting
            try:
                loop.call_soon_threadsafe(_wake, future)
                return
            except RuntimeError:  # its loop is closed: nobody will take the turn
                self._owner, self._depth = None, 0


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


ACTIVATION: contextvars.ContextVar[Activation | None] = contextvars.ContextVar(
    "guardrails_activation", default=None
)
"""The activation of the innermost wrapped node running now (also inside subgraphs,
sub-agents and tool nodes that run within it)."""


class Activations:
    """Activations of wrapped nodes, per run and graph, for the last two steps."""

    def __init__(self, max_graphs: int = 1024) -> None:
        self.max_graphs = max_graphs
        self._graphs: OrderedDict[tuple[str, str], dict[int, dict[str, Activation]]] = OrderedDict()
        self._telling: dict[tuple[str, str], Turns] = {}  # per graph of _graphs
        self._lock = threading.Lock()

    def start(
        self, config: Mapping[str, Any], agent: str, scope: str | None
    ) -> tuple[Activation, list[Delivery]]:
        """Register the activation of the task ``config`` belongs to; return it and the
        deliveries that started it (senders of the step before, in the graph's order).
        ``scope``: the run's thread (else its run id); without either, the graph loop's
        own channels tell runs apart."""
        conf = config.get("configurable") or {}
        meta = config.get("metadata") or {}
        node = meta.get("langgraph_node")
        node = node if isinstance(node, str) else agent
        task = conf.get(_TASK_ID)
        step = meta.get("langgraph_step")
        outer = ACTIVATION.get()
        if not isinstance(task, str) or not isinstance(step, int) or isinstance(step, bool):
            # not a LangGraph task (called directly): inherit, report nothing
            act = Activation(f"-{id(config)}", agent, node, outer=outer)
            if outer is not None:
                act.parent, act.generation = outer.parent, outer.generation
            return act, []
        ns = str(conf.get("checkpoint_ns") or "")
        graph = ns.rpartition("|")[0]
        act = Activation(task, agent, node, writes=_writes_of(conf), outer=outer)
        saver = conf.get(_SAVER_KEY)
        if scope is None or saver is None:  # no resume possible: this loop is the run
            read = conf.get(_READ_KEY)
            args: tuple[Any, ...] = getattr(read, "args", ())
            scope = f"loop:{id(args[1])}" if len(args) > 1 else "-"
        else:  # a thread of this checkpointer (another graph may reuse the thread id)
            scope = f"{scope}@{id(saver)}"
        key = (scope, graph)
        with self._lock:
            steps = self._graphs.get(key)
            if steps is None:
                steps = self._graphs[key] = {}
                self._telling[key] = Turns()
                if len(self._graphs) > self.max_graphs:
                    self._telling.pop(self._graphs.popitem(last=False)[0], None)
            else:
                self._graphs.move_to_end(key)
            for old in [s for s in steps if s < step - 1 or s > step]:
                del steps[old]
            steps.setdefault(step, {})[task] = act
            before = list(steps.get(step - 1, {}).values())
            telling = self._telling.get(key)
            for b in before:  # their step is over: keep the channels and packets only
                if isinstance(b.writes, deque):
                    b.writes = tuple((c, v if c == TASKS else None) for c, v in tuple(b.writes))
        deliveries = _deliveries(before, conf, meta, node)
        if deliveries:
            ids = [d.id for d in deliveries]  # each id made once (a string per delivery)
            i = 0
            if len(deliveries) > 1:
                i = min(
                    range(len(deliveries)),
                    key=lambda j: (
                        deliveries[j].sender.generation
                        if deliveries[j].sender.generation is not None
                        else 1 << 30,
                        ids[j],
                    ),
                )
            act.parent = ids[i]
            gen = deliveries[i].sender.generation
            act.generation = None if gen is None else gen + 1
            act.senders = frozenset(d.sender.agent for d in deliveries)
            act.arrived = tuple(ids)
        elif outer is not None:
            act.parent, act.generation = outer.parent, outer.generation
        elif before:
            act.parent, act.generation = None, None  # sent by something not wrapped
        if deliveries and deliveries[0].packet is not None:
            # The step's other ``Send`` packets (a routing function's fan-out is seen by
            # its recipients only), told by the first of their recipients to start, so a
            # fan-out is counted whole before any of its recipients acts. Same ids as
            # their own recipients report: each counts once.
            mine = deliveries[0]
            act.telling = telling
            deliveries = deliveries + [
                Delivery(b, k, str(getattr(p, "node", "")), getattr(p, "arg", None))
                for b in before
                if not b.fanned
                for k, p in enumerate(b.sends())
                if not (b is mine.sender and k == mine.packet)
            ]
        return act, deliveries

    def clear(self) -> None:
        with self._lock:
            self._graphs.clear()
            self._telling.clear()


def _writes_of(conf: Mapping[str, Any]) -> deque[tuple[str, Any]] | None:
    send = conf.get(_SEND_KEY)
    owner = getattr(send, "__self__", None)
    return owner if isinstance(owner, deque) else None


def _packet(conf: Mapping[str, Any], meta: Mapping[str, Any]) -> Any:
    """The ``Send`` packet a push task runs for, from the graph's pending sends."""
    path = meta.get("langgraph_path")
    if not isinstance(path, tuple) or len(path) < 2 or path[0] != PUSH:
        return None
    idx = path[1]
    if not isinstance(idx, int):
        return None
    read = conf.get(_READ_KEY)
    args: tuple[Any, ...] = getattr(read, "args", ())
    channels = args[1] if len(args) > 1 else None
    channel = channels.get(TASKS) if isinstance(channels, Mapping) else None
    if channel is None:
        return None
    try:
        sends = channel.get()
    except Exception:  # an empty channel raises; nothing to match then
        return None
    return sends[idx] if 0 <= idx < len(sends) else None


def _deliveries(
    before: list[Activation], conf: Mapping[str, Any], meta: Mapping[str, Any], node: str
) -> list[Delivery]:
    found: list[Delivery] = []
    triggers = meta.get("langgraph_triggers") or ()
    if tuple(triggers) == (PUSH,):
        packet = _packet(conf, meta)
        if packet is None:
            return found
        for act in before:
            for k, send in enumerate(act.sends()):
                if send is packet:
                    return [Delivery(act, k, node, getattr(packet, "arg", None))]
        return found
    wanted = {t for t in triggers if isinstance(t, str)}
    for act in before:
        if act.writes is None:
            continue
        if any(c in wanted for c, _ in tuple(act.writes)):
            found.append(Delivery(act, None, node))
    return found


class Inbox:
    """Per run, the last message delivered to each agent: the causal parent of what the
    agent sends next, for adapters that see hand-offs but not the graph's tasks (a
    hand-off tool in a ``GuardedToolNode`` or under ``GuardMiddleware``, in a
    langgraph-supervisor team or a swarm whose nodes are not wrapped). Exact when one
    agent acts at a time (supervisor teams, swarms); in parallel fan-outs an agent's
    latest delivery stands for the one that started it. An agent that received nothing
    in the run was started by its input: generation 0. A run is one invocation: what an
    agent received in an earlier invocation of the thread (the previous user turn of a
    swarm) did not start what it sends in this one, except where a resume continues an
    activation the guard interrupted (``resumed``, from ``restore_position``)."""

    def __init__(self, max_scopes: int = 4096) -> None:
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[str, dict[str, tuple[str | None, int | None, str | None]]] = (
            OrderedDict()
        )
        self._told: OrderedDict[tuple[str, str], AgentMessage] = OrderedDict()
        self._lock = threading.Lock()

    def told(self, scope: str, message_id: str) -> AgentMessage | None:
        """The message delivered under ``message_id`` in ``scope``, if it is among the last
        few thousand: an adapter that builds the same message twice (a hand-back, first to
        give the next hand-off its parent, then to report it) must build it identically,
        not with a parent delivered in between."""
        with self._lock:
            return self._told.get((scope, message_id))

    def started(
        self, scope: str, agent: str, run_id: str | None = None
    ) -> tuple[str | None, int | None]:
        """``(parent, generation)`` for a message ``agent`` sends now, in run ``run_id``
        (a delivery made in another run of the scope does not count)."""
        with self._lock:
            last = self._scopes.get(scope, {}).get(agent)
        if last is None:
            return None, 0
        mid, gen, run = last
        if run_id is not None and run is not None and run != run_id:
            return None, 0
        return mid, None if gen is None else gen + 1

    def resumed(
        self, scope: str, agent: str, run_id: str | None, parent: str, generation: int | None
    ) -> None:
        """``agent``'s activation continues in run ``run_id`` (a resume of the run it was
        interrupted in): what it sends now has ``parent`` and ``generation``, as before the
        interrupt, until something is delivered to it."""
        message = AgentMessage(
            "",
            agent,
            "",
            run_id=run_id,
            id=parent,
            generation=None if generation is None else generation - 1,
        )
        self.delivered(scope, message, told=False)

    def delivered(self, scope: str, message: AgentMessage, *, told: bool = True) -> None:
        with self._lock:
            agents = self._scopes.get(scope)
            if agents is None:
                agents = self._scopes[scope] = {}
                if len(self._scopes) > self.max_scopes:
                    self._scopes.popitem(last=False)
            else:
                self._scopes.move_to_end(scope)
            if len(agents) > 1024 and message.recipient not in agents:
                agents.pop(next(iter(agents)))
            agents[message.recipient] = (message.id, message.generation, message.run_id)
            if told and message.id is not None:
                self._told[(scope, message.id)] = message
                self._told.move_to_end((scope, message.id))
                if len(self._told) > 4 * self.max_scopes:
                    self._told.popitem(last=False)


def position(scope: str, agent: str, run_id: str | None) -> tuple[str | None, int | None]:
    """``(parent, generation)`` of what ``agent`` sends now: the wrapped node it runs in,
    else the run's inbox (as ``handoff_message`` reads them)."""
    act = ACTIVATION.get()
    if act is not None:
        return act.parent, act.generation
    return INBOX.started(scope, agent, run_id)


def saved_position(
    scope: str,
    agent: str,
    run_id: str | None,
    checkpoint: str | None,
    act: Activation | None = None,
) -> dict[str, Any] | None:
    """What a resume needs to continue ``agent``'s causal chain, as the guard keeps it in
    the document it writes before interrupting (JSON): the delivery that started the
    interrupted activation, its generation, the agent, and the root checkpoint the
    interrupted step started from. ``None`` when there is nothing to continue (the run's
    input started the activation, or the step has no checkpoint). ``act``: the wrapped
    node's activation, when it is not running (``ACTIVATION``)."""
    if act is not None:
        parent, generation = act.parent, act.generation
    else:
        parent, generation = position(scope, agent, run_id)
    if parent is None or checkpoint is None:
        return None
    return {"parent": parent, "generation": generation, "agent": agent, "checkpoint": checkpoint}


def restore_position(
    saved: Any,
    scope: str,
    agent: str,
    run_id: str | None,
    checkpoint: str | None,
    act: Activation | None = None,
) -> bool:
    """Continue ``agent``'s causal chain on a resume from what ``saved_position`` kept:
    its activation's parent is again the delivery that started the interrupted one, and
    the generation continues. Only for the same agent re-running the step the document
    was written in (the same root checkpoint, which LangGraph, not the model, names): a
    document left by another run of the thread (an interrupt never resumed, then a call
    under a reused id) grafts nothing. A wrapped node's activation that already knows
    its parent (the graph's own tasks told it) keeps it. ``act``: that activation, when it
    is not running yet (``ACTIVATION``). Returns whether it restored."""
    if not isinstance(saved, Mapping):
        return False
    parent, generation = saved.get("parent"), saved.get("generation")
    if (
        not isinstance(parent, str)
        or saved.get("agent") != agent
        or checkpoint is None
        or saved.get("checkpoint") != checkpoint
        or not (generation is None or (isinstance(generation, int) and generation >= 1))
        or isinstance(generation, bool)
    ):
        return False
    act = act or ACTIVATION.get()
    if act is not None:
        if act.parent is not None or act.arrived:
            return False
        act.parent, act.generation = parent, generation
        return True
    INBOX.resumed(scope, agent, run_id, parent, generation)
    return True


ACTIVATIONS = Activations()
"""The process's activations, shared by every wrapped node (activations are facts about the
graph run, whichever guard watches it)."""

INBOX = Inbox()
"""The process's inbox, shared by the hand-off adapters."""
