"""Around running the tool: safe points, the done-ledger (exactly once), results, undo records.

When the run has a checkpointer, a call is claimed before its tool runs and its result is
written after, in one document: ``done/<thread>/<call id>/<binding>``. The binding is a
digest of the call's tool, arguments and graph step, so a call id used again later (servers
that number calls per turn: ``call_0`` every turn) is a new call with an entry of its own,
never the old result. The claim is the store's atomic ``put_if(expected=None)``: of two
attempts at one call (two resumes of one approval at once, in two threads or two processes)
exactly one runs the tool. The other waits for the result and returns it, as does a re-run
of the task (a resume, or ``invoke(None)`` after a crash between the tool and the
checkpoint).

A claim without a result means an attempt started the tool and never recorded how it ended
(its process died mid-call, or the store failed after the tool ran). The tool may have run:
the call is not run again but refused as in doubt (``ToolCallDenied``, rule
``exactly-once``), at once when the claiming process is known to be gone, else once
``claim_wait`` seconds passed. A tool that raises (or interrupts) releases its claim: the
step failed, and running it again is what a retry means. After the tool ran, store failures
(the undo record, the result, the records) are logged and the tool's output is returned all
the same: the claim already stops any second run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Command

from .._decision import Decision, Effect
from .._events import ToolCall, ToolResult
from ._drivers import Op
from ._pending import _pending_key
from ._where import Where, identity_args

if TYPE_CHECKING:
    from ..guard import Guard
    from ..rollback import Compensations, Journal

_MAX_THREADS_REMEMBERED = 10_000
DONE_PREFIX = "done/"
CLAIM_WAIT = 300.0
"""How long an attempt waits for another one's claimed call to finish before it refuses the
call as in doubt (seconds)."""
EXACTLY_ONCE_RULE = "exactly-once"

ToolOutput = ToolMessage | Command[Any]

_log = logging.getLogger("guardrails_plugin")
_PROCESS = uuid.uuid4().hex

_HOST = socket.gethostname()
_RUNNING: set[str] = set()
"""The claims this process holds while their tools run."""


def _new_process() -> None:
    """In a forked child (a prefork server's worker): an id of its own, and none of the
    parent's running claims. Inherited, the parent's id would make a sibling's running claim
    look like one of this process's that stopped, and the call be refused as in doubt."""
    global _PROCESS
    _PROCESS = uuid.uuid4().hex
    _RUNNING.clear()


if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_new_process)


@dataclass(frozen=True, slots=True)
class Claim:
    """A call this attempt claimed: its done-ledger key and the claim document."""

    key: str
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.doc["claim"]["id"])


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
    clock: Callable[[], float]
    claim_wait: float = CLAIM_WAIT

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
        """The result of ``call`` if it already ran in an earlier attempt of this task (or
        runs in another attempt now: then its result, once there)."""
        if not (where.resuming and where.checkpointed and call.call_id):
            return None
        key = done_key(call, where)
        found = yield ("get", (key,))
        return (yield from self._settled(key, found, call, None))

    def claim_flow(
        self, call: ToolCall, where: Where, decision: Decision | None = None
    ) -> Generator[Op, Any, Claim | ToolOutput | None]:
        """Claim ``call`` (as the model asked for it) before its tool runs: the ``Claim``,
        or the result of the attempt that claimed it first, or ``None`` where there is no
        ledger (no checkpointer, no call id). ``decision`` (the one that let it run) has
        its charges given back if the call is refused as in doubt."""
        if not (where.checkpointed and call.call_id):
            return None
        key = done_key(call, where)
        while True:
            claim = Claim(key, {"tool": call.tool, "claim": _claim_doc(self.clock())})
            _RUNNING.add(claim.id)
            try:
                won = yield ("put_if", (key, claim.doc, None))
            except BaseException:
                _RUNNING.discard(claim.id)
                raise
            if won:
                return claim
            _RUNNING.discard(claim.id)
            found = yield ("get", (key,))
            settled = yield from self._settled(key, found, call, decision)
            if settled is not None:
                return settled
            # released (its tool raised) or pruned in between: claim it again

    def release_flow(self, claim: Claim | None) -> Generator[Op, Any, None]:
        """Give a claim back (its tool raised, or never ran): a retry may run the call."""
        if claim is None:
            return
        try:
            yield ("put_if", (claim.key, None, claim.doc))
        except Exception as exc:  # the step fails anyway; say why it stays
            _log.error(
                "could not release the claim on %s (%s): a retry will refuse the call as in doubt",
                claim.key,
                exc,
            )
        finally:
            _RUNNING.discard(claim.id)

    def _settled(
        self, key: str, found: Any, call: ToolCall, decision: Decision | None
    ) -> Generator[Op, Any, ToolOutput | None]:
        """What an existing ledger entry means: its result (waiting while another attempt
        holds the claim), ``None`` when there is none; raises the guard's deny (rule
        ``exactly-once``, ``decision``'s charges given back) for a call in doubt."""
        started = time.monotonic()
        delay = 0.002
        while isinstance(found, Mapping):
            claim = found.get("claim")
            if not isinstance(claim, Mapping):
                replayed: ToolOutput = _loads(found)
                return replayed
            gone = _owner_gone(claim)
            if gone or time.monotonic() - started >= self.claim_wait:
                extra = {"kind": "guard", "refund": decision}
                why = _in_doubt(call, gone)
                refused: Decision = yield ("refuse", (call, EXACTLY_ONCE_RULE, why, extra))
                raise refused.error()
            yield ("sleep", (delay,))
            delay = min(delay * 2, 0.05)
            found = yield ("get", (key,))
        return None

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
        self, call: ToolCall, where: Where, output: Any, pending: bool, claim: Claim | None
    ) -> Generator[Op, Any, None]:
        """Record results (taint, token budgets), the done-ledger and the undo record. The
        tool ran: a store failure here is logged, never raised (raising would make LangGraph
        drop the output and a retry find the call in doubt, for nothing)."""
        wanted = self.guard.wants_results(call.agent, call.tool)
        comps = self.compensations
        undo = comps is not None and call.tool in comps
        results = tool_results(call, output) if wanted or undo else []
        failed: list[str] = []
        # The undo record first: a crash after it and before the result leaves the call
        # in doubt (not run again) with its effect on record; the other order could leave a
        # side effect that ran and that no rollback knows about.
        if (
            undo
            and comps is not None
            and self.journal is not None
            and where.thread_id is not None
            and not any(r.is_error for r in results)
        ):
            try:
                data = comps.capture(call.tool, dict(call.args), _plain(output))
                yield ("effect", (call, where, data))
            except Exception as exc:  # reported below
                failed.append(f"its undo record ({exc})")
        if claim is not None:
            try:
                yield ("put", (claim.key, _dumps(call.tool, output)))
            except Exception as exc:
                failed.append(f"its result ({exc}); a re-run refuses it as in doubt")
            finally:
                _RUNNING.discard(claim.id)  # after the result: a waiter reads it, not doubt
            try:
                for stale in self._remember(where, claim.key):
                    yield ("delete", (stale,))
            except Exception as exc:
                failed.append(f"the removal of older ledger entries ({exc})")
        if wanted:
            for r in results:
                try:
                    yield ("record", (r,))
                except Exception as exc:
                    failed.append(f"a result for the policy ({exc})")
        if pending:
            try:
                yield ("delete", (_pending_key(call),))
            except Exception as exc:
                failed.append(f"the removal of its pending document ({exc})")
        if failed:
            _log.error(
                "tool call %s (%r, thread %s) ran, but the store failed to keep %s",
                call.call_id,
                call.tool,
                call.thread_id,
                "; ".join(failed),
            )


