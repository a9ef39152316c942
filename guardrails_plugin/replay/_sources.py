"""Recorded traffic: the calls (and their results) a replay re-decides, read from where they
were kept.

A source is any iterable of ``RecordedCall`` and ``RecordedResult``, oldest first. Three
readers come with the package, each a generator that holds one record (or one thread's
messages) at a time:

- ``from_audit(log)``: the package's own audit log (SQLite or JSON Lines, a path or an
  ``AuditLog``). Every ``decision``, ``trip`` and ``control`` record about a tool call is a
  call, with its recorded outcome and rule; every ``result`` record is a result (an
  excerpt: the log keeps the first characters of what a tool returned). Arguments are
  read as the log holds them, after redaction: a value the log hid (``"[REDACTED]"``) is
  decided as that string, and the call is counted under ``redacted`` in the report.
- ``from_jsonl(path)``: one JSON object per line, the format other tracers can be
  converted to (``docs/replay.md``)::

      {"tool": "send_email", "args": {"to": "a@example.com"}, "agent": "mailer",
       "thread_id": "t-1", "run_id": "r-1", "call_id": "c-1", "at": 1733550000.0,
       "outcome": "allow", "rule": "mail-colleagues", "result": "sent", "is_error": false}

  Only ``tool`` is required. ``result`` (the tool's output) lets data-flow rules and
  result-token budgets see what the tool returned. A line ``{"type": "result", "call_id":
  ..., "content": ...}`` records a result separately.
- ``from_checkpoints(checkpointer, threads)``: LangGraph checkpoint histories. The tool
  calls are read from the messages in each thread's latest state (``AIMessage.tool_calls``,
  answered by ``ToolMessage``); a call's time is that of the oldest checkpoint holding its
  message. The agent is the message's ``name`` (``agent=`` when it has none). There is no
  recorded decision: the report counts outcomes, not changes.

A bad line or record stops the replay with a ``ReplayError`` naming where it is: a replay
that silently skipped traffic would report fewer changes than the policy makes.
"""

from __future__ import annotations

import collections
import glob
import json
import math
import os
from collections.abc import Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._errors import GuardrailsError
from .._events import DEFAULT_AGENT

__all__ = [
    "OUTCOMES",
    "RecordedCall",
    "RecordedResult",
    "ReplayError",
    "from_audit",
    "from_checkpoints",
    "from_jsonl",
]

OUTCOMES = ("allow", "deny", "ask", "modify", "respond")
"""The outcomes a recorded decision may name (``Effect`` values)."""

_CALL_KINDS = frozenset({"decision", "trip", "control"})
_NOT_POLICY = frozenset({"control", "cascade", "guard"})
"""Decisions the policy did not make (kill switch, breaker and quarantine, the guard's own
refusals and failures): replayed as calls, compared with nothing."""
_SEEN = 4_096
_REDACTED = "[REDACTED]"


class ReplayError(GuardrailsError):
    """Recorded traffic that cannot be read (a bad line, an unknown source)."""


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """A tool call as it was recorded: what was asked, when, and (if known) what the guard
    decided then (``outcome``, ``rule``)."""

    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    agent: str = DEFAULT_AGENT
    thread_id: str | None = None
    run_id: str | None = None
    call_id: str | None = None
    step: int | None = None
    at: float | None = None
    outcome: str | None = None
    rule: str | None = None
    result: str | None = None
    """What the tool returned, when the source recorded it with the call."""
    is_error: bool = False
    redacted: bool = False
    """The source hid some argument values (the audit log's redaction)."""
    where: str = ""
    """Where the record came from (``file:line``, ``log#seq``), for messages."""


@dataclass(frozen=True, slots=True)
class RecordedResult:
    """A tool's output, recorded apart from its call (matched by ``call_id``)."""

    call_id: str
    content: str
    tool: str | None = None
    agent: str | None = None
    thread_id: str | None = None
    run_id: str | None = None
    is_error: bool = False
    at: float | None = None
    where: str = ""


