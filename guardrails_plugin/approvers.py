"""Ready-made approvers: a person answering at a terminal, or through your server.

A guard asks its ``approver`` when a rule says ``ask`` (outside a LangGraph graph that can
interrupt). Two are ready to use:

``ConsoleApprover``, for scripts run in a terminal (sync: ``agent.invoke``)::

    guard = Guard(policy, approver=ConsoleApprover(timeout=120))

``QueueApprover``, for servers (async: ``agent.ainvoke``). A waiting call shows up as a
``QueuedApproval`` that a web handler or worker answers, from any thread::

    approver = QueueApprover(timeout=300)
    guard = Guard(policy, approver=approver)

    async for pending in approver.requests:     # a worker: hand each one to a person
        notify(pending.id, pending.to_dict())

    approver.answer(approval_id, {"type": "approve", "approver": "alice"})  # a handler

Both fail closed: a person who does not answer in time, or a console that is closed, gets
the call rejected, with a message the model reads.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import getpass
import json
import math
import queue
import sys
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TextIO

from ._approvals import Answer, Approval, ApprovalRequest
from ._errors import ApproverClosed

__all__ = ["ApproverClosed", "ConsoleApprover", "QueuedApproval", "QueueApprover"]


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds or None, found {timeout!r}")
    return None if math.isinf(timeout) else float(timeout)


# -- at a terminal ----------------------------------------------------------------------------

_KEYS: dict[Answer, tuple[str, str]] = {
    # answer: (what to type, how the prompt shows it)
    Answer.APPROVE: ("a", "[a]pprove"),
    Answer.EDIT: ("e", "[e]dit"),
    Answer.REJECT: ("r", "[r]eject"),
    Answer.RESPOND: ("s", "re[s]pond"),
}

_Read = tuple[str, None] | tuple[None, BaseException]


class _NoAnswer(Exception):
    """The person did not answer: the console closed, or the time ran out."""


class ConsoleApprover:
    """Asks the person at the terminal, and waits for the answer.

    Prints who wants to call which tool, with which arguments (as JSON), the rule and its
    reason, then asks ``[a]pprove / [e]dit / [r]eject / re[s]pond?``, offering only the
    answers possible where the guard asks. An edit takes the new arguments as one line of
    JSON; a rejection an optional message to the model; a response the text the model gets
    in the tool's place. An empty line at those questions goes back to the choice.

    ``input`` is called like ``builtins.input`` (with the prompt, returning a line) and
    ``output`` receives the rest (defaults: ``input`` and ``sys.stdout`` as they are at the
    time of asking). End of input (Ctrl-D) or Ctrl-C rejects the call. ``approver_name``
    signs the answers (default: the OS user name). With ``timeout`` (seconds, counted from
    when the question is shown), a person who has not finished answering in time gets the
    call rejected; ``input`` then runs on a daemon thread, and a line typed after the time
    ran out is ignored, never taken as the answer to the next question.

    Calls from several threads (parallel tool calls) are asked one after another. It is a
    sync approver: under ``ainvoke`` it blocks the event loop while it waits, so servers
    should use :class:`QueueApprover`.

    >>> import io
    >>> from guardrails_plugin import ApprovalRequest, Guard, Policy, ToolCall, ask
    >>> answers = iter(["r", "use the shared drive"])
    >>> console = ConsoleApprover(
    ...     input=lambda prompt: next(answers), output=io.StringIO(), approver_name="ops"
    ... )
    >>> guard = Guard(Policy([ask("upload")]), approver=console)
    >>> print(guard.decide(ToolCall("upload", {"path": "/tmp/x"})).reason)
    rejected by ops: use the shared drive
    """

    def __init__(
        self,
        *,
        input: Callable[[str], str] | None = None,
        output: TextIO | None = None,
        approver_name: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.input = input
        self.output = output
        self.approver_name = approver_name if approver_name is not None else _user_name()
        self.timeout = _check_timeout(timeout)
        self._lock = threading.Lock()  # one conversation at a time
        self._stale: queue.Queue[_Read] | None = None  # a read left running by a timeout

    def __repr__(self) -> str:
        return f"ConsoleApprover(approver_name={self.approver_name!r}, timeout={self.timeout!r})"

    def __call__(self, request: ApprovalRequest) -> Approval:
        with self._lock:
            self._show(request)
            if not request.allowed:
                return Approval.reject("no answer can be applied to this call here")
            deadline = None if self.timeout is None else time.monotonic() + self.timeout
            try:
                return self._converse(request, deadline)
            except TimeoutError:
                self._say(f"No answer within {self.timeout:g}s: rejected.")
                return Approval.reject(f"no one answered at the console within {self.timeout:g}s")
            except _NoAnswer:
                self._say("No answer (input closed): rejected.")
                return Approval.reject("no one answered at the console (input closed)")

    # -- the conversation ---------------------------------------------------------------

    def _show(self, request: ApprovalRequest) -> None:
        call = request.call
        args = json.dumps(request.to_dict()["args"], indent=2, ensure_ascii=False)
        lines = [
            "",
            f"Approval needed: agent {call.agent!r} wants to call {call.tool!r}",
            "  arguments:",
            *(f"    {line}" for line in args.splitlines()),
            f"  rule:   {request.decision.rule}",
            f"  reason: {request.decision.reason}",
        ]
        if call.thread_id:
            lines.append(f"  thread: {call.thread_id}")
        lines.append(f"  you may: {', '.join(str(a) for a in request.allowed)}")
        self._say("\n".join(lines))

    def _converse(self, request: ApprovalRequest, deadline: float | None) -> Approval:
        allowed = request.allowed
        prompt = " / ".join(_KEYS[a][1] for a in allowed) + "? "
        typed = {key: a for a in allowed for key in (_KEYS[a][0], str(a))}
        name = self.approver_name
        while True:
            word = self._read(prompt, deadline).strip().lower()
            answer = typed.get(word)
            if answer is None:
                if word in {_KEYS[a][0] for a in Answer} | {str(a) for a in Answer}:
                    self._say(f"That answer is not possible here; answer {_choices(allowed)}.")
                elif word:
                    self._say(f"Unknown answer {word!r}; answer {_choices(allowed)}.")
                continue
            if answer is Answer.APPROVE:
                return Approval.approve(approver=name)
            if answer is Answer.REJECT:
                message = self._read("Message to the model (optional)? ", deadline).strip()
                return Approval.reject(message, approver=name)
            if answer is Answer.RESPOND:
                text = self._read("Answer for the model (empty: back)? ", deadline).strip()
                if text:
                    return Approval.respond(text, approver=name)
                continue
            args = self._read_args(request, deadline)
            if args is not None:
                return Approval.edit(args, approver=name)

    def _read_args(self, request: ApprovalRequest, deadline: float | None) -> dict[str, Any] | None:
        current = json.dumps(request.to_dict()["args"], ensure_ascii=False)
        self._say(f"Current arguments: {current}")
        while True:
            text = self._read("New arguments as one line of JSON (empty: back)? ", deadline)
            if not text.strip():
                return None
            try:
                args = json.loads(text)
            except json.JSONDecodeError as exc:
                self._say(f"That is not valid JSON ({exc}); try again.")
                continue
            if isinstance(args, dict):
                return args
            self._say(f"The arguments must be a JSON object, found {type(args).__name__}.")

    # -- input and output ---------------------------------------------------------------

    def _say(self, text: str) -> None:
        out = self.output if self.output is not None else sys.stdout
        out.write(text + "\n")
        out.flush()

    def _read(self, prompt: str, deadline: float | None) -> str:
        read = self.input if self.input is not None else builtins.input
        try:
            if deadline is None:
                return read(prompt)
            return self._read_before(read, prompt, deadline)
        except (EOFError, KeyboardInterrupt):
            raise _NoAnswer from None

    def _read_before(self, read: Callable[[str], str], prompt: str, deadline: float) -> str:
        stale, self._stale = self._stale, None
        if stale is not None:
            # A read an earlier timeout left running: whatever it returns was typed for a
            # question already rejected, so it must not answer this one.
            try:
                late = _wait(stale, deadline)
            except (TimeoutError, KeyboardInterrupt):
                self._stale = stale
                raise
            self._say(f"(Ignored {late!r}, typed after the last question had timed out.)")
        box: queue.Queue[_Read] = queue.Queue(maxsize=1)
        threading.Thread(
            target=_read_into, args=(read, prompt, box), name="ConsoleApprover input", daemon=True
        ).start()
        try:
            return _wait(box, deadline)
        except (TimeoutError, KeyboardInterrupt):
            self._stale = box
            raise


def _read_into(read: Callable[[str], str], prompt: str, box: queue.Queue[_Read]) -> None:
    try:
        box.put((read(prompt), None))
    except BaseException as exc:  # handed to the waiting thread, which raises it there
        box.put((None, exc))


def _wait(box: queue.Queue[_Read], deadline: float) -> str:
    try:
        line, error = box.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise TimeoutError from None
    if error is not None:
        raise error
    assert line is not None
    return line


def _choices(allowed: tuple[Answer, ...]) -> str:
    return " or ".join(f"{_KEYS[a][0]} ({a})" for a in allowed)


def _user_name() -> str:
    try:
        return getpass.getuser() or "console"
    except (OSError, KeyError, ImportError):  # no login name in this environment
        return "console"


# -- through a server -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class QueuedApproval:
    """A call waiting for a person: show ``to_dict()``, answer with ``QueueApprover.answer``.

    ``future`` completes with the ``Approval`` the call goes on with (the person's, or the
    rejection a timeout or ``close`` gave); it is cancelled when the agent stops waiting.
    Await it to watch, but answer through the approver, which keeps the books.
    """

    id: str
    request: ApprovalRequest
    created_at: float
    expires_at: float | None
    future: asyncio.Future[Approval]

    def __repr__(self) -> str:
        state = "pending" if not self.future.done() else "done"
        return (
            f"QueuedApproval(id={self.id!r}, tool={self.request.call.tool!r}, "
            f"agent={self.request.call.agent!r}, rule={self.request.decision.rule!r}, {state})"
        )

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON, with ``id``, ``created_at`` and ``expires_at`` (epoch s)."""
        return {
            "id": self.id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            **self.request.to_dict(),
        }


