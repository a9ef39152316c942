"""What an operator does from the dashboard: answer approvals (resuming the waiting graph),
pause, kill, quarantine, resume, revoke a grant. Each action records who did it.

Answering resumes the graph on a worker thread (a ``Job``): the page gets an answer at once
and learns through the live stream whether the run finished, waits again, or failed.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from .._approvals import Answer, Approval
from .._errors import GuardDecisionError
from .._grants import EPOCH_KEY, GRANT_PREFIX
from ..controls import Controls, Flag, State
from ..store import Store
from ._state import PENDING_PREFIX, split_key

logger = logging.getLogger("guardrails_plugin.dashboard")

MAX_JOBS = 50
MAX_ACTIVITY = 200
MAX_THREADS_RESUMED = 100
"""A global or agent resume continues at most this many paused threads of the graph."""

Status = Literal["running", "finished", "waiting", "stopped", "error"]

NO_GRAPH = (
    "answering needs the graph that waits: start the dashboard with the compiled graph "
    "(guardrails-plugin dashboard --graph module:attr, or Dashboard(..., graph=graph)); "
    "until then answer from the application"
)


class Refused(Exception):
    """An action the dashboard will not take; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(eq=False)
class Job:
    """One resume of a waiting graph, run on a worker thread."""

    id: str
    action: str
    thread_id: str
    by: str
    started: float
    call_id: str | None = None
    status: Status = "running"
    detail: str = ""
    ended: float | None = None
    waiting: list[dict[str, Any]] = field(default_factory=list)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the resume ended; False on timeout."""
        return self._done.wait(timeout)

    def to_doc(self) -> dict[str, Any]:
        """The job as the JSON document the dashboard serves."""
        return {
            "id": self.id,
            "action": self.action,
            "thread_id": self.thread_id,
            "call_id": self.call_id,
            "by": self.by,
            "started": self.started,
            "ended": self.ended,
            "status": self.status,
            "detail": self.detail,
            "waiting": list(self.waiting),
        }


class Operator:
    """The dashboard's verbs over a Store and, optionally, the compiled graph that waits."""

    def __init__(
        self,
        store: Store,
        graph: Any = None,
        *,
        audit: Any = None,
        clock: Callable[[], float] = time.time,
        workers: int = 4,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.graph = graph
        self.audit = audit if callable(getattr(audit, "append", None)) else None
        """Where control actions are recorded (an ``AuditLog``), besides the activity list."""
        self.clock = clock
        self.on_change = on_change
        """Called after an action or a resume ended (the live stream shows it at once)."""
        self.controls = Controls(store, clock=clock)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="guardrails-dashboard")
        self._jobs: deque[Job] = deque(maxlen=MAX_JOBS)
        self._activity: deque[dict[str, Any]] = deque(maxlen=MAX_ACTIVITY)
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def answering(self) -> bool:
        return self.graph is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- approvals ----------------------------------------------------------------------------

    def answer(self, thread_id: str, call_id: str, approval: Approval, *, by: str) -> Job:
        """Answer the approval ``call_id`` waits for on ``thread_id`` and resume the graph.

        Raises ``Refused`` when there is no graph, the call does not wait (any more), the
        answer is not one the guard allows for it, or the thread is already being resumed.
        """
        graph = self.graph
        if graph is None:
            raise Refused(409, NO_GRAPH)
        from ..langgraph import approval_requests

        self._claim(thread_id)
        try:
            config = _config(thread_id)
            waiting = {p.call_id: p for p in approval_requests(graph, config)}
            found = waiting.get(call_id)
            if found is None:
                raise Refused(
                    409,
                    f"call {call_id!r} does not wait for an approval on thread {thread_id!r} "
                    "(answered already, or the graph moved on)",
                )
            if found.allowed and approval.answer not in found.allowed:
                allowed = ", ".join(str(a) for a in found.allowed)
                raise Refused(
                    422,
                    f"{approval.answer} is not allowed for call {call_id!r}; allowed: {allowed}",
                )
        except BaseException:
            self._release(thread_id)
            raise
        job = self._job(str(approval.answer), thread_id, by, call_id=call_id)
        what = f"{approval.answer} {found.tool} of {found.agent}"
        # The guard that resumes records the answer (with ``approver``) in its own audit log.
        self._note(by, str(approval.answer), f"thread {thread_id}", what, approval.message)
        self._start(job, {call_id: approval})
        return job

    def _resume(self, job: Job, answers: Mapping[str, Approval] | None) -> None:
        """Run on a worker thread: resume the graph and note how it ended."""
        from ..langgraph import answer, approval_requests

        graph = self.graph
        config = _config(job.thread_id)
        waiting: list[dict[str, Any]] = []
        status: Status
        try:
            command = answer(graph, dict(answers or {}), config)
            out = graph.invoke(command, config)
            interrupts = out.get("__interrupt__", ()) if isinstance(out, Mapping) else ()
            if interrupts:
                pending = approval_requests(list(interrupts))
                waiting = [
                    {"call_id": p.call_id, "agent": p.agent, "tool": p.tool} for p in pending
                ]
                paused = len(interrupts) - len({p.interrupt_id for p in pending})
                status, detail = "waiting", _waiting_text(len(pending), paused)
            else:
                status, detail = "finished", "the run finished"
        except GuardDecisionError as exc:  # killed, or denied with on_deny="raise"
            status, detail = "stopped", str(exc)
        except Exception as exc:  # reported on the page; the run is the application's
            logger.exception("dashboard: resuming thread %r failed", job.thread_id)
            status, detail = "error", f"{type(exc).__name__}: {exc}"
        with self._lock:  # readers see a job either running or wholly ended
            job.waiting, job.detail, job.ended, job.status = waiting, detail, self.clock(), status
            self._busy.discard(job.thread_id)
        job._done.set()
        self.on_change()

    def _start(self, job: Job, answers: Mapping[str, Approval] | None) -> None:
        try:
            self._pool.submit(self._resume, job, answers)
        except RuntimeError:  # closed: the pool takes no more work
            self._release(job.thread_id)
            raise

    def continue_paused(self, thread_id: str | None, *, by: str) -> list[Job]:
        """After a pause was lifted: resume the graph's threads that wait at a pause
        (``thread_id``, or every thread the store shows a held step for), except those a
        pause still in force holds (they would only stop again)."""
        graph = self.graph
        if graph is None:
            return []
        if thread_id is not None:
            threads = [thread_id]
        else:
            keys = self.store.scan(PENDING_PREFIX)
            threads = sorted({split_key(k)[0] for k in keys})
        paused: set[tuple[str, str]] = {
            (f.level, f.target) for f in self.controls.flags() if f.state is State.PAUSED
        }
        jobs = []
        for tid in threads[:MAX_THREADS_RESUMED]:
            holds = _paused_interrupts(graph, tid)
            if not holds or all(_still_paused(paused, tid, agent) for agent in holds):
                continue
            try:
                self._claim(tid)
            except Refused:
                continue  # already being resumed
            job = self._job("resume", tid, by)
            self._start(job, None)
            jobs.append(job)
        return jobs

    def _claim(self, thread_id: str) -> None:
        with self._lock:
            if thread_id in self._busy:
                raise Refused(409, f"thread {thread_id!r} is being resumed already; wait for it")
            self._busy.add(thread_id)

    def _release(self, thread_id: str) -> None:
        with self._lock:
            self._busy.discard(thread_id)

    def _job(self, action: str, thread_id: str, by: str, *, call_id: str | None = None) -> Job:
        job = Job(f"job-{next(self._ids)}", action, thread_id, by, self.clock(), call_id=call_id)
        with self._lock:
            self._jobs.append(job)
        return job

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return next((j for j in self._jobs if j.id == job_id), None)

    def jobs(self) -> list[dict[str, Any]]:
        """Recent resumes, newest first."""
        with self._lock:
            return [j.to_doc() for j in reversed(self._jobs)]

    # -- the kill switch, quarantine, grants ---------------------------------------------------

    def pause(self, *, thread: str | None, agent: str | None, reason: str, by: str) -> Flag:
        flag = self.controls.pause(thread=thread, agent=agent, reason=reason, by=by)
        self._record(by, "pause", thread=thread, agent=agent, reason=reason)
        return flag

    def kill(self, *, thread: str | None, agent: str | None, reason: str, by: str) -> Flag:
        flag = self.controls.kill(thread=thread, agent=agent, reason=reason, by=by)
        self._record(by, "kill", thread=thread, agent=agent, reason=reason)
        return flag

    def quarantine(self, agent: str, *, reason: str, by: str) -> Flag:
        flag = self.controls.quarantine(agent, reason=reason, by=by)
        self._record(by, "quarantine", agent=agent, reason=reason)
        return flag

    def resume(self, *, thread: str | None, agent: str | None, by: str) -> tuple[bool, list[Job]]:
        """Lift the flag at this level; with a graph, go on with the threads it held."""
        lifted = self.controls.resume(thread=thread, agent=agent)
        self._record(
            by, "resume", thread=thread, agent=agent, reason="" if lifted else "nothing to lift"
        )
        return lifted, self.continue_paused(thread, by=by)

    def revoke(self, grant_id: str, *, by: str) -> bool:
        """Revoke a run-time grant (and what was delegated from it), as ``Guard.revoke``."""
        removed = self.store.delete(GRANT_PREFIX + grant_id)
        self.store.charge(EPOCH_KEY, 1, math.inf)
        why = "" if removed else "no such grant"
        self._record(by, "revoke", reason=why, target=f"grant {grant_id}", grant=grant_id)
        return removed

    def activity(self) -> list[dict[str, Any]]:
        """What operators did through this dashboard, newest first."""
        with self._lock:
            return list(reversed(self._activity))

    def _record(
        self,
        by: str,
        action: str,
        *,
        thread: str | None = None,
        agent: str | None = None,
        reason: str = "",
        target: str | None = None,
        grant: str | None = None,
    ) -> None:
        """Note a control action in the activity list and, with one, the audit log (kind
        ``"control"``, ``outcome`` the action, ``approver`` the operator). Called after the
        action: a log that cannot write raises ``AuditError`` to the caller, loudly."""
        where = target or _where(thread, agent)
        self._note(by, action, where, reason)
        if self.audit is not None:
            detail: dict[str, Any] = {"via": "dashboard"}
            if grant is not None:
                detail["grant"] = grant
            if thread is None and agent is None and grant is None:
                detail["level"] = "global"
            self.audit.append(
                "control",
                outcome=action,
                agent=agent,
                thread_id=thread,
                reason=reason,
                approver=by,
                detail=detail,
            )

    def _note(self, by: str, action: str, target: str, *detail: str) -> None:
        text = "; ".join(d for d in detail if d)
        entry = {"at": self.clock(), "by": by, "action": action, "target": target, "detail": text}
        logger.info("dashboard: %s %s %s (%s)", by, action, target, text)
        with self._lock:
            self._activity.append(entry)
        self.on_change()


