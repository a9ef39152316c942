"""One guarded tool call inside a LangGraph run: decide, ask a person, run once, remember.

Shared by ``GuardedToolNode`` and ``GuardMiddleware``. The logic is a generator that yields
the operations it needs (guard checks, store reads and writes, ``interrupt``) and is driven
by a sync or an async driver, as ``Guard`` does with its flows: the two cannot drift apart.

How it keeps its promises across interrupts and restarts
---------------------------------------------------------
LangGraph re-runs a node from its start when it is resumed, and matches resume values to
``interrupt()`` calls by their order in the task. So every interrupt this module raises for
a call is logged, before it is raised, in a small document in the guard's store
(``pending/<thread>/<call id>``): which interrupts (pause, approval) in which order, the
decision that asked (with the budget it charged) and, once a person answered, the final
decision. A re-run replays the log: the same interrupts in the same order, no second check,
no second charge. The writes of an interrupted task are discarded by LangGraph, so this
record cannot live in graph state; it lives next to the checkpoints, in the store.

A call that ran is written to ``done/<thread>/<call id>`` with its result when the run has a
checkpointer. A re-run of the same task (a resume, or ``invoke(None)`` after a crash between
the tool and the checkpoint) returns that result instead of running the tool again.
"""

from __future__ import annotations

import base64
import contextvars
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command, interrupt

from .._approvals import Answer, Approval, ApprovalRequest
from .._context import CHECKPOINT
from .._decision import Decision, Effect
from .._events import DEFAULT_AGENT, AgentMessage, Event, ModelCall, ToolCall, ToolResult
from ..guard import Guard

if TYPE_CHECKING:
    from ..rollback import Compensations, Journal

Approvals = Literal["auto", "interrupt", "approver"]
OnDeny = Literal["message", "raise"]
APPROVALS: tuple[Approvals, ...] = ("auto", "interrupt", "approver")
ON_DENY: tuple[OnDeny, ...] = ("message", "raise")

_MAX_THREADS_REMEMBERED = 10_000
PENDING_PREFIX = "pending/"
DONE_PREFIX = "done/"

_CHECKPOINTER = "__pregel_checkpointer"
_RESUMING = "__pregel_resuming"
_CHECKPOINT_MAP = "checkpoint_map"

_Op = tuple[str, tuple[Any, ...]]

GUARDED_CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardrails_guarded_call", default=None
)
"""The id of the tool call a guard adapter decided and is running now: a callback handler
seeing that call start leaves it alone (it is decided once, by the choke point)."""

HANDOFFS_SEEN: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "guardrails_handoffs_seen", default=None
)
"""Set by ``guard_node`` while its node runs: hand-off tools decided inside the node add
their destination, so the node does not report the same hand-off to the cascade monitor
a second time when it surfaces as the node's ``Command``."""

HANDOFF_DESTINATION = "__handoff_destination"
"""Tool metadata naming the agent a hand-off tool transfers to (langgraph-supervisor,
langgraph-swarm, and anyone's own tools that set it)."""

NODE_AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "guardrails_node_agent", default=None
)
"""The identity ``guard_node(..., agent=...)`` gives everything that runs inside the node
(sub-agents, their model and tool calls), over the names they carry themselves."""


