"""``GuardedToolNode``: a drop-in for LangGraph's ``ToolNode`` that decides every call."""

from __future__ import annotations

import contextlib
import contextvars
from collections import Counter
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphInterrupt
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command

from .._events import ToolCall
from ..guard import Guard
from ..policy._toolcheck import report
from ._drivers import NeedsPerson, deferring_drivers, drivers
from ._gate import ON_DENY, Approvals, Gate, OnDeny, arun_call, run_call
from ._handoffs import HANDOFF_DESTINATION, handback, with_destination
from ._hitl import ToolEdits
from ._ledger import ToolOutput
from ._pending import hold_key
from ._where import Where, caller_name, received_call, where_in_graph

if TYPE_CHECKING:
    from ..rollback import Compensations, Journal

# Decisions taken up front for a step with several calls, by call id (see ``_func``).
_DECIDED: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "guardrails_decided", default=None
)

ToolWrapper = Callable[[ToolCallRequest, Callable[[ToolCallRequest], ToolOutput]], ToolOutput]
AsyncToolWrapper = Callable[
    [ToolCallRequest, Callable[[ToolCallRequest], Awaitable[ToolOutput]]], Awaitable[ToolOutput]
]


class GuardedToolNode(ToolNode):
    """``ToolNode(tools)`` with every call checked by ``guard`` before its tool runs.

    Use it where the graph used ``ToolNode``::

        builder.add_node("tools", GuardedToolNode(tools, guard))

    - ``agent``: the identity the policy sees (default: the ``name`` of the AI message that
      made the calls, else ``"agent"``).
    - ``on_deny``: ``"message"`` gives a denied call back to the model as an error
      ``ToolMessage``; ``"raise"`` ends the run with ``ToolCallDenied``.
    - ``approvals``: ``"interrupt"`` asks a person through LangGraph's ``interrupt()``
      (resume with ``Command(resume=...)``); ``"approver"`` calls the guard's approver;
      ``"auto"`` (default) uses the approver if the guard has one, else an interrupt when the
      graph has a checkpointer. ``approval_timeout`` denies answers that come too late.
    - ``compensations`` / ``journal``: record each side effect with what its undo needs,
      and mark safe points, for :class:`~guardrails_plugin.langgraph.Recovery`.

    - ``wrap_tool_call`` / ``awrap_tool_call``: your own wrapper, run *inside* the guard,
      after the decision: the guard checks at the tool's own start that the call it hands
      the tool is the one decided (tool, call id, arguments) and denies a changed one.
    - ``strict``: the policy is read against ``tools`` when the node is built (rules naming
      no bound tool, tools no rule speaks about, scoped arguments a tool does not take,
      scopes that cannot read an argument's type): each mismatch is a
      ``PolicyToolWarning``, or, with ``strict=True``, a ``PolicyToolError``.

    Several calls in one step: calls no person needs to see run at once; the calls a person
    must approve are listed in one interrupt (``approval_requests`` gives one request per
    call; ``answer`` answers each separately), and run once answered. A resumed step never
    runs a tool a second time, and with a checkpointer each call is claimed in the guard's
    store before it runs: concurrent resumes of one step run each tool once.
    """

    def __init__(
        self,
        tools: Sequence[BaseTool | Callable[..., Any]],
        guard: Guard,
        *,
        agent: str | None = None,
        on_deny: OnDeny = "message",
        approvals: Approvals = "auto",
        approval_timeout: float | None = None,
        compensations: Compensations | None = None,
        journal: Journal | None = None,
        wrap_tool_call: ToolWrapper | None = None,
        awrap_tool_call: AsyncToolWrapper | None = None,
        strict: bool = False,
        **kwargs: Any,
    ) -> None:
        if on_deny not in ON_DENY:
            raise ValueError(f"on_deny must be 'message' or 'raise', found {on_deny!r}")
        if agent is not None and (not isinstance(agent, str) or not agent):
            raise ValueError(f"agent must be a non-empty string or None, found {agent!r}")
        self.gate = Gate(
            guard,
            approvals=approvals,
            approval_timeout=approval_timeout,
            compensations=compensations,
            journal=journal,
        )
        self.guard = guard
        self.agent = agent
        self.on_deny: OnDeny = on_deny
        self._driver, self._adriver = drivers(self.gate)
        self._deferring, self._adeferring = deferring_drivers(self.gate)
        self._inner = wrap_tool_call
        self._ainner = awrap_tool_call
        super().__init__(
            list(tools), wrap_tool_call=self._wrap, awrap_tool_call=self._awrap, **kwargs
        )
        problems = guard.policy.check_tools(self.tools_by_name.values(), agent=agent)
        report(problems, strict=strict, where="GuardedToolNode")

    def __repr__(self) -> str:
        return (
            f"GuardedToolNode(tools={list(self.tools_by_name)!r}, guard={self.guard!r}, "
            f"agent={self.agent!r}, on_deny={self.on_deny!r}, "
            f"approvals={self.gate.approvals!r})"
        )

    # -- several calls in one step ------------------------------------------------------------
    #
    # LangGraph matches resume values to interrupts by their order in a task, and ToolNode
    # runs the calls of a step on parallel threads: interrupts raised there would come in a
    # different order on each run. So a step with several calls is decided here first, in
    # call order. Calls no person needs to see run at once (their results go to the
    # done-ledger, so a resumed step does not run them again); then the calls that need a
    # person are asked together, in one interrupt listing each (answered per call; what is
    # left unanswered is asked again); then the approved calls run.

    def _func(self, input: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        tool_calls, _ = self._parse_input(input)
        if len(tool_calls) < 2:
            return super()._func(input, config, runtime)
        held: dict[str, Any] = {}
        flow = self._step_flow(tool_calls, input, config, runtime, held)
        try:
            op = next(flow)
            while True:
                verb, arg = op
                if verb == "run":
                    result = self._driver.run(arg)
                elif verb == "try":
                    try:
                        result = self._deferring.run(arg)
                    except NeedsPerson:
                        result = None
                else:  # "tools": run the step's tools with these decisions
                    with _deciding(arg):
                        result = super()._func(input, config, runtime)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value
        except GraphInterrupt:
            if held:  # got past the step's hold, interrupted later: do not hold again
                self._driver.run(self.gate.passed_flow(held["key"], held["pauses"]))
            raise

    async def _afunc(self, input: Any, config: RunnableConfig, runtime: Runtime[Any]) -> Any:
        tool_calls, _ = self._parse_input(input)
        if len(tool_calls) < 2:
            return await super()._afunc(input, config, runtime)
        held: dict[str, Any] = {}
        flow = self._step_flow(tool_calls, input, config, runtime, held)
        try:
            op = next(flow)
            while True:
                verb, arg = op
                if verb == "run":
                    result = await self._adriver.arun(arg)
                elif verb == "try":
                    try:
                        result = await self._adeferring.arun(arg)
                    except NeedsPerson:
                        result = None
                else:
                    with _deciding(arg):
                        result = await super()._afunc(input, config, runtime)
                op = flow.send(result)
        except StopIteration as stop:
            return stop.value
        except GraphInterrupt:
            if held:
                await self._adriver.arun(self.gate.passed_flow(held["key"], held["pauses"]))
            raise

    def _step_flow(
        self,
        tool_calls: Sequence[Any],
        input: Any,
        config: RunnableConfig,
        runtime: Runtime[Any],
        held: dict[str, Any],
    ) -> Generator[tuple[str, Any], Any, Any]:
        """A step of several calls, for both drivers. Yields ``("run", gate flow)``,
        ``("try", gate flow)`` (run until it would interrupt: ``None``) and ``("tools",
        decisions)`` (run the step's tools), and returns the step's output."""
        gate = self.gate
        # one kill-switch hold for the step, so that a pause is one interrupt, not one per call
        first_call, first = self._locate(tool_calls[0], input, config, runtime)
        yield ("run", gate.report_flow(handback(input, first_call, gate.guard)))
        hold = hold_key(config, first)
        paused = yield ("run", gate.hold_flow(first.agent, first, hold))
        if first.checkpointed and hold is not None:
            held.update(key=hold, pauses=paused)
        decided: dict[str, Any] = {}
        deferred: list[tuple[ToolCall, Where]] = []
        edits: dict[str, ToolEdits] = {}
        # Decisions are matched to the ToolNode's requests by call id: calls sharing an id
        # in one step cannot be told apart, so none of them runs.
        uses = Counter(tc.get("id") for tc in tool_calls)
        for tc in tool_calls:
            call, where = self._locate(tc, input, config, runtime)
            if call.call_id and uses[call.call_id] > 1:
                call = replace(call, problem=_shared_id(call.call_id, uses[call.call_id]))
            if not call.call_id or (yield ("run", gate.replay_flow(call, where))):
                continue
            edits[str(call.call_id)] = self._edits(tc)
            outcome = yield ("try", gate.decide_flow(call, where, edits[str(call.call_id)]))
            if outcome is None:
                deferred.append((call, where))
            else:
                decided[call.call_id] = (*outcome, call, where)
        if deferred:
            if all(w.checkpointed for _, w in deferred):
                later = {**decided, **{str(c.call_id): _LATER for c, _ in deferred}}
                yield ("tools", later)  # the calls no one must see run now
            asked = yield ("run", gate.bundle_flow(deferred, _bundle_key(hold), edits))
            for call, where in deferred:
                cid = str(call.call_id)
                if cid in asked:
                    decided[cid] = (asked[cid], True, call, where)
                else:  # deferred by a pause that came between the hold and the decision
                    again = gate.decide_flow(call, replace(where, resuming=True), edits.get(cid))
                    decided[cid] = (*(yield ("run", again)), call, where)
            if asked:  # the kill switch may have moved while a person decided
                yield ("run", gate.hold_flow(first.agent, first, _after_key(hold)))
        output = yield ("tools", decided)
        for key in _step_keys(hold, paused or first.resuming, bool(deferred)):
            yield ("run", gate.delete_flow(key))
        return output

    def _edits(self, tc: Any) -> ToolEdits:
        """How a person's edit of ``tc`` is read: by its tool's schema."""
        return ToolEdits(self.tools_by_name.get(str(tc.get("name") or "")), tc.get("args"))

    def _locate(
        self, tc: Any, input: Any, config: RunnableConfig, runtime: Runtime[Any]
    ) -> tuple[Any, Any]:
        named = None if self.agent else caller_name(input, tc.get("id"))
        where = where_in_graph(self.agent, config, runtime, messages_agent=named)
        tool = self.tools_by_name.get(str(tc.get("name") or ""))
        call = received_call(tc, where, tool)
        if tool is not None and HANDOFF_DESTINATION in (tool.metadata or {}):
            call = with_destination(call, tool, input, self.gate.guard)
        return call, where

    # -- one call: the ToolNode hook ---------------------------------------------------------

    def _wrap(
        self, request: ToolCallRequest, execute: Callable[[ToolCallRequest], ToolOutput]
    ) -> ToolMessage | Command[Any]:
        decided = _decided(request)
        if decided is _LATER:
            return _later(request)
        inner = self._inner
        run = execute if inner is None else (lambda r: inner(r, execute))
        return run_call(
            self.gate,
            self._driver,
            request,
            run,
            agent=self.agent,
            on_deny=self.on_deny,
            decided=decided,
        )

    async def _awrap(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], Awaitable[ToolOutput]],
    ) -> ToolMessage | Command[Any]:
        decided = _decided(request)
        if decided is _LATER:
            return _later(request)
        inner = self._ainner
        run = execute  # (LangGraph's own executor: nothing between the guard and the tool)
        if inner is not None:

            async def run(r: ToolCallRequest) -> ToolOutput:
                return await inner(r, execute)

        return await arun_call(
            self.gate,
            self._adriver,
            request,
            run,
            agent=self.agent,
            on_deny=self.on_deny,
            decided=decided,
        )


