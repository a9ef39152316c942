"""The operator commands: kill switch and waiting approvals, from a terminal, on the store
the guarded graphs use."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import Ran, recording_tool, tool_call, user
from langgraph.checkpoint.memory import InMemorySaver
from langgraph_apps import tool_graph

from guardrails_plugin import Guard, Policy, RunKilled, SQLiteStore, allow, ask
from guardrails_plugin.cli import main
from guardrails_plugin.testing import ScriptedChatModel

CONFIG = {"configurable": {"thread_id": "ticket-42"}}


def graph(db: Path, ran: Ran, script: list[object]) -> object:
    guard = Guard(Policy([allow("search"), ask("send_email")]), store=SQLiteStore(db))
    tools = [recording_tool("search", ran, "q"), recording_tool("send_email", ran, "to")]
    return tool_graph(ScriptedChatModel(script), tools, guard, checkpointer=InMemorySaver())


def test_pause_flags_resume_and_kill_reach_a_running_guard(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "guard.db"
    ran: Ran = []
    app = graph(db, ran, [tool_call("search", q="x"), "done"])

    assert (
        main(
            [
                "pause",
                "--store",
                str(db),
                "--thread",
                "ticket-42",
                "--reason",
                "loop",
                "--by",
                "alice",
            ]
        )
        == 0
    )
    assert "thread 'ticket-42' paused by alice: loop" in capsys.readouterr().out
    assert main(["flags", "--store", str(db)]) == 0
    assert "thread 'ticket-42' paused by alice: loop" in capsys.readouterr().out

    out = app.invoke(user("go"), CONFIG)  # type: ignore[attr-defined]
    assert out["__interrupt__"][0].value["type"] == "paused"
    assert ran == []

    assert main(["resume", "--store", str(db), "--thread", "ticket-42"]) == 0
    assert "lifted" in capsys.readouterr().out
    assert main(["resume", "--store", str(db), "--thread", "ticket-42"]) == 4  # nothing left

    assert main(["kill", "--store", str(db), "--by", "bob"]) == 0  # everything
    assert "everything killed by bob" in capsys.readouterr().out
    with pytest.raises(RunKilled, match="everything killed by bob"):
        graph(db, ran, [tool_call("search", q="y")]).invoke(  # type: ignore[attr-defined]
            user("go"), {"configurable": {"thread_id": "other"}}
        )


def test_pending_lists_the_approvals_graphs_wait_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "guard.db"
    assert main(["pending", "--store", str(db)]) == 1  # no store there: never made by mistake
    assert "does not exist" in capsys.readouterr().err
    assert not db.exists()
    assert main(["init", "--store", str(db)]) == 0
    assert main(["pending", "--store", str(db)]) == 0
    assert "no approval waiting" in capsys.readouterr().out
    app = graph(db, [], [tool_call("send_email", to="a@example.com", id="c-7")])
    app.invoke(user("mail"), CONFIG)  # type: ignore[attr-defined]
    assert main(["pending", "--store", str(db)]) == 0
    line = capsys.readouterr().out
    assert "thread ticket-42  call c-7  agent -> send_email" in line
    assert "requires a person's approval" in line


def test_operator_commands_refuse_bad_targets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pause", "--store", "x.db", "--thread", "a", "--agent", "b"])
    assert "not allowed with argument" in capsys.readouterr().err
