"""Worker processes for the PostgreSQL tests: each opens its own store (its own connections)
and hammers shared state, reporting what the store said to it so the test can check that the
limits held and nothing counted twice.

Forked from the test process (``multiprocessing`` "fork" context: no interpreter start-up),
or run as a script for the kill-switch propagation measurement.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from guardrails_plugin import Budget, Effect, Guard, Policy, ToolCall, allow, rate
from guardrails_plugin.store.postgres import PostgresStore


def hammer(url: str, schema: str, name: str, rounds: int, barrier: Any, out: str) -> None:
    """``rounds`` times: charge the budget, the rate window and add a distinct member; then
    the same through a Guard with three budgets. Writes what was granted to ``out``."""
    store = PostgresStore(url, schema=schema, pool_size=2)
    guard = Guard(
        Policy(
            [allow("pay"), allow("mail")],
            budgets=[
                Budget.calls(37, tools="pay", per="global"),
                rate(23, seconds=3600, tools="pay", per="global"),
                Budget.distinct("to", 11, tools="mail", per="global"),
            ],
        ),
        store=store,
    )
    granted: dict[str, list[Any]] = {"budget": [], "rate": [], "set": [], "pay": [], "mail": []}
    barrier.wait()
    for i in range(rounds):
        if store.charge("budget", 1, limit=50):
            granted["budget"].append(i)
        if store.charge("rate", 1, limit=40, window=3600, now=time.time()):
            granted["rate"].append(i)
        added = store.add_members("recipients", [f"{name}-{i}", f"shared-{i % 3}"], limit=30)
        if added is not None:
            granted["set"].append(list(added))
        pay = guard.check(ToolCall("pay", {"n": i}, agent=name, thread_id=f"{name}-t"))
        if pay.effect is Effect.ALLOW:
            granted["pay"].append(i)
        elif pay.rule == "store-error":
            raise AssertionError(pay.reason)
        mail = guard.check(ToolCall("mail", {"to": f"{name}-{i}"}, agent=name, thread_id=name))
        if mail.effect is Effect.ALLOW:
            granted["mail"].append(f"{name}-{i}")
    store.close()
    with open(out, "w") as f:
        json.dump(granted, f)


def wait_for_kill(url: str, schema: str, ready_file: str) -> None:
    """Script mode: check a guarded step in a loop; print when it is denied by a kill, as
    ``killed <wall time>``. The kill-switch measurement runs several of these."""
    from guardrails_plugin import RunKilled  # noqa: F401 - the error a kill raises in adapters

    store = PostgresStore(url, schema=schema, pool_size=1)
    guard = Guard(Policy([allow("*")]), store=store)
    call = ToolCall("work", {}, agent="worker", thread_id=f"t-{os.getpid()}")
    guard.check(call)
    with open(ready_file, "a") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        decision = guard.check(call)
        if decision.rule == "kill-switch":
            print(f"killed {time.time():.6f}", flush=True)
            return
        time.sleep(0.0005)


if __name__ == "__main__":
    if sys.argv[1] == "wait_for_kill":
        wait_for_kill(sys.argv[2], sys.argv[3], sys.argv[4])


def append_many(url: str, agent: str, n: int, barrier: Any) -> None:
    """Append ``n`` decision records as ``agent`` to the audit log at ``url``."""
    from guardrails_plugin import Decision
    from guardrails_plugin.audit import AuditLog

    log = AuditLog(url)
    barrier.wait()
    for i in range(n):
        call = ToolCall("lookup", {"n": i, "token": f"secret-{i}"}, agent=agent, thread_id=agent)
        log.decision(call, Decision(Effect.ALLOW, "lookups", f"call {i} of {agent}"))
    log.close()
