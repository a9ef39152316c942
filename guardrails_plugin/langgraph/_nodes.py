"""``guard_node``: put an agent node of a multi-agent graph under the guard.

The wrapped node gets an identity (its node name unless given), stops at the kill switch,
has its hand-offs checked — ``Command(goto=...)`` and ``Send`` to other nodes, also to the
parent graph — and stamps its identity on the AI messages it writes, so that a shared
``GuardedToolNode`` knows whose calls it runs. A hand-off is checked as a call of the tool
``"handoff"`` with the argument ``to`` (the node handed to)::

    allow("handoff", agents="supervisor", args={"to": OneOf(["researcher", "writer"])})
    allow("handoff", agents=["researcher", "writer"], args={"to": OneOf(["supervisor"])})
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, Literal, TypeGuard

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableConfig
from langgraph._internal._runnable import RunnableCallable
from langgraph.constants import END
from langgraph.errors import GraphInterrupt, ParentCommand
from langgraph.types import Command, Send

from .._decision import Effect
from .._events import AgentMessage
from ..guard import Guard
from ._causal import ACTIVATION, ACTIVATIONS, INBOX, Activation, Delivery, message_id
from ._drivers import drivers
from ._gate import Approvals, Gate
from ._handoffs import HANDOFF_BACK, HANDOFFS_SEEN, handoff_message, text_of
from ._pending import hold_key, pending_key
from ._where import NODE_AGENT, Where, tool_call, where_in_graph

HANDOFF_TOOL = "handoff"
"""The tool name a hand-off is checked as; its argument ``to`` is the target node."""

OnHandoffDeny = Literal["raise", "drop"]
_TASK_ID = "__pregel_task_id"


class GuardedNode:
    """What :func:`guard_node` returns; add it to a graph like the node it wraps."""

    def __init__(
        self,
        node: Callable[..., Any] | Runnable[Any, Any],
        guard: Guard,
        *,
        agent: str | None = None,
        on_deny: OnHandoffDeny = "raise",
        approvals: Approvals = "auto",
        approval_timeout: float | None = None,
        check_handoffs: bool = True,
    ) -> None:
        if on_deny not in ("raise", "drop"):
            raise ValueError(f"on_deny must be 'raise' or 'drop', found {on_deny!r}")
        if agent is not None and (not isinstance(agent, str) or not agent):
            raise ValueError(f"agent must be a non-empty string or None, found {agent!r}")
        self.node = node
        self.guard = guard
        self.agent = agent
        self.on_deny: OnHandoffDeny = on_deny
        self.check_handoffs = check_handoffs
        self.gate = Gate(guard, approvals=approvals, approval_timeout=approval_timeout)
        self._driver, self._adriver = drivers(self.gate)
        if isinstance(node, Runnable):
            self._inner: Runnable[Any, Any] = node
        elif callable(node):
            name = getattr(node, "__name__", None)
            if _is_async(node):
                # an ``async def`` node: awaited under ``ainvoke``/``astream``, and, as
                # LangGraph does for the bare function, refused under ``invoke``
                self._inner = RunnableCallable(None, node, name=name, trace=False)
            else:
                self._inner = RunnableCallable(node, name=name, trace=False)
        else:
            raise TypeError(f"guard_node needs a function or a Runnable, found {node!r}")
        self.name = agent or getattr(node, "name", None) or getattr(node, "__name__", "node")

    def __repr__(self) -> str:
        return f"GuardedNode({self.name!r}, agent={self.agent!r}, on_deny={self.on_deny!r})"

    def as_runnable(self) -> Runnable[Any, Any]:
        """The guarded node as a LangGraph runnable (sync and async)."""
        return RunnableCallable(self._call, self._acall, name=self.name, trace=False)

    # -- running ------------------------------------------------------------------------------

    def _where(self, config: RunnableConfig, runtime: Any) -> Where:
        agent = self.agent or (config.get("metadata") or {}).get("langgraph_node")
        return where_in_graph(agent if isinstance(agent, str) else None, config, runtime)

    def _call(self, state: Any, config: RunnableConfig, runtime: Any = None) -> Any:
        where = self._where(config, runtime)
        key = hold_key(config, where)
        act, arrived = ACTIVATIONS.start(config, where.agent, where.thread_id or where.run_id)
        with act.telling or nullcontext():  # a packet's recipients tell and pass holds in turn
            if arrived and self.guard.cascade is not None:
                self._driver.run(self._arrivals_flow(arrived, act, where))
            paused = self._driver.run(self.gate.hold_flow(where.agent, where, key, act))
        token = NODE_AGENT.set(self.agent) if self.agent else None
        seen: dict[str, AgentMessage] = {}
        seen_token = HANDOFFS_SEEN.set(seen)
        act_token = ACTIVATION.set(act)
        try:
            try:
                output = self._inner.invoke(state, _named(config, where.agent))
            except ParentCommand as up:  # a hand-off from inside a subgraph or sub-agent
                command, graph = _from_below(up, config)
                checked = self._checked(command, where, config, seen, act)
                up.args = (_regraph(checked, graph),)
                if key is not None and (paused or where.resuming):
                    self._driver.delete(key)
                raise
            output = self._checked(output, where, config, seen, act)
        except GraphInterrupt:
            if where.checkpointed:
                self._driver.run(self.gate.passed_flow(key, paused, where, act))
            raise
        finally:
            ACTIVATION.reset(act_token)
            HANDOFFS_SEEN.reset(seen_token)
            if token is not None:
                NODE_AGENT.reset(token)
        if key is not None and (paused or where.resuming):
            self._driver.delete(key)
        return output

    async def _acall(self, state: Any, config: RunnableConfig, runtime: Any = None) -> Any:
        where = self._where(config, runtime)
        key = hold_key(config, where)
        act, arrived = ACTIVATIONS.start(config, where.agent, where.thread_id or where.run_id)
        # a packet's recipients tell and pass holds in turn (tasks of one loop wait on a
        # future: the loop runs on, and the holder may await the store meanwhile)
        async with act.telling or nullcontext():
            if arrived and self.guard.cascade is not None:
                await self._adriver.arun(self._arrivals_flow(arrived, act, where))
            paused = await self._adriver.arun(self.gate.hold_flow(where.agent, where, key, act))
        token = NODE_AGENT.set(self.agent) if self.agent else None
        seen: dict[str, AgentMessage] = {}
        seen_token = HANDOFFS_SEEN.set(seen)
        act_token = ACTIVATION.set(act)
        try:
            try:
                output = await self._inner.ainvoke(state, _named(config, where.agent))
            except ParentCommand as up:
                command, graph = _from_below(up, config)
                checked = await self._achecked(command, where, config, seen, act)
                up.args = (_regraph(checked, graph),)
                if key is not None and (paused or where.resuming):
                    await self._adriver.adelete(key)
                raise
            output = await self._achecked(output, where, config, seen, act)
        except GraphInterrupt:
            if where.checkpointed:
                await self._adriver.arun(self.gate.passed_flow(key, paused, where, act))
            raise
        finally:
            ACTIVATION.reset(act_token)
            HANDOFFS_SEEN.reset(seen_token)
            if token is not None:
                NODE_AGENT.reset(token)
        if key is not None and (paused or where.resuming):
            await self._adriver.adelete(key)
        return output

    def _arrivals_flow(
        self, arrived: list[Delivery], act: Activation, where: Where
    ) -> Generator[Any, Any, None]:
        """Report the messages that started this activation (whatever carried them: a
        ``Command``, a static or conditional edge, a ``Send`` from a node or a routing
        function), before the node acts on them. A message the sender already reported
        is not told again (it has the same id: it would count once anyway). A task started
        by a ``Send`` packet also tells the step's other packets nobody told yet (a routing
        function's fan-out is then counted whole before any of its recipients acts). A
        message to this node the guard holds (its recipient is quarantined) stops the node;
        a pause or kill the breaker set is the kill-switch hold's to apply, right after."""
        monitor = self.guard.cascade
        if monitor is None:
            return  # nothing watches messages; the kill-switch hold still runs after
        for d in arrived:
            sender = d.sender
            if d.id in sender.told or (d.packet is None and act.node in sender.reported):
                continue  # the sender (or a hand-off tool in it) reported it when decided
            said = _said(d.arg if d.packet is not None else sender.update)
            scope = where.thread_id or where.run_id or "-"
            mine = d.id in act.arrived
            message = AgentMessage(
                sender.agent,
                d.recipient_node,
                said,
                run_id=where.run_id,
                thread_id=where.thread_id,
                step=where.step,
                path=monitor.provenance(scope, sender.agent),
                id=d.id,
                parent=sender.parent,
                generation=sender.generation,
            )
            INBOX.delivered(scope, message)
            decision = yield ("check", (message,))
            if not mine:  # a packet for another task of this step: told now
                sender.told.add(d.id)
            if not decision.allowed and decision.kind != "control" and mine:
                raise decision.error()
        if arrived and arrived[0].packet is not None:
            for d in arrived:
                d.sender.fanned = True  # all its packets told: later tasks need not look

    # -- hand-offs ----------------------------------------------------------------------------

    def _checked(
        self,
        output: Any,
        where: Where,
        config: RunnableConfig,
        seen: dict[str, AgentMessage],
        act: Activation,
    ) -> Any:
        return self._driver.run(self._handoffs_flow(output, where, config, seen, act))

    async def _achecked(
        self,
        output: Any,
        where: Where,
        config: RunnableConfig,
        seen: dict[str, AgentMessage],
        act: Activation,
    ) -> Any:
        return await self._adriver.arun(self._handoffs_flow(output, where, config, seen, act))

    def _handoffs_flow(
        self,
        output: Any,
        where: Where,
        config: RunnableConfig,
        seen: dict[str, AgentMessage],
        act: Activation,
    ) -> Generator[Any, Any, Any]:
        """Stamp the node's name on its messages and check each hand-off in ``output``:
        the policy (tool ``handoff``) and, unless a hand-off tool inside the node already
        reported it (``seen``), the cascade monitor (the message it carries, under the id
        its recipient reports it with: it counts once)."""
        output = _stamp(output, where.agent)
        act.reported.update(seen)
        act.update = _last_update(output)
        if not self.check_handoffs:
            return output
        denied: set[int] = set()
        answered: list[str] = []  # interrupt logs, deleted once every hand-off is decided
        packets: dict[str | None, int] = {}
        for i, (target, graph, said, is_send) in enumerate(_targets(output)):
            k: int | None = None
            if is_send:  # the k-th packet the task writes: its recipient counts the same
                k = packets[graph] = packets.get(graph, -1) + 1
            message: AgentMessage | None = None
            if is_send or target not in act.reported:
                sender = act
                if graph is not None and act.outer is not None:
                    sender = act.outer  # the parent graph applies it as the outer task's
                mid = message_id(sender, target, k)
                message = handoff_message(
                    where.agent,
                    target,
                    said,
                    self.guard,
                    run_id=where.run_id,
                    thread_id=where.thread_id,
                    step=where.step,
                    message_id=mid,
                )
                sender.told.add(mid)
                if sender is not act and k is None:
                    sender.reported[target] = message
            # the hand-off's call, built once (with its message when the cascade is told)
            call = self._handoff(target, graph, i, where, config, message)
            decision, pending = yield from self.gate.decide_flow(call, where)
            if pending and call.call_id:
                answered.append(pending_key(call))
            if not decision.allowed:
                if (
                    self.on_deny == "raise"
                    or decision.kind == "control"
                    or decision.effect is Effect.RESPOND
                ):
                    raise decision.error()
                denied.add(i)
        for key in answered:
            yield ("delete", (key,))
        return _drop(output, denied) if denied else output

    @staticmethod
    def _handoff(
        target: str,
        graph: str | None,
        i: int,
        where: Where,
        config: RunnableConfig,
        message: AgentMessage | None = None,
    ) -> Any:
        task = (config.get("configurable") or {}).get(_TASK_ID) or "-"
        args: dict[str, Any] = {"to": target}
        if graph is not None:
            args["graph"] = graph
        tc = {"name": HANDOFF_TOOL, "args": args, "id": f"handoff:{task}:{i}"}
        return tool_call(tc, where, message)


