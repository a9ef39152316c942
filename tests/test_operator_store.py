"""Operator commands act on the guards' store or fail: a mistyped or deleted path is one
``error:`` line and a non-zero exit, never a new empty store; and a running guard whose
SQLite file is deleted or replaced under it denies, saying why."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guardrails_plugin import Guard, Policy, SQLiteStore, StoreError, ToolCall, allow
from guardrails_plugin.cli import main
from guardrails_plugin.store import open_store

VERBS = [
    ["kill"],
    ["kill", "--agent", "researcher"],
    ["pause", "--thread", "ticket-42"],
    ["resume", "--thread", "ticket-42"],
    ["resume"],
    ["quarantine", "--agent", "scraper"],
    ["flags"],
    ["pending"],
    ["trips"],
]


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def not_a_store(tmp_path: Path, kind: str) -> Path:
    """Paths an operator might mistype or find replaced: each is not a guardrails store."""
    path = tmp_path / f"{kind}.db"
    if kind == "directory":
        path.mkdir()
    elif kind == "text":
        path.write_text("not a database\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "other-sqlite":  # a LangGraph checkpoint file, say
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE checkpoints (thread_id TEXT)")
        db.close()
    return path


KINDS = ["missing", "directory", "text", "empty", "other-sqlite"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_operator_verbs_refuse_what_is_not_a_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: list[str], kind: str
) -> None:
    path = not_a_store(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    content = path.read_bytes() if path.is_file() else None
    code = main([verb[0], "--store", str(path), *verb[1:]])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""  # no "everything killed"
    line = one_error_line(captured.err)
    assert str(path) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made
    if content is not None:
        assert path.read_bytes() == content  # nothing written
    if kind == "other-sqlite":
        assert "holds no guardrails store" in line


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="/\0"),
        min_size=1,
        max_size=30,
    ).filter(lambda n: n not in (".", "..")),
    verb=st.sampled_from(VERBS),
)
def test_no_store_path_is_ever_created_by_an_operator_verb(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    name: str,
    verb: list[str],
) -> None:
    folder = tmp_path_factory.mktemp("stores")
    path = folder / name
    try:
        code = main([verb[0], "--store", str(path), *verb[1:]])
    except UnicodeEncodeError:  # pragma: no cover - a file system that refuses the name
        return
    assert code == 1
    one_error_line(capsys.readouterr().err)
    assert list(folder.iterdir()) == []


def test_init_makes_a_store_the_verbs_then_act_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "guard.db"
    assert main(["init", "--store", str(path)]) == 0
    assert "new guardrails store" in capsys.readouterr().out
    assert main(["init", "--store", str(path)]) == 0
    assert "already a guardrails store" in capsys.readouterr().out
    assert main(["kill", "--store", str(path), "--by", "alice"]) == 0
    assert "everything killed by alice" in capsys.readouterr().out
    guard = Guard(Policy([allow("search")]), store=SQLiteStore(path))
    assert not guard.check(ToolCall("search", {})).allowed


def test_the_real_command_refuses_a_mistyped_store_while_the_agent_runs(tmp_path: Path) -> None:
    store = tmp_path / "guard.db"
    guard = Guard(Policy([allow("search")]), store=SQLiteStore(store))
    assert guard.check(ToolCall("search", {})).allowed
    typo = tmp_path / "gaurd.db"
    done = subprocess.run(
        [sys.executable, "-m", "guardrails_plugin.cli", "kill", "--store", str(typo)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert one_error_line(done.stderr) == f"error: SQLite store {str(typo)!r}: does not exist"
    assert not typo.exists()
    assert guard.check(ToolCall("search", {})).allowed  # nothing happened, and it says so


def test_open_store_without_create(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    for url in (f"sqlite:///{path}", "memory://", "sqlite://:memory:"):
        with pytest.raises(StoreError):
            open_store(url, create=False)
    assert not path.exists()
    open_store(f"sqlite:///{path}").put("k", 1)
    assert open_store(f"sqlite:///{path}", create=False).get("k") == 1


def test_a_store_opened_without_create_still_notices_its_file_going(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    SQLiteStore(path).put("k", 1)
    store = SQLiteStore(path, create=False, recheck=0)
    assert store.get("k") == 1
    os.unlink(path)
    with pytest.raises(StoreError, match="deleted while the store was open"):
        store.get("k")
    assert not path.exists()


def replace_with_new_store(path: Path) -> None:
    fresh = path.with_name("fresh.db")
    SQLiteStore(fresh).close()
    os.replace(fresh, path)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (os.unlink, "deleted while the store was open"),
        (replace_with_new_store, "replaced by another one while the store was open"),
    ],
)
def test_a_running_guard_denies_once_its_store_file_is_deleted_or_replaced(
    tmp_path: Path, mode: str, change: object, reason: str
) -> None:
    path = tmp_path / "guard.db"
    guard = Guard(Policy([allow("search")]), store=SQLiteStore(path, recheck=0))

    def check() -> object:
        call = ToolCall("search", {"q": "x"})
        if mode == "async":
            return asyncio.run(guard.acheck(call))
        return guard.check(call)

    assert check().allowed  # type: ignore[attr-defined]
    change(path)  # type: ignore[operator]
    decision = check()
    assert not decision.allowed  # type: ignore[attr-defined]
    assert decision.rule == "store-error"  # type: ignore[attr-defined]
    assert reason in decision.reason  # type: ignore[attr-defined]
    # A kill written to whatever is at the path now cannot be missed: the guard denies.
    if path.exists():
        assert main(["kill", "--store", str(path)]) == 0
    assert not check().allowed  # type: ignore[attr-defined]


def test_a_store_whose_file_comes_back_goes_on(tmp_path: Path) -> None:
    """Moving the very same file away and back (same device and inode) is the same store."""
    path = tmp_path / "guard.db"
    store = SQLiteStore(path, recheck=0)
    store.put("k", 1)
    os.rename(path, tmp_path / "aside.db")
    with pytest.raises(StoreError, match="deleted"):
        store.get("k")
    os.rename(tmp_path / "aside.db", path)
    assert store.get("k") == 1


def test_by_default_the_file_is_checked_at_most_every_recheck_seconds(tmp_path: Path) -> None:
    """A ``stat`` costs a good part of a store operation, so the default checks the file at
    most every ``recheck`` seconds: a deleted file is noticed by the first operation after
    that, and from then on by every one."""
    path = tmp_path / "guard.db"
    guard = Guard(Policy([allow("search")]), store=SQLiteStore(path))
    assert guard.check(ToolCall("search", {})).allowed
    os.unlink(path)
    time.sleep(SQLiteStore(":memory:").recheck)  # past the interval, whatever it is
    for _ in range(3):
        decision = guard.check(ToolCall("search", {}))
        assert not decision.allowed
        assert "deleted while the store was open" in decision.reason


def test_a_forked_child_does_not_reopen_a_deleted_store(tmp_path: Path) -> None:
    path = tmp_path / "guard.db"
    store = SQLiteStore(path)
    store.put("k", 1)
    os.unlink(path)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            store.get("k")
        except StoreError:
            os._exit(0 if not path.exists() else 2)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
