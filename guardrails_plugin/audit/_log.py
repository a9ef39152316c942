"""``AuditLog``: every decision, approval, control action, trip and rollback, in one
tamper-evident chain."""

from __future__ import annotations

import csv
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Literal, TextIO

from .._decision import Decision
from .._events import AgentMessage, Event, ModelCall, ToolCall, ToolResult
from ._base import AuditError, AuditSink, Link
from ._records import FIELDS, AuditRecord, Draft
from ._redact import Redactor, _utf8
from ._stats import AuditStats
from ._verify import VerifyReport, verify_snapshot
from .jsonl import JSONLAuditSink
from .sqlite import SQLiteAuditSink

__all__ = ["EXCERPT", "AuditLog", "decision_fields", "is_postgres_url", "open_sink"]

EXCERPT = 200
"""Characters of a message or tool result kept in a record's ``detail``."""


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database rather than a file."""
    return text.startswith(("postgresql://", "postgres://"))


def open_sink(
    path: str | os.PathLike[str], *, durable: bool = False, create: bool = True
) -> AuditSink:
    """The sink a path names: ``postgresql://...`` -> ``PostgresAuditSink`` (imported only
    then: it needs psycopg), ``*.jsonl`` -> ``JSONLAuditSink``, anything else -> SQLite.
    ``create=False`` (PostgreSQL): only a log that exists."""
    text = os.fspath(path)
    if is_postgres_url(text):
        try:
            from .postgres import PostgresAuditSink
        except ImportError as exc:
            raise AuditError(
                f"an audit log in PostgreSQL needs psycopg 3 (pip install "
                f"'guardrails-plugin[postgres]'): {exc}"
            ) from exc
        return PostgresAuditSink(text, durable=durable, create=create)
    if text.endswith(".jsonl"):
        return JSONLAuditSink(text, durable=durable)
    return SQLiteAuditSink(text, durable=durable)


class AuditLog:
    """An append-only, hash-chained record of what the guard decided and what people did.

    >>> import tempfile, os
    >>> from guardrails_plugin import Decision, Effect, ToolCall
    >>> log = AuditLog(os.path.join(tempfile.mkdtemp(), "audit.db"))
    >>> call = ToolCall("send_email", {"to": "a@example.com", "api_key": "sk-123"})
    >>> record = log.decision(call, Decision(Effect.DENY, "outside-only", "not a colleague"))
    >>> record.kind, record.outcome, record.args["api_key"]
    ('decision', 'deny', '[REDACTED]')
    >>> log.verify().ok
    True
    >>> log.close()

    ``sink``: a path (``*.jsonl`` for JSON Lines, else a SQLite file), a PostgreSQL URL
    (``postgresql://user@host/db``: one chain for workers on many hosts) or an ``AuditSink``.
    ``Guard(policy, audit=log)`` records every decision with the policy's version and the
    checkpoint, and the operator actions and breaker trips too; a decision it cannot record
    becomes a deny with its budget given back. (As a plain listener, ``listeners=[log]``,
    it records decisions only, and a failure raises out of the check.) ``append`` records
    anything else (a rollback: ``Recovery(..., audit=log)`` does).

    ``redact`` (default ``Redactor()``) runs on arguments, details and reasons before
    anything is hashed or written. ``durable``: each record is flushed to disk before
    ``append`` returns (SQLite ``synchronous=FULL``, JSON Lines ``fdatasync``). ``policy``:
    stamped on decisions recorded without one.

    A record that cannot be written raises ``AuditError`` and is not stored (fail closed:
    nothing the guard allows goes unrecorded). One log may be shared by threads and
    processes.
    """

    def __init__(
        self,
        sink: AuditSink | str | os.PathLike[str],
        *,
        redact: Redactor | None = None,
        durable: bool = False,
        clock: Callable[[], float] = time.time,
        policy: str | None = None,
    ) -> None:
        if isinstance(sink, str | os.PathLike):
            sink = open_sink(sink, durable=durable)
        elif not isinstance(sink, AuditSink):
            raise TypeError(f"AuditLog needs a path or an AuditSink, found {type(sink).__name__}")
        elif durable and not sink.durable:
            raise ValueError(
                f"durable=True, but {sink!r} is not durable: build the sink with durable=True"
            )
        if redact is not None and not isinstance(redact, Redactor):
            raise TypeError(f"redact must be a Redactor, found {type(redact).__name__}")
        self.sink = sink
        self.redact = redact if redact is not None else Redactor()
        self.clock = clock
        self.policy = policy

    def __repr__(self) -> str:
        return f"AuditLog({self.sink!r})"

    def close(self) -> None:
        """Close the sink (its file or database)."""
        self.sink.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing --------------------------------------------------------------------------

    def __call__(self, event: Event, decision: Decision) -> None:
        """A guard listener: ``Guard(policy, listeners=[log])`` records every decision."""
        self.decision(event, decision)

    def decision(
        self,
        event: Event,
        decision: Decision,
        *,
        policy: str | None = None,
        checkpoint_id: str | None = None,
    ) -> AuditRecord:
        """Record the guard's ``decision`` about ``event``.

        The kind is ``"result"`` for a ``ToolResult``, ``"trip"`` when the cascade breaker
        decided (rule ``cascade:<signal>``), ``"approval"`` when a person answered,
        ``"control"`` for the kill switch, else ``"decision"``. ``args`` are the call's
        arguments; ``detail`` keeps the rest (edited arguments, a person's answer, the
        sender and recipient and an excerpt of a message, an excerpt of a tool result).
        """
        fields = decision_fields(event, decision)
        return self.append(
            fields.pop("kind"),
            **fields,
            checkpoint_id=checkpoint_id,
            policy=policy if policy is not None else self.policy,
        )

    def append(
        self,
        kind: str,
        *,
        outcome: str,
        agent: str | None = None,
        tool: str | None = None,
        args: Mapping[str, Any] | None = None,
        rule: str | None = None,
        reason: str = "",
        run_id: str | None = None,
        thread_id: str | None = None,
        checkpoint_id: str | None = None,
        approver: str | None = None,
        policy: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        """Record anything: a control action (kind ``"control"``, ``outcome`` the action,
        ``approver`` the operator), a breaker trip (``"trip"``), a rollback (``"rollback"``).
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, found {kind!r}")
        if not isinstance(outcome, str) or not outcome:
            raise ValueError(f"outcome must be a non-empty string, found {outcome!r}")
        if args is not None and not isinstance(args, Mapping):
            raise TypeError(f"args must be a mapping or None, found {type(args).__name__}")
        if detail is not None and not isinstance(detail, Mapping):
            raise TypeError(f"detail must be a mapping or None, found {type(detail).__name__}")
        r = self.redact
        draft = Draft(
            at=self.clock(),
            kind=_utf8(kind),
            outcome=_utf8(outcome),
            agent=_text(agent),
            tool=_text(tool),
            args=None if args is None else r(args),
            rule=_text(rule),
            reason=r(str(reason)),
            run_id=_text(run_id),
            thread_id=_text(thread_id),
            checkpoint_id=_text(checkpoint_id),
            approver=_text(approver),
            policy=_text(policy),
            detail=r(detail) if detail else {},
        )
        return self.sink.append(draft)

    def prune(self, *, keep_last: int | None = None, before: float | None = None) -> int:
        """Remove the oldest records: all but the last ``keep_last``, or those stamped
        before ``before`` (a ``time.time()`` value). The link the remaining chain starts
        from is kept as the anchor, so ``verify`` still checks everything that remains.
        Returns how many records were removed (JSON Lines: whole segments only)."""
        return self.sink.prune(keep_last=keep_last, before=before)

    # -- reading --------------------------------------------------------------------------

    def head(self) -> Link:
        """The last record's ``(seq, hash)``. Keep it elsewhere now and then: passed back as
        ``verify(witness=...)`` it proves nothing before it was rewritten or cut off."""
        return self.sink.head()

    def iter(
        self,
        since_seq: int | None = None,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> Iterator[AuditRecord]:
        """Records with ``seq > since_seq`` (all when None), oldest first, filtered by kind,
        thread id and agent."""
        return self.sink.records(since_seq, kind=kind, thread=thread, agent=agent)

    def __iter__(self) -> Iterator[AuditRecord]:
        return self.iter()

    def tail(
        self,
        n: int = 20,
        *,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> list[AuditRecord]:
        """The last ``n`` records (matching the filters), oldest first."""
        return self.sink.last(n, kind=kind, thread=thread, agent=agent)

    def follow(
        self,
        since_seq: int | None = None,
        *,
        poll: float = 0.5,
        stop: threading.Event | None = None,
        kind: str | None = None,
        thread: str | None = None,
        agent: str | None = None,
    ) -> Iterator[AuditRecord]:
        """Records as they are appended, by any process: those after ``since_seq`` (default:
        the head when ``follow`` is called, so only new ones), then each new one within
        ``poll`` seconds. Runs until ``stop`` is set (or the caller stops iterating)."""
        # read the head now, not at the first ``next()``: records appended in between count
        after = self.head()[0] if since_seq is None else since_seq
        return self._follow(after, poll, stop, kind, thread, agent)

    def _follow(
        self,
        after: int,
        poll: float,
        stop: threading.Event | None,
        kind: str | None,
        thread: str | None,
        agent: str | None,
    ) -> Iterator[AuditRecord]:
        while True:
            for record in self.sink.records(after):
                after = record.seq
                if (
                    (kind is None or record.kind == kind)
                    and (thread is None or record.thread_id == thread)
                    and (agent is None or record.agent == agent)
                ):
                    yield record
            if stop is not None:
                if stop.wait(poll):
                    return
            else:
                time.sleep(poll)

    def verify(self, *, witness: Link | None = None) -> VerifyReport:
        """Check the whole chain: every record's hash, every link, the anchor it starts
        from and (SQLite) the head it must end at. ``witness``: a ``head()`` kept elsewhere.
        The report says what was edited, removed, inserted or reordered, and where."""
        with self.sink.snapshot() as snapshot:
            return verify_snapshot(snapshot, witness)

    def stats(self, **filters: Any) -> AuditStats:
        """Counts by kind, outcome, agent, tool and rule; first and last time."""
        return AuditStats.of(self.iter(**filters))

    def export(
        self,
        out: TextIO,
        fmt: Literal["jsonl", "csv"] = "jsonl",
        **filters: Any,
    ) -> int:
        """Write the records (``iter`` filters apply) to ``out`` as JSON Lines (one
        ``to_doc()`` per line, hash included) or CSV (``args`` and ``detail`` as JSON text).
        Returns how many were written.

        CSV is for spreadsheets, and names and reasons may come from a model: a text cell
        starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is written
        with a leading ``'``, so a spreadsheet shows it instead of running it as a formula.
        JSON Lines is written as stored."""
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"export format must be 'jsonl' or 'csv', found {fmt!r}")
        n = 0
        if fmt == "jsonl":
            for record in self.iter(**filters):
                out.write(json.dumps(record.to_doc(), ensure_ascii=False, sort_keys=False))
                out.write("\n")
                n += 1
            return n
        writer = csv.writer(out)
        writer.writerow(FIELDS)
        for record in self.iter(**filters):
            doc = record.to_doc()
            for name in ("args", "detail"):
                doc[name] = "" if doc[name] is None else json.dumps(doc[name], ensure_ascii=False)
            writer.writerow([_cell(doc[f]) for f in FIELDS])
            n += 1
        return n


def decision_fields(event: Event, decision: Decision) -> dict[str, Any]:
    """What ``AuditLog.decision`` records of ``decision`` about ``event``, before redaction:
    ``kind``, ``outcome``, ``agent``, ``tool``, ``args``, ``rule``, ``reason``, ``run_id``,
    ``thread_id``, ``approver``, ``detail`` (pure: a live view can show decisions in the
    same shape without writing them)."""
    detail: dict[str, Any] = {}
    if decision.kind != "rule":
        detail["rule_kind"] = decision.kind
    args: Mapping[str, Any] | None = None
    agent, tool = decision.agent, decision.tool
    run_id = thread_id = None
    kind = "decision"
    if isinstance(event, ToolCall):
        agent, tool, run_id, thread_id = event.agent, event.tool, event.run_id, event.thread_id
        args = event.args
        if not event.readable:
            detail["raw_args"] = event.raw_args
        _put(detail, call_id=event.call_id, step=event.step)
        if event.message is not None:
            detail.update(_message(event.message))
    elif isinstance(event, ToolResult):
        agent, tool, run_id, thread_id = event.agent, event.tool, event.run_id, event.thread_id
        kind = "result"
        _put(detail, call_id=event.call_id)
        detail["is_error"] = event.is_error
        detail["content"] = _excerpt(event.content)
        detail["length"] = len(event.content)
    elif isinstance(event, AgentMessage):
        agent, run_id, thread_id = event.sender, event.run_id, event.thread_id
        detail.update(_message(event))
    elif isinstance(event, ModelCall):
        agent, run_id, thread_id = event.agent, event.run_id, event.thread_id
        detail["tools"] = list(event.tools)
        _put(detail, step=event.step)
    else:
        detail["event"] = type(event).__name__
    if kind != "result":
        if decision.rule.startswith("cascade:"):
            kind = "trip"
        elif decision.kind in ("approval", "control"):
            kind = decision.kind
    if decision.args is not None:
        detail["edited_args"] = decision.args
    if decision.response is not None:
        detail["response"] = decision.response
    if decision.shadow is not None:
        detail["shadow"] = decision.shadow
    if decision.would is not None:  # shadow rules: what enforcing them would have decided
        detail["would"] = decision.would
        detail["would_rule"] = decision.would_rule
    return {
        "kind": kind,
        "outcome": str(decision.effect),
        "agent": agent,
        "tool": tool,
        "args": args,
        "rule": decision.rule,
        "reason": decision.reason,
        "run_id": run_id,
        "thread_id": thread_id,
        "approver": decision.approver,
        "detail": detail,
    }


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in _FORMULA:
        return "'" + value
    return value


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: Any) -> str | None:
    # _utf8: a tool name the model made up may hold a lone surrogate, which UTF-8 cannot
    # encode; written escaped, the record is kept instead of lost.
    return None if value is None else _utf8(str(value))


def _put(detail: dict[str, Any], **values: Any) -> None:
    for key, value in values.items():
        if value is not None:
            detail[key] = value


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."


def _message(msg: AgentMessage) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "sender": msg.sender,
        "recipient": msg.recipient,
        "content": _excerpt(msg.content),
    }
    _put(detail, step=msg.step, message_id=msg.id, origin=msg.origin)
    if msg.path:
        detail["path"] = list(msg.path)
    if msg.labels:
        detail["labels"] = sorted(msg.labels)
    if getattr(msg, "passive", False):
        detail["passive"] = True  # inferred by an observer, not reported by the sender
    return detail
