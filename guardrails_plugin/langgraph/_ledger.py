"""Around running the tool: safe points, the done-ledger, results and undo records.

A call that ran is written to ``done/<thread>/<call id>`` with its result when the run has a
checkpointer. A re-run of the same task (a resume, or ``invoke(None)`` after a crash between
the tool and the checkpoint) returns that result instead of running the tool again.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from .._decision import Decision, Effect
from .._events import ToolCall, ToolResult
from ._drivers import Op
from ._pending import _pending_key
from ._where import Where

if TYPE_CHECKING:
    from ..guard import Guard
    from ..rollback import Compensations, Journal

_MAX_THREADS_REMEMBERED = 10_000
DONE_PREFIX = "done/"

ToolOutput = ToolMessage | Command[Any]


class Ledger:
    """The gate's flows around running the tool (part of :class:`~._gate.Gate`)."""

    guard: Guard
    compensations: Compensations | None
    journal: Journal | None
    # done-ledger entries this process wrote, per thread: (root checkpoint, keys). When a
    # thread moves on to a new checkpoint, the previous step's entries can no longer be
    # needed (a step re-runs only from its own checkpoint) and are deleted.
    _written: OrderedDict[str, tuple[str | None, list[str]]]
    _written_lock: threading.Lock

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

    def replay_flow(self, call: ToolCall, where: Where) -> Generator[Op, Any, ToolOutput | None]:
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
    ) -> Generator[Op, Any, None]:
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
    ) -> Generator[Op, Any, None]:
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


def _done_key(call: ToolCall) -> str:
    return f"{DONE_PREFIX}{call.scope_key}/{call.call_id}"


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
