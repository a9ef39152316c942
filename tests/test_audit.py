"""The audit log: every record chained, redacted before hashing, shared by processes, and a
verifier that finds each kind of tampering and says where.

Both sinks (SQLite, JSON Lines) run the same promises where they make the same promise;
tampering is done the way an intruder would, on the files themselves (``sqlite3``, editing
lines), never through the package.
"""

from __future__ import annotations

import csv
import doctest
import errno
import gc
import hashlib
import importlib
import io
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import audit_worker
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import guardrails_plugin
from guardrails_plugin import (
    AgentMessage,
    Decision,
    Effect,
    Guard,
    ModelCall,
    Policy,
    SQLiteStore,
    ToolCall,
    ToolResult,
    allow,
)
from guardrails_plugin.audit import (
    GENESIS,
    AuditError,
    AuditLog,
    AuditRecord,
    AuditStats,
    Draft,
    JSONLAuditSink,
    Problem,
    Redactor,
    SQLiteAuditSink,
    VerifyReport,
    canonical,
    record_hash,
)
from guardrails_plugin.cli import BROKEN_PIPE, main

FORK = multiprocessing.get_context("fork")
WORKER = Path(audit_worker.__file__)
ROOT = Path(guardrails_plugin.__file__).resolve().parents[1]
SINKS = ["sqlite", "jsonl"]


class Clock:
    """1.0, 2.0, 3.0, ...: records stamped one second apart."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def log_path(tmp_path: Path, sink: str) -> Path:
    return tmp_path / ("audit.db" if sink == "sqlite" else "audit.jsonl")


def filled(path: Path, n: int = 10, **kwargs: Any) -> AuditLog:
    """A log with ``n`` decisions, reasons ``r1`` .. ``rn``, stamped 1.0 .. n."""
    log = AuditLog(path, clock=kwargs.pop("clock", Clock()), **kwargs)
    for i in range(1, n + 1):
        call = ToolCall("search", {"q": f"q{i}"}, agent=f"agent{i % 2}", thread_id=f"t{i % 3}")
        log.decision(call, Decision(Effect.ALLOW, "searches", f"r{i}"))
    return log


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def write_lines(path: Path, content: list[str]) -> None:
    path.write_text("".join(content), encoding="utf-8")


def rehashed(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its hash recomputed over its (changed) fields: a careful intruder."""
    doc = dict(doc)
    doc["hash"] = record_hash(AuditRecord.from_doc(doc))
    return doc


def only(report: VerifyReport) -> Problem:
    assert not report.ok, str(report)
    assert len(report.problems) == 1, str(report)
    return report.problems[0]


def db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def row_doc(conn: sqlite3.Connection, seq: int) -> dict[str, Any]:
    cur = conn.execute("SELECT * FROM guardrails_audit WHERE seq = ?", (seq,))
    names = [c[0] for c in cur.description]
    doc = dict(zip(names, cur.fetchone(), strict=True))
    doc["args"] = json.loads(doc["args"]) if doc["args"] else None
    doc["detail"] = json.loads(doc["detail"])
    return doc


def insert_row(conn: sqlite3.Connection, doc: dict[str, Any]) -> None:
    """Write ``doc`` as a row, behind the log's back."""
    doc = {**doc, "args": None if doc["args"] is None else json.dumps(doc["args"])}
    doc["detail"] = json.dumps(doc["detail"])
    names = ", ".join(doc)
    conn.execute(
        f"INSERT INTO guardrails_audit ({names}) VALUES ({', '.join('?' * len(doc))})",
        list(doc.values()),
    )


@dataclass
class Creds:
    user: str
    password: str


# -- records and the chain --------------------------------------------------------------------


@pytest.mark.parametrize("sink", SINKS)
def test_records_are_numbered_and_chained_from_genesis(tmp_path: Path, sink: str) -> None:
    with filled(log_path(tmp_path, sink), 5) as log:
        records = list(log.iter())
        assert [r.seq for r in records] == [1, 2, 3, 4, 5]
        assert records[0].prev == GENESIS
        for before, after in itertools.pairwise(records):
            assert after.prev == before.hash
        for r in records:
            assert r.hash == hashlib.sha256(canonical(r)).hexdigest()
        assert log.head() == (5, records[-1].hash)
        report = log.verify()
        assert report.ok
        assert report.records == 5
        assert report.problems == []
        assert report.last == (5, records[-1].hash)


def test_the_canonical_form_is_sorted_compact_json_with_prev_and_without_hash() -> None:
    draft = Draft(at=1.5, kind="decision", outcome="deny", reason="é", args={"b": 1, "a": [2]})
    record, text = draft.seal(7, "abc")
    doc = json.loads(text)
    assert "hash" not in doc
    assert doc["prev"] == "abc"
    assert doc["seq"] == 7
    assert text == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical(record) == text.encode("utf-8")
    assert record.hash == hashlib.sha256(text.encode()).hexdigest()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=60, deadline=None)
@given(
    args=st.none() | st.dictionaries(st.text(), JSONISH, max_size=4),
    reason=st.text(),
    at=st.floats(min_value=0, max_value=4e9),
    seq=st.integers(min_value=1, max_value=10**12),
)
def test_a_sealed_record_and_the_verifier_agree_on_its_bytes(
    args: dict[str, Any] | None, reason: str, at: float, seq: int
) -> None:
    r = Redactor(keys=(), patterns=())
    record, text = Draft(
        at=at, kind="k", outcome="o", args=None if args is None else r(args), reason=r(reason)
    ).seal(seq, GENESIS)
    assert canonical(record) == text.encode("utf-8")
    assert record_hash(AuditRecord.from_doc(json.loads(json.dumps(record.to_doc())))) == record.hash


def test_a_record_reads_back_and_prints_on_one_line() -> None:
    record, _ = Draft(
        at=0.25,
        kind="approval",
        outcome="modify",
        agent="mailer",
        tool="send_email",
        rule="outside",
        approver="alice",
        reason="edited\nby a person",
    ).seal(3, GENESIS)
    assert AuditRecord.from_doc(record.to_doc()) == record
    line = str(record)
    assert "\n" not in line
    for part in ("#3", "approval", "modify", "mailer -> send_email", "[outside]", "by alice"):
        assert part in line
    assert line.endswith("edited by a person")
    with pytest.raises(ValueError, match="'outcome' is missing"):
        AuditRecord.from_doc({k: v for k, v in record.to_doc().items() if k != "outcome"})
    with pytest.raises(ValueError, match="'seq' must be an integer"):
        AuditRecord.from_doc({**record.to_doc(), "seq": "3"})


def test_a_printed_record_carries_no_terminal_control_sequences() -> None:
    """A tool name comes from the model: ``audit tail`` must not let it drive the terminal."""
    record, _ = Draft(
        at=1.0,
        kind="decision",
        outcome="deny",
        tool="ls\x1b[2J",
        agent="a\x9b31m",
        thread_id="t\u202e1",
        reason="x\x1b]0;owned\x07y",
    ).seal(1, GENESIS)
    line = str(record)
    assert not [c for c in line if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c == "\u202e"]
    assert "ls\\x1b[2J" in line
    assert "x\\x1b]0;owned\\x07y" in line