Recorded = RecordedCall | RecordedResult


# -- JSON Lines --------------------------------------------------------------------------------

_CALL_KEYS = frozenset(
    {
        "tool",
        "args",
        "agent",
        "thread_id",
        "run_id",
        "call_id",
        "step",
        "at",
        "outcome",
        "rule",
        "result",
        "is_error",
        "type",
    }
)
_RESULT_KEYS = frozenset(
    {"type", "call_id", "content", "tool", "agent", "thread_id", "run_id", "is_error", "at"}
)


def from_jsonl(path: str | os.PathLike[str]) -> Iterator[Recorded]:
    """The calls in a JSON Lines file of tool calls (see the module doc), one line at a time.

    Blank lines are skipped; anything else that is not a call or a result raises
    ``ReplayError`` naming the line.
    """
    name = os.fspath(path)
    try:
        f = open(name, encoding="utf-8")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise ReplayError(f"cannot read {name!r}: {exc.strerror or exc}") from None
    try:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{name}:{n}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayError(f"{where}: not JSON: {exc.msg}") from None
            except RecursionError:
                raise ReplayError(f"{where}: JSON nested too deeply") from None
            yield _from_object(data, where)
    except UnicodeDecodeError as exc:
        raise ReplayError(f"{name}: not UTF-8 text: {exc.reason}") from None
    finally:
        f.close()


def _from_object(data: Any, where: str) -> Recorded:
    if not isinstance(data, dict):
        raise ReplayError(f"{where}: a line must be a JSON object, found {type(data).__name__}")
    if data.get("type") == "result":
        extra = set(data) - _RESULT_KEYS
        if extra:
            raise ReplayError(f"{where}: unknown keys in a result: {', '.join(sorted(extra))}")
        return RecordedResult(
            call_id=_text(data, "call_id", where, required=True) or "",
            content=_text(data, "content", where, required=True) or "",
            tool=_text(data, "tool", where),
            agent=_text(data, "agent", where),
            thread_id=_text(data, "thread_id", where),
            run_id=_text(data, "run_id", where),
            is_error=_flag(data, "is_error", where),
            at=_time(data.get("at"), where),
            where=where,
        )
    if data.get("type", "call") != "call":
        raise ReplayError(f"{where}: 'type' must be 'call' or 'result', found {data['type']!r}")
    extra = set(data) - _CALL_KEYS
    if extra:
        raise ReplayError(f"{where}: unknown keys in a call: {', '.join(sorted(extra))}")
    args = data.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ReplayError(f"{where}: 'args' must be an object, found {type(args).__name__}")
    outcome = _text(data, "outcome", where)
    if outcome is not None and outcome not in OUTCOMES:
        raise ReplayError(f"{where}: 'outcome' must be one of {', '.join(OUTCOMES)}")
    step = data.get("step")
    if step is not None and (not isinstance(step, int) or isinstance(step, bool)):
        raise ReplayError(f"{where}: 'step' must be an integer")
    return RecordedCall(
        tool=_text(data, "tool", where, required=True) or "",
        args=args,
        agent=_text(data, "agent", where) or DEFAULT_AGENT,
        thread_id=_text(data, "thread_id", where),
        run_id=_text(data, "run_id", where),
        call_id=_text(data, "call_id", where),
        step=step,
        at=_time(data.get("at"), where),
        outcome=outcome,
        rule=_text(data, "rule", where),
        result=_text(data, "result", where),
        is_error=_flag(data, "is_error", where),
        where=where,
    )


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ReplayError(f"{where}: {key!r} is required")
        return None
    if not isinstance(value, str) or (required and not value):
        raise ReplayError(f"{where}: {key!r} must be a non-empty string")
    return value


def _flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ReplayError(f"{where}: {key!r} must be true or false")
    return value


