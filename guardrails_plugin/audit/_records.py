"""One audit record, its canonical form and its hash: pure values, no I/O.

Each record names the hash of the record before it (``prev``; the first names ``GENESIS``)
and its own ``hash`` is the SHA-256 of its canonical form, which includes ``prev``. Editing,
removing, inserting or moving a record therefore breaks a link the verifier can point at.

The canonical form is the record's fields except ``hash`` as JSON with sorted keys, no
whitespace, non-ASCII kept as UTF-8, NaN and infinities refused (they never reach a record:
``Redactor`` turns them into strings), ``at`` always a float, ``args`` ``null`` or an object,
``detail`` an object. ``Draft.seal`` builds exactly these bytes from fragments serialized
before the writer takes its lock; ``canonical`` builds them from a whole record (the verifier).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["AuditRecord", "Draft", "FIELDS", "GENESIS", "KINDS", "canonical", "record_hash"]

GENESIS = hashlib.sha256(b"guardrails-plugin audit log, format 1").hexdigest()
"""What the first record of a log chains to (its ``prev``)."""

KINDS = ("decision", "approval", "control", "trip", "result", "rollback")
"""The kinds of record the package writes. ``AuditLog.append`` accepts any other name too."""

FIELDS = (
    "seq",
    "at",
    "kind",
    "outcome",
    "agent",
    "tool",
    "args",
    "rule",
    "reason",
    "run_id",
    "thread_id",
    "checkpoint_id",
    "approver",
    "policy",
    "detail",
    "prev",
    "hash",
)
"""Every field of a record, in the order exports list them."""

_FIELD_SET = frozenset(FIELDS)
_HASHED = tuple(sorted(f for f in FIELDS if f != "hash"))
_OPTIONAL_TEXT = (
    "agent",
    "tool",
    "rule",
    "run_id",
    "thread_id",
    "checkpoint_id",
    "approver",
    "policy",
)


# C0 and C1 controls, DEL, and the bidirectional overrides ("Trojan Source"), as \xNN / \uNNNN.
_CONTROLS = {
    c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")
    for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}

# One encoder for every call: json.dumps(**options) builds a new one each time (~4 µs).
_encode_str = json.encoder.encode_basestring  # the C version when available
_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One line of the audit trail: what was decided or done, by whom, about what, and why.

    ``kind`` is ``"decision"`` (the guard answered a tool call, model call or hand-off),
    ``"approval"`` (a person answered), ``"control"`` (an operator paused, killed, resumed or
    quarantined; ``outcome`` is the action), ``"trip"`` (the cascade breaker), ``"result"``
    (a tool returned) or ``"rollback"``. ``outcome`` is the effect (``allow``, ``deny``,
    ``ask``, ``modify``, ``respond``) or the action. ``args`` are the call's arguments and
    ``detail`` anything else worth keeping, both already redacted. ``seq`` numbers records
    from 1; ``prev`` and ``hash`` chain them.
    """

    seq: int
    at: float
    kind: str
    outcome: str
    agent: str | None = None
    tool: str | None = None
    args: Mapping[str, Any] | None = None
    rule: str | None = None
    reason: str = ""
    run_id: str | None = None
    thread_id: str | None = None
    checkpoint_id: str | None = None
    approver: str | None = None
    policy: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    prev: str = GENESIS
    hash: str = ""

    def __post_init__(self) -> None:
        if self.args is not None and not isinstance(self.args, MappingProxyType):
            object.__setattr__(self, "args", MappingProxyType(dict(self.args)))
        if not isinstance(self.detail, MappingProxyType):
            object.__setattr__(self, "detail", MappingProxyType(dict(self.detail)))

    def __hash__(self) -> int:
        return hash((self.seq, self.hash))

    def __str__(self) -> str:
        """One readable line: time, #seq, kind, outcome, agent -> tool, @thread, [rule],
        by approver: reason. Control characters are escaped (``\\x1b``): names and
        reasons may come from a model, and must not drive the terminal that shows them."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        millis = int(self.at * 1000) % 1000
        parts = [f"{stamp}.{millis:03d}", f"#{self.seq}", self.kind, self.outcome]
        recipient = self.detail.get("recipient")
        who = self.agent or ""
        if self.tool:
            who = f"{who} -> {self.tool}" if who else self.tool
        elif isinstance(recipient, str):
            who = f"{who} => {recipient}"
        if who:
            parts.append(who)
        if self.thread_id:
            parts.append(f"@{self.thread_id}")
        if self.rule:
            parts.append(f"[{self.rule}]")
        if self.approver:
            parts.append(f"by {self.approver}")
        line = "  ".join(parts)
        if self.reason:
            line += ": " + " ".join(self.reason.split())
        return line.translate(_CONTROLS)

    @property
    def digest(self) -> str:
        """The hash this record's fields give (``hash`` when nobody changed them)."""
        return record_hash(self)

    def to_doc(self) -> dict[str, Any]:
        """Plain JSON data, every field; ``AuditRecord.from_doc`` reads it back."""
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "outcome": self.outcome,
            "agent": self.agent,
            "tool": self.tool,
            "args": None if self.args is None else dict(self.args),
            "rule": self.rule,
            "reason": self.reason,
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "checkpoint_id": self.checkpoint_id,
            "approver": self.approver,
            "policy": self.policy,
            "detail": dict(self.detail),
            "prev": self.prev,
            "hash": self.hash,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> AuditRecord:
        """Read a record written by ``to_doc``; ``ValueError`` names the first field that is
        missing, of the wrong type or not a field of a record (the verifier reports such a
        record as unreadable)."""
        if not isinstance(doc, dict | Mapping):  # dict first: an ABC check is slow
            raise ValueError(f"a record is a JSON object, found {type(doc).__name__}")
        missing = [f for f in FIELDS if f not in doc]
        if missing:
            raise ValueError(f"field {missing[0]!r} is missing")
        if len(doc) != len(FIELDS):  # a consumer of the file would show it: not as written
            extra = next(k for k in doc if k not in _FIELD_SET)
            raise ValueError(f"holds {extra!r}, which is not a field of an audit record")
        seq, at = doc["seq"], doc["at"]
        if type(seq) is not int:
            raise ValueError(f"field 'seq' must be an integer, found {seq!r}")
        if type(at) not in (int, float):
            raise ValueError(f"field 'at' must be a number, found {at!r}")
        for name in ("kind", "outcome", "reason", "prev", "hash"):
            if not isinstance(doc[name], str):
                raise ValueError(f"field {name!r} must be a string, found {doc[name]!r}")
        for name in _OPTIONAL_TEXT:
            if doc[name] is not None and not isinstance(doc[name], str):
                raise ValueError(f"field {name!r} must be a string or null, found {doc[name]!r}")
        args, detail = doc["args"], doc["detail"]
        if args is not None and not isinstance(args, dict | Mapping):
            raise ValueError(f"field 'args' must be an object or null, found {args!r}")
        if not isinstance(detail, dict | Mapping):
            raise ValueError(f"field 'detail' must be an object, found {detail!r}")
        return cls(
            seq=seq,
            at=float(at),
            kind=doc["kind"],
            outcome=doc["outcome"],
            agent=doc["agent"],
            tool=doc["tool"],
            args=args,
            rule=doc["rule"],
            reason=doc["reason"],
            run_id=doc["run_id"],
            thread_id=doc["thread_id"],
            checkpoint_id=doc["checkpoint_id"],
            approver=doc["approver"],
            policy=doc["policy"],
            detail=detail,
            prev=doc["prev"],
            hash=doc["hash"],
        )


