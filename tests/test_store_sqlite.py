"""SQLiteStore across processes, and how it fails.

The contract itself is checked in ``test_store_conformance.py``; here real OS processes
share one file, as agents run by several workers on one machine do.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import guardrails_plugin.store
from guardrails_plugin import StoreError
from guardrails_plugin.store import SQLiteStore, open_store

# Workers import the very package under test, whatever the current directory.
PACKAGE_ROOT = Path(guardrails_plugin.store.__file__).resolve().parents[2]

# A worker process: opens the store, says "ready", waits for "go" on stdin (so that all
# workers start together), does its task and prints the result as JSON.
WORKER = textwrap.dedent(
    """
    import json, sys
    from guardrails_plugin.store import SQLiteStore

    path, task, worker, times = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = SQLiteStore(path, timeout=30)
    print("ready", flush=True)
    sys.stdin.readline()
    if task == "charge":
        result = [store.charge("budget", 1, limit=100) for _ in range(times)]
    elif task == "window":
        result = [
            store.charge("rate", 1, limit=100, window=60, now=1000.0 + i / 1000)
            for i in range(times)
        ]
    elif task == "members":
        result = [
            store.add_members("recipients", [f"{worker}-{i}"], limit=15) is not None
            for i in range(times)
        ]
    elif task == "put":
        store.put("shared/" + worker, {"from": worker, "n": times})
        result = store.scan("shared/")
    elif task == "get":
        result = store.scan("shared/")
    store.close()
    print(json.dumps(result), flush=True)
    """
)


def run_workers(path: Path, task: str, workers: int, times: int) -> list[object]:
    """Run ``workers`` processes doing ``task`` on the store at ``path``; their results."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), *sys.path])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(path), task, f"w{n}", str(times)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=path.parent,
            env=env,
        )
        for n in range(workers)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [proc.returncode for proc in procs] == [0] * workers
    return [json.loads(output) for output in outputs]


def test_processes_charging_one_file_never_pass_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    results = run_workers(path, "charge", workers=4, times=60)
    successes = sum(sum(result) for result in results)  # type: ignore[arg-type]
    assert successes == 100
    store = SQLiteStore(path)
    assert store.total("budget") == 100.0
    store.close()


def test_processes_charging_one_window_never_pass_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    results = run_workers(path, "window", workers=4, times=60)
    successes = sum(sum(result) for result in results)  # type: ignore[arg-type]
    assert successes == 100
    store = SQLiteStore(path)
    assert store.total("rate", window=60, now=1001.0) == 100.0
    store.close()


def test_processes_adding_members_never_pass_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    results = run_workers(path, "members", workers=4, times=25)
    successes = sum(sum(result) for result in results)  # type: ignore[arg-type]
    assert successes == 15
    store = SQLiteStore(path)
    assert len(store.members("recipients")) == 15
    store.close()


def test_a_second_process_sees_documents_the_first_wrote(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteStore(path)
    store.put("shared/parent", {"from": "parent"})
    [seen_by_child] = run_workers(path, "get", workers=1, times=0)
    assert seen_by_child == {"shared/parent": {"from": "parent"}}
    run_workers(path, "put", workers=1, times=7)
    assert store.get("shared/w0") == {"from": "w0", "n": 7}
    store.close()


def _charge_in_child(store: SQLiteStore, queue: multiprocessing.Queue[object]) -> None:
    try:
        queue.put((store.charge("budget", 2, limit=10), store.total("budget")))
    except Exception as exc:  # report it to the parent rather than dying silently
        queue.put(repr(exc))
    finally:
        store.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs os.fork")
def test_a_forked_child_gets_a_connection_of_its_own(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "shared.db")
    store.charge("budget", 3, limit=10)  # the parent's connection is open and used
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[object] = context.Queue()
    child = context.Process(target=_charge_in_child, args=(store, queue))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == (True, 5.0)
    assert store.total("budget") == 5.0  # the parent's connection still works
    store.close()


# -- failures -------------------------------------------------------------------------------


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=f"SQLite store '{tmp_path}'.*cannot open"):
        SQLiteStore(tmp_path)


def test_a_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(tmp_path / "no" / "such" / "dir" / "store.db")


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a database, just some text that is long enough" * 40)
    with pytest.raises(StoreError, match=r"notes\.txt.*not a database"):
        SQLiteStore(path)


def test_corrupt_document_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    store.put("grant/ok", {"fine": True})
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("INSERT INTO guardrails_documents (key, value) VALUES ('grant/bad', '{oops')")
    raw.close()
    with pytest.raises(StoreError, match=r"'grant/bad'.*invalid JSON"):
        store.get("grant/bad")
    with pytest.raises(StoreError, match="'grant/bad'"):
        store.scan("grant/")
    assert store.get("grant/ok") == {"fine": True}
    store.close()


def test_waiting_too_long_for_another_writer_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path, timeout=0.05)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreError, match=r"cannot charge 'budget'.*locked"):
            store.charge("budget", 1, limit=10)
        with pytest.raises(StoreError, match="cannot add members to 'to'"):
            store.add_members("to", ["a"])
        assert store.total("budget") == 0.0  # readers are not blocked (WAL)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.charge("budget", 1, limit=10) is True
    store.close()


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.charge("budget", 1, limit=10)
    with pytest.raises(StoreError, match="closed"):
        store.get("k")
    assert "closed" in repr(store)


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    raw = sqlite3.connect(path)
    with raw:
        raw.execute("UPDATE guardrails_meta SET value = '99' WHERE name = 'schema_version'")
    raw.close()
    with pytest.raises(StoreError, match="schema version '99'"):
        SQLiteStore(path)


# -- storage ----------------------------------------------------------------------------------


def test_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    raw.close()


def test_charging_a_window_prunes_entries_that_aged_out(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    for second in range(50):
        store.charge("rate", 1, limit=1000, window=10, now=1000.0 + second)
    raw = sqlite3.connect(path)
    (rows,) = raw.execute("SELECT count(*) FROM guardrails_window_entries").fetchone()
    raw.close()
    assert rows == 10  # t = 1040 .. 1049 are inside (1039, 1049]
    store.close()


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    store.charge("budget", 4, limit=10)
    store.add_members("to", ["a"])
    store.put("doc", [1])
    store.close()
    again = open_store(f"sqlite:///{path}")
    assert (again.total("budget"), again.members("to"), again.get("doc")) == (
        4.0,
        frozenset({"a"}),
        [1],
    )
    again.close()


def test_in_memory_database_works_within_one_process() -> None:
    store = SQLiteStore(":memory:")
    assert store.charge("budget", 1, limit=1) is True
    assert store.charge("budget", 1, limit=1) is False
    store.close()