@pytest.mark.parametrize("module", ["_log", "_redact"])
def test_the_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"guardrails_plugin.audit.{module}"))
    assert result.attempted > 0
    assert result.failed == 0


# -- what a decision becomes --------------------------------------------------------------------


def test_decisions_become_records_of_the_right_kind(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db", policy="v1:abc123")
    call = ToolCall("send_email", {"to": "a@x.org"}, agent="mailer", thread_id="t1", call_id="c1")
    plain = log.decision(call, Decision(Effect.DENY, "outside", "not a colleague"))
    assert (plain.kind, plain.outcome, plain.rule, plain.agent, plain.tool) == (
        "decision",
        "deny",
        "outside",
        "mailer",
        "send_email",
    )
    assert plain.args == {"to": "a@x.org"}
    assert plain.thread_id == "t1"
    assert plain.detail["call_id"] == "c1"
    assert plain.policy == "v1:abc123"

    edited = log.decision(
        call,
        Decision(
            Effect.MODIFY,
            "outside",
            "edited",
            args={"to": "b@x.org"},
            kind="approval",
            approver="alice",
        ),
        policy="v2",
        checkpoint_id="cp-9",
    )
    assert (edited.kind, edited.outcome, edited.approver) == ("approval", "modify", "alice")
    assert edited.args == {"to": "a@x.org"}
    assert edited.detail["edited_args"] == {"to": "b@x.org"}
    assert edited.policy == "v2"
    assert edited.checkpoint_id == "cp-9"

    killed = log.decision(call, Decision(Effect.DENY, "kill-switch", "killed", kind="control"))
    assert killed.kind == "control"
    trip = log.decision(
        AgentMessage("a", "b", "x" * 500, thread_id="t1", path=("sup",)),
        Decision(Effect.ASK, "cascade:loop", "a loop", kind="control"),
    )
    assert trip.kind == "trip"
    assert trip.agent == "a"
    assert trip.detail["sender"] == "a"
    assert trip.detail["recipient"] == "b"
    assert trip.detail["content"] == "x" * 200 + "..."
    assert trip.detail["path"] == ["sup"]

    result = log.decision(
        ToolResult("search", "found it", agent="r", thread_id="t1"),
        Decision(Effect.ALLOW, "record", "recorded", kind="guard"),
    )
    assert (result.kind, result.outcome, result.tool) == ("result", "allow", "search")
    assert result.detail["content"] == "found it"
    assert result.detail["length"] == 8
    model = log.decision(ModelCall("r", ("search",)), Decision(Effect.ALLOW, "no-rule", "ok"))
    assert model.kind == "decision"
    assert model.detail["tools"] == ["search"]

    paused = log.append(
        "control", outcome="pause", thread_id="t1", approver="bob", reason="looping"
    )
    assert (paused.kind, paused.outcome, paused.approver, paused.seq) == (
        "control",
        "pause",
        "bob",
        7,
    )
    assert [r.kind for r in log.iter()] == [
        "decision",
        "approval",
        "control",
        "trip",
        "result",
        "decision",
        "control",
    ]
    assert log.verify().ok
    log.close()


def test_the_log_is_a_guard_listener_and_records_every_decision(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    guard = Guard(Policy([allow("search")]), listeners=[log])
    ok = guard.check(ToolCall("search", {"q": "llamas"}, thread_id="t"))
    no = guard.check(ToolCall("rm", {"path": "/", "password": "hunter2"}, thread_id="t"))
    got = log.tail()
    assert [(r.tool, r.outcome, r.rule, r.reason) for r in got] == [
        ("search", "allow", ok.rule, ok.reason),
        ("rm", "deny", no.rule, no.reason),
    ]
    assert got[1].args == {"path": "/", "password": "[REDACTED]"}
    log.close()


def test_a_log_that_cannot_be_written_stops_the_guard(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    guard = Guard(Policy([allow("search")]), listeners=[log])
    log.close()
    with pytest.raises(AuditError, match="closed"):
        guard.check(ToolCall("search", {"q": "x"}))


# -- redaction ------------------------------------------------------------------------------


def test_secret_keys_are_redacted_at_any_depth_whatever_their_case() -> None:
    r = Redactor()
    out = r(
        {
            "user": "ann",
            "Password": "hunter2",
            "headers": {"Authorization": "x", "X-Api-Key": "k", "Cookie": "c"},
            "steps": [{"access_token": "t"}, {"client_secret": {"nested": 1}}],
            "pem": {"private_key": "..."},
        }
    )
    assert out == {
        "user": "ann",
        "Password": "[REDACTED]",
        "headers": {
            "Authorization": "[REDACTED]",
            "X-Api-Key": "[REDACTED]",
            "Cookie": "[REDACTED]",
        },
        "steps": [{"access_token": "[REDACTED]"}, {"client_secret": "[REDACTED]"}],
        "pem": {"private_key": "[REDACTED]"},
    }


def test_secret_looking_values_are_redacted_inside_any_string() -> None:
    r = Redactor()
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAKC\n-----END RSA PRIVATE KEY-----"
    text = (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc; "
        "key sk-proj-abcdefghijklmnop1234 and AKIAIOSFODNN7EXAMPLE; "
        f"pem {pem}; url https://bob:s3cretpw@db.example.com/x?token=abc123&q=1"
    )
    out = r({"note": text})["note"]
    for secret in (
        "eyJhbGciOiJIUzI1NiJ9",
        "sk-proj-abcdefghijklmnop1234",
        "AKIAIOSFODNN7EXAMPLE",
        "MIIEow",
        "s3cretpw",
        "abc123",
    ):
        assert secret not in out
    assert "Bearer [REDACTED]" in out
    assert "bob:[REDACTED]@db.example.com" in out
    assert "token=[REDACTED]&q=1" in out
    assert "https://" in out


def test_redaction_is_configurable() -> None:
    r = Redactor(keys=["ssn"], patterns=[r"\b\d{3}-\d{2}-\d{4}\b"], replacement="***")
    assert r({"SSN": "1", "password": "kept", "note": "id 123-45-6789 ok"}) == {
        "SSN": "***",
        "password": "kept",
        "note": "id *** ok",
    }
    plain = Redactor(keys=(), patterns=())
    assert plain({"t": (1, 2), "b": b"\xff", "nan": float("nan"), "s": {2, 1}, 3: Path("/x")}) == {
        "t": [1, 2],
        "b": "\\xff",
        "nan": "nan",
        "s": [1, 2],
        "3": "/x",
    }
    with pytest.raises(ValueError, match="not a regular expression"):
        Redactor(patterns=["("])


def test_a_value_under_a_secret_key_inside_text_is_redacted() -> None:
    """JSON a tool returned, arguments that were not valid JSON, an object's repr, a header:
    in text, the value after a secret-named key is hidden as it is in a mapping."""
    r = Redactor()
    oauth = '{"access_token": "ya29.a0AfH6SMBx", "expires_in": 3599, "scope": "email"}'
    assert r(oauth) == '{"access_token": "[REDACTED]", "expires_in": 3599, "scope": "email"}'
    cut_short = '{"to": "a@x.org", "api_key": "k-123456", "body": "hi'
    assert r(cut_short) == '{"to": "a@x.org", "api_key": "[REDACTED]", "body": "hi'
    assert "ya29" not in r(json.dumps({"raw": oauth}))  # JSON text inside JSON text
    excerpt = '{"id": 7, "access_token": "ya29.a0AfH6SMBxyzxyz...'  # cut short (an excerpt)
    assert r(excerpt) == '{"id": 7, "access_token": "[REDACTED]"'
    assert r({"c": Creds("ann", "hunter2")}) == {"c": "Creds(user='ann', password='[REDACTED]')"}
    assert r("X-Api-Key: abcdef123456\nAccept: */*") == "X-Api-Key: [REDACTED]\nAccept: */*"
    assert r("the db password: hunter2, then") == "the db password: [REDACTED], then"
    bearer = "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.x"
    assert r(bearer) == "Authorization: Bearer [REDACTED]"
    assert r('{"credentials": {"user": "ann"}}') == '{"credentials": {"user": "ann"}}'
    assert r("a token budget of 5 calls") == "a token budget of 5 calls"
    assert Redactor(keys=())('{"password": "kept"}') == '{"password": "kept"}'


def test_secrets_in_mapping_keys_are_redacted_and_keys_that_collide_are_kept() -> None:
    r = Redactor()
    out = r(
        {
            "sk-abcdefghijklmnopqrstuv": "mine",
            "sk-zyxwvutsrqponmlkjihgfe": "yours",
            "https://bob:pw-123@db.example.com": 1,
            b"Bearer abcdefghijkl": 2,
        }
    )
    text = json.dumps(out)
    for secret in ("abcdefghijklmnop", "zyxwvutsrqpon", "pw-123", "abcdefghijkl"):
        assert secret not in text
    assert sorted(map(str, out.values())) == ["1", "2", "mine", "yours"]
    assert "https://bob:[REDACTED]@db.example.com" in out


@pytest.mark.parametrize("sink", SINKS)
def test_a_tool_result_holding_a_token_never_reaches_the_file(tmp_path: Path, sink: str) -> None:
    path = log_path(tmp_path, sink)
    with AuditLog(path) as log:
        result = ToolResult("oauth", '{"access_token": "ya29.zzzSECRETzzz", "expires_in": 60}')
        log.decision(result, Decision(Effect.ALLOW, "record", "recorded", kind="guard"))
        log.decision(
            ToolCall("login", '{"user": "ann", "password": "hunter2-zzz"'),  # not valid JSON
            Decision(Effect.DENY, "unreadable", "the arguments are not JSON"),
        )
        assert log.verify().ok
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"ya29.zzzSECRETzzz" not in raw
    assert b"hunter2-zzz" not in raw


@pytest.mark.parametrize("sink", SINKS)
def test_names_that_are_not_valid_unicode_are_recorded_not_lost(tmp_path: Path, sink: str) -> None:
    """A tool name comes from the model: a lone surrogate in it must not lose the record."""
    with AuditLog(log_path(tmp_path, sink)) as log:
        call = ToolCall("lookup\ud800", {"q": "x"}, agent="a\udfff", thread_id="t\ud800")
        record = log.decision(call, Decision(Effect.DENY, "no-rule", "not allowed"))
        assert (record.tool, record.agent, record.thread_id) == (
            "lookup\\ud800",
            "a\\udfff",
            "t\\ud800",
        )
        assert log.tail(1) == [record]
        assert log.verify().ok


@pytest.mark.parametrize("sink", SINKS)
def test_secrets_never_reach_the_file_and_the_chain_still_verifies(
    tmp_path: Path, sink: str
) -> None:
    path = log_path(tmp_path, sink)
    with AuditLog(path) as log:
        call = ToolCall(
            "http", {"url": "https://x", "headers": {"Authorization": "Bearer tok3n-abcdefgh"}}
        )
        log.decision(
            call, Decision(Effect.DENY, "r", "refused key sk-abcdefghijklmnopqrstu in the call")
        )
        log.append("rollback", outcome="done", detail={"db_password": "pw-zzz-9"})
        record = log.tail(2)[0]
        assert "sk-abcdefghijklmnopqrstu" not in record.reason
        assert log.verify().ok
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (b"tok3n-abcdefgh", b"sk-abcdefghijklmnopqrstu", b"pw-zzz-9"):
        assert secret not in raw


# -- tampering: JSON Lines ----------------------------------------------------------------------


@pytest.fixture
def jsonl10(tmp_path: Path) -> Iterator[tuple[AuditLog, Path]]:
    path = tmp_path / "audit.jsonl"
    log = filled(path, 10)
    yield log, path
    log.close()


def test_jsonl_edited_record_is_found_at_its_line(jsonl10: tuple[AuditLog, Path]) -> None:
    log, path = jsonl10
    content = lines(path)
    content[3] = content[3].replace('"reason":"r4"', '"reason":"nothing to see"')
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 4, f"{path}:4")


def test_jsonl_edited_and_rehashed_record_is_found(jsonl10: tuple[AuditLog, Path]) -> None:
    log, path = jsonl10
    content = lines(path)
    doc = json.loads(content[3])
    content[3] = json.dumps(rehashed({**doc, "outcome": "deny"})) + "\n"
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 4, f"{path}:4")
    assert "hash recomputed" in p.detail


def test_jsonl_removed_record_is_found(jsonl10: tuple[AuditLog, Path]) -> None:
    log, path = jsonl10
    content = lines(path)
    del content[3]
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("removed", 4, f"{path}:4")  # before what is now line 4


def test_jsonl_inserted_copy_and_forgery_are_found(jsonl10: tuple[AuditLog, Path]) -> None:
    log, path = jsonl10
    content = lines(path)
    forged = rehashed({**json.loads(content[2]), "seq": 11, "prev": "f" * 64, "reason": "x"})
    content.insert(6, content[3])  # a copy of seq 4 as line 7
    content.insert(2, json.dumps(forged) + "\n")  # a forgery as line 3
    write_lines(path, content)
    report = log.verify()
    assert sorted((p.kind, p.seq, p.where) for p in report.problems) == [
        ("inserted", 4, f"{path}:8"),
        ("inserted", 11, f"{path}:3"),
    ]
    assert "a copy of seq 4" in str(report)


def test_jsonl_inserted_record_chained_to_a_real_one_is_found(
    jsonl10: tuple[AuditLog, Path],
) -> None:
    log, path = jsonl10
    content = lines(path)
    real4 = json.loads(content[3])
    fork = rehashed({**real4, "reason": "a forged fourth record"})  # same seq, same prev
    content.insert(3, json.dumps(fork) + "\n")
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("inserted", 4, f"{path}:4")


def test_jsonl_reordered_records_are_found(jsonl10: tuple[AuditLog, Path]) -> None:
    log, path = jsonl10
    content = lines(path)
    content.append(content.pop(2))  # seq 3 moved to the end
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("reordered", 3, f"{path}:10")
    assert "belongs after seq 2" in p.detail

    content = lines(path)
    content.insert(2, content.pop())  # put it back
    content[5], content[6] = content[6], content[5]  # swap seq 6 and 7
    write_lines(path, content)
    p = only(log.verify())
    assert p.kind == "reordered"
    assert (p.seq, p.where) in ((6, f"{path}:7"), (7, f"{path}:6"))


def test_jsonl_unreadable_line_is_reported_once(jsonl10: tuple[AuditLog, Path]) -> None:
    log, path = jsonl10
    content = lines(path)
    content[4] = "{not json\n"
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.where) == ("unreadable", f"{path}:5")
    with pytest.raises(AuditError, match=r"audit.jsonl:5: unreadable"):
        list(log.iter())


