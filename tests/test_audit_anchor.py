"""The anchor a pruned log starts from must be one a prune set: removing the oldest records
and moving the anchor behind the log's back is found; and a witness older than the anchor
is reported as unchecked (not ok, exit 3), never silently passed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin.audit import AuditLog, JSONLAuditSink
from guardrails_plugin.cli import main

SINKS = ["sqlite", "jsonl"]


def make_log(tmp_path: Path, sink: str) -> AuditLog:
    if sink == "sqlite":
        return AuditLog(tmp_path / "audit.db")
    return AuditLog(JSONLAuditSink(tmp_path / "audit.jsonl", rotate_bytes=600))


def fill(log: AuditLog, n: int) -> None:
    for i in range(n):
        log.append("decision", outcome="allow", reason=f"r{i}")


def hashes(log: AuditLog) -> dict[int, str]:
    return {r.seq: r.hash for r in log.iter()}


def forge_prune(tmp_path: Path, sink: str, log: AuditLog) -> int:
    """What an intruder does: remove the oldest stored records and move the anchor to the
    last one removed, so the rest chains from it. Returns the new anchor's seq."""
    if sink == "sqlite":
        known = hashes(log)
        seqs = sorted(known)
        cut = seqs[len(seqs) // 2]
        with sqlite3.connect(tmp_path / "audit.db", isolation_level=None) as db:
            db.execute("DELETE FROM guardrails_audit WHERE seq <= ?", (cut,))
            db.execute(
                "UPDATE guardrails_audit_meta SET value = ? WHERE name = 'anchor'",
                (f"{cut} {known[cut]}",),
            )
        db.close()
        return cut
    oldest = sorted(tmp_path.glob("audit.jsonl.0*"))[0]
    last = json.loads(oldest.read_text().splitlines()[-1])
    oldest.unlink()
    (tmp_path / "audit.jsonl.anchor").write_text(
        json.dumps({"seq": last["seq"], "hash": last["hash"]})
    )
    return int(last["seq"])


@pytest.mark.parametrize("sink", SINKS)
def test_removing_the_oldest_records_and_moving_the_anchor_is_found(
    tmp_path: Path, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path, sink)
    fill(log, 30)
    assert log.verify().ok
    cut = forge_prune(tmp_path, sink, log)
    report = log.verify()
    assert not report.ok
    (problem,) = report.problems
    assert (problem.kind, problem.seq) == ("removed", cut)
    assert "no prune record" in problem.detail
    path = tmp_path / ("audit.db" if sink == "sqlite" else "audit.jsonl")
    assert main(["audit", "verify", "--log", str(path)]) == 1
    assert "NOT OK" in capsys.readouterr().out
    log.close()


@pytest.mark.parametrize("sink", SINKS)
def test_a_real_prune_passes_and_is_recorded_in_the_chain(tmp_path: Path, sink: str) -> None:
    log = make_log(tmp_path, sink)
    fill(log, 30)
    removed = log.prune(keep_last=10)
    assert removed > 0
    report = log.verify()
    assert report.ok, str(report)
    (prune,) = log.iter(kind="prune")
    assert tuple(prune.detail["anchor"]) == report.anchor
    fill(log, 30)
    assert log.prune(keep_last=5) > 0  # a second prune removes the first one's record
    assert log.verify().ok
    # ... and moving the anchor past what the last prune set is still found.
    forge_prune(tmp_path, sink, log)
    assert [p.kind for p in log.verify().problems] == ["removed"]
    log.close()


def test_an_anchor_changed_at_its_prune_point_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path, "sqlite")
    fill(log, 10)
    log.prune(keep_last=4)
    anchor = log.verify().anchor
    with sqlite3.connect(tmp_path / "audit.db", isolation_level=None) as db:
        db.execute(
            "UPDATE guardrails_audit_meta SET value = ? WHERE name = 'anchor'",
            (f"{anchor[0]} {'0' * 64}",),
        )
    db.close()
    kinds = {p.kind for p in log.verify().problems}
    assert "edited" in kinds
    log.close()