def guard_node(
    node: Callable[..., Any] | Runnable[Any, Any],
    guard: Guard,
    *,
    agent: str | None = None,
    on_deny: OnHandoffDeny = "raise",
    approvals: Approvals = "auto",
    approval_timeout: float | None = None,
    check_handoffs: bool = True,
) -> Runnable[Any, Any]:
    """Wrap a node (a function, a ``create_agent`` agent, a compiled subgraph) for ``guard``.

    ``agent`` is the identity the policy sees (default: the node's name in the graph).
    A hand-off the policy denies raises ``ToolCallDenied`` (``on_deny="raise"``) or is dropped
    from the node's ``Command`` (``"drop"``); an ``ask`` interrupts for a person.
    """
    wrapped = GuardedNode(
        node,
        guard,
        agent=agent,
        on_deny=on_deny,
        approvals=approvals,
        approval_timeout=approval_timeout,
        check_handoffs=check_handoffs,
    )
    return wrapped.as_runnable()


# -- helpers --------------------------------------------------------------------------------


def _is_async(node: Callable[..., Any]) -> bool:
    """Whether calling ``node`` returns a coroutine: an ``async def`` function (or a
    ``functools.partial`` of one) or an object whose ``__call__`` is one."""
    return inspect.iscoroutinefunction(node) or inspect.iscoroutinefunction(type(node).__call__)