def test_jsonl_a_field_added_to_a_line_is_found(jsonl10: tuple[AuditLog, Path]) -> None:
    """A consumer of the file (jq, a SIEM) would see it: it is not what was written."""
    log, path = jsonl10
    content = lines(path)
    doc = json.loads(content[3])
    content[3] = json.dumps({**doc, "approved_by": "ciso"}) + "\n"
    write_lines(path, content)
    p = only(log.verify())
    assert (p.seq, p.where) == (4, f"{path}:4")
    assert "'approved_by'" in p.detail


def test_jsonl_a_record_slipped_in_before_the_first_is_found(
    jsonl10: tuple[AuditLog, Path],
) -> None:
    log, path = jsonl10
    content = lines(path)
    forged = rehashed({**json.loads(content[0]), "seq": 0, "reason": "approved by the CISO"})
    content.insert(0, json.dumps(forged) + "\n")
    write_lines(path, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("inserted", 0, f"{path}:1")


def test_jsonl_truncated_last_line_is_not_counted_and_the_next_append_continues(
    jsonl10: tuple[AuditLog, Path],
) -> None:
    log, path = jsonl10
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])  # a crash while writing seq 10
    report = log.verify()
    assert report.ok
    assert report.records == 9
    assert report.last is not None
    assert [(p.kind, p.where) for p in report.problems] == [("truncated", f"{path}:10")]
    assert log.head()[0] == 9
    assert [r.seq for r in log.tail(2)] == [8, 9]

    other = AuditLog(path)  # another process, which never saw the torn line
    record = other.append("control", outcome="resume", approver="ops")
    assert (record.seq, record.prev) == (10, report.last[1])
    report = other.verify()
    assert report.ok
    assert report.problems == []
    assert report.records == 10
    assert all(line.endswith("\n") and json.loads(line) for line in lines(path))
    other.close()


