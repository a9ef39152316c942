"""One guarded tool call inside a LangGraph run: decide, ask a person, run once, remember.

Shared by ``GuardedToolNode``, ``guard_node`` and ``GuardMiddleware``. The logic is a set of
generators that yield the operations they need (guard checks, store reads and writes,
``interrupt``) and are driven by a sync or an async driver (:mod:`._drivers`), as ``Guard``
does with its flows: the two cannot drift apart.

The :class:`Gate` is assembled from the concerns it keeps:

- :mod:`._pending`: deciding, with the pending-interrupt log that makes interrupts replay
  in order across re-runs of a task;
- :mod:`._bundle`: one interrupt for several calls of a step;
- :mod:`._ledger`: around running the tool (safe points, the done-ledger, results, undo
  records);
- :mod:`._where` and :mod:`._handoffs`: where a call happens and who it hands to.

:func:`run_call` / :func:`arun_call` put them together for one call through a ToolNode hook.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import ToolMessage
from langgraph.prebuilt.tool_node import ToolCallRequest

from .._decision import Decision, Effect
from .._events import AgentMessage, ToolCall
from ..guard import Guard
from ._bundle import Bundle
from ._drivers import Op, _AsyncDriver, _Driver
from ._handoffs import HANDOFF_DESTINATION, handback, with_destination
from ._hitl import ToolEdits
from ._ledger import Claim, Ledger, ToolOutput
from ._pending import APPROVALS, Approvals, _pending_key
from ._verify import AT_THE_TOOL, CHANGED_RULE, direct, expect
from ._where import (
    GUARDED_CALL,
    Where,
    caller_name,
    received_call,
    shared_id,
    where_in_graph,
)

if TYPE_CHECKING:
    from ..rollback import Compensations, Journal

OnDeny = Literal["message", "raise"]
ON_DENY: tuple[OnDeny, ...] = ("message", "raise")


def blocked(decision: Decision) -> str:
    """What the model reads when a call is denied: that it did not run, which rule, why."""
    return (
        f"Tool call blocked by the guard; the tool did not run. {decision.for_model().rstrip('.')}. "
        "Do not repeat this call unchanged: stay within the policy, use another tool, "
        "or tell the user what was blocked."
    )


# -- the gate --------------------------------------------------------------------------------


class Gate(Bundle, Ledger):
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

    def refuse_flow(
        self, call: ToolCall, rule: str, reason: str, refund: Decision | None = None
    ) -> Generator[Op, Any, Decision]:
        """The guard's deny of ``call`` for a reason found here (recorded like any decision),
        giving back what ``refund`` charged."""
        refused: Decision = yield ("refuse", (call, rule, reason, {"refund": refund}))
        return refused

    def report_flow(self, message: AgentMessage | None) -> Generator[Op, Any, None]:
        """Tell the guard about a message seen only now (a worker's hand-back). Its decision
        is not applied here: the breaker acts through flags, which the next check sees."""
        if message is not None:
            yield ("check", (message,))


# -- one call through a ToolNode hook ---------------------------------------------------------


def locate(request: ToolCallRequest, agent: str | None, guard: Guard) -> tuple[ToolCall, Where]:
    """The guard's view of a ToolNode request: the call (a hand-off, when the tool is one)
    and where it happens."""
    tc = request.tool_call
    runtime = request.runtime
    config = getattr(runtime, "config", None) or {}
    named = None if agent else caller_name(request.state, tc.get("id"))
    where = where_in_graph(agent, config, runtime, messages_agent=named)
    call = received_call(tc, where, request.tool)
    if request.tool is not None and HANDOFF_DESTINATION in (request.tool.metadata or {}):
        call = with_destination(call, request.tool, request.state, guard)
    shared = shared_id(request.state, tc)
    if shared is not None:
        call = replace(call, problem=shared)
    elif not call.call_id and where.checkpointed:
        call = replace(call, problem=NO_ID)
    return call, where


NO_ID = (
    "a call without an id in a run with a checkpointer: the guard keeps approvals and results "
    "by call id, so it could neither ask about it across a resume nor run it exactly once"
)


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
    flow = _call_flow(gate, request, agent, on_deny, decided, direct(execute))
    try:
        op = next(flow)
        while True:
            verb, arg = op
            if verb != "execute":  # an op of a gate flow: the driver's method of that name
                try:
                    done = getattr(driver, verb)(*arg)
                except Exception as exc:  # the flow may handle it (or it goes on up)
                    op = flow.throw(exc)
                    continue
                op = flow.send(done)
                continue
            step, call_id, check = arg
            token = GUARDED_CALL.set(call_id)
            at = None if check is None else AT_THE_TOOL.set(check)
            try:
                output = execute(step)
            except Exception as exc:  # the flow releases the claim, then re-raises
                op = flow.throw(exc)
                continue
            finally:
                if at is not None:
                    AT_THE_TOOL.reset(at)
                GUARDED_CALL.reset(token)
            op = flow.send(output)
    except StopIteration as stop:
        result: ToolOutput = stop.value
        return result


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
    flow = _call_flow(gate, request, agent, on_deny, decided, direct(execute))
    try:
        op = next(flow)
        while True:
            verb, arg = op
            if verb != "execute":
                method = getattr(driver, "a" + verb, None)
                try:
                    done = await method(*arg) if method else getattr(driver, verb)(*arg)
                except Exception as exc:
                    op = flow.throw(exc)
                    continue
                op = flow.send(done)
                continue
            step, call_id, check = arg
            token = GUARDED_CALL.set(call_id)
            at = None if check is None else AT_THE_TOOL.set(check)
            try:
                output = await execute(step)
            except Exception as exc:
                op = flow.throw(exc)
                continue
            finally:
                if at is not None:
                    AT_THE_TOOL.reset(at)
                GUARDED_CALL.reset(token)
            op = flow.send(output)
    except StopIteration as stop:
        result: ToolOutput = stop.value
        return result


def _call_flow(
    gate: Gate,
    request: ToolCallRequest,
    agent: str | None,
    on_deny: OnDeny,
    decided: Decided | None,
    direct: bool = False,
) -> Generator[Op, Any, ToolOutput]:
    """One call, for both paths. Yields the ops of the gate flows it delegates to (run by
    the driver's method of that name, as ``_Driver.run`` does: one generator, no driver
    loop per flow) and ``("execute", (request, call id, check))`` (run the tool: its output,
    or its exception thrown in here). ``direct``: the hook hands the request straight to
    LangGraph's own executor (``_verify.direct``), so there is no check to ride along
    (``check`` is ``None``).

    The order that makes "exactly once" and "nothing between the decision and the tool":
    replay (a re-run returns the recorded result), decide, claim (atomic in the store: of
    two attempts one runs the tool, the other gets its result), run the tool with the check
    at its own start (``_verify``), record."""
    if decided is None:
        call, where = locate(request, agent, gate.guard)
        if where.resuming:  # (only a re-run can find a recorded result)
            replayed: ToolOutput | None = yield from gate.replay_flow(call, where)
            if replayed is not None:
                return replayed
        back = handback(request.state, call, gate.guard)
        if back is not None:
            yield from gate.report_flow(back)
        edits = ToolEdits(request.tool, request.tool_call.get("args"))
        decision, pending = yield from gate.decide_flow(call, where, edits)
    else:
        decision, pending, call, where = decided
    if gate.journal is not None:  # (safe points and violations go to the journal)
        yield from gate.before_flow(call, where, decision)
    step = apply(request, call, decision, on_deny)
    if isinstance(step, ToolMessage):
        if pending:
            yield from gate.delete_flow(_pending_key(call))
        return step
    claimed: Claim | ToolOutput | None = None
    if where.checkpointed and call.call_id:  # (no ledger without a checkpointer)
        claimed = yield from gate.claim_flow(call, where, decision)
    if claimed is not None and not isinstance(claimed, Claim):  # another attempt ran it
        # (the claim is on the call as the model asked it: an edit is the same call)
        if pending:
            yield from gate.delete_flow(_pending_key(call))
        return claimed
    claim: Claim | None = claimed
    if decision.effect is Effect.MODIFY:
        call = call.with_args(decision.args or {})
    check = None if direct else expect(step, call.agent)
    try:
        output: ToolOutput = yield ("execute", (step, call.call_id, check))
    except Exception:
        if check is None or check.denied is None:
            # The tool raised (or interrupted): it may run again on a retry, as a step
            # that failed does.
            yield from gate.release_flow(claim)
            raise
        output = None  # type: ignore[assignment]
    if check is not None and check.denied is not None:  # a changed call, stopped at the tool
        refund: Decision | None = None
        if not check.reached:  # nothing ran: the call is free again, its charge given back
            yield from gate.release_flow(claim)
            refund = decision
        # (else a wrapper ran the decided call and then a changed one: the claim stays
        # without a result, so the call is never run again)
        refused = yield from gate.refuse_flow(call, CHANGED_RULE, check.denied, refund)
        yield from gate.before_flow(call, where, refused)
        if pending:
            yield from gate.delete_flow(_pending_key(call))
        denied = apply(request, call, refused, on_deny)
        assert isinstance(denied, ToolMessage)
        return denied
    yield from gate.after_flow(call, where, output, pending, claim)
    return output


__all__: Sequence[str] = (
    "APPROVALS",
    "NO_ID",
    "ON_DENY",
    "Approvals",
    "Decided",
    "Gate",
    "OnDeny",
    "ToolOutput",
    "apply",
    "arun_call",
    "blocked",
    "locate",
    "run_call",
)