def _named(config: RunnableConfig, agent: str) -> RunnableConfig:
    meta = dict(config.get("metadata") or {})
    # the innermost wrapped node is the agent its tools act for (an enclosing team's node
    # set its own name here first)
    meta["lc_agent_name"] = agent
    return {**config, "metadata": meta}


def _from_below(up: ParentCommand, config: RunnableConfig) -> tuple[Command[Any], Any]:
    """The hand-off a subgraph inside this node sent up, as this node's own output, and the
    graph LangGraph addressed it to. LangGraph has already rewritten ``Command.PARENT`` into
    the namespace of the graph it is for: this node's graph (a hand-off to a sibling of this
    node: checked as an ordinary one) or one further up (checked as ``graph="parent"``)."""
    command: Command[Any] = up.args[0]
    conf = config.get("configurable") or {}
    ns = str(conf.get("checkpoint_ns") or "")
    plain = "|".join(p.split(":")[0] for p in ns.split("|") if not p.isdigit())
    name = (config.get("metadata") or {}).get("langgraph_node")
    ours = command.graph in (ns, plain, name)
    return _regraph(command, None if ours else Command.PARENT), command.graph


def _regraph(command: Any, graph: Any) -> Any:
    if not isinstance(command, Command):
        return command
    return Command(graph=graph, update=command.update, resume=command.resume, goto=command.goto)