# -- tampering: SQLite --------------------------------------------------------------------------


@pytest.fixture
def sqlite10(tmp_path: Path) -> Iterator[tuple[AuditLog, Path]]:
    path = tmp_path / "audit.db"
    log = filled(path, 10)
    yield log, path
    log.close()


def test_sqlite_edited_record_is_found(sqlite10: tuple[AuditLog, Path]) -> None:
    log, path = sqlite10
    db(path).execute("UPDATE guardrails_audit SET outcome = 'deny' WHERE seq = 4")
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 4, f"{path}, seq 4")


def test_sqlite_edited_and_rehashed_record_is_found(sqlite10: tuple[AuditLog, Path]) -> None:
    log, path = sqlite10
    conn = db(path)
    doc = rehashed({**row_doc(conn, 4), "reason": "nothing happened"})
    conn.execute(
        "UPDATE guardrails_audit SET reason = ?, hash = ? WHERE seq = 4",
        (doc["reason"], doc["hash"]),
    )
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 4, f"{path}, seq 4")


def test_sqlite_removed_rows_are_found_in_the_middle_and_at_the_end(
    sqlite10: tuple[AuditLog, Path],
) -> None:
    log, path = sqlite10
    db(path).execute("DELETE FROM guardrails_audit WHERE seq IN (4, 5)")
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("removed", 4, f"{path}, seq 6")
    assert "seq 4 to 5" in p.detail

    db(path).execute("DELETE FROM guardrails_audit WHERE seq >= 9")
    report = log.verify()
    assert [(p.kind, p.seq) for p in report.problems] == [("removed", 4), ("removed", 9)]
    assert "missing at the end" in report.problems[1].detail


def test_sqlite_row_inserted_behind_the_logs_back_is_found(sqlite10: tuple[AuditLog, Path]) -> None:
    log, path = sqlite10
    conn = db(path)
    last = row_doc(conn, 10)
    forged = rehashed({**last, "seq": 11, "prev": last["hash"], "reason": "all fine"})
    conn.execute(
        "INSERT INTO guardrails_audit SELECT 11, at, kind, outcome, agent, tool, args, rule, ?, "
        "run_id, thread_id, checkpoint_id, approver, policy, detail, ?, ? "
        "FROM guardrails_audit WHERE seq = 10",
        (forged["reason"], forged["prev"], forged["hash"]),
    )
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("inserted", 11, f"{path}, seq 11")


def test_sqlite_renumbered_rows_are_reported_as_reordered(sqlite10: tuple[AuditLog, Path]) -> None:
    log, path = sqlite10
    conn = db(path)
    conn.execute("UPDATE guardrails_audit SET seq = -5 WHERE seq = 5")
    conn.execute("UPDATE guardrails_audit SET seq = 5 WHERE seq = 6")
    conn.execute("UPDATE guardrails_audit SET seq = 6 WHERE seq = -5")
    report = log.verify()
    assert [(p.kind, p.seq) for p in report.problems] == [("reordered", 5), ("reordered", 6)]


def test_sqlite_unreadable_row_is_reported_once(sqlite10: tuple[AuditLog, Path]) -> None:
    log, path = sqlite10
    db(path).execute("UPDATE guardrails_audit SET args = '{broken' WHERE seq = 4")
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("unreadable", 4, f"{path}, seq 4")


def test_sqlite_rows_below_the_anchor_must_chain_into_it(tmp_path: Path) -> None:
    """Rows at or below the anchor are listed by ``iter`` and ``export`` like any other: a row
    forged there, or an old row edited after the anchor was moved past it, is found."""
    path = tmp_path / "audit.db"
    log = filled(path, 10)
    conn = db(path)
    old = [row_doc(conn, seq) for seq in range(1, 11)]
    assert log.prune(keep_last=5) == 5
    insert_row(conn, rehashed({**old[1], "reason": "approved by the CISO"}))  # a forged seq 2
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("inserted", 2, f"{path}, seq 2")
    assert "anchor" in p.detail

    conn.execute("DELETE FROM guardrails_audit WHERE seq = 2")
    for doc in old[:5]:  # the pruned rows back, the anchor left at seq 5: they chain into it
        insert_row(conn, doc)
    report = log.verify()
    assert report.ok, str(report)
    assert report.skipped == 5
    conn.execute("UPDATE guardrails_audit SET outcome = 'deny' WHERE seq = 3")
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 3, f"{path}, seq 3")
    forged = rehashed({**old[2], "reason": "nothing happened"})
    conn.execute(
        "UPDATE guardrails_audit SET outcome = 'allow', reason = ?, hash = ? WHERE seq = 3",
        (forged["reason"], forged["hash"]),
    )
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 3, f"{path}, seq 3")
    assert "hash recomputed" in p.detail
    log.close()


