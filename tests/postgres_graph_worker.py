"""One worker of a guarded LangGraph app whose state lives in PostgreSQL: the graph on
LangGraph's ``PostgresSaver``, the guard on ``PostgresStore``, and a tool whose side effect is
a row in a table of the same database (so the test counts executions across processes).

Run as a script, it is worker A: ``python postgres_graph_worker.py MODE URL SCHEMA THREAD``

- ``ask``: run the thread until the approval interrupt, print the call id, then wait (the
  test kills it with SIGKILL);
- ``die-in-tool``: the call is allowed; the tool writes its row, then the process kills
  itself (SIGKILL): after the done-ledger's claim, before the result is recorded.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.checkpoint.postgres import PostgresSaver

sys.path.insert(0, str(Path(__file__).parent))

from fakes import tool_call, user
from langgraph_apps import tool_graph

from guardrails_plugin import Budget, Guard, Policy, allow, ask
from guardrails_plugin.store.postgres import PostgresStore
from guardrails_plugin.testing import ScriptedChatModel


def side_effects(url: str, schema: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".sent').fetchone()
    return int(row[0]) if row else 0


def prepare(url: str, schema: str) -> None:
    PostgresStore(url, schema=schema).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".sent (recipient text, pid int)')
    with PostgresSaver.from_conn_string(url) as saver:
        saver.setup()


def send_tool(url: str, schema: str, *, die: bool = False) -> BaseTool:
    def send_email(to: str) -> str:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                f'INSERT INTO "{schema}".sent (recipient, pid) VALUES (%s, %s)', (to, os.getpid())
            )
        if die:
            os.kill(os.getpid(), signal.SIGKILL)
        return f"sent to {to}"

    return StructuredTool.from_function(
        func=send_email, name="send_email", description="Send an email."
    )


def policy(mode: str) -> Policy:
    rule = allow("send_email") if mode == "die-in-tool" else ask("send_email")
    # One email in all: a second charge anywhere would deny the call.
    return Policy([rule], budgets=[Budget.calls(1, tools="send_email", per="global", id="emails")])


def graph(url: str, schema: str, saver: Any, mode: str, script: list[Any]) -> tuple[Any, Guard]:
    store = PostgresStore(url, schema=schema)
    guard = Guard(policy(mode), store=store)
    model = ScriptedChatModel(script)
    tools = [send_tool(url, schema, die=mode == "die-in-tool")]
    return tool_graph(model, tools, guard, checkpointer=saver), guard


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def worker_a(mode: str, url: str, schema: str, thread: str) -> None:
    with PostgresSaver.from_conn_string(url) as saver:
        app, _ = graph(
            url, schema, saver, mode, [tool_call("send_email", to="a@acme.com", id="c-1")]
        )
        out = app.invoke(user("mail a@acme.com"), config(thread), durability="sync")
        print(out["__interrupt__"][0].value["call_id"], flush=True)
        while True:  # holding the interrupted run: the test kills this process
            time.sleep(1)


if __name__ == "__main__":
    worker_a(*sys.argv[1:5])
