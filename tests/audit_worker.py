"""Processes that write to one audit log while the tests watch, kill and verify it.

Run as a script (a fresh interpreter: nothing shared with the test process but the files)::

    python audit_worker.py loop PATH          # append forever, print each seq once stored
    python audit_worker.py torn PATH N        # append N records, then die halfway through
                                              # writing the next line (JSON Lines only)

or forked from the test process (``append_many``) for the concurrency tests, which need
several writers at once and no interpreter start-up.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from guardrails_plugin import Decision, Effect, ToolCall
from guardrails_plugin.audit import AuditLog, JSONLAuditSink, SQLiteAuditSink


def open_log(path: str, rotate_bytes: int | None = None) -> AuditLog:
    if path.endswith(".jsonl"):
        return AuditLog(JSONLAuditSink(path, rotate_bytes=rotate_bytes))
    return AuditLog(SQLiteAuditSink(path))


def record(log: AuditLog, agent: str, i: int) -> int:
    call = ToolCall("lookup", {"n": i, "token": f"secret-{i}"}, agent=agent, thread_id=agent)
    return log.decision(call, Decision(Effect.ALLOW, "lookups", f"call {i} of {agent}")).seq


def append_many(path: str, agent: str, n: int, threads: int, rotate_bytes: int | None) -> None:
    """``threads`` threads of this process append ``n`` records each, as ``agent``."""
    log = open_log(path, rotate_bytes)

    def work(t: int) -> None:
        for i in range(n):
            record(log, f"{agent}.{t}", i)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    log.close()


def loop(path: str) -> None:
    log = open_log(path, rotate_bytes=4096)
    i = 0
    while True:
        seq = record(log, "looper", i)
        print(seq, flush=True)
        i += 1


def torn(path: str, n: int) -> None:
    """Append ``n`` records, then write half of the next line and wait to be killed."""
    log = open_log(path)
    for i in range(n):
        record(log, "writer", i)

    def half_then_hang(self: Any, fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        print("torn", flush=True)
        time.sleep(60)

    JSONLAuditSink._write = half_then_hang  # type: ignore[method-assign]
    record(log, "writer", n)


if __name__ == "__main__":
    verb, target = sys.argv[1], sys.argv[2]
    if verb == "loop":
        loop(target)
    elif verb == "torn":
        torn(target, int(sys.argv[3]))
    else:
        raise SystemExit(f"unknown verb {verb!r}")