class QueueApprover:
    """An async approver that parks each call until someone answers it: for servers.

    ``await approver(request)`` (the guard does this under ``ainvoke``) records a
    :class:`QueuedApproval` and waits. Find the waiting calls with ``pending()`` (oldest
    first), or take each new one once with ``await next()`` / ``async for p in requests``
    (a work queue: one consumer gets each). ``answer(id, approval)`` resolves one, from any
    thread; the answer is an ``Approval``, a bool, or a dict such as
    ``{"type": "edit", "args": {...}, "approver": "alice"}``. Answers not signed by a person
    are signed ``approver_name``.

    With ``timeout`` (seconds), a call nobody answered in time is rejected and leaves the
    queue; an agent that stops waiting (its task cancelled) takes its call off the queue.
    ``close(reason)`` rejects everything pending and every later call, and ends ``requests``.
    Under a sync ``invoke`` the guard cannot await it and denies the call.
    """

    _REMEMBERED = 1024  # finished ids kept to explain a late or second answer

    def __init__(self, *, timeout: float | None = None, approver_name: str = "") -> None:
        self.timeout = _check_timeout(timeout)
        self.approver_name = approver_name
        self._lock = threading.Lock()
        self._pending: dict[str, QueuedApproval] = {}
        self._fresh: deque[QueuedApproval] = deque()  # not yet taken by next()
        self._waiters: list[asyncio.Future[None]] = []  # next() calls waiting for one
        self._finished: OrderedDict[str, str] = OrderedDict()  # id -> what became of it
        self._closed: str | None = None

    def __repr__(self) -> str:
        closed = f", closed={self._closed!r}" if self._closed is not None else ""
        return (
            f"QueueApprover(timeout={self.timeout!r}, approver_name={self.approver_name!r}, "
            f"pending={len(self._pending)}{closed})"
        )

    async def __call__(self, request: ApprovalRequest) -> Approval:
        loop = asyncio.get_running_loop()
        now = time.time()
        pending = QueuedApproval(
            id=str(uuid.uuid4()),
            request=request,
            created_at=now,
            expires_at=None if self.timeout is None else now + self.timeout,
            future=loop.create_future(),
        )
        with self._lock:
            if self._closed is not None:
                return Approval.reject(f"the approver is closed: {self._closed}")
            self._pending[pending.id] = pending
            self._fresh.append(pending)
            self._wake_waiters()
        try:
            # asyncio.wait leaves the future alone on timeout: an answer already on its way
            # (taken under the lock, delivered by call_soon_threadsafe) still lands.
            await asyncio.wait([pending.future], timeout=self.timeout)
            with self._lock:
                if pending.id in self._pending:
                    if pending.future.done():  # completed through the future itself
                        self._finish(pending, "resolved through its future")
                    else:
                        self._finish(pending, f"timed out after {self.timeout:g}s")
                        pending.future.set_result(
                            Approval.reject(
                                f"no one answered within the approval timeout of {self.timeout:g}s"
                            )
                        )
            if pending.future.cancelled():
                return Approval.reject("the pending approval was cancelled before an answer")
            return await pending.future
        except asyncio.CancelledError:
            with self._lock:
                if pending.id in self._pending:
                    self._finish(pending, "withdrawn: the agent stopped waiting")
            pending.future.cancel()
            raise

    # -- answering ----------------------------------------------------------------------

    def answer(self, id: str, approval: Approval | bool | Mapping[str, Any]) -> Approval:
        """Resolve the pending approval ``id`` (thread-safe). Returns the answer as applied.

        Raises ``KeyError`` for an id never seen, ``asyncio.InvalidStateError`` for one
        already answered, timed out, withdrawn or closed, ``ValueError``/``TypeError`` for
        an unreadable answer or one not possible for this call (it stays pending then).
        """
        answer = Approval.parse(approval)
        if not answer.approver and self.approver_name:
            answer = replace(answer, approver=self.approver_name)
        with self._lock:
            pending = self._pending.get(id)
            if pending is None:
                what = self._finished.get(id)
                if what is not None:
                    raise asyncio.InvalidStateError(
                        f"approval {id!r} cannot be answered: it was already {what}"
                    )
                raise KeyError(
                    f"no pending approval with id {id!r} ({len(self._pending)} pending; "
                    "see QueueApprover.pending())"
                )
            allowed = pending.request.allowed
            if answer.answer not in allowed:
                raise ValueError(
                    f"{answer.answer} is not possible for approval {id!r}; "
                    f"possible: {', '.join(str(a) for a in allowed)}"
                )
            if not _settle_soon(pending.future, answer):
                self._finish(pending, "abandoned: its event loop is closed")
                raise asyncio.InvalidStateError(
                    f"approval {id!r} cannot be answered: the agent's event loop is closed"
                )
            by = f" by {answer.approver}" if answer.approver else ""
            self._finish(pending, f"answered ({answer.answer}{by})")
        return answer

    def answer_all(self, approval: Approval | bool | Mapping[str, Any]) -> int:
        """Give every pending approval the same answer; returns how many were answered.

        Answers a call cannot take (an edit where only approve/reject are possible) are
        skipped and leave it pending.
        """
        approval = Approval.parse(approval)  # an unreadable answer fails here, for all
        count = 0
        for pending in self.pending():
            try:
                self.answer(pending.id, approval)
            except (KeyError, ValueError, asyncio.InvalidStateError):
                continue  # answered meanwhile, or this answer is not possible for it
            count += 1
        return count

    def close(self, reason: str = "the approver was closed") -> int:
        """Reject everything pending and every later call, and end ``requests`` / ``next()``.

        Returns how many pending calls were rejected. Closing twice keeps the first reason.
        """
        rejection = Approval.reject(reason)  # no person decided: unsigned, as a timeout
        with self._lock:
            if self._closed is None:
                self._closed = reason
            rejected = list(self._pending.values())
            for pending in rejected:
                _settle_soon(pending.future, rejection)  # a closed loop has nobody to tell
                self._finish(pending, f"closed: {reason}")
            self._wake_waiters()
        return len(rejected)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called: no further request will be answered."""
        return self._closed is not None

    # -- watching -----------------------------------------------------------------------

    def pending(self) -> list[QueuedApproval]:
        """The calls waiting for an answer, oldest first."""
        with self._lock:
            return list(self._pending.values())

    async def next(self) -> QueuedApproval:
        """Wait for a pending approval no ``next()`` has returned yet, and return it.

        Raises :class:`ApproverClosed` once the approver is closed.
        """
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                while self._fresh:
                    pending = self._fresh.popleft()
                    if pending.id in self._pending:
                        return pending
                if self._closed is not None:
                    raise ApproverClosed(f"the approver is closed: {self._closed}")
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    @property
    def requests(self) -> AsyncIterator[QueuedApproval]:
        """New pending approvals as they come (``async for``); ends when closed."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[QueuedApproval]:
        while True:
            try:
                pending = await self.next()
            except ApproverClosed:
                return
            yield pending

    # -- bookkeeping (under the lock) ---------------------------------------------------

    def _finish(self, pending: QueuedApproval, what: str) -> None:
        del self._pending[pending.id]
        with contextlib.suppress(ValueError):  # not taken by next(): never will be now
            self._fresh.remove(pending)
        self._finished[pending.id] = what
        while len(self._finished) > self._REMEMBERED:
            self._finished.popitem(last=False)

    def _wake_waiters(self) -> None:
        for waiter in self._waiters:
            _settle_soon(waiter, None)  # False: its loop is closed, that next() is gone
        self._waiters.clear()


def _settle_soon(future: asyncio.Future[Any], value: Any) -> bool:
    """Complete ``future`` in its own loop's thread; ``False`` if that loop is closed."""
    try:
        future.get_loop().call_soon_threadsafe(_settle, future, value)
    except RuntimeError:
        return False
    return True


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