def test_a_witness_at_the_anchor_is_checked_against_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    log = filled(path, 4)
    witness = log.head()
    log.prune(keep_last=0)
    assert log.verify(witness=witness).ok
    p = only(log.verify(witness=(4, "0" * 64)))
    assert (p.kind, p.seq) == ("edited", 4)
    assert "witnessed head" in p.detail
    log.close()


def test_verifying_a_tampered_log_holds_a_summary_of_each_record_not_the_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    with AuditLog(JSONLAuditSink(path, rotate_bytes=None)) as log:
        for i in range(1000):
            log.append("decision", outcome="allow", args={"body": "x" * 4000}, reason=f"r{i}")
        content = lines(path)
        content[5] = content[5].replace('"reason":"r5"', '"reason":"r55"')
        write_lines(path, content)
        size = path.stat().st_size
        log.verify()  # warm: first-time imports and caches are not the verifier's memory
        gc.collect()
        tracemalloc.start()
        try:
            report = log.verify()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert [(p.kind, p.seq) for p in report.problems] == [("edited", 6)]
        assert peak < size / 4, f"verify peaked at {peak} bytes on a {size}-byte log"


@pytest.mark.parametrize("sink", SINKS)
def test_a_witnessed_head_catches_a_rewritten_history(tmp_path: Path, sink: str) -> None:
    path = log_path(tmp_path, sink)
    log = filled(path, 6)
    witness = log.head()
    # Rewrite every record consistently, from the first: only a witness can tell.
    records = [r.to_doc() for r in log.iter()]
    prev = GENESIS
    rewritten = []
    for doc in records:
        doc = rehashed({**doc, "reason": "rewritten", "prev": prev})
        prev = doc["hash"]
        rewritten.append(doc)
    if sink == "jsonl":
        write_lines(path, [json.dumps(d) + "\n" for d in rewritten])
    else:
        conn = db(path)
        for d in rewritten:
            conn.execute(
                "UPDATE guardrails_audit SET reason = ?, prev = ?, hash = ? WHERE seq = ?",
                (d["reason"], d["prev"], d["hash"], d["seq"]),
            )
        conn.execute(
            "UPDATE guardrails_audit_meta SET value = ? WHERE name = 'head'", (f"6 {prev}",)
        )
    assert log.verify().ok  # consistent: the chain alone cannot tell
    p = only(log.verify(witness=witness))
    assert (p.kind, p.seq) == ("edited", 6)
    assert "witnessed head" in p.detail
    assert not log.verify(witness=(9, witness[1])).ok  # a head the log never reached
    log.close()


# -- several processes, crashes --------------------------------------------------------------------