def _targets(output: Any) -> list[tuple[str, str | None, str, bool]]:
    """Every node ``output`` hands off to: ``(target, "parent" or None, what it says,
    whether it is a Send packet)``, in the order LangGraph writes them."""
    found: list[tuple[str, str | None, str, bool]] = []
    for item in _items(output):
        if isinstance(item, Send):
            found.append((item.node, None, _said(item.arg), True))
        elif isinstance(item, Command):
            graph = "parent" if item.graph == Command.PARENT else None
            gotos = item.goto if isinstance(item.goto, list | tuple) else [item.goto]
            said = _said(item.update)
            for g in gotos:
                if isinstance(g, Send):
                    found.append((g.node, graph, _said(g.arg), True))
                elif _handoff_target(g):
                    found.append((g, graph, said, False))
    return found


def _last_update(output: Any) -> Any:
    """The state update in ``output`` that carries what the node said."""
    for item in reversed(_items(output)):
        if isinstance(item, Command):
            return item.update
        if isinstance(item, Mapping):
            return item
    return output


_MAX_SAID = 8192


def _said(payload: Any) -> str:
    """The text a hand-off passes on: the last thing an agent or person said in it (tool
    results and hand-off bookkeeping messages skipped), else the payload itself."""
    messages = payload.get("messages") if isinstance(payload, Mapping) else payload
    if isinstance(messages, list):
        fallback = ""
        for m in reversed(messages):
            text = text_of(m)
            if not text:
                continue
            if isinstance(m, ToolMessage) or (getattr(m, "response_metadata", None) or {}).get(
                HANDOFF_BACK
            ):
                fallback = fallback or text
                continue
            return text[:_MAX_SAID]
        if fallback:
            return fallback[:_MAX_SAID]
    if payload is None or payload == ():
        return ""
    if isinstance(payload, str):
        return payload[:_MAX_SAID]
    return repr(payload)[:_MAX_SAID]


