"""The guard inside an OpenAI Agents SDK app: function tools, hand-offs, model turns.

Why this file is long: the steps of one call (decided in ``needs_approval``, applied in the
guardrail, checked at the invoker, an approval claimed and resolved) and of one hand-off
share the run's state and the same few guard verbs; read together they show that no path
reaches a tool without a decision. The run's state and store documents (``_run``), the
hooks (``_hooks``) and the argument reading (``_args``) live apart.

``AgentsGuard.wrap`` copies an ``Agent`` (and, recursively, the agents it hands off to) and
hooks the guard into the SDK's own extension points; the SDK's run loop is untouched:

- **each function tool** gets a ``needs_approval`` callable, a tool input guardrail (first in
  the tool's list) and a thin invoker around its own. For a new call the SDK first asks
  ``needs_approval`` (with the arguments parsed as the tool parses them): that is where the
  guard decides, once (``Guard.check``, or ``Guard.decide`` when the guard has an approver of
  its own). An ``ask`` answers "needs approval", so the SDK interrupts the run with a
  ``ToolApprovalItem`` (``result.interruptions``), resumable from ``result.to_state()`` and
  from a serialized ``RunState``; the asked decision waits in the store under
  ``agents-sdk/pending/<thread>/<call id>``. Any other decision waits in memory for the
  guardrail, which applies it with the SDK's own behaviours: ``reject_content`` (the model
  reads the reason) or ``raise_exception`` (``on_deny="raise"``); a call the kill switch
  stops is rejected and the run ends at its next model turn with ``RunKilled`` /
  ``RunPaused``. For an approved call the guardrail takes the pending
  decision exactly once (``agents-sdk/done/<thread>/<call id>``, ``Store.put_if``: a second
  resume of the same saved state finds it taken and is denied, rule ``exactly-once``), has
  the engine apply the person's answer (``Guard.resolve``; an edit is re-checked there) and
  checks the kill switch again. The invoker runs the tool only with a decision the guardrail
  let through for this very call (arguments included), with the edited arguments for an
  edit, and records the result (taint, result tokens, the cascade monitor).
- **each hand-off** is checked as a call of the tool ``handoff`` with ``{"to": <agent>}``
  by the agent handing off (as ``guard_node`` checks LangGraph hand-offs), carrying the
  ``AgentMessage`` the cascade monitor sees, with its causal parent and generation. A
  hand-off the guard does not allow raises its decision's error: the SDK has no way to
  refuse one hand-off and go on.
- **each model turn** is held at the kill switch first (``AgentHooks.on_llm_start``,
  chained before the agent's own hooks); the same hook settles calls a person rejected
  through ``RunState.reject`` (the engine records the rejection and gives the budget back).

The SDK's approval flow can approve or reject a call, not edit it or answer in its place:
``AgentsGuard.answer`` (and ``answer``) does both by leaving the person's answer next to the
pending decision and approving the item; the guard then re-checks the edit and runs the tool
with the edited arguments, or returns the person's response in the tool's place.

The adapter translates; every verdict comes from a ``Guard`` verb.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import itertools
import json
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from agents import (
    Agent,
    FunctionTool,
    Handoff,
    RunContextWrapper,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)
from agents import handoff as make_handoff
from agents.items import ToolApprovalItem
from agents.run_state import RunState
from agents.tool_context import ToolContext

from .._approvals import Answer, Approval
from .._decision import Decision, Effect
from .._events import AgentMessage, ModelCall, ModelUsage, ToolCall, ToolResult
from ..guard import Guard
from ._args import parse_json, received
from ._hooks import Hooks
from ._run import (
    PENDING,
    Run,
    Ticket,
    always_key,
    call_doc,
    call_from_doc,
    done_key,
    item_call_id,
    pending_key,
    shown_key,
)

OnDeny = Literal["reject", "raise"]
GUARDRAIL_NAME = "guardrails_plugin"
HANDOFF_TOOL = "handoff"
_SYNC_MARK = "__agents_sync_function_tool__"
_HANDOFF_ANSWERS = (Answer.APPROVE, Answer.REJECT)


_Memo = dict[int, tuple[Agent[Any], Agent[Any]]]
Thread = str | Callable[[Any], "str | None"] | None


class AgentsGuard:
    """A ``Guard`` applied to OpenAI Agents SDK agents.

    ``thread`` names the conversation a run belongs to (what budgets ``per="thread"``, taint
    and the kill switch's thread flags are kept by): a string, or a callable given the run's
    context object (``Runner.run(..., context=...)``). Keep it stable across a save and
    restore of a ``RunState``. Without it, each run is its own scope (a fresh run id; a run
    restored from a saved state is a new run for ``per="run"`` budgets).

    ``on_deny``: ``"reject"`` (the model reads the reason instead of the tool's output, and
    the run goes on) or ``"raise"`` (``ToolInputGuardrailTripwireTriggered``, carrying the
    decision as ``output.output_info``). The kill switch always raises (``RunKilled``,
    ``RunPaused``).

    ``unguarded`` names non-function tools (hosted tools the guard cannot see the calls of)
    the caller accepts to leave unguarded; any other such tool, and MCP servers, make
    ``wrap`` refuse the agent. An agent tool (``Agent.as_tool``) is decided as a function
    tool, but the nested run it starts is guarded only when it runs a guarded agent
    (``guard_agent(worker, guard).as_tool(...)``): one made from an unguarded agent is
    refused too, unless named in ``unguarded`` (its call decided, what it runs not).
    """

    def __init__(
        self,
        guard: Guard,
        *,
        thread: Thread = None,
        on_deny: OnDeny = "reject",
        unguarded: Iterable[str] = (),
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"AgentsGuard needs a Guard, found {type(guard).__name__}")
        if on_deny not in ("reject", "raise"):
            raise ValueError(f"on_deny must be 'reject' or 'raise', found {on_deny!r}")
        if thread is not None and not isinstance(thread, str) and not callable(thread):
            raise TypeError(f"thread must be a string or a callable, found {thread!r}")
        self.guard = guard
        self.thread = thread
        self.on_deny: OnDeny = on_deny
        self.unguarded = frozenset(unguarded)
        self._runs: dict[int, Run] = {}
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"AgentsGuard({self.guard!r}, on_deny={self.on_deny!r})"

    # -- wrapping ---------------------------------------------------------------------------

    def wrap(self, agent: Agent[Any]) -> Agent[Any]:
        """A guarded copy of ``agent`` and of every agent it can hand off to (the originals
        are left as they are). Wrapping a guarded agent returns it unchanged."""
        if not isinstance(agent, Agent):
            raise TypeError(f"wrap needs an agents.Agent, found {type(agent).__name__}")
        return self._wrap(agent, {})

    def _guarded(self, agent: Agent[Any]) -> bool:
        hooks = agent.hooks
        return isinstance(hooks, Hooks) and hooks._owner is self

    def _wrap(self, agent: Agent[Any], memo: _Memo) -> Agent[Any]:
        """``agent`` guarded. ``memo``: the agents of this team wrapped so far (a team's
        hand-offs may form cycles), by the identity of the original, which it keeps alive:
        an id is not reused while the memo lives."""
        if self._guarded(agent):
            return agent
        hit = memo.get(id(agent))
        if hit is not None:
            return hit[1]
        if getattr(agent, "mcp_servers", None):
            raise TypeError(
                f"agent {agent.name!r} has MCP servers: the guard cannot see their tools' "
                "calls; convert them to function tools to guard them"
            )
        tools: list[Any] = []
        for tool in agent.tools:
            if isinstance(tool, FunctionTool):
                self._check_agent_tool(tool, agent.name)
                tools.append(self._tool(tool, agent.name))
            elif getattr(tool, "name", None) in self.unguarded:
                tools.append(tool)
            else:
                raise TypeError(
                    f"agent {agent.name!r} has a {type(tool).__name__} "
                    f"{getattr(tool, 'name', '')!r} the guard cannot see the calls of; pass its "
                    "name in unguarded= to leave it unguarded"
                )
        clone = agent.clone(tools=tools, hooks=Hooks(self, agent.hooks), handoffs=[])
        memo[id(agent)] = (agent, clone)
        clone.handoffs = [self._handoff(h, agent.name, memo) for h in agent.handoffs]
        return clone

    def _check_agent_tool(self, tool: FunctionTool, agent: str) -> None:
        """An agent made a tool (``Agent.as_tool``) runs a nested run of that agent, which
        the tool's call does not reach: its tools are guarded only when the agent it runs is
        a guarded one (the call of the tool itself is decided as any function tool's)."""
        if not getattr(tool, "_is_agent_tool", False) or tool.name in self.unguarded:
            return
        inner = getattr(tool, "_agent_instance", None)
        hooks = getattr(inner, "hooks", None)
        if isinstance(inner, Agent) and isinstance(hooks, Hooks):
            return
        raise TypeError(
            f"agent {agent!r} has the agent tool {tool.name!r} (Agent.as_tool), whose agent "
            f"{getattr(inner, 'name', inner)!r} is not guarded: its tools would run unguarded. "
            "Make the tool from the guarded agent (guard_agent(agent, guard).as_tool(...)), or "
            "pass its name in unguarded= to leave what it runs unguarded"
        )

    def _tool(self, tool: FunctionTool, agent: str) -> FunctionTool:
        new = copy.copy(tool)
        inner = tool.on_invoke_tool
        theirs = tool.needs_approval

        async def needs_approval(ctx: RunContextWrapper[Any], params: Any, call_id: str) -> bool:
            return await self._needs_approval(new, agent, theirs, ctx, params, call_id)

        async def invoke(ctx: ToolContext[Any], raw: str) -> Any:
            return await self._invoke(new, agent, inner, ctx, raw)

        if getattr(inner, _SYNC_MARK, False):
            setattr(invoke, _SYNC_MARK, True)
        mine = ToolInputGuardrail[Any](guardrail_function=self._guardrail, name=GUARDRAIL_NAME)
        new.needs_approval = needs_approval
        new.on_invoke_tool = invoke
        new.tool_input_guardrails = [mine, *(tool.tool_input_guardrails or [])]
        return new

    def _handoff(
        self, h: Agent[Any] | Handoff[Any, Any], source: str, memo: _Memo
    ) -> Handoff[Any, Any]:
        if isinstance(h, Agent):
            target = self._wrap(h, memo)
            base: Handoff[Any, Any] = make_handoff(target)
            inner = base.on_invoke_handoff
            target_agent: Agent[Any] | None = target
        elif isinstance(h, Handoff):
            base = h
            inner = h.on_invoke_handoff
            ref = h._agent_ref() if h._agent_ref is not None else None
            target_agent = self._wrap(ref, memo) if isinstance(ref, Agent) else None
        else:
            raise TypeError(f"a hand-off must be an Agent or a Handoff, found {type(h).__name__}")
        name, recipient = base.tool_name, base.agent_name

        async def invoke(ctx: RunContextWrapper[Any], input_json: str) -> Any:
            await self._check_handoff(ctx, source, recipient, name)
            agent = await inner(ctx, input_json)
            return self._wrap(agent, memo) if isinstance(agent, Agent) else agent

        new = dataclasses.replace(base, on_invoke_handoff=invoke)
        if target_agent is not None:
            new._agent_ref = weakref.ref(target_agent)
        return new

    # -- runs -------------------------------------------------------------------------------

    def _run(self, ctx: RunContextWrapper[Any]) -> Run:
        usage = ctx.usage  # shared by a run's context and every ToolContext made from it
        key = id(usage)
        run = self._runs.get(key)
        if run is None:
            thread = self.thread
            name = thread(ctx.context) if callable(thread) else thread
            run = Run(uuid.uuid4().hex, name if isinstance(name, str) and name else None)
            self._runs[key] = run
            weakref.finalize(usage, self._runs.pop, key, None)
        return run

    def _call(
        self, tool: FunctionTool, agent: str, run: Run, call_id: str, params: Any
    ) -> ToolCall:
        args, problem = received(tool.params_json_schema, params, tool.name)
        return ToolCall(
            tool.name,
            args,
            agent=agent,
            call_id=call_id,
            run_id=run.run_id,
            thread_id=run.thread_id,
            problem=problem,
        )

    def _raw_call(
        self, tool: FunctionTool, agent: str, run: Run, call_id: str, raw: str
    ) -> tuple[ToolCall, Any]:
        parsed, problem = parse_json(raw)
        if problem is not None:
            call = ToolCall(
                tool.name,
                {},
                agent=agent,
                call_id=call_id,
                run_id=run.run_id,
                thread_id=run.thread_id,
                problem=problem,
            )
            return call, parsed
        return self._call(tool, agent, run, call_id, parsed), parsed

    async def _decide(self, call: ToolCall) -> Decision:
        if self.guard.approver is not None:
            return await self.guard.adecide(call)
        return await self.guard.acheck(call)

    # -- a tool call ----------------------------------------------------------------------

    async def _needs_approval(
        self,
        tool: FunctionTool,
        agent: str,
        theirs: Any,
        ctx: RunContextWrapper[Any],
        params: Any,
        call_id: str,
    ) -> bool:
        run = self._run(ctx)
        call = self._call(tool, agent, run, call_id, params)
        # (The SDK refuses a response whose calls share an id, and runs identical calls
        # sharing one once: each id comes here once per turn.)
        decision = await self._decide(call)
        if decision.effect is Effect.ASK and decision.kind != "control":
            refused = await self._ask(run, call, decision)
            if refused is None:
                return True
            decision = refused
        run.decided[call_id] = Ticket(call, decision, params)
        if decision.allowed and await _their_approval(theirs, ctx, params, call_id):
            # The tool asks a person for reasons of its own: the SDK interrupts; the approved
            # call is decided afresh when it resumes, so this decision's budget goes back.
            # A person sees this very call: their approval answers an ask made then.
            del run.decided[call_id]
            await self.guard.arelease(decision)
            await self.guard.store.aput(shown_key(run.scope, call_id), {"at": self.guard.clock()})
            return True
        return False

    async def _ask(self, run: Run, call: ToolCall, asked: Decision) -> Decision | None:
        """Leave the asked decision in the store for the resumed run; a refusal when the
        call id was used before (its pending or done document exists)."""
        store = self.guard.store
        key = pending_key(run.scope, call.call_id)
        done = await store.aget(done_key(run.scope, call.call_id))
        doc = {
            "state": "asked",
            "asked": asked.to_doc(),
            "call": call_doc(call),
            "at": self.guard.clock(),
        }
        if done is None and await store.aput_if(key, doc, expected=None):
            return None
        return await self.guard.arefuse(
            call,
            "exactly-once",
            f"call id {call.call_id!r} was asked about before: a reused id is not run again",
            refund=asked,
        )

    async def _guardrail(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        run = self._run(ctx)
        tool = _function_tool(data.agent, ctx.tool_name)
        agent = data.agent.name
        call_id, raw = ctx.tool_call_id, ctx.tool_arguments
        if tool is None:
            call = ToolCall(
                ctx.tool_name, {}, agent=agent, call_id=call_id, run_id=run.run_id,
                thread_id=run.thread_id, problem="the tool is not one of the agent's tools",
            )  # fmt: skip
            return self._apply(run, await self._decide(call), call, raw)
        ticket = run.decided.pop(call_id, None)
        if ticket is not None:
            parsed, _ = parse_json(raw)
            if ticket.call.tool == tool.name and ticket.params == parsed:
                return self._apply(run, ticket.decision, ticket.call, raw)
            call, _ = self._raw_call(tool, agent, run, call_id, raw)
            denial = await self.guard.arefuse(
                call,
                "changed-after-decision",
                "the call reaching the tool is not the call decided",
                refund=ticket.decision,
            )
            return self._apply(run, denial, call, raw)
        call, _ = self._raw_call(tool, agent, run, call_id, raw)
        status = ctx.is_tool_approved(tool.name, call_id)
        if status is None:
            # Guardrails run before the approval (ToolExecutionConfig): the SDK is about to
            # interrupt. A call the guard asked about waits; any other call (the SDK asks a
            # person on its own, e.g. for arguments it cannot parse) is denied now if the
            # guard denies it, else decided afresh once approved.
            if await self.guard.store.aget(pending_key(run.scope, call_id)) is not None:
                return ToolGuardrailFunctionOutput.allow()
            decision = await self._decide(call)
            if decision.allowed or decision.effect is Effect.ASK:
                await self.guard.arelease(decision)
                return ToolGuardrailFunctionOutput.allow()
            return self._apply(run, decision, call, raw)
        # A call id the SDK never saw is approved only by a standing approval (always_approve)
        always = ctx.is_tool_approved(tool.name, f"{GUARDRAIL_NAME}-{uuid.uuid4().hex}") is True
        return self._apply(run, await self._approved(tool, run, call, always), call, raw)

    async def _approved(
        self, tool: FunctionTool, run: Run, call: ToolCall, always: bool
    ) -> Decision:
        """The final decision for a call a person approved in the SDK (``always``: the tool
        holds a standing approval, ``always_approve``)."""
        store = self.guard.store
        assert call.call_id is not None
        doc = await store.aget(pending_key(run.scope, call.call_id))
        taken = await store.aget(done_key(run.scope, call.call_id))
        if taken is not None or (doc is not None and doc.get("state") != "asked"):
            return await self.guard.arefuse(
                call,
                "exactly-once",
                "this approved call was taken already (another resume of the same state)",
            )
        if doc is None:
            # The guard asked no one about this call: the tool's own needs_approval did (a
            # person saw it), or the SDK asked no one (a standing approval, or arguments it
            # could not parse, which the guard denies). Decide now.
            shown = await store.adelete(shown_key(run.scope, call.call_id))
            decision = await self._decide(call)
            if decision.effect is Effect.ASK and decision.kind != "control":
                decision = await self._unasked(run, call, decision, shown)
            return await self._recheck(call, decision)
        if not await self._take(run, call.call_id, doc):
            return await self.guard.arefuse(
                call, "exactly-once", "this approved call was taken by another resume"
            )
        asked = Decision.from_doc(doc["asked"])
        answer = Approval.parse(doc["answer"]) if doc.get("answer") else Approval.approve()
        if answer.answer is Answer.EDIT:
            _, problem = received(tool.params_json_schema, dict(answer.args or {}), tool.name)
            if problem is not None:
                return await self.guard.arefuse(
                    call, "malformed-call", f"the edited call: {problem}", refund=asked
                )
        final = await self.guard.aresolve(call, asked, answer)
        if always and answer.answer is Answer.APPROVE and final.allowed:
            # "Always approve" answers this ask rule for the tool's later calls, no other
            await store.aadd_members(always_key(run, call.agent, call.tool), [asked.rule])
        return await self._recheck(call, final)

    async def _unasked(self, run: Run, call: ToolCall, asked: Decision, shown: bool) -> Decision:
        """An ask for a call the SDK approved without the guard asking: answered by the
        person who saw this call (the tool's own ``needs_approval`` asked), or by a standing
        approval given in answer to the same ask rule; any other ask is refused, since the
        SDK asks no one about a tool approved "always" and the person never saw this one."""
        store = self.guard.store
        if shown:
            approval = Approval.approve(approver="openai-agents")
        elif asked.rule in await store.amembers(always_key(run, call.agent, call.tool)):
            approval = Approval.approve(approver="openai-agents (always)")
        else:
            return await self.guard.arefuse(
                call,
                asked.rule,
                f"{asked.reason}, and the standing approval of {call.tool!r} (always_approve) "
                "was given for other rules: such a call is approved one at a time",
                refund=asked,
            )
        return await self.guard.aresolve(call, asked, approval)

    async def _recheck(self, call: ToolCall, final: Decision) -> Decision:
        """The kill switch may have moved while a person decided: a kill denies the
        approved call (its budget given back); a pause raises ``RunPaused``."""
        if not final.allowed:
            return final
        stop = await self.guard.acheck(ModelCall(agent=call.agent, thread_id=call.thread_id))
        if stop.effect is Effect.ALLOW:
            return final
        if stop.effect is Effect.DENY:
            return await self.guard.arefuse(
                call, stop.rule, stop.reason, kind=stop.kind, refund=final
            )
        raise stop.error()

    async def _take(self, run: Run, call_id: str, doc: Mapping[str, Any]) -> bool:
        """Claim an asked call for this resume, exactly once across resumes and processes."""
        store = self.guard.store
        claim = {"at": self.guard.clock(), "by": uuid.uuid4().hex}
        if not await store.aput_if(done_key(run.scope, call_id), claim, expected=None):
            return False
        await store.adelete(pending_key(run.scope, call_id))
        return True

    def _apply(
        self, run: Run, decision: Decision, call: ToolCall, raw: str
    ) -> ToolGuardrailFunctionOutput:
        """The decision in the SDK's idiom."""
        if decision.allowed:
            send = raw
            if decision.effect is Effect.MODIFY and decision.args is not None:
                send = json.dumps(dict(decision.args))
            assert call.call_id is not None
            run.tickets[call.call_id] = Ticket(call, decision, raw=raw, send=send)
            return ToolGuardrailFunctionOutput.allow(output_info=decision)
        if decision.effect is Effect.RESPOND:
            return ToolGuardrailFunctionOutput.reject_content(
                decision.response or "", output_info=decision
            )
        if decision.kind == "control" or decision.effect is Effect.ASK:
            # The kill switch: the call does not run, and the run stops at its next model
            # turn (the hook raises ``RunKilled`` / ``RunPaused`` there), or where the agent
            # ends, when its ``tool_use_behavior`` makes a tool's output the final output.
            # Raised here, the SDK would wrap the error in a ``UserError``.
            if decision.kind == "control":
                run.stopped = decision
            return ToolGuardrailFunctionOutput.reject_content(
                f"Error: {decision.for_model()}", output_info=decision
            )
        if self.on_deny == "raise":
            return ToolGuardrailFunctionOutput.raise_exception(output_info=decision)
        return ToolGuardrailFunctionOutput.reject_content(
            f"Error: {decision.for_model()}", output_info=decision
        )

    async def _invoke(
        self,
        tool: FunctionTool,
        agent: str,
        inner: Callable[[ToolContext[Any], str], Any],
        ctx: ToolContext[Any],
        raw: str,
    ) -> Any:
        run = self._run(ctx)
        ticket = run.tickets.pop(ctx.tool_call_id, None)
        if ticket is None or ticket.call.tool != tool.name or ticket.raw != raw:
            call, _ = self._raw_call(tool, agent, run, ctx.tool_call_id, raw)
            why = (
                "the tool was reached without the guard's decision"
                if ticket is None
                else "the call reaching the tool is not the call decided"
            )
            denial = await self.guard.arefuse(
                call,
                "changed-after-decision",
                why,
                refund=ticket.decision if ticket is not None else None,
            )
            if self.on_deny == "raise":
                raise denial.error()
            return f"Error: {denial.for_model()}"
        result = inner(ctx, ticket.send if ticket.send is not None else raw)
        if inspect.isawaitable(result):
            result = await result
        call = ticket.call
        if self.guard.wants_results(agent, tool.name):
            await self.guard.arecord(
                ToolResult(
                    tool.name,
                    result if isinstance(result, str) else str(result),
                    agent=agent,
                    call_id=call.call_id,
                    run_id=run.run_id,
                    thread_id=run.thread_id,
                )
            )
        return result

    # -- hand-offs and model turns ---------------------------------------------------------

    async def _check_handoff(
        self, ctx: RunContextWrapper[Any], source: str, recipient: str, tool_name: str
    ) -> None:
        run = self._run(ctx)
        call_id = run.calls.get(source, {}).get(tool_name) or f"handoff-{next(self._ids)}"
        monitor = self.guard.cascade
        scope = run.thread_id or run.run_id
        parent = run.started_by
        message = AgentMessage(
            source,
            recipient,
            run.said.get(source) or f"{tool_name}()",
            run_id=run.run_id,
            thread_id=run.thread_id,
            path=monitor.provenance(scope, source) if monitor is not None else (),
            id=call_id,
            parent=parent.id if parent is not None else None,
            generation=(parent.generation or 0) + 1 if parent is not None else 0,
        )
        call = ToolCall(
            HANDOFF_TOOL,
            {"to": recipient},
            agent=source,
            call_id=call_id,
            run_id=run.run_id,
            thread_id=run.thread_id,
            message=message,
        )
        decision = await self.guard.adecide(
            call,
            answers=_HANDOFF_ANSWERS,
            limited_because="a hand-off can be approved or rejected, not edited",
        )
        if not decision.allowed:
            raise decision.error()
        run.started_by = message

    async def _model_turn(self, ctx: RunContextWrapper[Any], agent: Agent[Any], sent: Any) -> None:
        """Before a model turn: rejections settled, then the kill switch and the model
        budgets (``Guard.check`` of a ``ModelCall``); anything but an allow raises."""
        run = self._run(ctx)
        run.sent = sent
        await self._settle_rejections(run, ctx)
        # (no tool list: the record of a held turn reads as the LangChain adapter's does)
        stop = await self.guard.acheck(
            ModelCall(agent=agent.name, run_id=run.run_id, thread_id=run.thread_id)
        )
        if stop.effect is not Effect.ALLOW:
            raise stop.error()
        run.stopped = None

    async def _agent_end(self, ctx: RunContextWrapper[Any], agent: Agent[Any]) -> None:
        """Where an agent ends with a final output: if the kill switch stopped a call since
        its last model turn (a ``tool_use_behavior`` that ends the run on a tool's output,
        here the rejection), the run ends with the kill switch's error, as it would have at
        the next turn, unless the stop was lifted meanwhile."""
        run = self._run(ctx)
        if run.stopped is None:
            return
        run.stopped = None
        still = await self.guard.acheck(
            ModelCall(agent=agent.name, run_id=run.run_id, thread_id=run.thread_id)
        )
        if still.kind == "control" and not still.allowed:
            raise still.error()

    async def _settle_rejections(self, run: Run, ctx: RunContextWrapper[Any]) -> None:
        """Calls asked about that a person rejected through ``RunState.reject``: the engine
        records the rejection and gives the budget back. (Skipped while the run's context
        holds no rejection at all, the usual case.)"""
        approvals = getattr(ctx, "_approvals", None)
        if isinstance(approvals, dict) and not any(
            getattr(record, "rejected", True) for record in approvals.values()
        ):
            return
        docs = await self.guard.store.ascan(f"{PENDING}{run.scope}/")
        for doc in docs.values():
            call_doc = doc.get("call") or {}
            call_id, tool = call_doc.get("call_id"), call_doc.get("tool")
            if doc.get("state") != "asked" or not call_id or not tool:
                continue
            if ctx.is_tool_approved(tool, call_id) is not False:
                continue
            if await self._take(run, call_id, doc):
                call = call_from_doc(call_doc, run)
                asked = Decision.from_doc(doc["asked"])
                await self.guard.aresolve(call, asked, Approval.reject())

    async def _seen_response(
        self, ctx: RunContextWrapper[Any], agent: Agent[Any], response: Any
    ) -> None:
        """After a model turn: the tokens it used go to the model budgets (``of="model"``);
        what the agent said and the ids of the calls it made are noted (a hand-off's message
        and id)."""
        run = self._run(ctx)
        if self.guard.wants_usage(agent.name):
            await self.guard.arecord_usage(_usage(agent, response, run))
        self._note(run, agent.name, response)

    def _note(self, run: Run, agent: str, response: Any) -> None:
        texts: list[str] = []
        calls: dict[str, str] = {}
        for item in getattr(response, "output", None) or ():
            kind = getattr(item, "type", None)
            if kind == "function_call":
                calls.setdefault(str(item.name), str(item.call_id))
            elif kind == "message":
                for part in getattr(item, "content", None) or ():
                    text = getattr(part, "text", None)
                    if isinstance(text, str):
                        texts.append(text)
        run.calls[agent] = calls
        if texts:
            run.said[agent] = " ".join(texts)

    # -- a person's answer ----------------------------------------------------------------

    def answer(self, state: RunState[Any, Any], item: ToolApprovalItem, approval: Any) -> None:
        """Answer an interruption the guard asked for: approve, edit (re-checked, run with
        the new arguments), reject or respond (the response goes to the model in the
        tool's place). ``approval`` is an ``Approval``, a bool or a dict
        (``Approval.parse``). Then resume with ``Runner.run(agent, state)``."""
        answer = Approval.parse(approval)
        context = state._context
        if context is None:
            raise ValueError("the RunState has no context to answer in")
        run = self._run(context)
        call_id = item_call_id(item)
        key = pending_key(run.scope, call_id)
        store = self.guard.store
        doc = store.get(key)
        if doc is None or doc.get("state") != "asked":
            raise ValueError(
                f"call {call_id!r} is not waiting for the guard's approval (answered already, "
                "or asked by the SDK for reasons of its own: use state.approve/reject)"
            )
        if answer.answer is Answer.REJECT:
            claim = {"at": self.guard.clock(), "by": uuid.uuid4().hex}
            if store.put_if(done_key(run.scope, call_id), claim, expected=None):
                store.delete(key)
                call = call_from_doc(doc["call"], run)
                self.guard.resolve(call, Decision.from_doc(doc["asked"]), answer)
            state.reject(item, rejection_message=answer.message or None)
            return
        updated = dict(doc)
        updated["answer"] = {
            "type": str(answer.answer),
            "args": None if answer.args is None else dict(answer.args),
            "message": answer.message,
            "approver": answer.approver,
        }
        if not store.put_if(key, updated, expected=doc):
            raise ValueError(f"call {call_id!r} was answered concurrently")
        state.approve(item)


def _usage(agent: Agent[Any], response: Any, run: Run) -> ModelUsage:
    """What a model turn used, from the SDK's usage; counted with tiktoken (``estimated``)
    when the model reported none."""
    model = agent.model
    name = model if isinstance(model, str) else getattr(model, "model", None)
    name = name if isinstance(name, str) and name else type(model).__name__
    usage = getattr(response, "usage", None)
    tokens_in = int(getattr(usage, "input_tokens", 0) or 0)
    tokens_out = int(getattr(usage, "output_tokens", 0) or 0)
    estimated = tokens_in == tokens_out == 0
    if estimated:
        from .._tokens import count_tokens

        said = [
            getattr(part, "text", "") or ""
            for item in getattr(response, "output", None) or ()
            for part in getattr(item, "content", None) or ()
        ]
        tokens_in = count_tokens(json.dumps(run.sent, default=str))
        tokens_out = count_tokens(" ".join(said))
    return ModelUsage(
        name,
        tokens_in,
        tokens_out,
        agent=agent.name,
        run_id=run.run_id,
        thread_id=run.thread_id,
        estimated=estimated,
    )


async def _their_approval(
    theirs: Any, ctx: RunContextWrapper[Any], params: Any, call_id: str
) -> bool:
    """The tool's own ``needs_approval`` (a bool or a possibly async callable)."""
    if isinstance(theirs, bool):
        return theirs
    if callable(theirs):
        value = theirs(ctx, params, call_id)
        if inspect.isawaitable(value):
            value = await value
        return bool(value)
    return True  # unreadable setting: ask


def _function_tool(agent: Any, name: str) -> FunctionTool | None:
    for tool in getattr(agent, "tools", None) or ():
        if isinstance(tool, FunctionTool) and tool.name == name:
            return tool
    return None