@pytest.mark.parametrize("sink", SINKS)
def test_processes_and_threads_appending_at_once_build_one_linear_chain(
    tmp_path: Path, sink: str
) -> None:
    path = str(log_path(tmp_path, sink))
    rotate = 16_000 if sink == "jsonl" else None
    AuditLog(path).close()
    workers = [
        FORK.Process(target=audit_worker.append_many, args=(path, f"p{i}", 100, 2, rotate))
        for i in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
        assert w.exitcode == 0
    with AuditLog(JSONLAuditSink(path) if sink == "jsonl" else SQLiteAuditSink(path)) as log:
        report = log.verify()
        assert report.ok, str(report)
        assert report.problems == []
        assert report.records == 600
        records = list(log.iter())
        assert [r.seq for r in records] == list(range(1, 601))
        assert log.stats().by_agent == {f"p{p}.{t}": 100 for p in range(3) for t in range(2)}
        if sink == "jsonl":
            assert len(list(tmp_path.glob("audit.jsonl.0*"))) >= 3


class Child:
    """A worker process and the lines it prints: a fresh interpreter (``fresh=True``:
    nothing shared with this process but the files) or forked from this one (no start-up)."""

    def __init__(self, target: Callable[..., object], *args: object, fresh: bool = False) -> None:
        if fresh:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKER.parent)])}
            verb = target.__name__
            self.popen: subprocess.Popen[str] | None = subprocess.Popen(
                [sys.executable, str(WORKER), verb, *map(str, args)],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert self.popen.stdout is not None
            self.out = self.popen.stdout
            return
        self.popen = None
        read, write = os.pipe()

        def run() -> None:
            # Ctrl-C as a user's process gets it, whatever handler the test process had
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.close(read)
            os.dup2(write, 1)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            target(*args)

        # daemonic: a child that outlives its test is terminated when the run ends, never
        # joined forever by multiprocessing's exit handler
        self.process = FORK.Process(target=run, daemon=True)
        self.process.start()
        os.close(write)
        self.out = open(read, encoding="utf-8")  # noqa: SIM115

    def kill(self, sig: int = signal.SIGKILL, wait: float = 30.0) -> int | None:
        """Send ``sig`` and wait up to ``wait`` seconds for the exit status (``None``: still
        running, and then killed, so that no test leaves a process behind)."""
        try:
            if self.popen is not None:
                self.popen.send_signal(sig)
                try:
                    return self.popen.wait(wait)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait()
                    return None
            assert self.process.pid is not None
            os.kill(self.process.pid, sig)
            self.process.join(wait)
            code = self.process.exitcode
            if code is None:
                self.process.kill()
                self.process.join()
            return code
        finally:
            self.out.close()


@pytest.mark.parametrize(("sink", "fresh"), [("sqlite", False), ("jsonl", True)])
def test_sigkill_in_the_middle_of_appending_leaves_a_verifiable_log(
    tmp_path: Path, sink: str, fresh: bool
) -> None:
    path = log_path(tmp_path, sink)
    child = Child(audit_worker.loop, str(path), fresh=fresh)
    acknowledged = 0
    while acknowledged < 300:  # busy appending (and, for JSON Lines, rotating)
        acknowledged = int(child.out.readline())
    child.kill()
    with AuditLog(path) as log:
        report = log.verify()
        assert report.ok, str(report)
        assert report.records >= acknowledged  # every append that returned is there
        assert [p.kind for p in report.problems] in ([], ["truncated"])
        record = log.append("control", outcome="resume", approver="ops")
        assert record.seq == report.records + 1
        assert log.verify().ok
        assert log.verify().problems == []


def test_a_process_killed_halfway_through_a_line_leaves_a_truncated_line_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    child = Child(audit_worker.torn, str(path), 5)
    assert child.out.readline().strip() == "torn"
    assert child.kill() == -signal.SIGKILL
    assert not path.read_bytes().endswith(b"\n")
    with AuditLog(path) as log:
        report = log.verify()
        assert report.ok
        assert report.records == 5
        assert [(p.kind, p.where) for p in report.problems] == [("truncated", f"{path}:6")]
        assert "1 problem" not in str(report)
        assert "truncated" in str(report)
        assert log.append("decision", outcome="allow").seq == 6
        report = log.verify()
        assert report.ok
        assert report.problems == []
        assert report.records == 6


def test_an_append_that_fails_leaves_no_record_of_a_decision_that_did_not_stand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard turns a failed append into a deny: the log must not say it was allowed."""
    import guardrails_plugin.audit.jsonl as jsonl

    log = AuditLog(JSONLAuditSink(tmp_path / "audit.jsonl", rotate_bytes=300, durable=True))
    guard = Guard(Policy([allow("search")]), audit=log)
    assert guard.check(ToolCall("search", {"q": "1"})).allowed  # the segment is now full

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EACCES, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(os, "rename", refuse)  # the rotation fails
        assert guard.check(ToolCall("search", {"q": "2"})).rule == "audit-error"
    assert [r.args for r in log.iter()] == [{"q": "1"}]
    with monkeypatch.context() as m:
        m.setattr(jsonl, "_sync", refuse)  # the flush to disk fails
        assert guard.check(ToolCall("search", {"q": "3"})).rule == "audit-error"
    assert [r.args for r in log.iter()] == [{"q": "1"}]
    assert guard.check(ToolCall("search", {"q": "4"})).allowed
    assert [r.args for r in log.iter()] == [{"q": "1"}, {"q": "4"}]
    report = log.verify()
    assert report.ok, str(report)
    assert report.problems == []
    log.close()


def test_a_log_is_read_and_verified_while_a_writer_holds_the_write_lock(tmp_path: Path) -> None:
    """Opening an existing log writes nothing: a reader does not wait for a long prune."""
    path = tmp_path / "audit.db"
    filled(path, 3).close()
    writer = db(path)
    writer.execute("BEGIN IMMEDIATE")
    try:
        with AuditLog(SQLiteAuditSink(path, timeout=0.1)) as log:
            assert log.verify().ok
            assert [r.seq for r in log.tail(2)] == [2, 3]
    finally:
        writer.execute("ROLLBACK")


def read_as(path: str, uid: int) -> None:
    os.setgid(uid)
    os.setuid(uid)
    with AuditLog(path) as log:
        report = log.verify()
        assert report.ok, str(report)
        assert report.records == 3
        assert [r.seq for r in log.tail(5)] == [1, 2, 3]
        with pytest.raises(AuditError, match="cannot append"):  # and it says why not
            log.append("control", outcome="pause")


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to become another user"
)
@pytest.mark.parametrize("sink", SINKS)
@pytest.mark.parametrize("writing", [False, True], ids=["closed", "open"])
def test_an_auditor_with_read_only_access_can_verify_and_read_the_log(
    sink: str, writing: bool
) -> None:
    folder = Path(tempfile.mkdtemp())  # outside pytest's private (0700) tmp folders
    try:
        path = log_path(folder, sink)
        writer = filled(path, 3)
        if not writing:
            writer.close()
        for f in folder.iterdir():
            f.chmod(0o644)
        folder.chmod(0o555)
        child = FORK.Process(target=read_as, args=(str(path), 65534))  # nobody
        child.start()
        child.join(30)
        assert child.exitcode == 0
        writer.close()
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def test_without_fcntl_or_fork_hooks_sqlite_logs_and_the_cli_still_work(tmp_path: Path) -> None:
    """Windows has neither: the package must import, SQLite logs work, JSON Lines says why not."""
    code = textwrap.dedent(
        """
        import os, sys
        sys.modules["fcntl"] = None
        from guardrails_plugin.cli import main
        from guardrails_plugin.audit import AuditError, AuditLog
        del os.register_at_fork
        db = os.path.join(sys.argv[1], "audit.db")
        with AuditLog(db) as log:
            log.append("control", outcome="pause", approver="ops")
        assert main(["audit", "verify", "--log", db]) == 0
        try:
            AuditLog(os.path.join(sys.argv[1], "audit.jsonl"))
        except AuditError as exc:
            print("jsonl:", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "ok, 1 record" in done.stdout
    assert "jsonl:" in done.stdout
    assert "SQLite" in done.stdout


# -- rotation and pruning ------------------------------------------------------------------------


def test_jsonl_rotates_into_numbered_segments_read_as_one_log(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    filled(path, 30).close()  # grown without rotation; reopened with it, the next append rotates
    log = AuditLog(JSONLAuditSink(path, rotate_bytes=1500))
    for i in range(30):
        log.append("decision", outcome="allow", reason=f"more {i}")
    segments = sorted(tmp_path.glob("audit.jsonl.0*"))
    assert [s.name for s in segments][:2] == ["audit.jsonl.000001", "audit.jsonl.000002"]
    assert len(segments) >= 4
    assert all(s.stat().st_size < 1500 + 400 for s in segments[1:])  # one record may overrun
    assert [r.seq for r in log.iter()] == list(range(1, 61))
    assert [r.seq for r in log.iter(since_seq=55)] == [56, 57, 58, 59, 60]
    assert [r.seq for r in log.tail(12)] == list(range(49, 61))
    assert log.verify().ok
    assert log.verify().records == 60
    assert log.head()[0] == 60
    log.close()


@pytest.mark.parametrize("sink", SINKS)
def test_prune_keeps_an_anchor_so_the_rest_still_verifies_and_still_detects_tampering(
    tmp_path: Path, sink: str
) -> None:
    path = log_path(tmp_path, sink)
    if sink == "jsonl":
        log = AuditLog(JSONLAuditSink(path, rotate_bytes=900), clock=Clock())
    else:
        log = AuditLog(path, clock=Clock())
    for i in range(1, 31):
        log.append("decision", outcome="allow", reason=f"r{i}")
    removed = log.prune(keep_last=10)
    kept = [r.seq for r in log.iter()]
    assert removed == 31 - len(kept)  # the prune itself is the 31st record
    assert len(kept) >= 11
    assert kept[-1] == 31
    prune = next(log.iter(30))
    assert prune.kind == "prune"
    assert prune.detail["anchor"][0] == kept[0] - 1
    if sink == "sqlite":
        assert kept == list(range(21, 32))
    report = log.verify()
    assert report.ok, str(report)
    assert report.records == len(kept)
    assert report.anchor == tuple(prune.detail["anchor"])
    assert "anchor" in str(report)
    assert log.append("decision", outcome="allow").seq == 32
    assert log.verify().ok

    # Tampering with what remains is still found, and so is removing the oldest records
    # left without moving the anchor.
    first = kept[0]
    if sink == "jsonl":
        oldest = sorted(tmp_path.glob("audit.jsonl.0*"))[0]
        content = lines(oldest)
        gone = len(content)
        oldest.unlink()
        p = only(log.verify())
        assert (p.kind, p.seq) == ("removed", first)
        assert f"{first + gone - 1}" in p.detail
    else:
        db(path).execute("DELETE FROM guardrails_audit WHERE seq <= ?", (first + 1,))
        p = only(log.verify())
        assert (p.kind, p.seq, p.where) == ("removed", first, f"{path}, seq {first + 2}")
    log.close()


@pytest.mark.parametrize("sink", SINKS)
def test_prune_before_a_time_removes_only_older_records(tmp_path: Path, sink: str) -> None:
    path = log_path(tmp_path, sink)
    if sink == "jsonl":
        log = AuditLog(JSONLAuditSink(path, rotate_bytes=900), clock=Clock())
    else:
        log = AuditLog(path, clock=Clock())
    for i in range(1, 21):
        log.append("decision", outcome="allow", reason=f"r{i}")
    removed = log.prune(before=8.5)  # records 1..8 (stamped 1.0 .. 8.0) are older
    kept = list(log.iter())
    assert [r.seq for r in kept] == list(range(removed + 1, 22))  # 21: the prune record
    if sink == "sqlite":
        assert removed == 8
    else:  # whole segments only: those holding nothing stamped after 8.5
        assert 0 < removed <= 8
    assert log.verify().ok
    assert log.prune(before=1.0) == 0
    log.close()


def test_sqlite_prune_of_a_big_log_goes_in_short_transactions(tmp_path: Path) -> None:
    """One transaction for the whole prune would hold the write lock for seconds per
    million records (every guarded call waiting, then denied) and grow the WAL to the size
    of the log (on the full disk the prune was meant to relieve)."""
    path = tmp_path / "audit.db"
    log = AuditLog(path, clock=Clock())
    first = log.append("decision", outcome="allow", reason="r1")
    conn = db(path)
    columns = [c[1] for c in conn.execute("PRAGMA table_info(guardrails_audit)")]
    row = dict(zip(columns, conn.execute("SELECT * FROM guardrails_audit").fetchone(), strict=True))
    conn.execute("BEGIN")  # 40,000 old records, written fast (their links are not checked here)
    conn.executemany(
        f"INSERT INTO guardrails_audit ({', '.join(columns)}) VALUES ({', '.join('?' * 17)})",
        (
            [*{**row, "seq": seq, "args": json.dumps({"body": "x" * 600})}.values()]
            for seq in range(2, 40_001)
        ),
    )
    conn.execute(
        "UPDATE guardrails_audit_meta SET value = ? WHERE name = 'head'", (f"40000 {first.hash}",)
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    assert log.prune(keep_last=10) == 39_990
    assert [r.seq for r in log.iter()] == list(range(39_991, 40_002))  # and the prune record
    assert log.verify().anchor[0] == 39_990
    wal = Path(f"{path}-wal").stat().st_size
    assert wal < size / 2, f"the WAL grew to {wal} bytes pruning a {size}-byte log"
    log.close()


def test_sqlite_appends_continue_after_everything_was_pruned(tmp_path: Path) -> None:
    log = filled(tmp_path / "audit.db", 5)
    head = log.head()
    assert log.prune(keep_last=0) == 5
    (prune,) = log.iter()  # what is left: the record of the prune
    assert (prune.kind, prune.seq, prune.prev) == ("prune", 6, head[1])
    assert log.head() == (6, prune.hash)
    report = log.verify()
    assert report.ok
    assert report.records == 1
    assert report.anchor == head
    assert log.prune(keep_last=0) == 1
    (again,) = log.iter()
    assert again.detail["anchor"] == [6, prune.hash]
    record = log.append("decision", outcome="deny")
    assert record.seq == 8
    assert log.verify().anchor == (6, prune.hash)
    assert log.verify().ok
    log.close()


def test_jsonl_segments_left_behind_by_an_interrupted_prune_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(JSONLAuditSink(path, rotate_bytes=900))
    for i in range(20):
        log.append("decision", outcome="allow", reason=f"r{i}")
    oldest = sorted(tmp_path.glob("audit.jsonl.0*"))[0]
    saved = oldest.read_bytes()
    assert log.prune(keep_last=15) > 0
    oldest.write_bytes(saved)  # the crash came after the anchor was written, before unlink
    report = log.verify()
    assert report.ok
    assert report.skipped > 0
    assert "before the anchor" in str(report)
    content = lines(oldest)  # and they are still checked: they must chain into the anchor
    content[1] = content[1].replace('"reason":"r1"', '"reason":"nothing to see"')
    write_lines(oldest, content)
    p = only(log.verify())
    assert (p.kind, p.seq, p.where) == ("edited", 2, f"{oldest}:2")
    log.close()


# -- reading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sink", SINKS)
def test_iter_tail_and_stats_filter_by_kind_thread_and_agent(tmp_path: Path, sink: str) -> None:
    with filled(log_path(tmp_path, sink), 12) as log:
        log.append("control", outcome="kill", thread_id="t1", approver="ops")
        assert [r.seq for r in log.iter(since_seq=10)] == [11, 12, 13]
        assert [r.seq for r in log.iter(kind="control")] == [13]
        assert [r.seq for r in log.iter(thread="t1")] == [1, 4, 7, 10, 13]
        assert [r.seq for r in log.iter(agent="agent0", thread="t1")] == [4, 10]
        assert [r.seq for r in log.tail(3)] == [11, 12, 13]
        assert [r.seq for r in log.tail(2, thread="t1")] == [10, 13]
        assert log.tail(0) == []
        stats = log.stats()
        assert isinstance(stats, AuditStats)
        assert (stats.records, stats.first_seq, stats.last_seq) == (13, 1, 13)
        assert stats.by_kind == {"decision": 12, "control": 1}
        assert stats.by_outcome == {"allow": 12, "kill": 1}
        assert stats.by_agent == {"agent1": 6, "agent0": 6}
        assert stats.by_rule == {"searches": 12}
        assert stats.by_tool == {"search": 12}
        assert (stats.first_at, stats.last_at) == (1.0, 13.0)
        table = str(stats)
        assert "13 records, seq 1 to 13" in table
        assert "decision" in table
        assert "92.3%" in table


@pytest.mark.parametrize("sink", SINKS)
def test_follow_yields_records_as_another_writer_appends_them(tmp_path: Path, sink: str) -> None:
    path = log_path(tmp_path, sink)
    reader = filled(path, 3)
    writer = AuditLog(JSONLAuditSink(path, rotate_bytes=700) if sink == "jsonl" else path)
    stop = threading.Event()
    watchdog = threading.Timer(10, stop.set)
    watchdog.start()

    def write() -> None:
        for i in range(8):
            time.sleep(0.005)
            writer.append("decision", outcome="allow", reason=f"live {i}", thread_id="w")

    thread = threading.Thread(target=write)
    seen: list[int] = []
    try:
        follow = reader.follow(poll=0.01, stop=stop, thread="w")
        thread.start()
        for record in follow:
            seen.append(record.seq)
            if len(seen) == 8:
                stop.set()
        assert seen == list(range(4, 12))
        assert [r.seq for r in reader.follow(since_seq=9, stop=stop)] == [10, 11]
    finally:
        watchdog.cancel()
        thread.join()
        reader.close()
        writer.close()


@pytest.mark.parametrize("sink", SINKS)
def test_follow_starts_at_the_head_when_called_not_when_first_read(
    tmp_path: Path, sink: str
) -> None:
    # a record appended between follow() and the first next() is new to the follower
    with filled(log_path(tmp_path, sink), 3) as log:
        stop = threading.Event()
        watchdog = threading.Timer(5, stop.set)  # a follower that missed it ends, not hangs
        watchdog.start()
        try:
            follow = log.follow(poll=0.01, stop=stop)
            log.append("decision", outcome="allow", reason="appended before the first read")
            first = next(follow, None)
            stop.set()
            assert first is not None
            assert first.seq == 4
            assert first.reason == "appended before the first read"
            assert list(follow) == []
        finally:
            watchdog.cancel()


@pytest.mark.parametrize("sink", SINKS)
def test_export_writes_jsonl_and_csv(tmp_path: Path, sink: str) -> None:
    with filled(log_path(tmp_path, sink), 4) as log:
        out = io.StringIO()
        assert log.export(out) == 4
        docs = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [AuditRecord.from_doc(d) for d in docs] == list(log.iter())
        out = io.StringIO()
        assert log.export(out, "csv", thread="t2") == 1
        rows = list(csv.DictReader(io.StringIO(out.getvalue())))
        assert len(rows) == 1
        assert rows[0]["seq"] == "2"
        assert json.loads(rows[0]["args"]) == {"q": "q2"}
        assert rows[0]["hash"] == log.tail(4)[1].hash
        with pytest.raises(ValueError, match="'jsonl' or 'csv'"):
            log.export(out, "xml")  # type: ignore[arg-type]


def test_csv_export_cannot_smuggle_a_formula_into_a_spreadsheet(tmp_path: Path) -> None:
    with AuditLog(tmp_path / "audit.db") as log:
        log.append(
            "decision",
            outcome="deny",
            tool='=HYPERLINK("http://evil.example","click")',
            agent="@scraper",
            reason="+1 then -2",
            args={"q": "=1+1"},
        )
        out = io.StringIO()
        log.export(out, "csv")
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert row["tool"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["agent"] == "'@scraper"
    assert row["reason"] == "'+1 then -2"
    assert json.loads(row["args"]) == {"q": "=1+1"}  # JSON text starts with "{"
    assert row["outcome"] == "deny"


def test_durable_logs_flush_every_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with AuditLog(tmp_path / "audit.db", durable=True) as log:
        assert log.sink.durable
        conn = log.sink._db  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with AuditLog(tmp_path / "plain.db") as log:
        assert log.sink._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]
    synced: list[int] = []
    import guardrails_plugin.audit.jsonl as jsonl

    monkeypatch.setattr(jsonl, "_sync", lambda fd: synced.append(fd))
    with AuditLog(tmp_path / "audit.jsonl", durable=True) as log:
        log.append("decision", outcome="allow")
        log.append("decision", outcome="allow")
    assert len(synced) == 2
    with pytest.raises(ValueError, match="not durable"):
        AuditLog(SQLiteAuditSink(tmp_path / "x.db"), durable=True)


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("sink", SINKS)
def test_cli_tail_verify_export_and_stats(
    tmp_path: Path, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = log_path(tmp_path, sink)
    filled(path, 6).close()
    log = str(path)

    assert main(["audit", "tail", "--log", log, "-n", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "#5" in out[0]
    assert "#6" in out[1]
    assert "decision  allow  agent0 -> search  @t0  [searches]: r6" in out[1]
    assert main(["audit", "tail", "--log", log, "--thread", "t2", "--agent", "agent1"]) == 0
    assert [line.split()[2] for line in capsys.readouterr().out.splitlines()] == ["#5"]

    assert main(["audit", "verify", "--log", log]) == 0
    assert "ok, 6 records" in capsys.readouterr().out

    target = tmp_path / "out.csv"
    assert main(["audit", "export", "--log", log, "--format", "csv", "-o", str(target)]) == 0
    assert "6 records written" in capsys.readouterr().err
    assert len(list(csv.DictReader(target.open()))) == 6
    assert main(["audit", "export", "--log", log, "--since", "4"]) == 0
    assert [json.loads(x)["seq"] for x in capsys.readouterr().out.splitlines()] == [5, 6]

    assert main(["audit", "stats", "--log", log]) == 0
    assert "6 records, seq 1 to 6" in capsys.readouterr().out

    if sink == "jsonl":
        content = lines(path)
        content[2] = content[2].replace('"r3"', '"r33"')
        write_lines(path, content)
        where = f"{path}:3"
    else:
        db(path).execute("UPDATE guardrails_audit SET reason = 'r33' WHERE seq = 3")
        where = f"{path}, seq 3"
    assert main(["audit", "verify", "--log", log]) == 1
    out = capsys.readouterr().out
    assert "NOT OK, 1 problem" in out
    assert f"seq 3: edited at {where}" in out


def test_cli_verify_checks_a_witness_and_refuses_a_missing_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "audit.db"
    log = filled(path, 3)
    seq, digest = log.head()
    log.close()
    assert main(["audit", "verify", "--log", str(path), "--witness", f"{seq}:{digest}"]) == 0
    assert main(["audit", "verify", "--log", str(path), "--witness", f"{seq}:{'0' * 64}"]) == 1
    assert "witnessed head" in capsys.readouterr().out
    assert main(["audit", "verify", "--log", str(path), "--witness", "nope"]) == 2
    missing = tmp_path / "nothing.db"
    assert main(["audit", "tail", "--log", str(missing)]) == 1
    assert "no audit log" in capsys.readouterr().err
    assert not missing.exists()


def test_cli_tail_follow_prints_new_records_until_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = filled(path, 2)
    argv = ["audit", "tail", "--follow", "--poll", "0.02", "--log", str(path)]
    child = Child(lambda: sys.exit(main(argv)))
    try:
        assert "#1" in child.out.readline()
        assert "#2" in child.out.readline()
        log.append("control", outcome="kill", approver="ops", reason="runaway")
        line = child.out.readline()
        assert "#3" in line
        assert "control  kill  by ops: runaway" in line
    finally:
        assert child.kill(signal.SIGINT) == 0  # Ctrl-C ends --follow cleanly
        log.close()


@pytest.mark.parametrize("verb", [["export"], ["tail", "-n", "2000"]])
def test_cli_output_cut_short_by_a_closed_pipe_ends_quietly(
    tmp_path: Path, verb: list[str]
) -> None:
    """``guardrails-plugin audit export | head``: no traceback, the status of a program
    SIGPIPE stopped (every command: tests/test_cli_broken_pipe.py)."""
    path = tmp_path / "audit.jsonl"
    filled(path, 2000).close()  # more than a pipe holds
    err = tmp_path / "stderr.txt"
    read, write = os.pipe()

    def run() -> None:
        os.close(read)
        os.dup2(write, 1)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT, 0o600), 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.exit(main(["audit", *verb, "--log", str(path)]))

    child = FORK.Process(target=run)
    child.start()
    os.close(write)
    with open(read, "rb") as out:
        assert out.readline()
    child.join(30)
    assert err.read_text() == ""
    assert child.exitcode == BROKEN_PIPE


def test_cli_reading_commands_leave_a_file_that_is_not_an_audit_log_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--log guard.db`` (the store, not the log) must not turn the store into an empty
    audit log that verifies."""
    store = tmp_path / "guard.db"
    SQLiteStore(store).close()
    before = store.read_bytes()
    for verb in ("verify", "tail", "export", "stats"):
        assert main(["audit", verb, "--log", str(store)]) == 1
        assert "no audit log in" in capsys.readouterr().err
    assert store.read_bytes() == before
    tables = {name for (name,) in db(store).execute("SELECT name FROM sqlite_master")}
    assert not [t for t in tables if t.startswith("guardrails_audit")]