def done_key(call: ToolCall, where: Where) -> str:
    """The done-ledger entry of ``call`` as the model asked for it, at ``where``'s step:
    ``done/<thread>/<call id>/<binding>``, the binding a digest of tool, arguments (as
    sent: ``identity_args``) and step."""
    args = identity_args(call)
    try:
        text = json.dumps([call.tool, args, where.step], sort_keys=True, default=repr)
    except (TypeError, ValueError):  # keys json cannot sort: their repr binds all the same
        text = repr([call.tool, _plain_args(args), where.step])
    binding = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return f"{DONE_PREFIX}{call.scope_key}/{call.call_id}/{binding}"


def _plain_args(args: Any) -> Any:
    return dict(args) if isinstance(args, Mapping) else args


def ledger_prefix(thread: str, call_id: str | None = None) -> str:
    """The key prefix of a thread's done-ledger entries (of one call id, if given)."""
    return f"{DONE_PREFIX}{thread}/" + ("" if call_id is None else f"{call_id}/")


def ledger_keys(store: Any, thread: str, call_ids: Iterable[str] | None = None) -> list[str]:
    """The keys of a thread's done-ledger entries (of these call ids, if given): what to
    delete for calls that must run again (a rollback undid their effects)."""
    if call_ids is None:
        return sorted(store.scan(ledger_prefix(thread)))
    return sorted(k for cid in set(call_ids) for k in store.scan(ledger_prefix(thread, cid)))


async def aledger_keys(store: Any, thread: str, call_ids: Iterable[str] | None = None) -> list[str]:
    """The async twin of :func:`ledger_keys`."""
    if call_ids is None:
        return sorted(await store.ascan(ledger_prefix(thread)))
    keys: list[str] = []
    for cid in set(call_ids):
        keys.extend(await store.ascan(ledger_prefix(thread, cid)))
    return sorted(keys)


def _claim_doc(at: float) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "process": _PROCESS,
        "host": _HOST,
        "pid": os.getpid(),
        "at": at,
    }


def _owner_gone(claim: Mapping[str, Any]) -> bool:
    """Whether the attempt holding ``claim`` is known to have stopped without a result."""
    if claim.get("process") == _PROCESS:
        return claim.get("id") not in _RUNNING
    if claim.get("host") != _HOST:
        return False  # cannot tell: wait
    pid = claim.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # no permission (alive), or no such check here: wait
        return False
    return False


def _in_doubt(call: ToolCall, gone: bool) -> str:
    """Why a call in doubt is refused (the guard records the deny: ``Guard.refuse``)."""
    why = (
        "the attempt that claimed it stopped without recording a result"
        if gone
        else "another attempt has been running it for too long"
    )
    return (
        f"call {call.call_id!r} was started before and {why}: it may have run, so the guard "
        "does not run it again (check its effect; a rollback or a new call runs it afresh)"
    )


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
