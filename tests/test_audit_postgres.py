"""The audit log in PostgreSQL: one hash chain appended by many processes, verified, and
tampering with its rows (edit, delete, reorder, cut the end) found by ``verify``, by the
library and by ``guardrails-plugin audit verify --log URL``."""

from __future__ import annotations

import multiprocessing
import random
import uuid

import postgres_worker
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails_plugin import Decision, Effect, ToolCall
from guardrails_plugin.audit import AuditError, AuditLog
from guardrails_plugin.audit.postgres import PostgresAuditSink
from guardrails_plugin.cli import main

FORK = multiprocessing.get_context("fork")


def log_url(postgres_url: str) -> str:
    return f"{postgres_url}?schema=a_{uuid.uuid4().hex[:12]}"


def fill(url: str, n: int) -> AuditLog:
    log = AuditLog(url)
    for i in range(n):
        call = ToolCall("lookup", {"n": i}, agent=f"agent-{i % 3}", thread_id="t")
        log.decision(call, Decision(Effect.ALLOW, "lookups", f"call {i}"))
    return log


def sql(url: str, statement: str, *params: object) -> None:
    sink = PostgresAuditSink(url, create=False)
    with psycopg.connect(sink.url, autocommit=True) as conn:
        conn.execute(statement.replace("AUDIT", sink._log).replace("META", sink._meta), params)  # type: ignore[arg-type]
    sink.close()


@pytest.fixture
def url(postgres_url: str) -> str:
    return log_url(postgres_url)