def parse_answer(body: Mapping[str, Any], by: str) -> Approval:
    """A person's answer from the page: ``{"answer": "approve"|"edit"|"reject"|"respond",
    "args": {...}, "message": "..."}``, recorded as answered by ``by``."""
    kind = body.get("answer")
    try:
        answer = Answer(str(kind))
    except ValueError:
        raise Refused(
            400, f"answer must be approve, edit, reject or respond, found {kind!r}"
        ) from None
    message = body.get("message", "")
    if not isinstance(message, str):
        raise Refused(400, f"message must be a string, found {type(message).__name__}")
    if answer is Answer.EDIT:
        args = body.get("args")
        if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
            raise Refused(400, "an edit needs args: a JSON object of the call's new arguments")
        return Approval.edit(args, approver=by)
    if answer is Answer.RESPOND:
        return Approval.respond(message, approver=by)
    if answer is Answer.REJECT:
        return Approval.reject(message, approver=by)
    return Approval.approve(approver=by)


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


def _paused_interrupts(graph: Any, thread_id: str) -> list[str]:
    """The agents whose steps wait at a pause on ``thread_id`` (one entry per pause)."""
    from ..langgraph._approvals import _interrupts

    return [
        str(i.value.get("agent") or "")
        for i in _interrupts(graph, _config(thread_id))
        if isinstance(i.value, Mapping) and i.value.get("type") == "paused"
    ]


def _still_paused(paused: set[tuple[str, str]], thread_id: str, agent: str) -> bool:
    """Whether a pause flag in force holds ``agent`` on ``thread_id``."""
    return bool({("thread", thread_id), ("agent", agent), ("global", "*")} & paused)


def _where(thread: str | None, agent: str | None) -> str:
    if thread is not None:
        return f"thread {thread}"
    if agent is not None:
        return f"agent {agent}"
    return "everything"


def _waiting_text(approvals: int, pauses: int) -> str:
    parts = []
    if approvals:
        parts.append(f"{approvals} approval{'s' if approvals != 1 else ''}")
    if pauses:
        parts.append(f"{pauses} pause{'s' if pauses != 1 else ''}")
    return "the run waits again: " + (" and ".join(parts) or "an interrupt")
