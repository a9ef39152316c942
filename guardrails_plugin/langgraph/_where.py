"""Where a tool call happens inside a LangGraph run: agent, thread, run, step, checkpoint.

Read from the config and runtime LangGraph gives a node, shared by every LangGraph adapter
(``GuardedToolNode``, ``guard_node``, ``GuardMiddleware``).
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.tools import BaseTool

from .._context import CHECKPOINT
from .._events import DEFAULT_AGENT, AgentMessage, ToolCall
from ._toolargs import received

_CHECKPOINTER = "__pregel_checkpointer"
_RESUMING = "__pregel_resuming"
_CHECKPOINT_MAP = "checkpoint_map"

GUARDED_CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardrails_guarded_call", default=None
)
"""The id of the tool call a guard adapter decided and is running now: a callback handler
seeing that call start leaves it alone (it is decided once, by the choke point)."""

NODE_AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardrails_node_agent", default=None
)
"""The identity ``guard_node(..., agent=...)`` gives everything that runs inside the node
(sub-agents, their model and tool calls), over the names they carry themselves."""


# -- where a call happens --------------------------------------------------------------------

_RUNTIME = "__pregel_runtime"
_MAX_RUNS_REMEMBERED = 10_000
_runs: OrderedDict[int, tuple[Any, str]] = OrderedDict()
_runs_lock = threading.Lock()
_last: tuple[Any, str] = (None, "")
"""The most recently used entry of ``_runs`` (the last one): read without the lock."""


def root_run(config: Mapping[str, Any], runtime: Any = None) -> str | None:
    """The id of the run a node belongs to: one invocation of the root graph (``invoke``,
    ``stream``, a resume), shared by its subgraphs and parallel tasks, never by two
    invocations, with or without a thread.

    The ``run_id`` the caller put in the invoke config when there is one (LangGraph shows it
    to the root graph's nodes on ``execution_info``). Otherwise LangGraph gives a node no run
    id; what identifies the invocation is its ``RunControl``, one object that LangGraph
    creates per root invocation and hands down to every task and subgraph of it: the run id
    is a fresh id given to that object (held while the object is remembered, the most
    recently used 10,000 runs). ``None`` where the node shows neither.
    """
    info = getattr(runtime, "execution_info", None)
    explicit = getattr(info, "run_id", None) or config.get("run_id")
    conf = config.get("configurable") or {}
    control = getattr(conf.get(_RUNTIME) or runtime, "control", None)
    if control is None:
        return None if explicit is None else str(explicit)
    global _last
    last = _last  # (one read: another thread may replace it, never change it)
    if explicit is None and last[0] is control:  # the most recent run: nothing to reorder
        return last[1]
    with _runs_lock:
        known = _runs.get(id(control))
        if explicit is None and known is not None and known[0] is control:
            _runs.move_to_end(id(control))
            _last = known
            return known[1]
        if explicit is not None:  # the caller's own, for its subgraphs too
            run = str(explicit)
        elif known is not None and known[0] is control:
            run = known[1]
        else:
            run = str(uuid.uuid4())
        _runs[id(control)] = _last = (control, run)  # held: its id cannot be reused meanwhile
        _runs.move_to_end(id(control))
        while len(_runs) > _MAX_RUNS_REMEMBERED:
            _runs.popitem(last=False)
        return run


@dataclass(frozen=True, slots=True)
class Where:
    """Identity and position of a step inside a graph run."""

    agent: str
    thread_id: str | None = None
    run_id: str | None = None
    step: int | None = None
    checkpoint_id: str | None = None
    """The root graph's checkpoint the step started from (a rollback target), also inside
    a subgraph: ``checkpoint_map[""]``."""
    checkpoint_ns: str = ""
    """The namespace of ``checkpoint_id``: always the root graph's (``""``)."""
    checkpointed: bool = False
    """The run has a checkpointer: interrupts and the done-ledger work."""
    resuming: bool = False


def where_in_graph(
    agent: str | None,
    config: Mapping[str, Any],
    runtime: Any = None,
    *,
    messages_agent: str | None = None,
) -> Where:
    """Read agent, thread, run, step and checkpoint from a node's config and runtime.

    The agent is ``agent`` if given, else the identity of an enclosing ``guard_node`` with
    ``agent=``, else the name on the AI message that made the call, else the
    ``lc_agent_name`` LangChain puts in the metadata, else ``"agent"``. The run is the
    invocation of the root graph (:func:`root_run`).
    """
    meta = config.get("metadata") or {}
    conf = config.get("configurable") or {}
    name = agent or NODE_AGENT.get() or messages_agent or meta.get("lc_agent_name")
    step = meta.get("langgraph_step")
    run_id = root_run(config, runtime)
    thread = conf.get("thread_id")
    cmap = conf.get(_CHECKPOINT_MAP) or {}
    CHECKPOINT.set(cmap.get(""))  # for the audit log (each LangGraph task has its own context)
    return Where(
        agent=name if isinstance(name, str) and name else DEFAULT_AGENT,
        thread_id=None if thread is None else str(thread),
        run_id=None if run_id is None else str(run_id),
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
        checkpoint_id=cmap.get(""),
        checkpointed=conf.get(_CHECKPOINTER) is not None,
        resuming=bool(conf.get(_RESUMING)),
    )


def caller_name(state: Any, call_id: str | None) -> str | None:
    """The ``name`` of the AI message in ``state`` that made tool call ``call_id``."""
    messages = state.get("messages") if isinstance(state, Mapping) else state
    if not isinstance(messages, list):
        messages = getattr(state, "messages", None)
        if not isinstance(messages, list):
            return None
    for m in reversed(messages):
        if isinstance(m, AIMessage) and any(tc.get("id") == call_id for tc in m.tool_calls):
            return m.name or None
    return None


def shared_id(state: Any, tc: Mapping[str, Any]) -> str | None:
    """Why the guard cannot decide ``tc`` on its own when the AI message that made it holds
    several calls of its id that differ in tool or arguments (``None`` otherwise).
    Decisions, approvals and results are kept by call id: such calls cannot be told apart.
    Identical calls sharing an id are one call (decided once, run once). The calls are
    compared as the message holds them: a middleware before the guard may rewrite ``tc``."""
    call_id = tc.get("id")
    if not call_id:
        return None
    messages = state.get("messages") if isinstance(state, Mapping) else None
    if not isinstance(messages, list):
        messages = getattr(state, "messages", None)
        if not isinstance(messages, list):
            return None
    for m in reversed(messages):
        if not isinstance(m, AIMessage):
            continue
        same = [c for c in m.tool_calls if c.get("id") == call_id]
        if not same:
            continue
        first = same[0]
        if any(
            c.get("name") != first.get("name") or c.get("args") != first.get("args") for c in same
        ):
            return (
                f"{len(same)} calls in this step share the call id {call_id!r}: the guard "
                "cannot tell which decision belongs to which call"
            )
        return None
    return None


def received_call(tc: Mapping[str, Any], where: Where, tool: BaseTool | None) -> ToolCall:
    """The model's tool call ``tc`` as the guard decides it: with the arguments ``tool``
    will receive (its own schema parses what the model sent; injected arguments left
    out), or unreadable, with the reason, when the guard cannot tell what those are (keys
    the schema does not know, input it rejects, a tool it cannot see)."""
    sent: Any = tc.get("args")
    name = str(tc.get("name") or "")
    args: dict[str, Any] | None
    problem: str | None
    if tool is not None and tool.name != name:
        # Something before the guard put another tool behind the call's name: deciding on
        # the name would let that tool run under another tool's rules.
        args, problem = None, f"the request would run tool {tool.name!r} for a call of {name!r}"
    else:
        args, problem = received(tool, sent, tool_call_id=tc.get("id"))
    return ToolCall(
        tool=name,
        args=sent if args is None else MappingProxyType(args),  # ours: kept without a copy
        agent=where.agent,
        call_id=tc.get("id"),
        run_id=where.run_id,
        thread_id=where.thread_id,
        step=where.step,
        raw_args=sent,  # what the model sent: the call's identity (``identity_args``)
        problem=problem,
    )


def identity_args(call: ToolCall) -> Any:
    """The arguments that identify ``call`` across re-runs of its task: as the model sent
    them when the adapter kept them, else as decided. Parsed arguments are not stable: a
    schema's ``default_factory`` (a request id, a timestamp) makes a new value each parse."""
    if call.raw_args is not None:
        return call.raw_args
    return call.args


def tool_call(tc: Mapping[str, Any], where: Where, message: AgentMessage | None = None) -> ToolCall:
    """A call the guard builds itself (no tool schema applies: a node's hand-off, with the
    ``message`` it carries when the cascade is told)."""
    args: Any = tc.get("args")
    return ToolCall(
        tool=str(tc.get("name") or ""),
        args=args,
        agent=where.agent,
        call_id=tc.get("id"),
        run_id=where.run_id,
        thread_id=where.thread_id,
        step=where.step,
        message=message,
    )