def test_eight_processes_append_one_chain(url: str) -> None:
    AuditLog(url).close()
    barrier = FORK.Barrier(8)
    workers = [
        FORK.Process(target=postgres_worker.append_many, args=(url, f"w{i}", 40, barrier))
        for i in range(8)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    with AuditLog(url) as log:
        report = log.verify()
        assert report.ok, str(report)
        assert report.records == 320
        records = list(log.iter())
        assert [r.seq for r in records] == list(range(1, 321))
        assert len({r.prev for r in records}) == 320  # no two records chained to one link
        assert {r.agent for r in records} == {f"w{i}" for i in range(8)}
        assert all(r.args is not None and r.args["token"] == "[REDACTED]" for r in records)
        assert log.head() == (320, records[-1].hash)


def test_tail_verify_stats_and_export_read_it_by_url(
    url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(url, 5).close()
    assert main(["audit", "verify", "--log", url]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["audit", "tail", "--log", url, "-n", "2"]) == 0
    out = capsys.readouterr().out
    assert "call 3" in out
    assert "call 4" in out
    assert "call 2" not in out
    assert main(["audit", "stats", "--log", url]) == 0
    assert "5" in capsys.readouterr().out
    assert main(["audit", "export", "--log", url, "--format", "csv"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 6


def test_reading_commands_never_create_a_log(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = log_url(postgres_url)
    assert main(["audit", "verify", "--log", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert len(err.strip().splitlines()) == 1
    assert "holds no audit log" in err
    with pytest.raises(AuditError, match="holds no audit log"):
        PostgresAuditSink(url, create=False)
    assert main(["audit", "tail", "--log", "postgresql://nobody@127.0.0.1:1/x"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert len(err.strip().splitlines()) == 1


TAMPERS = {
    "edit": ("UPDATE AUDIT SET reason = 'nothing to see' WHERE seq = %s", "edited"),
    "delete": ("DELETE FROM AUDIT WHERE seq = %s", "removed"),
    "reorder": (
        "UPDATE AUDIT SET seq = CASE WHEN seq = %s THEN -1 ELSE seq END WHERE seq = %s",
        "reordered",
    ),
}


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from(sorted(TAMPERS)),
    st.integers(min_value=1, max_value=11),
    st.integers(min_value=0, max_value=2**32),
)
def test_tampering_with_a_row_is_found(postgres_url: str, how: str, victim: int, seed: int) -> None:
    url = log_url(postgres_url)
    fill(url, 12).close()
    if how == "reorder":  # swap the stored numbers of two records
        other = random.Random(seed).choice([s for s in range(1, 13) if s != victim])
        sql(url, "UPDATE AUDIT SET seq = -1 WHERE seq = %s", victim)
        sql(url, "UPDATE AUDIT SET seq = %s WHERE seq = %s", victim, other)
        sql(url, "UPDATE AUDIT SET seq = %s WHERE seq = -1", other)
    else:
        sql(url, TAMPERS[how][0], victim)
    with AuditLog(url) as log:
        report = log.verify()
    assert not report.ok
    kinds = {p.kind for p in report.problems}
    assert TAMPERS[how][1] in kinds, str(report)
    assert main(["audit", "verify", "--log", url]) == 1


def test_cutting_the_end_is_found_by_the_head(url: str) -> None:
    fill(url, 6).close()
    sql(url, "DELETE FROM AUDIT WHERE seq >= 5")
    with AuditLog(url) as log:
        report = log.verify()
    assert not report.ok
    assert "removed" in {p.kind for p in report.problems}


def test_prune_keeps_a_verifiable_chain(url: str) -> None:
    with fill(url, 30) as log:
        assert log.sink.prune(keep_last=10) == 20
        report = log.verify()
        assert report.ok, str(report)
        kept = list(log.iter())
        assert [r.seq for r in kept] == list(range(21, 32))  # and the prune record, at 31
        assert kept[-1].kind == "prune"
        sql(url, "DELETE FROM AUDIT WHERE seq = 31")  # hiding the prune: the anchor is unexplained
        assert not log.verify().ok


def test_a_stopped_server_fails_appends_closed_and_a_restart_needs_no_new_log(
    postgres_cluster_own: object,
) -> None:
    from postgres_server import PostgresCluster

    assert isinstance(postgres_cluster_own, PostgresCluster)
    cluster = postgres_cluster_own
    log = AuditLog(PostgresAuditSink(cluster.url, timeout=2.0))
    call = ToolCall("lookup", {}, agent="a", thread_id="t")
    log.decision(call, Decision(Effect.ALLOW, "r", "before"))
    cluster.stop()
    with pytest.raises(AuditError, match="cannot append"):
        log.decision(call, Decision(Effect.ALLOW, "r", "while down"))
    cluster.start()
    for _ in range(3):
        try:
            log.decision(call, Decision(Effect.ALLOW, "r", "after"))
            break
        except AuditError:
            continue
    report = log.verify()
    assert report.ok, str(report)
    assert [r.reason for r in log.iter()] == ["before", "after"]
    log.close()


def test_repr_and_errors_name_no_password() -> None:
    with pytest.raises(AuditError) as caught:
        PostgresAuditSink("postgresql://me:s3cret@127.0.0.1:1/db", timeout=1.0)
    assert "s3cret" not in str(caught.value)


def test_the_dashboard_streams_decisions_from_the_log_workers_write(url: str) -> None:
    from starlette.testclient import TestClient

    from guardrails_plugin import Guard, Policy, allow
    from guardrails_plugin.dashboard import Dashboard
    from guardrails_plugin.store import MemoryStore

    writer = Guard(Policy([allow("search")]), listeners=[AuditLog(url)])
    writer.check(ToolCall("search", {"q": "x", "api_key": "sk-secret"}, thread_id="t-9"))
    dashboard = Dashboard(MemoryStore(), audit=AuditLog(url))
    client = TestClient(dashboard.app, base_url="http://127.0.0.1:8765")
    body = client.get("/api/state").json()
    (d,) = body["decisions"]
    assert (d["outcome"], d["tool"], d["thread_id"]) == ("allow", "search", "t-9")
    assert d["args"]["api_key"] == "[REDACTED]"
    assert body["info"]["feed"] == "audit"
    writer.check(ToolCall("rm", {}, thread_id="t-9"))
    newer = client.get(f"/api/decisions?since={d['seq']}").json()["decisions"]
    assert [n["tool"] for n in newer] == ["rm"]
    dashboard.close()


def test_the_dashboard_command_refuses_a_url_holding_no_log(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from guardrails_plugin.store.postgres import PostgresStore

    store_url = f"{postgres_url}?schema=s_{uuid.uuid4().hex[:12]}"
    PostgresStore(store_url.partition("?")[0], schema=store_url.partition("=")[2]).close()
    url = log_url(postgres_url)
    code = main(["dashboard", "--store", store_url, "--audit", url, "--port", "0"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error:")
    assert "holds no audit log" in err