# -- where a call happens --------------------------------------------------------------------


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
    ``agent=``, else the name on the AI message that made the call, else the ``lc_agent_name`` LangChain puts in the metadata, else ``"agent"``. The config
    a node sees holds no run id (LangGraph pops it); the caller's is on ``execution_info``.
    """
    meta = config.get("metadata") or {}
    conf = config.get("configurable") or {}
    name = agent or NODE_AGENT.get() or messages_agent or meta.get("lc_agent_name")
    step = meta.get("langgraph_step")
    info = getattr(runtime, "execution_info", None)
    run_id = getattr(info, "run_id", None) or config.get("run_id")
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


def handoff_call(
    call: ToolCall, recipient: str, content: str, guard: Guard, message_id: str | None = None
) -> ToolCall:
    """``call`` carrying the message it hands to ``recipient``: the guard's cascade monitor
    sees it (with its provenance) when the call is checked."""
    monitor = guard.cascade
    path = monitor.provenance(call.scope_key, call.agent) if monitor is not None else ()
    message = AgentMessage(
        call.agent,
        recipient,
        content,
        run_id=call.run_id,
        thread_id=call.thread_id,
        step=call.step,
        path=path,
        id=message_id or call.call_id,
    )
    return ToolCall(
        call.tool,
        call.args if call.readable else call.raw_args,
        agent=call.agent,
        call_id=call.call_id,
        run_id=call.run_id,
        thread_id=call.thread_id,
        step=call.step,
        message=message,
    )


def destination(tool: Any) -> str | None:
    """The agent a hand-off tool transfers to, from its metadata; None for other tools."""
    meta = getattr(tool, "metadata", None)
    target = meta.get(HANDOFF_DESTINATION) if isinstance(meta, Mapping) else None
    return target if isinstance(target, str) and target else None


def text_of(message: Any) -> str:
    """The text of a message (string content, or the text parts of a list)."""
    content = getattr(message, "content", message)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            p if isinstance(p, str) else str(p.get("text", ""))
            for p in content
            if isinstance(p, str) or (isinstance(p, Mapping) and p.get("type") == "text")
        )
    return ""


def said_with(state: Any, call_id: str | None) -> str:
    """What the AI message that made tool call ``call_id`` says: its text, else its call."""
    messages = state.get("messages") if isinstance(state, Mapping) else state
    if not isinstance(messages, list):
        messages = getattr(state, "messages", None)
        if not isinstance(messages, list):
            return ""
    for m in reversed(messages):
        if isinstance(m, AIMessage):
            for tc in m.tool_calls:
                if tc.get("id") == call_id:
                    return text_of(m) or f"{tc.get('name')}({tc.get('args')})"
    return ""


def with_destination(call: ToolCall, tool: Any, state: Any, guard: Guard) -> ToolCall:
    """``call`` as a hand-off when ``tool`` is a hand-off tool, else unchanged. Marks the
    destination seen for an enclosing ``guard_node``."""
    target = destination(tool)
    if target is None:
        return call
    seen = HANDOFFS_SEEN.get()
    if seen is not None:
        seen.add(target)
    return handoff_call(call, target, said_with(state, call.call_id), guard)


HANDOFF_BACK = "__is_handoff_back"
"""Response metadata langgraph-supervisor puts on the message pair it adds when a worker's
turn ends and control goes back to the supervisor (over a plain edge, not a tool call)."""
_HANDBACK_LOOKBACK = 24


def handback(state: Any, call: ToolCall, guard: Guard) -> AgentMessage | None:
    """The worker's hand-back that gave ``call``'s agent the turn, if the messages show one
    (langgraph-supervisor's hand-back pair): the cascade monitor must see the answer going
    back too, or a supervisor/worker loop looks one-way. Looks at the last few messages
    only; the hand-back's tool-call id makes every report of it count once."""
    if guard.cascade is None or call.call_id is None:
        return None
    messages = state.get("messages") if isinstance(state, Mapping) else state
    if not isinstance(messages, list):
        messages = getattr(state, "messages", None)
        if not isinstance(messages, list):
            return None
    lo = max(0, len(messages) - _HANDBACK_LOOKBACK)
    mine = None
    for i in range(len(messages) - 1, lo - 1, -1):
        m = messages[i]
        if isinstance(m, AIMessage) and any(tc.get("id") == call.call_id for tc in m.tool_calls):
            mine = i
            break
    if mine is None:
        return None
    for i in range(mine - 1, lo - 1, -1):
        m = messages[i]
        if not isinstance(m, AIMessage):
            continue
        if not (m.response_metadata or {}).get(HANDOFF_BACK):
            if m.name == call.agent:
                continue  # the agent's own earlier turns since the hand-back
            return None
        worker = m.name
        if not worker or worker == call.agent or not m.tool_calls:
            return None
        said = ""
        for j in range(i - 1, lo - 1, -1):
            before = messages[j]
            if isinstance(before, AIMessage) and before.name == worker:
                said = text_of(before)
                if said:
                    break
        monitor = guard.cascade
        return AgentMessage(
            worker,
            call.agent,
            said,
            run_id=call.run_id,
            thread_id=call.thread_id,
            step=call.step,
            path=monitor.provenance(call.scope_key, worker),
            id=f"handback:{m.tool_calls[0].get('id')}",
        )
    return None


def tool_call(tc: Mapping[str, Any], where: Where) -> ToolCall:
    args: Any = tc.get("args")
    return ToolCall(
        tool=str(tc.get("name") or ""),
        args=args,
        agent=where.agent,
        call_id=tc.get("id"),
        run_id=where.run_id,
        thread_id=where.thread_id,
        step=where.step,
    )


# -- what the model reads -------------------------------------------------------------------


def blocked(decision: Decision) -> str:
    """What the model reads when a call is denied: that it did not run, which rule, why."""
    return (
        f"Tool call blocked by the guard; the tool did not run. {decision.message().rstrip('.')}. "
        "Do not repeat this call unchanged: stay within the policy, use another tool, "
        "or tell the user what was blocked."
    )


# -- the gate --------------------------------------------------------------------------------


class Gate:
    """The per-call logic every LangGraph adapter shares (see the module docstring)."""

    def __init__(
        self,
        guard: Guard,
        *,
        approvals: Approvals = "auto",
        approval_timeout: float | None = None,
        compensations: Compensations | None = None,
        journal: Journal | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"expected a Guard, found {type(guard).__name__}")
        if approvals not in APPROVALS:
            raise ValueError(f"approvals must be one of {APPROVALS}, found {approvals!r}")
        if approval_timeout is not None and not approval_timeout > 0:
            raise ValueError(f"approval_timeout must be > 0 seconds, found {approval_timeout!r}")
        self.guard = guard
        self.approvals: Approvals = approvals
        self.approval_timeout = approval_timeout
        self.compensations = compensations
        if journal is None and compensations is not None:
            from ..rollback import Journal

            journal = Journal(guard.store)
        self.journal = journal
        self.clock = clock or guard.clock
        # done-ledger entries this process wrote, per thread: (root checkpoint, keys). When a
        # thread moves on to a new checkpoint, the previous step's entries can no longer be
        # needed (a step re-runs only from its own checkpoint) and are deleted.
        self._written: OrderedDict[str, tuple[str | None, list[str]]] = OrderedDict()
        self._written_lock = threading.Lock()

    def interrupts(self, where: Where) -> bool:
        """Ask through ``interrupt()``? ``auto``: when the guard has no approver of its own
        and the run has a checkpointer (LangGraph cannot interrupt without one)."""
        if self.approvals == "auto":
            return self.guard.approver is None and where.checkpointed
        return self.approvals == "interrupt"

    # -- deciding ---------------------------------------------------------------------------

    def decide_flow(
        self, call: ToolCall, where: Where
    ) -> Generator[_Op, Any, tuple[Decision, bool]]:
        """The final decision for ``call`` (allow, modify, respond or deny, or a kill), and
        whether a pending-document was written for it (to delete once the call is done).

        May raise ``GraphInterrupt`` (through the ``interrupt`` op) for a pause or a person.
        """
        if not self.interrupts(where):
            decision: Decision = yield ("decide", (call,))
            return decision, False
        key = _pending_key(call) if call.call_id else None
        memo: dict[str, Any] | None = None
        if key is not None and where.resuming:
            found = yield ("get", (key,))
            memo = dict(found) if isinstance(found, Mapping) else None
        log: list[str] = list(memo["log"]) if memo else []
        i = 0
        while True:
            if i < len(log) and log[i] == "pause":  # replay a pause already answered
                value = yield ("interrupt", (_pause_payload(call, None),))
                i += 1
                if _refused(value):
                    return _refusal(call, value), memo is not None
                continue
            if i < len(log) and log[i] == "approval" and memo is not None:
                asked = Decision.from_doc(memo["asked"])
                asked_at = float(memo["at"])
            else:
                asked = yield ("check", (call,))
                asked_at = self.clock()
                if asked.effect is not Effect.ASK:
                    return asked, memo is not None
                if asked.kind == "control":  # paused: wait for an operator
                    log.append("pause")
                    memo = yield from self._save(key, memo, log)
                    value = yield ("interrupt", (_pause_payload(call, asked),))
                    i += 1
                    if _refused(value):  # a person looked at the held call and said no
                        return _refusal(call, value), memo is not None
                    continue
                log.append("approval")
                memo = yield from self._save(key, memo, log, asked=asked, at=asked_at, call=call)
            value = yield ("interrupt", (self._approval_payload(call, asked, asked_at),))
            break
        i += 1  # past the approval
        if memo is not None and "final" in memo:
            final = Decision.from_doc(memo["final"])
        else:
            if (
                self.approval_timeout is not None
                and self.clock() - asked_at > self.approval_timeout
            ):
                why = f"no answer within {self.approval_timeout:g}s: the approval expired"
                final = yield ("expire", (call, asked, why))
            else:
                final = yield ("resolve", (call, asked, value))
            memo = yield from self._save(key, memo, log, final=final)
        # The kill switch may have moved while a person decided: a kill denies the approved
        # call, a pause holds it (pauses after the approval are logged and replayed too).
        while final.allowed:
            if i < len(log):
                yield ("interrupt", (_pause_payload(call, None),))
                i += 1
                continue
            stop: Decision = yield ("controls", (call,))
            if stop.effect is Effect.ALLOW:
                break
            if stop.effect is Effect.DENY:
                yield ("release", (final,))
                final = _replace_tool(stop, call)
                memo = yield from self._save(key, memo, log, final=final)
                break
            log.append("pause")
            memo = yield from self._save(key, memo, log)
            i += 1
            yield ("interrupt", (_pause_payload(call, stop),))
        return final, key is not None

    def report_flow(self, message: AgentMessage | None) -> Generator[_Op, Any, None]:
        """Tell the guard about a message seen only now (a worker's hand-back). Its decision
        is not applied here: the breaker acts through flags, which the next check sees."""
        if message is not None:
            yield ("check", (message,))

    def hold_flow(self, agent: str, where: Where, key: str | None) -> Generator[_Op, Any, int]:
        """Stop here while the kill switch says so: raise ``RunKilled`` for a kill; for a
        pause, interrupt (resumable once lifted) or raise ``RunPaused`` where the run cannot
        be interrupted. ``key`` (stable across re-runs of the task) names the log of pauses
        already answered, replayed so that later interrupts in the task stay aligned with
        their resume values. Returns how many pauses the log holds: the caller deletes the
        log once its task has finished, never before (and on a resumed run in any case: the
        log may say the task got past the hold, ``passed_flow``)."""
        probe = ToolCall("", {}, agent=agent, thread_id=where.thread_id, run_id=where.run_id)
        replay = 0
        passed = False
        if key is not None and where.resuming:
            found = yield ("get", (key,))
            if isinstance(found, Mapping):
                replay = int(found.get("pauses", 0))
                passed = bool(found.get("passed"))
        for _ in range(replay):
            yield ("interrupt", (_pause_payload(probe, None),))
        if passed:
            # The task got past this hold before and was interrupted later (an approval,
            # a held hand-off): holding again now would take the resume value that belongs
            # to that later interrupt. Later checks in the task see the kill switch anyway.
            return replay
        pauses = replay
        while True:
            stop: Decision = yield ("controls", (probe,))
            if stop.effect is Effect.ALLOW:
                return pauses
            if stop.effect is Effect.DENY or not where.checkpointed:
                raise stop.error()
            pauses += 1
            if key is not None:
                yield ("put", (key, {"pauses": pauses}))
            yield ("interrupt", (_pause_payload(probe, stop),))

    def passed_flow(self, key: str | None, pauses: int) -> Generator[_Op, Any, None]:
        """Note that the task got past its hold (``hold_flow``) and was then interrupted."""
        if key is not None:
            yield ("put", (key, {"pauses": pauses, "passed": True}))

    def delete_flow(self, key: str) -> Generator[_Op, Any, None]:
        yield ("delete", (key,))

    def _remember(self, where: Where, key: str) -> list[str]:
        """Note a done-ledger entry; return the entries it makes stale (see ``__init__``)."""
        thread = where.thread_id or where.run_id or "-"
        with self._written_lock:
            seen = self._written.get(thread)
            stale: list[str] = []
            if seen is not None and seen[0] == where.checkpoint_id:
                seen[1].append(key)
            else:
                if seen is not None:
                    stale = seen[1]
                self._written[thread] = (where.checkpoint_id, [key])
            self._written.move_to_end(thread)
            while len(self._written) > _MAX_THREADS_REMEMBERED:
                stale.extend(self._written.popitem(last=False)[1][1])
            return stale

    def _save(
        self,
        key: str | None,
        memo: dict[str, Any] | None,
        log: list[str],
        *,
        asked: Decision | None = None,
        at: float | None = None,
        final: Decision | None = None,
        call: ToolCall | None = None,
    ) -> Generator[_Op, Any, dict[str, Any] | None]:
        if key is None:
            return memo
        doc = dict(memo or {})
        doc["log"] = list(log)
        if asked is not None:
            doc["asked"] = asked.to_doc()
            doc["at"] = at
        if call is not None:  # what waits, for operators reading the store (CLI, dashboard)
            doc["call"] = {
                "tool": call.tool,
                "args": _jsonable(dict(call.args)),
                "agent": call.agent,
                "call_id": call.call_id,
                "thread_id": call.thread_id,
            }
        if final is not None:
            doc["final"] = final.to_doc()
        yield ("put", (key, doc))
        return doc

    def bundle_flow(
        self, items: Sequence[tuple[ToolCall, Where]], key: str | None
    ) -> Generator[_Op, Any, dict[str, Decision]]:
        """Ask a person about several calls of one step at once: one interrupt of type
        ``"approvals"`` lists them all; it is answered per call (``{call_id: answer}``) or
        with one answer for all. Calls left unanswered are asked again in a further
        interrupt. The calls' pending documents (written when they were deferred) hold the
        asked decisions and, once answered, the finals; the step's document (``key``) logs
        which calls each interrupt listed, so a re-run replays them in order. Returns the
        final decision of each call whose pending document holds an asked decision."""
        memos: dict[str, dict[str, Any]] = {}
        by_id: dict[str, ToolCall] = {}
        for call, _ in items:
            found = yield ("get", (_pending_key(call),))
            if isinstance(found, Mapping) and "asked" in found:
                memos[str(call.call_id)] = dict(found)
                by_id[str(call.call_id)] = call
        rounds: list[list[str]] = []
        if key is not None:
            step = yield ("get", (key,))
            if isinstance(step, Mapping):
                rounds = [list(r) for r in step.get("rounds", ())]
        answers: dict[str, Any] = {}
        r = 0
        while True:
            for cid, value in answers.items():
                memo = memos[cid]
                if "final" in memo:
                    continue
                call = by_id[cid]
                asked = Decision.from_doc(memo["asked"])
                final: Decision
                if (
                    self.approval_timeout is not None
                    and self.clock() - float(memo["at"]) > self.approval_timeout
                ):
                    why = f"no answer within {self.approval_timeout:g}s: the approval expired"
                    final = yield ("expire", (call, asked, why))
                else:
                    final = yield ("resolve", (call, asked, value))
                memo["final"] = final.to_doc()
                yield ("put", (_pending_key(call), memo))
            waiting = [cid for cid, memo in memos.items() if "final" not in memo]
            if not waiting:
                break
            if r < len(rounds):
                listed = [cid for cid in rounds[r] if cid in memos]
            else:
                listed = waiting
                rounds.append(listed)
                if key is not None:
                    yield ("put", (key, {"rounds": rounds}))
            payload = {
                "type": "approvals",
                "requests": [
                    self._approval_payload(
                        by_id[cid],
                        Decision.from_doc(memos[cid]["asked"]),
                        float(memos[cid]["at"]),
                    )
                    for cid in listed
                ],
            }
            value = yield ("interrupt", (payload,))
            r += 1
            for cid in listed:
                picked = _pick(value, cid)
                if picked is not _MISSING:
                    answers.setdefault(cid, picked)
        return {cid: Decision.from_doc(memo["final"]) for cid, memo in memos.items()}

    def _approval_payload(self, call: ToolCall, asked: Decision, at: float) -> dict[str, Any]:
        payload = {"type": "approval", **ApprovalRequest(call, asked).to_dict(), "asked_at": at}
        if self.approval_timeout is not None:
            payload["expires_at"] = at + self.approval_timeout
        return payload

    # -- around running the tool ------------------------------------------------------------

    def replay_flow(self, call: ToolCall, where: Where) -> Generator[_Op, Any, ToolOutput | None]:
        """The result of ``call`` if it already ran in an earlier attempt of this task."""
        if not (where.resuming and where.checkpointed and call.call_id):
            return None
        done = yield ("get", (_done_key(call),))
        if not isinstance(done, Mapping):
            return None
        replayed: ToolOutput = _loads(done)
        return replayed

    def before_flow(
        self, call: ToolCall, where: Where, decision: Decision
    ) -> Generator[_Op, Any, None]:
        """Mark the checkpoint before a risky call as a safe point; record violations."""
        journal = self.journal
        if journal is None or where.thread_id is None:
            return
        if decision.effect is Effect.DENY:
            if decision.kind != "control":
                yield ("violation", (call, where, decision))
            return
        risky = (
            decision.effect is not Effect.ALLOW
            or decision.kind == "approval"
            or (self.compensations is not None and call.tool in self.compensations)
        )
        if risky and where.checkpoint_id is not None:
            yield ("safe_point", (call, where, decision))

    def after_flow(
        self, call: ToolCall, where: Where, output: Any, pending: bool
    ) -> Generator[_Op, Any, None]:
        """Record results (taint, token budgets), the done-ledger and the undo record."""
        ledger = where.checkpointed and call.call_id is not None
        wanted = self.guard.wants_results(call.agent, call.tool)
        comps = self.compensations
        undo = comps is not None and call.tool in comps
        results = tool_results(call, output) if wanted or undo else []
        # The undo record first: a crash after it and before the ledger makes a re-run
        # run the tool again (two effects, both on record); the other order could leave a
        # side effect that ran, will not run again, and that no rollback knows about.
        if (
            undo
            and comps is not None
            and self.journal is not None
            and where.thread_id is not None
            and not any(r.is_error for r in results)
        ):
            data = comps.capture(call.tool, dict(call.args), _plain(output))
            yield ("effect", (call, where, data))
        if ledger:
            key = _done_key(call)
            yield ("put", (key, _dumps(call.tool, output)))
            for stale in self._remember(where, key):
                yield ("delete", (stale,))
        if wanted:
            for r in results:
                yield ("record", (r,))
        if pending:
            yield ("delete", (_pending_key(call),))


def hold_key(config: Mapping[str, Any], where: Where) -> str | None:
    """Where the pauses of a node task are logged: stable across re-runs of the task."""
    task = (config.get("configurable") or {}).get("__pregel_task_id")
    if not task:
        return None
    return f"{PENDING_PREFIX}{where.thread_id or where.run_id or '-'}/node:{task}"


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``repr`` (the store keeps JSON documents)."""
    import json

    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def pending_key(call: ToolCall) -> str:
    """Where the interrupts the gate raised for ``call`` are logged."""
    return _pending_key(call)


def _pending_key(call: ToolCall) -> str:
    return f"{PENDING_PREFIX}{call.scope_key}/{call.call_id}"


def _done_key(call: ToolCall) -> str:
    return f"{DONE_PREFIX}{call.scope_key}/{call.call_id}"


_MISSING = object()


def _pick(value: Any, call_id: str) -> Any:
    """A call's answer in the resume value of an ``"approvals"`` interrupt: the entry for
    its id in a mapping of call ids, or the whole value when it is one answer for all."""
    if isinstance(value, Mapping) and not ("type" in value or "answer" in value):
        return value.get(call_id, _MISSING)
    return value


def _replace_tool(decision: Decision, call: ToolCall) -> Decision:
    return Decision(
        decision.effect,
        decision.rule,
        decision.reason,
        tool=call.tool,
        agent=call.agent,
        kind=decision.kind,
    )


def _refused(value: Any) -> bool:
    """Whether the value a paused call was resumed with refuses it: ``False``, a reject
    ``Approval``, or ``{"answer": "reject", ...}``. Anything else (``True``, ``None``) lets
    it go on, re-checked."""
    if value is False:
        return True
    if isinstance(value, Approval):
        return value.answer is Answer.REJECT
    return isinstance(value, Mapping) and str(value.get("answer", "")).lower() == "reject"


def _refusal(call: ToolCall, value: Any) -> Decision:
    message = ""
    if isinstance(value, Approval):
        message = value.message
    elif isinstance(value, Mapping):
        message = str(value.get("message") or "")
    return Decision(
        Effect.DENY,
        "pause",
        "a person refused the held call" + (f": {message}" if message else ""),
        tool=call.tool,
        agent=call.agent,
        kind="approval",
        response=message or None,
    )


def _pause_payload(call: ToolCall, decision: Decision | None) -> dict[str, Any]:
    return {
        "type": "paused",
        "agent": call.agent,
        "tool": call.tool,
        "call_id": call.call_id,
        "thread_id": call.thread_id,
        "reason": decision.reason if decision else "paused by an operator",
        "resume": (
            "lift the pause (Controls.resume) and resume with Command(resume=True); "
            "Command(resume=False) refuses the held call"
        ),
    }


_SERDE = JsonPlusSerializer()


def _dumps(tool: str, output: Any) -> dict[str, Any]:
    """A done-ledger entry: the tool's whole output. A plain text ToolMessage (the common
    case) as its fields; anything else (Commands, artifacts, content blocks) serialized the
    way LangGraph's checkpointers serialize state."""
    if (
        type(output) is ToolMessage
        and isinstance(output.content, str)
        and output.artifact is None
        and not output.additional_kwargs
    ):
        return {
            "tool": tool,
            "message": {
                "content": output.content,
                "tool_call_id": output.tool_call_id,
                "name": output.name,
                "status": output.status,
                "id": output.id,
            },
        }
    kind, data = _SERDE.dumps_typed(output)
    return {"tool": tool, "type": kind, "data": base64.b64encode(data).decode("ascii")}


