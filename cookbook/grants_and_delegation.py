"""Recipe: grant a permission at run time, delegate a narrower part of it, revoke it.

    python cookbook/grants_and_delegation.py

A lead agent may read anything under /srv/reports. It hands a helper agent read access to
one quarter's folder for ten minutes. Asking for more raises DelegationError. Revoking the
lead's grant revokes the helper's too. With a SQLiteStore, every process sees the change.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from guardrails_plugin import DelegationError, Guard, Policy, SQLiteStore, ToolCall
from guardrails_plugin.scopes import Paths


def main() -> None:
    store = SQLiteStore(str(Path(tempfile.mkdtemp()) / "guard.db"))
    guard = Guard(Policy([]), store=store)  # nobody may do anything by default

    lead = guard.grant("lead", "read_file", args={"path": Paths(["/srv/reports"])}, ttl=3600)
    helper = guard.delegate(
        "lead", "helper", "read_file", args={"path": Paths(["/srv/reports/2026-q3"])}, ttl=600
    )
    print("granted:", lead)
    print("delegated:", helper)

    for path in ("/srv/reports/2026-q3/summary.txt", "/srv/reports/2026-q2/summary.txt"):
        d = guard.check(ToolCall("read_file", {"path": path}, agent="helper"))
        print(f"helper reads {path}: {d.effect} ({d.rule})")

    try:
        guard.delegate("lead", "helper", "read_file", args={"path": Paths(["/srv"])})
    except DelegationError as exc:
        print("refused:", exc)

    guard.revoke(lead)
    d = guard.check(ToolCall("read_file", {"path": "/srv/reports/2026-q3/x"}, agent="helper"))
    print(f"after revoking the lead's grant, helper: {d.effect} ({d.reason})")


if __name__ == "__main__":
    main()