def _handoff_target(goto: Any) -> TypeGuard[str]:
    """A node name a ``goto`` hands off to; ending the run (``END``) hands off to nobody."""
    return isinstance(goto, str) and bool(goto) and goto != END


def _items(output: Any) -> Sequence[Any]:
    if isinstance(output, list | tuple):
        return output
    return [output]


def _drop(output: Any, denied: set[int]) -> Any:
    """``output`` without the hand-offs at the ``denied`` positions of ``_targets``."""
    i = 0

    def keep() -> bool:
        nonlocal i
        ok = i not in denied
        i += 1
        return ok

    def clean(item: Any) -> Any:
        if isinstance(item, Send):
            return item if keep() else None
        if isinstance(item, Command):
            gotos = item.goto if isinstance(item.goto, list | tuple) else [item.goto]
            kept = [g for g in gotos if not (isinstance(g, Send) or _handoff_target(g)) or keep()]
            goto: Any = kept if isinstance(item.goto, list | tuple) else (kept[0] if kept else ())
            return Command(graph=item.graph, update=item.update, resume=item.resume, goto=goto)
        return item

    if isinstance(output, list | tuple):
        return [c for c in (clean(o) for o in output) if c is not None]
    return clean(output)


def _unnamed(messages: Any) -> bool:
    """Whether ``messages`` holds an AI message without a name (to stamp)."""
    if isinstance(messages, AIMessage):
        return not messages.name
    return isinstance(messages, list) and any(_unnamed(m) for m in messages)


def _stamp(output: Any, agent: str) -> Any:
    """Name the AI messages a node writes after the agent, if they have no name. ``output``
    itself when every one has a name already (no ``Command`` or update rebuilt)."""
    update = output.update if isinstance(output, Command) else output
    if not (isinstance(update, Mapping) and _unnamed(update.get("messages"))):
        return output

    def named(messages: Any) -> Any:
        if isinstance(messages, AIMessage) and not messages.name:
            return messages.model_copy(update={"name": agent})
        if isinstance(messages, list):
            return [named(m) for m in messages]
        return messages

    def in_update(update: Any) -> Any:
        if isinstance(update, Mapping) and "messages" in update:
            return {**update, "messages": named(update["messages"])}
        return update

    if isinstance(output, Command):
        return Command(
            graph=output.graph,
            update=in_update(output.update),
            resume=output.resume,
            goto=output.goto,
        )
    if isinstance(output, Mapping):
        return in_update(output)
    return output