def _loads(doc: Mapping[str, Any]) -> Any:
    message = doc.get("message")
    if isinstance(message, Mapping):
        return ToolMessage(**message)
    return _SERDE.loads_typed((str(doc["type"]), base64.b64decode(doc["data"])))


def _plain(output: Any) -> Any:
    if isinstance(output, ToolMessage):
        return output.content
    return output


def tool_results(call: ToolCall, output: Any) -> list[ToolResult]:
    """The ToolMessages a tool produced (also inside Commands), as results to record."""
    items: list[Any]
    if isinstance(output, ToolMessage):
        items = [output]
    elif isinstance(output, Command):
        items = _command_messages(output)
    elif isinstance(output, list):
        items = [m for o in output for m in tool_results_items(o)]
    else:
        items = []
    # A hand-off tool's Command carries the conversation so far (langgraph-swarm and
    # langgraph-supervisor pass the whole history on): only this call's own messages are
    # its results, not the earlier tool results travelling with it.
    return [
        ToolResult(
            tool=call.tool,
            content=str(m.text),
            agent=call.agent,
            call_id=m.tool_call_id or call.call_id,
            run_id=call.run_id,
            thread_id=call.thread_id,
            is_error=m.status == "error",
        )
        for m in items
        if not m.tool_call_id or m.tool_call_id == call.call_id
    ]


