"""Nothing between the decision and the tool: the call that reaches the tool is checked.

The gate decides a call in a ``wrap_tool_call`` hook. Whatever sits inside that hook — other
middleware after ``GuardMiddleware`` in ``create_agent(middleware=[...])`` (the first is the
outermost), or the ``wrap_tool_call`` given to ``GuardedToolNode`` — gets the request after
the decision and could hand the tool something else: other arguments, another call id,
another tool. So the check does not stop at the hook: while the decided call runs, a
callback handler rides along (added through LangChain's configure hook to every callback
manager configured in that context, which includes the tool's own), and at the tool's own
``on_tool_start`` — the innermost point, after every wrapper, right before the tool body —
compares the tool's name, the call id and the arguments the tool receives with what the
guard decided. A changed call is denied there, before the tool body runs, with a reason
naming what changed; the adapter turns it into the denial the model reads (or raises).

Where nothing can sit in between, there is nothing to check: when the hook hands the call
straight to LangGraph's own ToolNode executor (the ``execute`` closure a ToolNode gives its
outermost ``wrap_tool_call``, of an unmodified ``ToolNode._run_one`` / ``_arun_one``, whose
node runs LangGraph's own ``_execute_tool_sync`` / ``_execute_tool_async`` and
``_inject_tool_args``), the tool gets exactly the request the guard decided, and
:func:`direct` says so; the gate then skips the handler. Any other handler (middleware
listed after the guard, a ``GuardedToolNode`` wrapper, a ToolNode subclass or instance that
replaces those methods, anything the guard does not recognise) gets the check.

Arguments compare as the tool receives them: the arguments LangGraph injects (state, store,
runtime), which are not the model's, are left out on both sides. Runs nested inside the
checked tool (a tool that runs a chain or an agent of its own) are its business and are not
checked again here; their own guard, if any, checks them. A tool that passes on the
``config`` LangChain handed it starts runs that are siblings of its own run, not children:
tools started while the checked tool runs count as its own too.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook
from langgraph.prebuilt.tool_node import ToolNode

CHANGED_RULE = "changed-after-decision"


class ChangedCall(Exception):
    """Raised at the tool's start to stop a call that changed after its decision. Not a
    decision: the gate asks the guard for the deny (``Guard.refuse``, rule
    ``changed-after-decision``), which the audit log and the listeners see."""


class AtTheTool(BaseCallbackHandler):
    """Checks, at the tool's own start, that the call is the one the guard decided."""

    raise_error = True  # LangChain re-raises a handler's exception only when this is set
    run_inline = True  # in async callback managers: here, not on a worker thread

    def __init__(
        self, tool: str, call_id: str | None, args: Any, injected: Any, agent: str
    ) -> None:
        self.tool = tool
        self.call_id = call_id
        self.args = args
        self.injected = injected  # the BaseTool, to tell injected arguments apart
        self.agent = agent
        self.denied: str | None = None
        """Why the call was stopped at the tool (the gate has the guard record the deny)."""
        self.reached = False
        self._inside: set[UUID] = set()
        self._running: UUID | None = None  # the checked tool's run, between start and end

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is not None and parent_run_id in self._inside:
            self._inside.add(run_id)  # a tool the checked tool runs itself
            return
        if self._running is not None:
            # Also a tool the checked tool runs itself, with the config it was handed:
            # LangChain hands a tool its caller's config, so that run is a sibling.
            self._inside.add(run_id)
            return
        name = (serialized or {}).get("name") or kwargs.get("name")
        changed = self._changed(name, input_str, inputs, kwargs.get("tool_call_id"))
        if changed is not None:
            self.denied = (
                f"the call that reached the tool is not the call the guard decided: {changed} "
                "changed after the decision (a middleware or wrapper inside the guard rewrote "
                "it); the tool did not run"
            )
            raise ChangedCall(self.denied)
        self.reached = True
        self._running = run_id
        self._inside.add(run_id)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id == self._running:
            self._running = None

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id == self._running:
            self._running = None

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if parent_run_id is not None and parent_run_id in self._inside:
            self._inside.add(run_id)

    def _changed(
        self, name: Any, input_str: str, inputs: Mapping[str, Any] | None, call_id: Any
    ) -> str | None:
        if name != self.tool:
            return f"the tool ({name!r} instead of {self.tool!r})"
        if call_id != self.call_id:
            return "the call id"
        expected = self.args
        if inputs is None:  # the tool got a string
            if isinstance(expected, str) and input_str == expected:
                return None
            return "the arguments (a string instead of the decided arguments)"
        if not isinstance(expected, Mapping):
            return "the arguments"
        if inputs == expected:
            return None
        visible = _without_injected(self.injected, expected)
        if visible == inputs:
            return None
        return f"the arguments ({_difference(visible, inputs)})"


