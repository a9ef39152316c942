"""``GuardedTools``: the tool-running half of a plain ``openai`` loop, with every call decided
by the guard.

The logic for one model answer is written once, as a generator (:meth:`GuardedTools._flow`)
yielding the operations it needs (guard verbs, running a tool), driven by a sync driver
(:meth:`GuardedTools.run`) and an async one (:meth:`GuardedTools.arun`), as the engine's own
flows are: the two paths cannot drift apart.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .._decision import Decision, Effect
from .._events import DEFAULT_AGENT, ModelCall, ModelUsage, ToolCall, ToolResult
from ..guard import Guard
from ._answers import Answer, RawCall, read_answer, sent_text
from ._tools import FunctionTool, parse_arguments

__all__ = ["GuardedTools", "ToolOutcome", "ToolOutputs", "blocked"]

OnDeny = Literal["message", "raise"]
_Op = tuple[str, tuple[Any, ...]]
_Flow = Generator[_Op, Any, "ToolOutputs"]


def blocked(decision: Decision) -> str:
    """What the model reads when a call is denied: that it did not run, which rule, why (the
    same words the LangChain adapter's error ``ToolMessage`` carries)."""
    return (
        f"Tool call blocked by the guard; the tool did not run. {decision.for_model().rstrip('.')}. "
        "Do not repeat this call unchanged: stay within the policy, use another tool, "
        "or tell the user what was blocked."
    )


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What became of one tool call: the guard's ``decision``, whether the tool ``ran``, and
    the ``output`` sent back to the model."""

    call_id: str
    tool: str
    decision: Decision
    output: str
    ran: bool
    is_error: bool = False


class ToolOutputs(list[dict[str, Any]]):
    """The tool outputs to send back, one per call in the answer's order, in the shape of the
    API the answer came from: ``{"role": "tool", ...}`` messages for Chat Completions,
    ``{"type": "function_call_output", ...}`` items for the Responses API. ``outcomes``
    says what the guard decided for each. Empty when the answer called no tool (the loop
    is done)."""

    outcomes: tuple[ToolOutcome, ...]

    def __init__(self, items: Iterable[dict[str, Any]], outcomes: Sequence[ToolOutcome]) -> None:
        super().__init__(items)
        self.outcomes = tuple(outcomes)

    def __repr__(self) -> str:
        shown = ", ".join(f"{o.tool}: {o.decision.effect}" for o in self.outcomes)
        return f"ToolOutputs([{shown}])"


class GuardedTools:
    """The user's tools, run only as the guard decides. One per conversation loop (a run);
    :meth:`bind` gives one for another thread or run sharing the tools.

    ``tools``: plain functions (their signature is the schema, see :func:`function_tool`) or
    :class:`FunctionTool` objects. ``agent`` and ``thread_id`` are the identity the policy
    and the kill switch see; ``run_id`` is this loop's run (``per="run"`` budgets; default:
    a fresh id). A denied call comes back to the model as an error output naming the rule
    and the reason (``on_deny="raise"``: raises ``ToolCallDenied`` / ``BudgetExceeded``
    instead); the kill switch always raises (``RunKilled``, ``RunPaused``).

    A loop::

        tools = GuardedTools(guard, [read_file, send_email], agent="support", thread_id=tid)
        while True:
            tools.before_model()                      # the kill switch, model budgets
            answer = client.chat.completions.create(
                model="gpt-4o-mini", messages=messages, tools=tools.tools()
            )
            messages.append(answer.choices[0].message)
            outputs = tools.run(answer)               # decide, run, outputs to send back
            if not outputs:
                break
            messages.extend(outputs)
    """

    def __init__(
        self,
        guard: Guard,
        tools: Iterable[FunctionTool | Callable[..., Any]],
        *,
        agent: str = DEFAULT_AGENT,
        thread_id: str | None = None,
        run_id: str | None = None,
        on_deny: OnDeny = "message",
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"expected a Guard, found {type(guard).__name__}")
        if on_deny not in ("message", "raise"):
            raise ValueError(f"on_deny must be 'message' or 'raise', found {on_deny!r}")
        registry: dict[str, FunctionTool] = {}
        for t in tools:
            tool = t if isinstance(t, FunctionTool) else FunctionTool.from_function(t)
            if tool.name in registry:
                raise ValueError(f"two tools are called {tool.name!r}")
            registry[tool.name] = tool
        self.guard = guard
        self.registry = registry
        self.agent = agent
        self.thread_id = thread_id
        self.run_id = run_id or uuid.uuid4().hex
        self.on_deny: OnDeny = on_deny
        self._ledger = _Ledger()

    def __repr__(self) -> str:
        where = f", thread_id={self.thread_id!r}" if self.thread_id else ""
        return f"GuardedTools({sorted(self.registry)}, agent={self.agent!r}{where})"

    def bind(
        self,
        *,
        agent: str | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
    ) -> GuardedTools:
        """The same tools for another agent, thread or run (a fresh run id by default)."""
        other = object.__new__(GuardedTools)
        other.__dict__.update(self.__dict__)
        other.agent = agent or self.agent
        other.thread_id = thread_id if thread_id is not None else self.thread_id
        other.run_id = run_id or uuid.uuid4().hex
        other._ledger = _Ledger()
        return other

    # -- before the model ---------------------------------------------------------------

    def tools(self, api: Literal["chat", "responses"] = "chat") -> list[dict[str, Any]]:
        """The ``tools=`` parameter for ``chat.completions.create`` (``api="chat"``) or
        ``responses.create``: the tools the agent may ever call (the others hidden)."""
        shown = self.guard.visible_tools(self.agent, list(self.registry))
        return self._params(shown, api)

    async def atools(self, api: Literal["chat", "responses"] = "chat") -> list[dict[str, Any]]:
        shown = await self.guard.avisible_tools(self.agent, list(self.registry))
        return self._params(shown, api)

    def _params(self, shown: list[str], api: str) -> list[dict[str, Any]]:
        if api not in ("chat", "responses"):
            raise ValueError(f"api must be 'chat' or 'responses', found {api!r}")
        tools = [self.registry[n] for n in shown]
        return [t.chat_param() if api == "chat" else t.responses_param() for t in tools]

    def before_model(self) -> None:
        """Call before each model call: raises ``RunKilled`` / ``RunPaused`` while the kill
        switch stops this agent or thread, ``BudgetExceeded`` once a model budget is used up."""
        decision = self.guard.check(self._model_call())
        if not decision.allowed:
            raise decision.error()

    async def abefore_model(self) -> None:
        decision = await self.guard.acheck(self._model_call())
        if not decision.allowed:
            raise decision.error()

    def _model_call(self) -> ModelCall:
        # no tool list, as the LangChain adapter's hold: the same audit record for a stop
        return ModelCall(self.agent, run_id=self.run_id, thread_id=self.thread_id)

    # -- after the model ----------------------------------------------------------------

    def run(self, response: Any, *, sent: Any = None) -> ToolOutputs:
        """Decide every tool call in ``response`` (a ``ChatCompletion``, the chunks of a
        finished stream, or a Responses API ``Response``), one by one in order, run the
        allowed ones, and return the outputs to send back. The answer's ``usage`` is counted
        against model budgets first (``sent``, what you sent, is counted with tiktoken only
        when the answer reports no usage).

        Calling it again with the same answer (a retry after the kill switch, a raised deny,
        a failure) runs nothing twice: a call that ran gets its output again, a call whose
        tool started and never finished is denied (``exactly-once``), usage is not counted
        twice."""
        answer = read_answer(response)
        for raw in answer.calls:
            tool = self.registry.get(raw.name) if isinstance(raw.name, str) else None
            if tool is not None and tool.is_async:
                raise TypeError(f"tool {tool.name!r} is async: use arun()")
        flow = self._flow(answer, sent)
        guard = self.guard
        try:
            op = next(flow)
            while True:
                verb, args = op
                if verb == "execute":
                    result: Any = _execute(*args)
                elif verb == "usage":
                    result = guard.record_usage(*args)
                elif verb == "decide":
                    result = guard.decide(*args)
                elif verb == "refuse":
                    call, rule, reason, refund = args
                    result = guard.refuse(call, rule, reason, refund=refund)
                else:  # record
                    result = guard.record(*args)
                op = flow.send(result)
        except StopIteration as stop:
            outputs: ToolOutputs = stop.value
            return outputs
        finally:
            flow.close()  # an attempt that stopped part way settles its calls (see _flow)

    async def arun(self, response: Any, *, sent: Any = None) -> ToolOutputs:
        """:meth:`run` for async code: async tools awaited, sync tools on a worker thread."""
        flow = self._flow(read_answer(response), sent)
        guard = self.guard
        try:
            op = next(flow)
            while True:
                verb, args = op
                if verb == "execute":
                    result: Any = await _aexecute(*args)
                elif verb == "usage":
                    result = await guard.arecord_usage(*args)
                elif verb == "decide":
                    result = await guard.adecide(*args)
                elif verb == "refuse":
                    call, rule, reason, refund = args
                    result = await guard.arefuse(call, rule, reason, refund=refund)
                else:
                    result = await guard.arecord(*args)
                op = flow.send(result)
        except StopIteration as stop:
            outputs: ToolOutputs = stop.value
            return outputs
        finally:
            flow.close()  # an attempt that stopped part way settles its calls (see _flow)

    # -- the flow of one answer ---------------------------------------------------------

    def _flow(self, answer: Answer, sent: Any) -> _Flow:
        guard = self.guard
        ledger = self._ledger
        claims: list[tuple[tuple[str, ...], _Claim]] = []
        try:
            usage_key = ("usage", answer.id)
            if guard.wants_usage(self.agent) and not (answer.id and usage_key in ledger):
                yield ("usage", (self._usage(answer, sent),))
                if answer.id:
                    ledger.put(usage_key, _Claim(done=True))
            ids = Counter(c.call_id for c in answer.calls)
            items: list[dict[str, Any]] = []
            outcomes: list[ToolOutcome] = []
            for raw in answer.calls:
                key = _key(answer, raw) if ids[raw.call_id] == 1 else None
                mine = _Claim()
                prior = ledger.claim(key, mine) if key is not None else mine
                if prior is not mine and prior.outcome is not None:
                    # this very call of this very answer ran (or was answered) already: a
                    # retry of the answer gets its output again, and nothing runs
                    outcome = prior.outcome
                    outcomes.append(outcome)
                    items.append(_item(answer.api, outcome))
                    continue
                if key is not None and prior is mine:
                    claims.append((key, mine))
                call, tool = self._call(raw, ids)
                if prior is not mine:
                    why = (
                        "its tool started in an earlier attempt that did not finish: it may have "
                        "run already, so it is not run again"
                        if prior.started
                        else "it is being decided by another attempt at this same answer"
                    )
                    decision: Decision = yield (
                        "refuse",
                        (call, "exactly-once", f"this call of this answer was taken: {why}", None),
                    )
                else:
                    decision = yield ("decide", (call,))
                if decision.kind == "control" and not decision.allowed:
                    raise decision.error()  # the kill switch stops the loop, whatever on_deny says
                args = dict(call.args)
                if decision.effect is Effect.MODIFY and tool is not None:
                    edited = dict(decision.args or {})
                    received, problem = tool.receive(edited)
                    if received is None or received != edited:
                        why = problem or f"the tool would receive {received!r}"
                        reason = f"the edited arguments are not what the tool would receive: {why}"
                        decision = yield (
                            "refuse",
                            (call, "changed-after-decision", reason, decision),
                        )
                    else:
                        args = received
                ran = is_error = False
                if decision.allowed and tool is not None:
                    mine.started = True
                    output, is_error = yield ("execute", (tool, args))
                    ran = True
                    if guard.wants_results(call.agent, call.tool):
                        result = ToolResult(
                            call.tool,
                            output,
                            agent=call.agent,
                            call_id=call.call_id,
                            run_id=call.run_id,
                            thread_id=call.thread_id,
                            is_error=is_error,
                        )
                        yield ("record", (result,))
                elif decision.effect is Effect.RESPOND:
                    output = decision.response or ""
                else:
                    if self.on_deny == "raise":
                        raise decision.error()
                    output, is_error = blocked(decision), True
                call_id = str(call.call_id or "")
                outcome = ToolOutcome(call_id, call.tool, decision, output, ran, is_error)
                if ran or decision.effect is Effect.RESPOND:
                    # (only once the result is recorded: a retry must not show the model an
                    # output whose taint was never recorded)
                    mine.outcome = outcome
                outcomes.append(outcome)
                items.append(_item(answer.api, outcome))
            return ToolOutputs(items, outcomes)
        finally:
            # An attempt that stops part way (the kill switch, on_deny="raise", a store
            # failure, cancellation) gives back the calls it only decided; a call whose tool
            # started stays taken, and a call that finished keeps its output for the retry.
            for key, claim in claims:
                if not claim.started and claim.outcome is None:
                    ledger.release(key, claim)
                else:
                    claim.live = False

    def _call(self, raw: RawCall, ids: Counter[Any]) -> tuple[ToolCall, FunctionTool | None]:
        """The guard's view of one call: the arguments the tool would receive, or the
        reason it cannot tell (``ToolCall.problem``: denied as ``malformed-call``)."""
        name = raw.name if isinstance(raw.name, str) else repr(raw.name)
        tool = self.registry.get(name) if isinstance(raw.name, str) else None
        value: Any = raw.arguments
        args: Any = value
        problem: str | None = None
        if raw.kind != "function":
            problem = f"a {raw.kind} call: only function tools can be decided and run here"
        elif tool is None:
            known = ", ".join(sorted(self.registry)) or "none"
            problem = f"unknown tool {name!r}: this agent has no such tool (it has: {known})"
        elif not isinstance(raw.call_id, str) or not raw.call_id:
            problem = "the call has no id: its output could not be matched to it"
        elif ids[raw.call_id] > 1:
            problem = (
                f"call id {raw.call_id!r} is used by {ids[raw.call_id]} calls in this answer: "
                "their outputs could not be told apart"
            )
        if problem is None:
            value, problem = parse_arguments(raw.arguments)
            args = raw.arguments if problem is not None else value
        if problem is None and tool is not None:
            received, problem = tool.receive(value)
            args = received if received is not None else value
        call = ToolCall(
            name,
            args,
            agent=self.agent,
            call_id=raw.call_id if isinstance(raw.call_id, str) else None,
            run_id=self.run_id,
            thread_id=self.thread_id,
            problem=problem,
        )
        return call, (tool if problem is None else None)

    def _usage(self, answer: Answer, sent: Any) -> ModelUsage:
        if answer.usage is not None:
            tokens, estimated = answer.usage, False
        else:
            from .._tokens import count_tokens

            tokens, estimated = (count_tokens(sent_text(sent)), count_tokens(answer.text)), True
        return ModelUsage(
            answer.model,
            tokens[0],
            tokens[1],
            agent=self.agent,
            run_id=self.run_id,
            thread_id=self.thread_id,
            estimated=estimated,
        )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, default=str, ensure_ascii=False)


def _error(exc: BaseException) -> str:
    return f"Tool error: {type(exc).__name__}: {exc}"


def _execute(tool: FunctionTool, args: dict[str, Any]) -> tuple[str, bool]:
    try:
        return _text(tool.function(**args)), False
    except Exception as exc:
        return _error(exc), True


async def _aexecute(tool: FunctionTool, args: dict[str, Any]) -> tuple[str, bool]:
    try:
        if tool.is_async:
            value = await tool.function(**args)
        else:
            value = await asyncio.to_thread(tool.function, **args)
        return _text(value), False
    except Exception as exc:
        return _error(exc), True


def _item(api: str, outcome: ToolOutcome) -> dict[str, Any]:
    if api == "chat":
        return {"role": "tool", "tool_call_id": outcome.call_id, "content": outcome.output}
    return {"type": "function_call_output", "call_id": outcome.call_id, "output": outcome.output}


def _key(answer: Answer, raw: RawCall) -> tuple[str, ...] | None:
    """What one call of one answer is known by across attempts at the answer: the answer's
    id, the call's id, name and argument text (``None``: a call that cannot run anyway)."""
    if not (isinstance(raw.call_id, str) and raw.call_id and isinstance(raw.name, str)):
        return None
    text = raw.arguments if isinstance(raw.arguments, str) else repr(raw.arguments)
    return (answer.api, answer.id, raw.call_id, raw.name, text)


