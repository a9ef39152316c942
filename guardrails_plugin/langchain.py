"""LangChain adapter: every tool call of a LangChain agent goes through the guard.

Why this file is long: the middleware and both callback handlers share one translation of
LangChain's hooks into events (identity, run tree, tool outputs), and this docstring runs an agent.

Two ways in, both thin: they translate LangChain's hooks into :class:`ToolCall` and
:class:`ToolResult` events, and the guard's :class:`Decision` back into LangChain's idiom.

**GuardMiddleware**, for ``langchain.agents.create_agent`` (the recommended way). Here a
scripted model plays the LLM and asks for two tools at once::

    >>> from langchain.agents import create_agent
    >>> from langchain_core.tools import tool
    >>> from guardrails_plugin import Guard, Policy, allow
    >>> from guardrails_plugin.langchain import GuardMiddleware
    >>> from guardrails_plugin.testing import ScriptedChatModel, tool_call
    >>> @tool
    ... def search(query: str) -> str:
    ...     "Search the web."
    ...     return f"3 results for {query}"
    >>> @tool
    ... def delete_file(path: str) -> str:
    ...     "Delete a file."
    ...     raise AssertionError("never runs: the guard denies it")
    >>> guard = Guard(Policy([allow("search")]))
    >>> model = ScriptedChatModel(
    ...     [[tool_call("search", query="llamas"), tool_call("delete_file", path="/data")], "Done."]
    ... )
    >>> agent = create_agent(
    ...     model,
    ...     tools=[search, delete_file],
    ...     middleware=[GuardMiddleware(guard)],
    ...     name="researcher",  # the agent's identity in the policy
    ... )
    >>> result = agent.invoke(
    ...     {"messages": [{"role": "user", "content": "find llamas, then clean up"}]},
    ...     config={"configurable": {"thread_id": "t-1"}},
    ... )
    >>> for m in result["messages"][2:4]:
    ...     print(m.name, m.status, "default-deny" in m.content)
    search success False
    delete_file error True
    >>> model.bound_tools[0]  # the tools the model was offered: delete_file is hidden
    ['search']

It decides each tool call where the tool node executes it (``wrap_tool_call``), so no other
middleware, ``jump_to`` or parallel batch can route a call around it. Middleware runs in
list order, the first outermost: put middleware that rewrites tool calls *before* the guard
(``middleware=[Rewrite(), GuardMiddleware(guard)]``), and the guard decides the call as
rewritten. Whatever sits after it (inside) gets the call after the decision: the guard
checks at the tool's own start that the tool, call id and arguments are still the ones it
decided, and denies a changed call there, before the tool body runs. A denied call comes
back to the model as an error ``ToolMessage`` naming the rule and the reason (or, with
``on_deny="raise"``, ends the run with :class:`ToolCallDenied` / :class:`BudgetExceeded`).
``ask`` rules go to the guard's approver, or, when it has none and the agent has a
checkpointer, through LangGraph's ``interrupt()`` (see ``guardrails_plugin.langgraph``): an
edit runs with the edited (re-checked) arguments, an answer comes back in the tool's place.
Tools the agent may never call are hidden from its model (``hide_tools``). The kill switch
(``guard.controls``) is checked before every model and tool call. When the policy has model
budgets (``of="model"``), each model turn's ``usage_metadata`` is charged to them
(``Guard.record_usage``; tiktoken's count where the model reports none).

**GuardCallbackHandler** / **AsyncGuardCallbackHandler**, for tools and runnables that run
without the middleware (a tool invoked directly, an LCEL chain, a legacy agent loop)::

    handler = GuardCallbackHandler(guard)
    search.invoke({"query": "llamas"}, config={"callbacks": [handler]})

A callback can only let a tool run or stop it: a denied call raises before the tool body
runs. It cannot change arguments or answer in the tool's place, so an approved edit or a
person's answer also raise :class:`ToolCallDenied` (the answer is kept in
``error.decision.response``); use the middleware for those. ``GuardCallbackHandler`` works in
sync and async runs with the guard's sync verbs. ``AsyncGuardCallbackHandler`` uses the async
verbs and awaits async approvers where LangChain awaits handlers (async tools in async runs);
where LangChain calls handlers synchronously (any sync tool, even under ``ainvoke``) it
answers synchronously, since LangChain swallows what a coroutine hook raises there and the
tool would run anyway. An async approver cannot be awaited there: such calls are denied.

Every adapter decides on what the tool will receive: the model's input as the tool's own
schema parses it (``guardrails_plugin.langgraph._toolargs``: aliases, defaults, coercions, a string
input to a one-argument tool; injected arguments left out); keys the schema does not know
are denied. The middleware has the tool in its request. A callback hook gets only the tool's
name: the handlers find the running tool on the call stack (``BaseTool.run`` / ``arun``
calling them), else in ``tools=[...]``; where neither works (a sync handler that LangChain
runs on a worker thread, for an async tool) the call is denied with that reason.

Identity: the agent is ``agent=`` if given, else the name ``create_agent(name=...)`` puts in
the run's metadata (``lc_agent_name``), else ``"agent"``. The thread is the run config's
``configurable.thread_id`` (callbacks: ``metadata["thread_id"]``, which LangGraph sets).
The run is one invocation: for the middleware, the invocation of the agent's graph
(``invoke``, ``stream``, a resume; the ``run_id`` the caller put in the invoke config if
any), so every ``invoke`` starts a fresh ``per="run"`` budget, with or without a thread;
for the callbacks, the root of LangChain's callback run tree: the chain, agent or graph
invoked, and for a tool invoked on its own the tool's own run, so each ``tool.invoke`` is
a run of its own. Budgets ``per="run"`` count per run, else per thread; taint is kept per
thread, else per run. Calls that should share a budget or taint across invocations share
a thread: pass the same ``thread_id`` and use ``per="thread"`` budgets.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MethodType
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

try:
    from langchain.agents.middleware import (
        AgentMiddleware,
        AgentState,
        ExtendedModelResponse,
        ModelRequest,
        ModelResponse,
        ToolCallRequest,
    )
    from langchain_core.callbacks import AsyncCallbackHandler, BaseCallbackHandler
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.tools import BaseTool
    from langgraph.config import get_config
    from langgraph.errors import GraphInterrupt
    from langgraph.types import Command
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "guardrails_plugin.langchain needs LangChain: pip install 'guardrails-plugin[langchain]'"
    ) from exc

from ._approvals import Answer
from ._decision import Decision, Effect
from ._errors import GuardDecisionError
from ._events import DEFAULT_AGENT, ModelUsage, ToolCall, ToolResult
from .guard import Guard
from .langgraph._drivers import drivers
from .langgraph._gate import Approvals, Gate, arun_call, run_call
from .langgraph._pending import hold_key
from .langgraph._toolargs import NO_SCHEMA, received
from .langgraph._toolargs import _schema as tool_schema
from .langgraph._where import GUARDED_CALL, where_in_graph
from .policy._toolcheck import report

if TYPE_CHECKING:
    from .rollback import Compensations, Journal

__all__ = ["AsyncGuardCallbackHandler", "GuardCallbackHandler", "GuardMiddleware"]

OnDeny = Literal["message", "raise"]
_ON_DENY: tuple[OnDeny, ...] = ("message", "raise")


# -- where a call happens: agent, thread, run, step ----------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    agent: str
    thread_id: str | None
    run_id: str | None
    step: int | None


def _where(
    agent: str | None,
    metadata: Mapping[str, Any] | None,
    *,
    thread_id: Any = None,
    run_id: Any = None,
) -> _Where:
    meta = metadata or {}
    name = agent or meta.get("lc_agent_name")
    step = meta.get("langgraph_step")
    return _Where(
        agent=name if isinstance(name, str) and name else DEFAULT_AGENT,
        thread_id=None if thread_id is None else str(thread_id),
        run_id=None if run_id is None else str(run_id),
        step=step if isinstance(step, int) and not isinstance(step, bool) else None,
    )


def _current_config() -> Mapping[str, Any]:
    try:
        return get_config()
    except RuntimeError:  # called outside a runnable: no config, no identity but the default
        return {}


# -- decisions back into LangChain ----------------------------------------------------------


def _error(decision: Decision) -> GuardDecisionError:
    """The exception a denied call raises."""
    return decision.error()


# -- tool results into events ---------------------------------------------------------------


def _update_messages(update: Any) -> list[Any]:
    """The ``messages`` a ``Command`` update writes (a dict, or a list of key/value pairs)."""
    if isinstance(update, Mapping):
        values = [update.get("messages")]
    elif isinstance(update, list | tuple):
        values = [
            p[1] for p in update if isinstance(p, tuple) and len(p) == 2 and p[0] == "messages"
        ]
    else:
        return []
    found: list[Any] = []
    for v in values:
        if v is not None:
            found.extend(v if isinstance(v, list | tuple) else [v])
    return found


def _outputs(output: Any) -> list[Any]:
    """What a tool produced, flattened: ToolMessages, the ones inside Commands, raw values."""
    if isinstance(output, Command):
        return [m for m in _update_messages(output.update) if isinstance(m, ToolMessage)]
    if (
        isinstance(output, list)
        and output
        and all(isinstance(o, ToolMessage | Command) for o in output)
    ):
        return [m for o in output for m in _outputs(o)]
    return [output]


def _results(call: ToolCall, output: Any, *, raw: bool) -> list[ToolResult]:
    """The results to record for ``call``. ``raw``: a bare value (not a message) counts too."""
    results = []
    for item in _outputs(output):
        if isinstance(item, BaseMessage):
            content = str(item.text)
            is_error = getattr(item, "status", None) == "error"
            call_id = getattr(item, "tool_call_id", None) or call.call_id
        elif raw:
            content = item if isinstance(item, str) else str(item)
            is_error = False
            call_id = call.call_id
        else:
            continue
        results.append(
            ToolResult(
                tool=call.tool,
                content=content,
                agent=call.agent,
                call_id=call_id,
                run_id=call.run_id,
                thread_id=call.thread_id,
                is_error=is_error,
            )
        )
    return results


def _failed(call: ToolCall | None, error: BaseException) -> ToolResult | None:
    """What a guarded tool that raised leaves in its run: the exception's text, as an error
    result. Whoever catches the exception (ToolNode's error handling, an agent loop, the
    caller) may show it to the model, and it can quote what a source fetched (an error
    page's body), so a source's error taints the run as its error messages do under the
    middleware. ``None`` for a call this handler did not decide, and for an interrupt: its
    value goes to a person, and the tool runs again (and records) on resume."""
    if call is None or isinstance(error, GraphInterrupt):
        return None
    return ToolResult(
        tool=call.tool,
        content=str(error) or type(error).__name__,
        agent=call.agent,
        call_id=call.call_id,
        run_id=call.run_id,
        thread_id=call.thread_id,
        is_error=True,
    )


# -- the middleware -------------------------------------------------------------------------


ToolHandler = Callable[[ToolCallRequest], ToolMessage | Command[Any]]
AsyncToolHandler = Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]]
ModelHandler = Callable[[ModelRequest[Any]], ModelResponse[Any]]
AsyncModelHandler = Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]
ModelResult = ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]


class GuardMiddleware(AgentMiddleware[AgentState[Any], Any, Any]):
    """Checks every tool call of a ``create_agent`` agent against the guard's policy.

    ``agent`` fixes the identity the policy sees (default: the agent's ``name``).
    ``on_deny="message"`` returns a denied call to the model as an error ``ToolMessage`` it
    can adapt to; ``"raise"`` ends the run with ``ToolCallDenied`` (``BudgetExceeded`` for
    budgets). ``hide_tools`` leaves out of the model's tool list the tools this agent may
    never call (every call is still checked, hidden or not).

    ``ask`` rules: ``approvals="auto"`` (default) calls the guard's approver if it has one,
    else asks through LangGraph's ``interrupt()`` when the agent has a checkpointer (resume
    with ``Command(resume=...)``; see ``guardrails_plugin.langgraph.answer``), else denies.
    ``"interrupt"`` and ``"approver"`` force one way. ``approval_timeout`` (seconds) denies
    an answer that comes later than that. ``compensations`` / ``journal`` record side effects
    and safe points for ``guardrails_plugin.langgraph.Recovery``.

    The kill switch (``guard.controls``) is checked before every model and tool call.

    The policy is read against the agent's tools (rules naming no bound tool, tools no rule
    speaks about, scoped arguments a tool does not take, scopes that cannot read an
    argument's type): when the middleware is built if given ``tools=``, else at the agent's
    first model call (the first moment a middleware sees them). Each mismatch is a
    ``PolicyToolWarning``; with ``strict=True``, a ``PolicyToolError`` refuses the agent.

    Order: middleware listed before the guard (outside it) can change a call before it is
    decided; the guard checks at the tool's own start that middleware listed after it did
    not (a changed call is denied: rule ``changed-after-decision``). With a checkpointer,
    each call is claimed in the guard's store before its tool runs: two resumes of one
    approval at once run it once, and both get its result.
    """

    def __init__(
        self,
        guard: Guard,
        *,
        agent: str | None = None,
        on_deny: OnDeny = "message",
        hide_tools: bool = True,
        approvals: Approvals = "auto",
        approval_timeout: float | None = None,
        compensations: Compensations | None = None,
        journal: Journal | None = None,
        tools: Sequence[Any] | None = None,
        strict: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(guard, Guard):
            raise TypeError(f"GuardMiddleware needs a Guard, found {type(guard).__name__}")
        if on_deny not in _ON_DENY:
            raise ValueError(f"on_deny must be 'message' or 'raise', found {on_deny!r}")
        if agent is not None and (not isinstance(agent, str) or not agent):
            raise ValueError(f"agent must be a non-empty string or None, found {agent!r}")
        self.guard = guard
        self.agent = agent
        self.on_deny: OnDeny = on_deny
        self.hide_tools = hide_tools
        self.gate = Gate(
            guard,
            approvals=approvals,
            approval_timeout=approval_timeout,
            compensations=compensations,
            journal=journal,
        )
        self._driver, self._adriver = drivers(self.gate)
        self.strict = strict
        self._fitted: tuple[str, ...] | None = None
        if tools is not None:
            self._fit(list(tools), stacklevel=4)

    def _fit(self, tools: Sequence[Any], stacklevel: int = 3) -> None:
        """Read the policy against the agent's tools, once per tool set (warn or refuse)."""
        names = tuple(_tool_name(t) for t in tools)
        if names == self._fitted:
            return
        shapes = [{"name": _tool_name(t)} if isinstance(t, dict) else t for t in tools]
        problems = self.guard.policy.check_tools(shapes, agent=self.agent)
        self._fitted = names
        report(problems, strict=self.strict, where="GuardMiddleware", stacklevel=stacklevel)

    def __repr__(self) -> str:
        return (
            f"GuardMiddleware({self.guard!r}, agent={self.agent!r}, "
            f"on_deny={self.on_deny!r}, hide_tools={self.hide_tools!r}, "
            f"approvals={self.gate.approvals!r})"
        )

    # -- tool calls: the choke point ------------------------------------------------------

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: ToolHandler
    ) -> ToolMessage | Command[Any]:
        return run_call(
            self.gate, self._driver, request, handler, agent=self.agent, on_deny=self.on_deny
        )

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: AsyncToolHandler
    ) -> ToolMessage | Command[Any]:
        return await arun_call(
            self.gate, self._adriver, request, handler, agent=self.agent, on_deny=self.on_deny
        )

    # -- model calls: the kill switch; hide what the agent may never call -----------------

    def wrap_model_call(self, request: ModelRequest[Any], handler: ModelHandler) -> ModelResult:
        config = _current_config()
        where = where_in_graph(self.agent, config, request.runtime)
        key = hold_key(config, where)
        paused = self._driver.run(self.gate.hold_flow(where.agent, where, key))
        if request.tools and self._fitted is None:
            self._fit(request.tools)
        if self.hide_tools and request.tools:
            names = [_tool_name(t) for t in request.tools]
            visible = self.guard.visible_tools(where.agent, names)
            request = self._keep(request, names, visible)
        response = handler(request)
        if paused and key is not None:
            self._driver.delete(key)
        if self.guard.wants_usage(where.agent):
            self.guard.record_usage(_usage(response, request, where))
        return response

    async def awrap_model_call(
        self, request: ModelRequest[Any], handler: AsyncModelHandler
    ) -> ModelResult:
        config = _current_config()
        where = where_in_graph(self.agent, config, request.runtime)
        key = hold_key(config, where)
        paused = await self._adriver.arun(self.gate.hold_flow(where.agent, where, key))
        if request.tools and self._fitted is None:
            self._fit(request.tools)
        if self.hide_tools and request.tools:
            names = [_tool_name(t) for t in request.tools]
            visible = await self.guard.avisible_tools(where.agent, names)
            request = self._keep(request, names, visible)
        response = await handler(request)
        if paused and key is not None:
            await self._adriver.adelete(key)
        if self.guard.wants_usage(where.agent):
            await self.guard.arecord_usage(_usage(response, request, where))
        return response

    @staticmethod
    def _keep(
        request: ModelRequest[Any], names: Sequence[str], visible: Iterable[str]
    ) -> ModelRequest[Any]:
        shown = set(visible)
        if all(n in shown for n in names):
            return request
        kept = [t for t, n in zip(request.tools, names, strict=True) if n in shown]
        return request.override(tools=kept)


