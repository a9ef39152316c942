"""Recipe: grant a permission at run time, delegate a narrower part of it, revoke it.

    python cookbook/grants_and_delegation.py

A lead agent may read anything under /srv/reports. It hands a helper agent read access to
one quarter's folder for ten minutes. Asking for more raises DelegationError. Revoking the
lead's grant revokes the helper's too. With a SQLiteStore, every process sees the change.

A delegation shares the delegator's budgets: the lead may read 3 files per run, and every
read the helper makes under the delegated grant counts against the lead's 3 as well, so the
two together never read more than the lead alone could.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from guardrails_plugin import Budget, DelegationError, Guard, Policy, SQLiteStore, ToolCall
from guardrails_plugin.scopes import Paths


def main() -> None:
    store = SQLiteStore(str(Path(tempfile.mkdtemp()) / "guard.db"))
    # nobody may do anything by default; the lead reads at most 3 files per run
    policy = Policy([], budgets=[Budget.calls(3, tools="read_file", agents="lead", id="lead-3")])
    guard = Guard(policy, store=store)

    lead = guard.grant("lead", "read_file", args={"path": Paths(["/srv/reports"])}, ttl=3600)
    helper = guard.delegate(
        "lead", "helper", "read_file", args={"path": Paths(["/srv/reports/2026-q3"])}, ttl=600
    )
    print("granted:", lead)
    print("delegated:", helper)

    for path in ("/srv/reports/2026-q3/summary.txt", "/srv/reports/2026-q2/summary.txt"):
        d = guard.check(ToolCall("read_file", {"path": path}, agent="helper", run_id="r1"))
        print(f"helper reads {path}: {d.effect} ({d.rule})")

    # the helper's read above used 1 of the lead's 3; two more reads by anyone, then no more
    for agent, name in (("lead", "a"), ("helper", "b"), ("helper", "c")):
        path = f"/srv/reports/2026-q3/{name}.txt"
        d = guard.check(ToolCall("read_file", {"path": path}, agent=agent, run_id="r1"))
        print(f"{agent} reads {path}: {d.effect} ({d.reason})")

    try:
        guard.delegate("lead", "helper", "read_file", args={"path": Paths(["/srv"])})
    except DelegationError as exc:
        print("refused:", exc)

    guard.revoke(lead)
    d = guard.check(ToolCall("read_file", {"path": "/srv/reports/2026-q3/x"}, agent="helper"))
    print(f"after revoking the lead's grant, helper: {d.effect} ({d.reason})")


if __name__ == "__main__":
    main()
