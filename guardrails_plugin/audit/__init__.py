"""The audit log: every decision, approval, control action, breaker trip and rollback, in an
append-only, hash-chained, redacted record that says where it was tampered with.

    from guardrails_plugin import Guard
    from guardrails_plugin.audit import AuditLog

    log = AuditLog("audit.db")                    # SQLite (WAL); "audit.jsonl" for JSON Lines
    guard = Guard(policy, audit=log)              # decisions, approvals, controls, trips
    log.append("control", outcome="pause", thread_id="t-42", approver="alice")
    print(log.verify())                           # ok, or what was edited/removed/... and where
    for record in log.tail(20):
        print(record)

From a terminal: ``guardrails-plugin audit tail --follow``, ``audit verify``, ``audit export
--format csv``, ``audit stats`` (``--log PATH``, default ``audit.db``).

Each record's ``hash`` is the SHA-256 of its canonical JSON (sorted keys, no whitespace,
UTF-8), which includes ``prev``, the hash of the record before it (``GENESIS`` for the first).
Secrets are redacted before hashing. Several processes may append to one log: each append
holds the sink's lock (SQLite ``BEGIN IMMEDIATE``; JSON Lines ``flock``) from reading the
last link to storing the new record.
"""

from ._base import AuditError, AuditSink, Entry, Link, Snapshot
from ._log import EXCERPT, AuditLog, decision_fields, open_sink
from ._records import FIELDS, GENESIS, KINDS, AuditRecord, Draft, canonical, record_hash
from ._redact import DEFAULT_KEYS, DEFAULT_PATTERNS, Redactor
from ._stats import AuditStats
from ._verify import Problem, ProblemKind, VerifyReport
from .jsonl import JSONLAuditSink
from .sqlite import SQLiteAuditSink

__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_PATTERNS",
    "EXCERPT",
    "FIELDS",
    "GENESIS",
    "KINDS",
    "AuditError",
    "AuditLog",
    "AuditRecord",
    "AuditSink",
    "AuditStats",
    "Draft",
    "Entry",
    "JSONLAuditSink",
    "Link",
    "Problem",
    "ProblemKind",
    "Redactor",
    "SQLiteAuditSink",
    "Snapshot",
    "VerifyReport",
    "canonical",
    "decision_fields",
    "open_sink",
    "record_hash",
]