def _time(value: Any, where: str) -> float | None:
    """Seconds since the epoch, from a number or an ISO 8601 string."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ReplayError(f"{where}: 'at' must be a number or an ISO 8601 time")
    if isinstance(value, int | float):
        try:
            at = float(value)
        except OverflowError:
            raise ReplayError(f"{where}: 'at' is too large") from None
        if not math.isfinite(at):
            raise ReplayError(f"{where}: 'at' must be finite")
        return at
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ReplayError(f"{where}: 'at' must be a number or an ISO 8601 time")


# -- the audit log -----------------------------------------------------------------------------


def from_audit(log: Any) -> Iterator[Recorded]:
    """The calls and results an audit log recorded, oldest first, a batch of records at a
    time. ``log``: an ``AuditLog`` or a path (``*.jsonl`` or a SQLite file)."""
    from ..audit import AuditLog
    from ..audit._base import AuditError

    own = not isinstance(log, AuditLog)
    if own:
        path = os.fspath(log)
        if not os.path.exists(path) and not glob.glob(glob.escape(path) + ".[0-9]*"):
            raise ReplayError(f"no audit log at {path!r}")  # (opening one would create it)
        try:
            log = AuditLog(os.fspath(log))
        except (AuditError, OSError) as exc:
            raise ReplayError(f"cannot open the audit log {os.fspath(log)!r}: {exc}") from None
    name = str(getattr(log.sink, "path", "audit"))
    # Calls recently seen, by (thread, run, call id, tool, arguments): an adapter's refusal of
    # a call just recorded (the guard's own kind) is not a new call.
    seen: collections.OrderedDict[tuple[Any, ...], str | None] = collections.OrderedDict()
    try:
        for record in log.iter():
            where = f"{name}#{record.seq}"
            detail = record.detail or {}
            if record.kind == "result":
                call_id = detail.get("call_id")
                if isinstance(call_id, str) and isinstance(detail.get("content"), str):
                    yield RecordedResult(
                        call_id=call_id,
                        content=detail["content"],
                        tool=record.tool,
                        agent=record.agent,
                        thread_id=record.thread_id,
                        run_id=record.run_id,
                        is_error=bool(detail.get("is_error", False)),
                        at=record.at,
                        where=where,
                    )
                continue
            if record.kind not in _CALL_KINDS or record.tool is None:
                continue  # approvals, rollbacks, model-call checks, operator actions
            args = record.args if record.args is not None else {}
            step = detail.get("step")
            call_id = detail.get("call_id") if isinstance(detail.get("call_id"), str) else None
            rule_kind = detail.get("rule_kind")
            if call_id is not None:
                key = (record.thread_id, record.run_id, call_id, record.tool, _canon(args))
                if key in seen and rule_kind == "guard":
                    continue  # an adapter's refusal of the call just recorded
                seen[key] = record.outcome
                if len(seen) > _SEEN:
                    seen.popitem(last=False)
            outcome = detail.get("shadow") or record.outcome  # shadow mode: what it decided
            if record.kind != "decision" or rule_kind in _NOT_POLICY:
                outcome = None  # an operator's, the breaker's or the guard's own: not the policy's
            yield RecordedCall(
                tool=record.tool,
                args=args,
                agent=record.agent or DEFAULT_AGENT,
                thread_id=record.thread_id,
                run_id=record.run_id,
                call_id=call_id,
                step=step if isinstance(step, int) and not isinstance(step, bool) else None,
                at=record.at,
                outcome=outcome if outcome in OUTCOMES else None,
                rule=record.rule,
                redacted=_holds(args, _REDACTED),
                where=where,
            )
    except AuditError as exc:
        raise ReplayError(f"cannot read the audit log {name!r}: {exc}") from None
    finally:
        if own:
            log.close()


def _canon(args: Any) -> str:
    try:
        return json.dumps(args, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(args)


def _holds(value: Any, needle: str) -> bool:
    if isinstance(value, str):
        return needle in value
    if isinstance(value, Mapping):
        return any(_holds(k, needle) or _holds(v, needle) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds(v, needle) for v in value)
    return False


# -- LangGraph checkpoints ---------------------------------------------------------------------


def from_checkpoints(
    checkpointer: Any,
    threads: Iterable[str] | None = None,
    *,
    agent: str = DEFAULT_AGENT,
    messages_key: str = "messages",
) -> Iterator[Recorded]:
    """The tool calls in LangGraph checkpoint histories, thread after thread.

    ``checkpointer``: any LangGraph checkpointer (``SqliteSaver``, ``PostgresSaver``,
    ``InMemorySaver``...). ``threads``: the thread ids to read (default: every thread the
    checkpointer holds, in the order it lists them). Calls come from the ``AIMessage``
    tool calls in each thread's latest state, results from the ``ToolMessage`` answering
    them; ``agent`` names the agent of a message that has no ``name``. Messages are read
    as objects (``type``, ``tool_calls``, ``tool_call_id``), so this reader imports no
    framework.
    """
    named = threads is not None
    if threads is None:
        threads = _threads(checkpointer)
    for thread in threads:
        found = yield from _thread_calls(checkpointer, thread, agent, messages_key)
        if named and not found:
            raise ReplayError(f"no checkpoints with messages for thread {thread!r}")


def _threads(checkpointer: Any) -> list[str]:
    """Every thread id, in the order the checkpointer lists them. Read whole before any
    thread is read: a checkpointer may hold a lock while it lists (``SqliteSaver`` does)."""
    seen: dict[str, None] = {}
    for tup in checkpointer.list(None):
        thread = tup.config.get("configurable", {}).get("thread_id")
        if isinstance(thread, str):
            seen[thread] = None
    return list(seen)


def _thread_calls(
    checkpointer: Any, thread: str, agent: str, messages_key: str
) -> Generator[Recorded, None, bool]:
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    # Newest first: (time, number of messages) of each checkpoint of the thread's root graph.
    sizes: list[tuple[float, int]] = []
    latest: list[Any] | None = None
    for tup in checkpointer.list(config):
        if tup.config.get("configurable", {}).get("checkpoint_ns", ""):
            continue
        values = tup.checkpoint.get("channel_values", {})
        msgs = values.get(messages_key)
        if not isinstance(msgs, list):
            continue
        if latest is None:
            latest = msgs
        sizes.append((_checkpoint_time(tup.checkpoint.get("ts")), len(msgs)))
    if latest is None:
        return False
    sizes.reverse()  # oldest first

    def born(index: int) -> float | None:
        for at, n in sizes:
            if n > index:
                return at if at == at else None  # NaN: a checkpoint without a readable time
        return None

    for i, msg in enumerate(latest):
        kind = getattr(msg, "type", None)
        where = f"thread {thread!r} message {i}"
        if kind == "ai":
            name = getattr(msg, "name", None)
            for call in getattr(msg, "tool_calls", None) or ():
                args = call.get("args")
                yield RecordedCall(
                    tool=str(call.get("name", "")),
                    args=args if isinstance(args, dict) else {},
                    agent=name if isinstance(name, str) and name else agent,
                    thread_id=thread,
                    call_id=call.get("id") if isinstance(call.get("id"), str) else None,
                    at=born(i),
                    where=where,
                )
        elif kind == "tool":
            call_id = getattr(msg, "tool_call_id", None)
            if isinstance(call_id, str):
                content = getattr(msg, "content", "")
                yield RecordedResult(
                    call_id=call_id,
                    content=content if isinstance(content, str) else json.dumps(content),
                    tool=getattr(msg, "name", None),
                    thread_id=thread,
                    is_error=getattr(msg, "status", "success") == "error",
                    at=born(i),
                    where=where,
                )
    return True


def _checkpoint_time(ts: Any) -> float:
    if isinstance(ts, str):
        try:
            return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return math.nan
