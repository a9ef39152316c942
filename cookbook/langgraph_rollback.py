"""Recipe: roll a LangGraph thread back to a safe point and undo what its agent did.

    python cookbook/langgraph_rollback.py             # offline: a scripted model plays the LLM
    OPENAI_API_KEY=... python cookbook/langgraph_rollback.py   # a real OpenAI-compatible model
                                                      # (needs: pip install langchain-openai)

A treasury agent has two tools with real side effects in a temporary directory: ``pay``
moves money between accounts of a small SQLite "bank", ``file_invoice`` writes an invoice
file. Each tool registers a compensation (``Compensations``): how to undo it, and what to
capture when it runs. ``GuardedToolNode(..., compensations=...)`` then journals, in the
guard's store, every side effect, a safe point (the checkpoint before each risky step) and
every violation (a call the policy denied).

The agent goes wrong: it files three invoices and pays them, the last one far over its
payment limit (a violation). The recipe then

1. lists the thread's violations and safe points (``Recovery.violations/safe_points``);
2. rolls back to the last safe point before the violation (``Recovery.rollback``): the
   compensations run newest first, and the thread's state returns to that checkpoint;
3. rolls back further, to an older checkpoint (``rollback(config, to=...)``);
4. runs that rollback again: nothing is undone twice.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition

from guardrails_plugin import Guard, Policy, RollbackError, SQLiteStore, allow
from guardrails_plugin.langgraph import GuardedToolNode, Recovery
from guardrails_plugin.rollback import Compensations, SideEffect
from guardrails_plugin.scopes import Number, OneOf, Pattern
from guardrails_plugin.testing import ScriptedChatModel, tool_call

THREAD: RunnableConfig = {"configurable": {"thread_id": "treasury-7"}}
REQUEST = (
    "ACME sent invoices 1001 (10.00), 1002 (30.00) and 1003 (9,000.00). "
    "File each invoice, then pay it (amounts in cents)."
)

POLICY = Policy(
    [
        allow(
            "pay",
            args={"to": OneOf(["acme", "globex"]), "cents": Number(gt=0, le=5_000)},
            id="small-payments",
        ),
        allow("file_invoice", args={"number": Pattern(r"\d{4}")}, id="file-invoices"),
    ]
)

# What a scripted model does offline: files and pays, then tries a payment over its limit.
SCRIPT: list[Any] = [
    tool_call("file_invoice", number="1001", cents=1_000, id="call-file-1001"),
    tool_call("pay", to="acme", cents=1_000, id="call-pay-1001"),
    tool_call("file_invoice", number="1002", cents=3_000, id="call-file-1002"),
    tool_call("pay", to="acme", cents=3_000, id="call-pay-1002"),
    tool_call("file_invoice", number="1003", cents=900_000, id="call-file-1003"),
    tool_call("pay", to="acme", cents=900_000, id="call-pay-1003"),  # the violation
    "Paid 1001 and 1002; the payment for 1003 was blocked.",
]


class Bank:
    """A tiny bank in SQLite: balances, and the transfers made (keyed, so undo is idempotent)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS account (name TEXT PRIMARY KEY, cents INT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS done (key TEXT PRIMARY KEY)")
        self.db.execute("INSERT OR IGNORE INTO account VALUES ('treasury', 50000), ('acme', 0)")

    def transfer(self, src: str, dst: str, cents: int, *, key: str | None = None) -> bool:
        """Move money in one transaction; with ``key``, at most once per key."""
        with self.db:
            self.db.execute("BEGIN")
            if key is not None:
                fresh = self.db.execute("INSERT OR IGNORE INTO done VALUES (?)", (key,))
                if fresh.rowcount == 0:
                    return False  # already done: a retried undo does nothing twice
            self.db.execute("UPDATE account SET cents = cents - ? WHERE name = ?", (cents, src))
            self.db.execute("UPDATE account SET cents = cents + ? WHERE name = ?", (cents, dst))
        return True

    def balances(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT name, cents FROM account ORDER BY name"))


def treasury_tools(bank: Bank, invoices: Path) -> tuple[list[BaseTool], Compensations]:
    """The tools, and how to undo each one."""

    @tool
    def pay(to: str, cents: int) -> str:
        """Pay ``cents`` from the treasury to the account ``to``."""
        bank.transfer("treasury", to, cents)
        print(f"  ran pay({to!r}, {cents})")
        return f"paid {cents} cents to {to}"

    @tool
    def file_invoice(number: str, cents: int) -> str:
        """File a vendor invoice."""
        path = invoices / f"invoice-{number}.txt"
        path.write_text(f"invoice {number}: {cents} cents\n")
        print(f"  ran file_invoice({number!r})")
        return f"filed {path.name}"

    compensations = Compensations()

    @compensations.undo("pay", capture=lambda args, result: dict(args))
    def refund(effect: SideEffect) -> None:
        to, cents = effect.data["to"], effect.data["cents"]
        bank.transfer(to, "treasury", cents, key=effect.key)  # effect.key: same on a retry
        print(f"  undo: refunded {cents} from {to} ({effect.call_id})")

    @compensations.undo(
        "file_invoice", capture=lambda args, result: {"file": f"invoice-{args['number']}.txt"}
    )
    def unfile(effect: SideEffect) -> None:
        (invoices / effect.data["file"]).unlink(missing_ok=True)  # idempotent
        print(f"  undo: removed {effect.data['file']} ({effect.call_id})")

    return [pay, file_invoice], compensations


def make_model() -> BaseChatModel:
    """A real OpenAI-compatible model when a key is set and langchain-openai is installed."""
    if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("langchain_openai"):
        from langchain_openai import ChatOpenAI  # type: ignore[import-not-found]

        model: BaseChatModel = ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
        return model
    return ScriptedChatModel(SCRIPT)


def build_graph(
    model: BaseChatModel,
    tools: list[BaseTool],
    guard: Guard,
    compensations: Compensations,
    checkpointer: Any,
) -> Any:
    bound = model.bind_tools(tools)
    system = SystemMessage("You are a treasury agent. Make one tool call at a time.")

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke([system, *state["messages"]])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node(
        "tools", GuardedToolNode(tools, guard, agent="treasurer", compensations=compensations)
    )
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def world(bank: Bank, invoices: Path) -> str:
    files = sorted(p.name for p in invoices.iterdir())
    return f"balances {bank.balances()}, invoices {files}"


def short(checkpoint_id: str | None) -> str:
    return "-" if checkpoint_id is None else f"…{checkpoint_id[-6:]}"


def next_call(graph: Any) -> str:
    """What the restored thread will do next: the call its last AI message asks for."""
    state = graph.get_state(THREAD)
    calls = state.values["messages"][-1].tool_calls
    what = ", ".join(f"{c['name']}({c['args']})" for c in calls) or "nothing"
    return f"next step {state.next}: {what}"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        invoices = workdir / "invoices"
        invoices.mkdir()
        bank = Bank(workdir / "bank.db")
        tools, compensations = treasury_tools(bank, invoices)
        store = SQLiteStore(workdir / "guard.db")  # the journal lives in the guard's store
        conn = sqlite3.connect(workdir / "graph.db", check_same_thread=False)
        try:
            graph = build_graph(
                make_model(), tools, Guard(POLICY, store=store), compensations, SqliteSaver(conn)
            )

            print(f"before: {world(bank, invoices)}")
            print(f"\nuser: {REQUEST}")
            out = graph.invoke({"messages": [{"role": "user", "content": REQUEST}]}, THREAD)
            print(f"agent: {out['messages'][-1].text}")
            print(f"after:  {world(bank, invoices)}")

            recovery = Recovery(graph, store, compensations)
            print("\n== 1. what went wrong, and where it is safe to return")
            violations = recovery.violations(THREAD)
            for v in violations:
                print(f"  violation at {short(v.checkpoint_id)}: {v.tool} ({v.rule}): {v.reason}")
            points = recovery.safe_points(THREAD)  # newest first
            for p in points:
                print(f"  safe point {short(p.checkpoint_id)}: {p.reason}")
            if not violations or not points:
                print("  the model stayed within the policy: nothing to roll back")
                return

            print("\n== 2. roll back to the last safe point before the violation")
            report = recovery.rollback(THREAD)
            print(report)
            print(f"  now: {world(bank, invoices)}")
            print(f"  {next_call(graph)}")

            print("\n== 3. roll back further: to the safe point before the first payment")
            first_payment = next((p for p in reversed(points) if p.tool == "pay"), points[-1])
            report = recovery.rollback(THREAD, to=first_payment.checkpoint_id)
            print(report)
            print(f"  now: {world(bank, invoices)}")
            print(f"  {next_call(graph)}")

            print("\n== 4. the same rollback again: nothing is undone twice")
            again = recovery.rollback(THREAD, to=first_payment.checkpoint_id)
            print(again)
            print(f"  now: {world(bank, invoices)}")
            try:
                recovery.rollback(THREAD)  # no target left: the violation is rolled back
            except RollbackError as exc:
                print(f"  rollback() without a target: {exc}")
        finally:
            conn.close()


if __name__ == "__main__":
    main()