def tool_results_items(o: Any) -> list[ToolMessage]:
    if isinstance(o, ToolMessage):
        return [o]
    if isinstance(o, Command):
        return _command_messages(o)
    return []


def _command_messages(command: Any) -> list[ToolMessage]:
    update = command.update
    values: list[Any] = []
    if isinstance(update, Mapping):
        values = [update.get("messages")]
    elif isinstance(update, list | tuple):
        values = [
            p[1] for p in update if isinstance(p, tuple) and len(p) == 2 and p[0] == "messages"
        ]
    found: list[ToolMessage] = []
    for v in values:
        if v is None:
            continue
        for m in v if isinstance(v, list | tuple) else [v]:
            if isinstance(m, ToolMessage):
                found.append(m)
    return found


# -- drivers -----------------------------------------------------------------------------------


class _Driver:
    """Runs a gate flow: each yielded op is a method of the same name here."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.guard = gate.guard
        self.store = gate.guard.store

    def run(self, flow: Generator[_Op, Any, Any]) -> Any:
        try:
            op = next(flow)
            while True:
                name, args = op
                op = flow.send(getattr(self, name)(*args))
        except StopIteration as stop:
            return stop.value

    def interrupt(self, payload: Mapping[str, Any]) -> Any:
        return interrupt(payload)

    def decide(self, call: ToolCall) -> Decision:
        return self.guard.decide(call)

    def check(self, call: Event) -> Decision:
        return self.guard.check(call)

    def resolve(self, call: ToolCall, asked: Decision, value: Any) -> Decision:
        return self.guard.resolve(call, asked, value)

    def expire(self, call: ToolCall, asked: Decision, why: str) -> Decision:
        return self.guard.expire(call, asked, why)

    def release(self, decision: Decision) -> None:
        self.guard.release(decision)

    def controls(self, call: ToolCall) -> Decision:
        return self.guard.check(ModelCall(agent=call.agent, thread_id=call.thread_id))

    def record(self, result: ToolResult) -> None:
        self.guard.record(result)

    def get(self, key: str) -> Any:
        return self.store.get(key)

    def put(self, key: str, value: Any) -> None:
        self.store.put(key, value)

    def delete(self, key: str) -> None:
        self.store.delete(key)

    def violation(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        self.gate.journal.mark_violation(**_violation_fields(call, where, decision))

    def safe_point(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        self.gate.journal.mark_safe_point(**_safe_point_fields(call, where, decision))

    def effect(self, call: ToolCall, where: Where, data: Mapping[str, Any]) -> None:
        assert self.gate.journal is not None
        assert where.thread_id is not None
        self.gate.journal.record_effect(
            where.thread_id, where.checkpoint_id, where.checkpoint_ns, call, data
        )


class _AsyncDriver(_Driver):
    async def arun(self, flow: Generator[_Op, Any, Any]) -> Any:
        try:
            op = next(flow)
            while True:
                name, args = op
                method = getattr(self, "a" + name, None)
                result = await method(*args) if method else getattr(self, name)(*args)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value

    async def adecide(self, call: ToolCall) -> Decision:
        return await self.guard.adecide(call)

    async def acheck(self, call: Event) -> Decision:
        return await self.guard.acheck(call)

    async def aresolve(self, call: ToolCall, asked: Decision, value: Any) -> Decision:
        return await self.guard.aresolve(call, asked, value)

    async def aexpire(self, call: ToolCall, asked: Decision, why: str) -> Decision:
        return await self.guard.aexpire(call, asked, why)

    async def arelease(self, decision: Decision) -> None:
        await self.guard.arelease(decision)

    async def acontrols(self, call: ToolCall) -> Decision:
        return await self.guard.acheck(ModelCall(agent=call.agent, thread_id=call.thread_id))

    async def arecord(self, result: ToolResult) -> None:
        await self.guard.arecord(result)

    async def aget(self, key: str) -> Any:
        return await self.store.aget(key)

    async def aput(self, key: str, value: Any) -> None:
        await self.store.aput(key, value)

    async def adelete(self, key: str) -> None:
        await self.store.adelete(key)

    async def aviolation(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        await self.gate.journal.amark_violation(**_violation_fields(call, where, decision))

    async def asafe_point(self, call: ToolCall, where: Where, decision: Decision) -> None:
        assert self.gate.journal is not None
        await self.gate.journal.amark_safe_point(**_safe_point_fields(call, where, decision))

    async def aeffect(self, call: ToolCall, where: Where, data: Mapping[str, Any]) -> None:
        assert self.gate.journal is not None
        assert where.thread_id is not None
        await self.gate.journal.arecord_effect(
            where.thread_id, where.checkpoint_id, where.checkpoint_ns, call, data
        )


def _violation_fields(call: ToolCall, where: Where, decision: Decision) -> dict[str, Any]:
    return {
        "thread_id": where.thread_id,
        "checkpoint_id": where.checkpoint_id,
        "checkpoint_ns": where.checkpoint_ns,
        "agent": call.agent,
        "tool": call.tool,
        "rule": decision.rule,
        "reason": decision.reason,
    }


def _safe_point_fields(call: ToolCall, where: Where, decision: Decision) -> dict[str, Any]:
    return {
        "thread_id": where.thread_id,
        "checkpoint_id": where.checkpoint_id,
        "checkpoint_ns": where.checkpoint_ns,
        "step": where.step,
        "agent": call.agent,
        "tool": call.tool,
        "reason": f"before {call.tool!r} ({decision.effect}: {decision.rule})",
    }


def drivers(gate: Gate) -> tuple[_Driver, _AsyncDriver]:
    return _Driver(gate), _AsyncDriver(gate)


class NeedsPerson(Exception):
    """Raised by a deferring driver where a flow would interrupt (internal)."""


class _Deferring(_Driver):
    def interrupt(self, payload: Mapping[str, Any]) -> Any:
        raise NeedsPerson


class _AsyncDeferring(_AsyncDriver):
    def interrupt(self, payload: Mapping[str, Any]) -> Any:
        raise NeedsPerson


def deferring_drivers(gate: Gate) -> tuple[_Driver, _AsyncDriver]:
    """Drivers that stop a flow where it would interrupt, raising ``NeedsPerson``."""
    return _Deferring(gate), _AsyncDeferring(gate)


# -- one call through a ToolNode hook ---------------------------------------------------------


def locate(request: ToolCallRequest, agent: str | None, guard: Guard) -> tuple[ToolCall, Where]:
    """The guard's view of a ToolNode request: the call (a hand-off, when the tool is one)
    and where it happens."""
    tc = request.tool_call
    runtime = request.runtime
    config = getattr(runtime, "config", None) or {}
    named = None if agent else caller_name(request.state, tc.get("id"))
    where = where_in_graph(agent, config, runtime, messages_agent=named)
    call = tool_call(tc, where)
    if request.tool is not None and HANDOFF_DESTINATION in (request.tool.metadata or {}):
        call = with_destination(call, request.tool, request.state, guard)
    return call, where


def apply(
    request: ToolCallRequest, call: ToolCall, decision: Decision, on_deny: OnDeny
) -> ToolCallRequest | ToolMessage:
    """The request to run, or the message that stands in for the tool. Raises for a kill,
    and for any deny when ``on_deny="raise"``."""
    if decision.effect is Effect.ALLOW:
        return request
    if decision.effect is Effect.MODIFY:
        return request.override(tool_call={**request.tool_call, "args": dict(decision.args or {})})
    call_id = call.call_id or ""
    if decision.effect is Effect.RESPOND:
        return ToolMessage(content=decision.response or "", tool_call_id=call_id, name=call.tool)
    if on_deny == "raise" or decision.kind == "control":
        raise decision.error()
    return ToolMessage(
        content=blocked(decision), status="error", tool_call_id=call_id, name=call.tool
    )


ToolOutput = ToolMessage | Command[Any]
Decided = tuple[Decision, bool, ToolCall, Where]
"""A call decided before the hook: decision, pending-document written, call, where."""


def run_call(
    gate: Gate,
    driver: _Driver,
    request: ToolCallRequest,
    execute: Callable[[ToolCallRequest], ToolOutput],
    *,
    agent: str | None,
    on_deny: OnDeny,
    decided: Decided | None = None,
) -> ToolOutput:
    """Decide (unless ``decided``), run at most once, record. The sync path."""
    if decided is None:
        call, where = locate(request, agent, gate.guard)
        replayed: ToolOutput | None = driver.run(gate.replay_flow(call, where))
        if replayed is not None:
            return replayed
        driver.run(gate.report_flow(handback(request.state, call, gate.guard)))
        decision, pending = driver.run(gate.decide_flow(call, where))
    else:
        decision, pending, call, where = decided
    driver.run(gate.before_flow(call, where, decision))
    step = apply(request, call, decision, on_deny)
    if isinstance(step, ToolMessage):
        if pending:
            driver.delete(_pending_key(call))
        return step
    if decision.effect is Effect.MODIFY:
        call = call.with_args(decision.args or {})
    token = GUARDED_CALL.set(call.call_id)
    try:
        output: ToolOutput = execute(step)  # if the tool raises, it ran: nothing to give back
    finally:
        GUARDED_CALL.reset(token)
    driver.run(gate.after_flow(call, where, output, pending))
    return output


async def arun_call(
    gate: Gate,
    driver: _AsyncDriver,
    request: ToolCallRequest,
    execute: Callable[[ToolCallRequest], Awaitable[ToolOutput]],
    *,
    agent: str | None,
    on_deny: OnDeny,
    decided: Decided | None = None,
) -> ToolOutput:
    """The async twin of :func:`run_call`."""
    if decided is None:
        call, where = locate(request, agent, gate.guard)
        replayed: ToolOutput | None = await driver.arun(gate.replay_flow(call, where))
        if replayed is not None:
            return replayed
        await driver.arun(gate.report_flow(handback(request.state, call, gate.guard)))
        decision, pending = await driver.arun(gate.decide_flow(call, where))
    else:
        decision, pending, call, where = decided
    await driver.arun(gate.before_flow(call, where, decision))
    step = apply(request, call, decision, on_deny)
    if isinstance(step, ToolMessage):
        if pending:
            await driver.adelete(_pending_key(call))
        return step
    if decision.effect is Effect.MODIFY:
        call = call.with_args(decision.args or {})
    token = GUARDED_CALL.set(call.call_id)
    try:
        output: ToolOutput = await execute(step)
    finally:
        GUARDED_CALL.reset(token)
    await driver.arun(gate.after_flow(call, where, output, pending))
    return output


__all__: Sequence[str] = (
    "APPROVALS",
    "ON_DENY",
    "Approvals",
    "Gate",
    "OnDeny",
    "Where",
    "blocked",
    "caller_name",
    "drivers",
    "tool_call",
    "tool_results",
    "where_in_graph",
    "locate",
    "apply",
    "run_call",
    "arun_call",
)