def _without_injected(tool: Any, args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` as the tool's callbacks see them: without the arguments LangGraph injects
    (which it replaces with its own values whatever the model sent)."""
    strip = getattr(tool, "_filter_injected_args", None)
    if strip is None:
        return dict(args)
    try:
        return dict(strip(dict(args)))
    except Exception:  # cannot tell: compare them all (a mismatch denies)
        return dict(args)


def _difference(decided: Mapping[str, Any], got: Mapping[str, Any]) -> str:
    """Which keys differ (names only: the values may be anything the model wrote)."""
    added = sorted(k for k in got if k not in decided)
    removed = sorted(k for k in decided if k not in got)
    changed = sorted(k for k in decided if k in got and decided[k] != got[k])
    parts = [
        f"{what}: {', '.join(map(repr, keys))}"
        for what, keys in (("changed", changed), ("added", added), ("removed", removed))
        if keys
    ]
    return "; ".join(parts) or "their types"


AT_THE_TOOL: contextvars.ContextVar[AtTheTool | None] = contextvars.ContextVar(
    "guardrails_at_the_tool", default=None
)
"""Set while a decided call runs: LangChain adds the handler to every callback manager
configured in this context (the tool's own among them)."""

register_configure_hook(AT_THE_TOOL, inheritable=True)


def _nested(fn: Any, name: str) -> CodeType | None:
    code = getattr(fn, "__code__", None)
    for const in getattr(code, "co_consts", ()):
        if isinstance(const, CodeType) and const.co_name == name:
            return const
    return None


# LangGraph's own executors: the code of the closures a ToolNode hands its wrapper, and the
# node methods each one runs (they must be LangGraph's own on the node that made it).
_EXECUTORS: dict[CodeType, tuple[str, ...]] = {
    code: methods
    for code, methods in (
        (_nested(ToolNode._run_one, "execute"), ("_execute_tool_sync", "_inject_tool_args")),
        (_nested(ToolNode._arun_one, "execute"), ("_execute_tool_async", "_inject_tool_args")),
        (
            _nested(ToolNode._arun_one, "_sync_execute"),
            ("_execute_tool_sync", "_inject_tool_args"),
        ),
    )
    if code is not None and "self" in code.co_freevars
}
_OWN = {
    name: getattr(ToolNode, name)
    for name in ("_execute_tool_sync", "_execute_tool_async", "_inject_tool_args")
}


def direct(handler: Callable[..., Any]) -> bool:
    """Whether ``handler`` is LangGraph's own ToolNode executor (module docstring): the tool
    then gets the request it is handed, and the check at the tool has nothing to compare.
    ``False`` for anything else, including what the guard cannot read."""
    code = getattr(handler, "__code__", None)
    if not isinstance(code, CodeType):
        return False
    methods = _EXECUTORS.get(code)
    if methods is None:
        return False
    try:
        closure = getattr(handler, "__closure__", None) or ()
        cells = dict(zip(code.co_freevars, closure, strict=True))
        node = cells["self"].cell_contents
        return isinstance(node, ToolNode) and all(
            getattr(getattr(node, m, None), "__func__", None) is _OWN[m] for m in methods
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return False


def expect(request: Any, agent: str) -> AtTheTool:
    """The check for the request the guard hands down (its tool, call id and arguments)."""
    tc = request.tool_call
    tool = request.tool
    name = getattr(tool, "name", None) or tc.get("name")
    return AtTheTool(str(name or ""), tc.get("id"), tc.get("args"), tool, agent)


__all__ = ["AT_THE_TOOL", "CHANGED_RULE", "AtTheTool", "ChangedCall", "direct", "expect"]