@dataclass(slots=True, eq=False)
class _Claim:
    """One attempt's hold on one call: ``started`` once its tool was called, ``outcome``
    once it finished (its result recorded); ``live`` while the attempt goes on."""

    started: bool = False
    outcome: ToolOutcome | None = None
    live: bool = True
    done: bool = False


class _Ledger:
    """The calls of this run's recent answers that were taken: what makes a retry of an
    answer (after the kill switch, a raised deny, a store failure, a cancelled task) run
    nothing twice. In memory, bounded (the oldest answers forgotten first); shared by the
    threads and tasks of one ``GuardedTools``, not by its ``bind`` copies."""

    __slots__ = ("_claims", "_limit", "_lock")

    def __init__(self, limit: int = 4096) -> None:
        self._claims: dict[tuple[str, ...], _Claim] = {}
        self._limit = limit
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        return key in self._claims

    def __len__(self) -> int:
        return len(self._claims)

    def claim(self, key: tuple[str, ...], claim: _Claim) -> _Claim:
        """``claim`` if the call was free, else the claim that holds it."""
        with self._lock:
            held = self._claims.get(key)
            if held is not None and (held.live or held.started or held.outcome or held.done):
                return held
            self._put(key, claim)
            return claim

    def put(self, key: tuple[str, ...], claim: _Claim) -> None:
        with self._lock:
            self._put(key, claim)

    def release(self, key: tuple[str, ...], claim: _Claim) -> None:
        with self._lock:
            if self._claims.get(key) is claim:
                del self._claims[key]

    def _put(self, key: tuple[str, ...], claim: _Claim) -> None:
        self._claims.pop(key, None)
        self._claims[key] = claim
        while len(self._claims) > self._limit:
            del self._claims[next(iter(self._claims))]