def canonical(record: AuditRecord, *, seq: int | None = None) -> bytes:
    """The bytes ``record``'s hash covers (``seq``: as if it were numbered ``seq``)."""
    doc = record.to_doc()
    del doc["hash"]
    doc["at"] = float(record.at)
    if seq is not None:
        doc["seq"] = seq
    # surrogatepass: a lone surrogate read from a tampered file hashes (and mismatches)
    # instead of crashing the verifier. Records this package writes never hold one.
    return _dumps(doc).encode("utf-8", "surrogatepass")


def record_hash(record: AuditRecord, *, seq: int | None = None) -> str:
    """SHA-256 (hex) of ``canonical(record)``."""
    return hashlib.sha256(canonical(record, seq=seq)).hexdigest()


class Draft:
    """A record waiting for its place in the chain: everything but ``seq`` and ``prev``.

    Built (and redacted, and serialized) before the writer takes the log's lock; ``seal``
    then only splices in ``seq`` and ``prev`` and hashes, so the lock is held for as short a
    time as possible. ``fields`` must already be JSON-clean (``Redactor`` output).
    """

    __slots__ = ("_head", "_middle", "_tail", "json", "values")

    def __init__(self, **fields: Any) -> None:
        values: dict[str, Any] = dict.fromkeys(_FILLED)
        values["reason"] = ""
        values["detail"] = {}
        values.update(fields)
        values["at"] = float(values["at"])
        self.values = values
        self.json = {name: _json(values[name]) for name in _FILLED}
        """Each field's canonical JSON text (the SQLite sink stores ``args`` / ``detail``)."""
        frags = [f'"{name}":{self.json[name]}' for name in _FILLED]
        # Sorted keys: [agent .. policy] "prev" [reason .. run_id] "seq" [thread_id, tool].
        self._head = "{" + ",".join(frags[:_PREV_AT])
        self._middle = ",".join(frags[_PREV_AT : _SEQ_AT - 1])
        self._tail = ",".join(frags[_SEQ_AT - 1 :]) + "}"

    def seal(self, seq: int, prev: str) -> tuple[AuditRecord, str]:
        """The record numbered ``seq`` chained to ``prev``, and its canonical JSON text."""
        text = f'{self._head},"prev":{_json(prev)},{self._middle},"seq":{int(seq)},{self._tail}'
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        record = AuditRecord(seq=seq, prev=prev, hash=digest, **self.values)
        return record, text


_FILLED = tuple(name for name in _HASHED if name not in ("seq", "prev"))
_PREV_AT = _HASHED.index("prev")
_SEQ_AT = _HASHED.index("seq")
assert 0 < _PREV_AT < _SEQ_AT - 1 < len(_FILLED), "the splice in Draft.seal needs this order"


def _json(value: Any) -> str:
    """``_dumps`` with the common cases first (they skip the encoder's set-up)."""
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if value is None:
        return "null"
    if kind is float and math.isfinite(value):
        return float.__repr__(value)  # what the encoder writes for a finite float
    if kind is int:
        return int.__repr__(value)
    return _dumps(value)