def _shared_id(call_id: str, uses: int) -> str:
    return (
        f"{uses} calls in this step share the call id {call_id!r}: the guard cannot tell "
        "which decision belongs to which call"
    )


def _bundle_key(hold: str | None) -> str | None:
    return None if hold is None else f"{hold}:approvals"


def _after_key(hold: str | None) -> str | None:
    return None if hold is None else f"{hold}:approved"


def _step_keys(hold: str | None, paused: int, asked: bool) -> list[str]:
    """The step's own pending documents, to delete once the step has run."""
    if hold is None:
        return []
    keys = [hold] if paused else []
    if asked:
        keys += [f"{hold}:approvals", f"{hold}:approved"]
    return keys


_LATER = object()
"""Stands for a call a person must see first: the early run of a step leaves it out."""


@contextlib.contextmanager
def _deciding(decided: dict[str, Any]) -> Iterator[None]:
    token = _DECIDED.set(decided)
    try:
        yield
    finally:
        _DECIDED.reset(token)


def _decided(request: ToolCallRequest) -> Any:
    decided = _DECIDED.get()
    if not decided:
        return None
    call_id = request.tool_call.get("id")
    if not isinstance(call_id, str) or not call_id:
        return None  # (decided in the hook: a call without an id is not decided up front)
    return decided.get(call_id)


def _later(request: ToolCallRequest) -> ToolMessage:
    return ToolMessage(
        content="waiting for a person", tool_call_id=str(request.tool_call.get("id")), name=""
    )