def _tool_name(tool: BaseTool | dict[str, Any]) -> str:
    """A tool's name: a ``BaseTool``, a ``{"name": ...}`` or OpenAI ``{"function": {...}}``
    spec, or a provider built-in known only by its ``type``."""
    if isinstance(tool, BaseTool):
        return tool.name
    function = tool.get("function")
    name = tool.get("name") or (function.get("name") if isinstance(function, Mapping) else None)
    return str(name or tool.get("type") or "")


# -- the callback handlers ------------------------------------------------------------------


class _GuardHandler:
    """What both handlers share: reading a tool start into a ToolCall, remembering calls until
    they end, and the run tree: a call's run is the root of LangChain's callback run tree,
    kept as a map from each live run to its root."""

    raise_error = True  # LangChain re-raises a handler's exception only when this is set

    # Live runs remembered (a run is forgotten when it ends; the oldest go first if runs
    # never end, e.g. a chain LangChain never reports the end of).
    max_runs = 10_000

    def __init__(
        self, guard: Guard, *, agent: str | None = None, tools: Iterable[BaseTool] = ()
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"{type(self).__name__} needs a Guard, found {type(guard).__name__}")
        self.guard = guard
        self.agent = agent
        self.tools: dict[str, BaseTool] = {}
        for t in tools:
            if not isinstance(t, BaseTool):
                raise TypeError(f"tools must be LangChain tools, found {type(t).__name__}")
            self.tools[t.name] = t
        self._calls: dict[UUID, ToolCall] = {}
        self._roots: OrderedDict[UUID, UUID] = OrderedDict()
        self._asked: OrderedDict[str, Mapping[str, Any]] = OrderedDict()  # by call id
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.guard!r}, agent={self.agent!r})"

    def _root(self, run_id: UUID, parent: UUID | None) -> UUID:
        """The root of the run tree ``run_id`` belongs to: the run itself when it has no
        parent (a tool or chain invoked on its own), else its parent's root (the parent
        itself when this handler did not see it start, e.g. a handler given to one tool)."""
        if parent is None:
            return run_id
        with self._lock:
            return self._roots.get(parent, parent)

    def _call(
        self,
        serialized: Mapping[str, Any] | None,
        input_str: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        inputs: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> ToolCall:
        where = _where(
            self.agent,
            metadata,
            thread_id=(metadata or {}).get("thread_id"),
            run_id=self._root(run_id, parent_run_id),
        )
        name = str((serialized or {}).get("name") or kwargs.get("name") or "")
        call_id = kwargs.get("tool_call_id")
        tool, reaching = _running_tool(name)
        tool = tool or self.tools.get(name)
        sent: Any = inputs if inputs is not None else input_str
        args, problem = received(tool, sent, tool_call_id=call_id)
        if tool is None:
            problem = f"{NO_SCHEMA}; {_UNSEEN}"
        elif problem is None and call_id is not None:
            problem = self._set_by_model(tool, call_id, reaching)
        return ToolCall(
            tool=name,
            args=sent if args is None or problem is not None else args,
            agent=where.agent,
            call_id=call_id,
            run_id=where.run_id,
            thread_id=where.thread_id,
            step=where.step,
            problem=problem,
        )

    def _heard(self, response: Any) -> None:
        """Remember the arguments of the tool calls a model turn asked for (when this
        handler also watches the model): what the model set is known at the tool's start."""
        calls = _model_calls(response)
        with self._lock:
            self._asked.update(calls)
            while len(self._asked) > self.max_runs:
                self._asked.popitem(last=False)

    def _set_by_model(
        self, tool: BaseTool, call_id: str, reaching: Mapping[str, Any] | None
    ) -> str | None:
        """Why the call must be denied when the model set an injected argument and the tool
        would receive the model's value (or the handler cannot see what it receives): a
        caller passing the model's call straight to the tool. LangChain leaves injected
        arguments out of ``on_tool_start``, so only the model's own turn shows them; a
        caller (or ToolNode) that sets the argument itself replaces the model's value."""
        with self._lock:
            sent = self._asked.pop(call_id, None)
        if not sent:
            return None
        schema = tool_schema(tool)
        keys = [
            k
            for k in sent
            if k in schema.injected
            and (reaching is None or (k in reaching and reaching[k] == sent[k]))
        ]
        if not keys:
            return None
        return (
            f"the model set {', '.join(map(repr, sorted(keys)))}, injected by the caller, and "
            "the tool would receive the model's value"
        )

    def _started(self, run_id: UUID, parent_run_id: UUID | None, call: ToolCall | None) -> None:
        root = self._root(run_id, parent_run_id)
        with self._lock:
            if call is not None:
                self._calls[run_id] = call
            self._roots[run_id] = root
            while len(self._roots) > self.max_runs:
                self._roots.popitem(last=False)

    def _ended(self, run_id: UUID) -> ToolCall | None:
        with self._lock:
            self._roots.pop(run_id, None)
            return self._calls.pop(run_id, None)


def _decided_by_adapter(call_id: str | None) -> bool:
    """The call is running inside ``GuardMiddleware`` / ``GuardedToolNode``, which decided
    it (and records its results): deciding again would charge budgets twice and ask a
    person again about a call they approved."""
    return call_id is not None and GUARDED_CALL.get() == call_id


_UNSEEN = (
    "the handler was called without the tool running it on its call stack (an async tool "
    "under GuardCallbackHandler runs the handler on a worker thread): pass tools=[...] to "
    "the handler, or use AsyncGuardCallbackHandler"
)
_RUN_CODES = (BaseTool.run.__code__, BaseTool.arun.__code__)
_MAX_DEPTH = 64


def _running_tool(name: str) -> tuple[BaseTool | None, Mapping[str, Any] | None]:
    """The tool whose ``run`` / ``arun`` is calling this handler, found on the call stack
    (the coroutine chain, for awaited handlers): the tool itself, whose schema decides what
    it receives, and the input mapping it was given (injected arguments included, which
    the hook's ``inputs`` leave out). ``None`` if the nearest running tool is not ``name``
    or none is found."""
    frame: Any = sys._getframe(1)
    for _ in range(_MAX_DEPTH):
        if frame is None:
            break
        if frame.f_code in _RUN_CODES:
            tool = frame.f_locals.get("self")
            if not isinstance(tool, BaseTool) or tool.name != name:
                break
            given = frame.f_locals.get("tool_input")
            return tool, given if isinstance(given, Mapping) else None
        frame = frame.f_back
    return None, None


def _model_calls(response: Any) -> dict[str, Mapping[str, Any]]:
    """The tool calls a model turn asked for, by call id: their arguments as the model
    sent them (an ``LLMResult``'s chat generations)."""
    calls: dict[str, Mapping[str, Any]] = {}
    for generations in getattr(response, "generations", None) or ():
        for generation in generations:
            message = getattr(generation, "message", None)
            if isinstance(message, AIMessage):
                for tc in message.tool_calls:
                    if tc.get("id") and isinstance(tc.get("args"), Mapping):
                        calls[str(tc["id"])] = dict(tc["args"])  # a caller may edit theirs
    return calls


# A callback can let a tool run or stop it, nothing else: a person may approve or reject.
_CALLBACK_ANSWERS = (Answer.APPROVE, Answer.REJECT)
_CALLBACK_LIMIT = (
    "a callback handler can only let a tool run or stop it; use GuardMiddleware to apply "
    "edits or answers"
)


class GuardCallbackHandler(_GuardHandler, BaseCallbackHandler):
    """Guards tools run with this handler in their callbacks: a denied call raises
    ``ToolCallDenied`` (``BudgetExceeded``) before the tool body runs; results are recorded
    (taint, result tokens), and so is the text of an exception a tool raises (a source's
    error taints the run). Works in sync and async runs (LangChain runs it on a worker
    thread in async ones) with the guard's sync verbs; approvers must be sync.

    ``tools``: the tools it guards, for the runs where it cannot see the running tool (async
    tools: LangChain calls this handler from a worker thread); calls of a tool it cannot
    see are denied.

    Given to the model too (the whole run's callbacks), it keeps the arguments of the calls
    each model turn asked for, and denies a call whose tool would receive the model's value
    for an injected argument (``InjectedToolArg``): LangChain's ``on_tool_start`` shows no
    injected arguments.
    """

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if _decided_by_adapter(kwargs.get("tool_call_id")):
            self._started(run_id, parent_run_id, None)  # runs it starts share its root
            return
        call = self._call(serialized, input_str, run_id, parent_run_id, metadata, inputs, kwargs)
        decision = self.guard.decide(
            call, answers=_CALLBACK_ANSWERS, limited_because=_CALLBACK_LIMIT
        )
        if decision.effect is not Effect.ALLOW:
            raise _error(decision)
        self._started(run_id, parent_run_id, call)

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        call = self._ended(run_id)
        if call is not None:
            for r in _results(call, output, raw=True):
                self.guard.record(r)

    def on_llm_end(
        self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._heard(response)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        result = _failed(self._ended(run_id), error)
        if result is not None:
            self.guard.record(result)

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._started(run_id, parent_run_id, None)

    def on_chain_end(
        self,
        outputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._ended(run_id)

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._ended(run_id)


_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


class _ByCaller:
    """A hook that answers sync callers synchronously and async callers with a coroutine.

    LangChain awaits a handler's coroutine hooks only from its async callback manager. From
    the sync one (any sync tool, even under ``ainvoke``, which runs it on a worker thread)
    it runs them detached and swallows what they raise: a denial there would not stop the
    tool. So the hook LangChain gets depends on who looks it up: code running as a coroutine
    gets the async hook, sync code the sync one (which uses the guard's sync verbs).
    """

    def __init__(self, sync: Callable[..., Any], asynchronous: Callable[..., Any]) -> None:
        self.sync = sync
        self.asynchronous = asynchronous

    def __get__(self, obj: object | None, owner: type | None = None) -> Callable[..., Any]:
        if obj is None:
            return self.asynchronous
        caller = sys._getframe(1).f_code.co_flags
        hook = self.asynchronous if caller & _ASYNC_CODE else self.sync
        return MethodType(hook, obj)


class AsyncGuardCallbackHandler(_GuardHandler, AsyncCallbackHandler):
    """The async twin of :class:`GuardCallbackHandler`: in async callback managers it uses
    the guard's async verbs and awaits async approvers.

    Where LangChain calls it synchronously (sync tools, also under ``ainvoke``) it answers
    synchronously, as ``GuardCallbackHandler`` does, because LangChain would swallow a
    coroutine's exception there and the tool would run; an async approver cannot be awaited
    in that case, and the call is denied.
    """

    # Awaited in the tool's own task (not gathered in another), so that the handler sees
    # the running tool on its coroutine chain and decides on what that tool will receive.
    run_inline = True

    async def _on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if _decided_by_adapter(kwargs.get("tool_call_id")):
            self._started(run_id, parent_run_id, None)  # runs it starts share its root
            return
        call = self._call(serialized, input_str, run_id, parent_run_id, metadata, inputs, kwargs)
        decision = await self.guard.adecide(
            call, answers=_CALLBACK_ANSWERS, limited_because=_CALLBACK_LIMIT
        )
        if decision.effect is not Effect.ALLOW:
            raise _error(decision)
        self._started(run_id, parent_run_id, call)

    async def _on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        call = self._ended(run_id)
        if call is not None:
            for r in _results(call, output, raw=True):
                await self.guard.arecord(r)

    async def _on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        result = _failed(self._ended(run_id), error)
        if result is not None:
            await self.guard.arecord(result)

    async def _on_llm_end(self, response: Any, **kwargs: Any) -> None:
        self._heard(response)

    async def _on_run_start(
        self, *args: Any, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._started(run_id, parent_run_id, None)

    async def _on_run_end(self, *args: Any, run_id: UUID, **kwargs: Any) -> None:
        self._ended(run_id)

    # LangChain's hook names, each answering sync and async callers (see _ByCaller).
    on_tool_start = _ByCaller(GuardCallbackHandler.on_tool_start, _on_tool_start)
    on_tool_end = _ByCaller(GuardCallbackHandler.on_tool_end, _on_tool_end)
    on_tool_error = _ByCaller(GuardCallbackHandler.on_tool_error, _on_tool_error)
    on_llm_end = _ByCaller(GuardCallbackHandler.on_llm_end, _on_llm_end)
    on_chain_start = _ByCaller(GuardCallbackHandler.on_chain_start, _on_run_start)
    on_chain_end = _ByCaller(GuardCallbackHandler.on_chain_end, _on_run_end)
    on_chain_error = _ByCaller(GuardCallbackHandler.on_chain_error, _on_run_end)


def _usage(response: Any, request: ModelRequest[Any], where: Any) -> ModelUsage:
    """What a model turn used, for model budgets: the AI message's ``usage_metadata`` (what
    the provider reported), else tiktoken's count of the messages sent and the answer."""
    messages = getattr(response, "result", None)
    answers = messages if isinstance(messages, list) else [response]
    used_in = used_out = 0
    reported = False
    model = ""
    text = ""
    for message in answers:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            used_in += int(usage.get("input_tokens", 0))
            used_out += int(usage.get("output_tokens", 0))
            reported = True
        meta = getattr(message, "response_metadata", None) or {}
        model = model or str(meta.get("model_name") or meta.get("model") or "")
        text += str(getattr(message, "content", "")) + str(getattr(message, "tool_calls", ""))
    if not reported:
        from ._tokens import count_tokens

        sent = "".join(str(getattr(m, "content", "")) for m in request.messages)
        used_in, used_out = count_tokens(sent), count_tokens(text)
    return ModelUsage(
        model or "unknown",
        used_in,
        used_out,
        agent=where.agent,
        run_id=where.run_id,
        thread_id=where.thread_id,
        estimated=not reported,
    )
