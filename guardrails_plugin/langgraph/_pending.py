"""The pending-interrupt log: deciding a call when a person or an operator may be asked.

LangGraph re-runs a node from its start when it is resumed, and matches resume values to
``interrupt()`` calls by their order in the task. So every interrupt the gate raises for
a call is logged, before it is raised, in a small document in the guard's store
(``pending/<thread>/<call id>``): which interrupts (pause, approval) in which order, the
decision that asked (with the budget it charged) and, once a person answered, the final
decision. A re-run replays the log: the same interrupts in the same order, no second check,
no second charge. The writes of an interrupted task are discarded by LangGraph, so this
record cannot live in graph state; it lives next to the checkpoints, in the store.

The flows here are methods of :class:`~._gate.Gate` (through :class:`PendingLog`), driven
by the drivers in :mod:`._drivers`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from .._approvals import Answer, Approval, ApprovalRequest, EditReader
from .._decision import Decision, Effect
from .._events import ToolCall
from ._causal import Activation, restore_position, saved_position
from ._drivers import Op
from ._hitl import read_answer, with_hitl
from ._verify import CHANGED_RULE
from ._where import Where, identity_args

if TYPE_CHECKING:
    from ..guard import Guard

Approvals = Literal["auto", "interrupt", "approver"]
APPROVALS: tuple[Approvals, ...] = ("auto", "interrupt", "approver")
PENDING_PREFIX = "pending/"


class PendingLog:
    """The gate's flows that may interrupt: a call's decision, a node's hold (part of
    :class:`~._gate.Gate`)."""

    guard: Guard
    approvals: Approvals
    approval_timeout: float | None
    clock: Callable[[], float]

    def interrupts(self, where: Where) -> bool:
        """Ask through ``interrupt()``? ``auto``: when the guard has no approver of its own
        and the run has a checkpointer (LangGraph cannot interrupt without one)."""
        if self.approvals == "auto":
            return self.guard.approver is None and where.checkpointed
        return self.approvals == "interrupt"

    def decide_flow(
        self, call: ToolCall, where: Where, edits: EditReader | None = None
    ) -> Generator[Op, Any, tuple[Decision, bool]]:
        """The final decision for ``call`` (allow, modify, respond or deny, or a kill), and
        whether a pending-document was written for it (to delete once the call is done).
        ``edits`` applies a person's edit as the tool's schema reads it (``_hitl``).

        May raise ``GraphInterrupt`` (through the ``interrupt`` op) for a pause or a person,
        and ``ApprovalAnswerError`` for a resume it cannot read (nothing decided).
        """
        if not self.interrupts(where):
            decision: Decision = yield ("decide", (call, edits))
            return decision, False
        key = _pending_key(call) if call.call_id else None
        # the call's digest is read only when a pending log is (rarely) read or written
        bound = functools.cache(functools.partial(binding, call))
        memo: dict[str, Any] | None = None
        if key is not None and where.resuming:
            found = yield ("get", (key,))
            memo = dict(found) if isinstance(found, Mapping) else None
        if memo is not None and memo.get("binding", bound()) == bound():
            # the same call re-run on a resume: its agent's activation continues its chain
            restore_position(
                memo.get("causal"), call.scope_key, call.agent, call.run_id, where.checkpoint_id
            )

        def causal() -> dict[str, Any] | None:  # (read only when a log is written)
            return saved_position(call.scope_key, call.agent, call.run_id, where.checkpoint_id)

        if memo is not None and memo.get("binding", bound()) != bound():
            # The interrupts logged here were raised for another call under this id: a node
            # run again on resume made another call (a hand-off elsewhere), or the id was
            # used again. The answers given were not about this call: it is refused, and
            # the logged interrupts are still consumed so that later ones keep their values.
            return (yield from self._changed(call, key, memo, bound()))
        log: list[str] = list(memo["log"]) if memo else []
        i = 0
        while True:
            if i < len(log) and log[i] == "pause":  # replay a pause already answered
                value = yield ("interrupt", (_pause_payload(call, None),))
                i += 1
                if _refused(value):
                    if memo is not None and "final" in memo:  # refused and recorded before
                        return Decision.from_doc(memo["final"]), True
                    refused = yield from _refusal(call, value)
                    memo = yield from self._save(key, memo, log, bound=bound(), final=refused)
                    return refused, memo is not None
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
                    memo = yield from self._save(key, memo, log, bound=bound(), causal=causal())
                    value = yield ("interrupt", (_pause_payload(call, asked),))
                    i += 1
                    if _refused(value):  # a person looked at the held call and said no
                        refused = yield from _refusal(call, value)
                        memo = yield from self._save(key, memo, log, bound=bound(), final=refused)
                        return refused, memo is not None
                    continue
                log.append("approval")
                memo = yield from self._save(
                    key,
                    memo,
                    log,
                    bound=bound(),
                    asked=asked,
                    at=asked_at,
                    call=call,
                    causal=causal(),
                )
            payload = self._approval_payload(call, asked, asked_at)
            value = yield ("interrupt", (payload, lambda v: read_answer(v, call)))
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
                final = yield ("resolve", (call, asked, value, edits))
            memo = yield from self._save(key, memo, log, bound=bound(), final=final)
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
            if stop.effect is Effect.DENY:  # the engine's deny of this call, charge given back
                extra = {"kind": stop.kind, "refund": final}
                final = yield ("refuse", (call, stop.rule, stop.reason, extra))
                memo = yield from self._save(key, memo, log, bound=bound(), final=final)
                break
            log.append("pause")
            memo = yield from self._save(key, memo, log, bound=bound(), causal=causal())
            i += 1
            yield ("interrupt", (_pause_payload(call, stop),))
        return final, key is not None

    def hold_flow(
        self, agent: str, where: Where, key: str | None, act: Activation | None = None
    ) -> Generator[Op, Any, int]:
        """Stop here while the kill switch says so: raise ``RunKilled`` for a kill; for a
        pause, interrupt (resumable once lifted) or raise ``RunPaused`` where the run cannot
        be interrupted. ``key`` (stable across re-runs of the task) names the log of pauses
        already answered, replayed so that later interrupts in the task stay aligned with
        their resume values. Returns how many pauses the log holds: the caller deletes the
        log once its task has finished, never before (and on a resumed run in any case: the
        log may say the task got past the hold, ``passed_flow``). ``act``: the wrapped node's
        activation, which continues its causal chain on a resume (``restore_position``)."""
        probe = ToolCall("", {}, agent=agent, thread_id=where.thread_id, run_id=where.run_id)
        replay = 0
        passed = False
        if key is not None and where.resuming:
            found = yield ("get", (key,))
            if isinstance(found, Mapping):
                replay = int(found.get("pauses", 0))
                passed = bool(found.get("passed"))
                if act is not None:
                    scope = where.thread_id or where.run_id or "-"
                    saved = found.get("causal")
                    restore_position(saved, scope, agent, where.run_id, where.checkpoint_id, act)
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
                yield ("put", (key, _hold_doc(pauses, where, agent, act)))
            yield ("interrupt", (_pause_payload(probe, stop),))

    def passed_flow(
        self,
        key: str | None,
        pauses: int,
        where: Where | None = None,
        act: Activation | None = None,
    ) -> Generator[Op, Any, None]:
        """Note that the task got past its hold (``hold_flow``) and was then interrupted
        (with where ``act``'s causal chain resumes, when given)."""
        if key is not None:
            doc = _hold_doc(pauses, where, act.agent if act else "", act)
            doc["passed"] = True
            yield ("put", (key, doc))

    def delete_flow(self, key: str) -> Generator[Op, Any, None]:
        yield ("delete", (key,))

    def _changed(
        self, call: ToolCall, key: str | None, memo: dict[str, Any], bound: str
    ) -> Generator[Op, Any, tuple[Decision, bool]]:
        """Refuse ``call``, whose pending log was written for another call (``decide_flow``);
        what the other call's asked decision charged is given back."""
        asked = Decision.from_doc(memo["asked"]) if "asked" in memo else None
        reason = (
            "the call changed while it waited for a person (the node ran again and made "
            "another call under the same id, or the id was used again): the answer given "
            "was about another call"
        )
        extra = {"kind": "approval", "refund": asked}
        refused: Decision = yield ("refuse", (call, CHANGED_RULE, reason, extra))
        log = [str(k) for k in memo.get("log", ())]
        saved: dict[str, Any] = {"log": log, "binding": bound, "final": refused.to_doc()}
        if asked is not None:
            saved["asked"] = asked.to_doc()
            saved["at"] = memo.get("at")
        if key is not None:
            yield ("put", (key, saved))
        for kind in log:  # the interrupts raised before, consumed in order
            if kind == "pause" or asked is None:
                yield ("interrupt", (_pause_payload(call, None),))
            else:
                yield ("interrupt", (self._approval_payload(call, asked, float(memo["at"])),))
        return refused, key is not None

    def _save(
        self,
        key: str | None,
        memo: dict[str, Any] | None,
        log: list[str],
        *,
        bound: str | None = None,
        asked: Decision | None = None,
        at: float | None = None,
        final: Decision | None = None,
        call: ToolCall | None = None,
        causal: dict[str, Any] | None = None,
    ) -> Generator[Op, Any, dict[str, Any] | None]:
        if key is None:
            return memo
        doc = dict(memo or {})
        if causal is not None and "causal" not in doc:  # where the agent's chain resumes
            doc["causal"] = causal
        doc["log"] = list(log)
        if bound is not None:
            doc["binding"] = bound
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

    def _approval_payload(self, call: ToolCall, asked: Decision, at: float) -> dict[str, Any]:
        payload = {"type": "approval", **ApprovalRequest(call, asked).to_dict(), "asked_at": at}
        if self.approval_timeout is not None:
            payload["expires_at"] = at + self.approval_timeout
        return with_hitl(payload)


def _hold_doc(
    pauses: int, where: Where | None, agent: str, act: Activation | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"pauses": pauses}
    if act is not None and where is not None:
        scope = where.thread_id or where.run_id or "-"
        causal = saved_position(scope, agent, where.run_id, where.checkpoint_id, act)
        if causal is not None:
            doc["causal"] = causal
    return doc


def hold_key(config: Mapping[str, Any], where: Where) -> str | None:
    """Where the pauses of a node task are logged: stable across re-runs of the task."""
    task = (config.get("configurable") or {}).get("__pregel_task_id")
    if not task:
        return None
    return f"{PENDING_PREFIX}{where.thread_id or where.run_id or '-'}/node:{task}"


def _jsonable(value: Any) -> Any:
    """``value`` if JSON can hold it, else its ``repr`` (the store keeps JSON documents)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def binding(call: ToolCall) -> str:
    """A digest of ``call``'s tool and arguments (as sent): what its pending log was written
    for. A log whose binding differs belongs to another call under the same id."""
    args = identity_args(call)
    try:
        text = json.dumps([call.tool, args], sort_keys=True, default=repr)
    except (TypeError, ValueError):  # keys json cannot sort: their repr binds all the same
        text = repr([call.tool, dict(args) if isinstance(args, Mapping) else args])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def pending_key(call: ToolCall) -> str:
    """Where the interrupts the gate raised for ``call`` are logged."""
    return _pending_key(call)


def _pending_key(call: ToolCall) -> str:
    return f"{PENDING_PREFIX}{call.scope_key}/{call.call_id}"


def _refused(value: Any) -> bool:
    """Whether the value a paused call was resumed with refuses it: ``False``, a reject
    ``Approval``, or ``{"answer": "reject", ...}``. Anything else (``True``, ``None``) lets
    it go on, re-checked."""
    if value is False:
        return True
    if isinstance(value, Approval):
        return value.answer is Answer.REJECT
    if isinstance(value, Mapping) and isinstance(value.get("decisions"), list | tuple):
        return any(_refused(d) for d in value["decisions"])  # LangChain's format
    return isinstance(value, Mapping) and (
        str(value.get("answer", "")).lower() == "reject"
        or str(value.get("type", "")).lower() == "reject"
    )


def _refusal(call: ToolCall, value: Any) -> Generator[Op, Any, Decision]:
    """The guard's deny of a held call a person refused (recorded like any decision; a
    held call took no budget: the kill switch holds it before any charge)."""
    message = ""
    if isinstance(value, Approval):
        message = value.message
    elif isinstance(value, Mapping):
        message = str(value.get("message") or "")
    reason = "a person refused the held call" + (f": {message}" if message else "")
    extra = {"kind": "approval", "response": message or None}
    refused: Decision = yield ("refuse", (call, "pause", reason, extra))
    return refused


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