@pytest.mark.parametrize("sink", SINKS)
def test_a_witness_older_than_the_anchor_is_unchecked_not_ok(
    tmp_path: Path, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path, sink)
    fill(log, 5)
    old = log.head()
    fill(log, 25)
    log.prune(keep_last=10)
    report = log.verify(witness=old)
    anchor = report.anchor[0]
    assert old[0] < anchor
    assert not report.ok
    (problem,) = report.problems
    assert (problem.kind, problem.seq) == ("unchecked", old[0])
    assert "cannot be checked" in problem.detail
    path = tmp_path / ("audit.db" if sink == "sqlite" else "audit.jsonl")
    assert main(["audit", "verify", "--log", str(path), "--witness", f"{old[0]}:{old[1]}"]) == 3
    assert "unchecked" in capsys.readouterr().out
    # A witness inside the chain is still checked: ok, and a wrong one is found.
    recent = log.head()
    assert log.verify(witness=recent).ok
    assert (
        main(["audit", "verify", "--log", str(path), "--witness", f"{recent[0]}:{recent[1]}"]) == 0
    )
    wrong = main(["audit", "verify", "--log", str(path), "--witness", f"{recent[0]}:{'0' * 64}"])
    assert wrong == 1
    log.close()


def test_a_witness_at_an_earlier_prune_point_is_checked_by_its_prune_record(
    tmp_path: Path,
) -> None:
    log = make_log(tmp_path, "sqlite")
    fill(log, 20)
    log.prune(keep_last=15)
    first = log.verify().anchor  # (5, hash of record 5), named by the first prune record
    log.prune(keep_last=10)  # the first prune record (seq 21) survives this one
    assert log.verify().anchor[0] > first[0]
    assert log.verify(witness=first).ok
    (problem,) = log.verify(witness=(first[0], "f" * 64)).problems
    assert (problem.kind, problem.seq) == ("edited", first[0])
    log.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 12), st.one_of(st.none(), st.integers(0, 8))),
        min_size=1,
        max_size=4,
    ),
    pick=st.integers(0, 1000),
    witness_pick=st.integers(0, 1000),
)
def test_generated_histories_verify_and_any_forged_anchor_is_found(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[int, int | None]],
    pick: int,
    witness_pick: int,
) -> None:
    """Appends and real prunes in any order verify; moving the anchor past the last prune
    (deleting what lies before it) never does; an old witness is checked or unchecked,
    never silently passed."""
    folder = tmp_path_factory.mktemp("log")
    log = AuditLog(folder / "audit.db")
    heads = []
    for appended, keep in steps:
        fill(log, appended)
        heads.append(log.head())
        if keep is not None:
            log.prune(keep_last=keep)
    report = log.verify()
    assert report.ok, str(report)
    witness = heads[witness_pick % len(heads)]
    checked = log.verify(witness=witness)
    if witness[0] < report.anchor[0]:
        assert [p.kind for p in checked.problems] in (["unchecked"], []), str(checked)
        if not checked.problems:  # only when a prune record names exactly that point
            assert any(tuple(r.detail["anchor"]) == witness for r in log.iter(kind="prune"))
    else:
        assert checked.ok, str(checked)
    stored = sorted(hashes(log))
    if len(stored) < 2:
        return
    cut = stored[pick % (len(stored) - 1)]  # keep at least one record
    known = hashes(log)
    with sqlite3.connect(folder / "audit.db", isolation_level=None) as db:
        db.execute("DELETE FROM guardrails_audit WHERE seq <= ?", (cut,))
        db.execute(
            "UPDATE guardrails_audit_meta SET value = ? WHERE name = 'anchor'",
            (f"{cut} {known[cut]}",),
        )
    db.close()
    forged = log.verify()
    assert not forged.ok, str(forged)
    assert "removed" in {p.kind for p in forged.problems}
    log.close()
