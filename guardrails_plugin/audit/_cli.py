"""``guardrails-plugin audit ...``: read, follow, verify, export and count the audit log::

guardrails-plugin audit tail   [--log audit.db] [-n 20] [--follow] [--kind K] [--thread T] [--agent A]
guardrails-plugin audit verify [--log audit.db] [--witness SEQ:HASH]   # exit 0 ok, 1 problems,
                                                  # 3 the witness could not be checked
guardrails-plugin audit export [--log audit.db] [--format jsonl|csv] [-o FILE]
guardrails-plugin audit stats  [--log audit.db]

Reading commands never set up a log: a path that holds none (missing, or a SQLite file
without the audit tables, such as a guard's store) is an error (exit 1). Output cut short by
its reader (``... | head``) ends quietly (``guardrails_plugin.cli.main`` sees to it).
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import sqlite3
import sys
import threading
from typing import Any

from .._say import say_error
from ._base import AuditError
from ._log import AuditLog, is_postgres_url, open_sink

__all__ = ["add_audit_commands", "open_existing"]


def add_audit_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``audit tail|verify|export|stats`` to the ``guardrails-plugin`` command."""
    audit = sub.add_parser("audit", help="read, follow, verify and export the audit log")
    verbs = audit.add_subparsers(dest="audit_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--log",
        default=os.environ.get("GUARDRAILS_AUDIT") or "audit.db",
        help="the audit log: a SQLite file, *.jsonl for JSON Lines, or a postgresql:// URL "
        "(default: $GUARDRAILS_AUDIT, else audit.db)",
    )
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--kind", help="only records of this kind (decision, approval, ...)")
    filters.add_argument("--thread", help="only records of this thread id")
    filters.add_argument("--agent", help="only records of this agent")

    p = verbs.add_parser(
        "tail", parents=[common, filters], help="print the last records, one line each"
    )
    p.add_argument("-n", type=int, default=20, help="how many (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p.add_argument("--poll", type=float, default=0.5, help=argparse.SUPPRESS)
    p.set_defaults(func=_tail)

    p = verbs.add_parser(
        "verify", parents=[common], help="check the hash chain; exit 1 if it was tampered with"
    )
    p.add_argument(
        "--witness",
        help="SEQ:HASH of a head recorded earlier elsewhere, which the chain must still hold",
    )
    p.set_defaults(func=_verify)

    p = verbs.add_parser("export", parents=[common, filters], help="write the records out")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    p.add_argument("--since", type=int, default=None, help="only records after this seq")
    p.set_defaults(func=_export)

    p = verbs.add_parser("stats", parents=[common, filters], help="counts by kind, outcome, ...")
    p.set_defaults(func=_stats)


def open_existing(path: str, option: str = "--log") -> AuditLog | None:
    """The log at ``path``; None (with a message) when there is none: reading commands never
    create an empty log by mistake."""
    if is_postgres_url(path):
        try:
            return AuditLog(open_sink(path, create=False))
        except (AuditError, ValueError) as exc:
            say_error(exc)
            return None
    exists = os.path.exists(path)
    if not exists and path.endswith(".jsonl"):
        exists = bool(glob.glob(glob.escape(path) + ".[0-9]*"))
    if not exists:
        say_error(f"no audit log at {path!r} (pass {option} PATH)")
        return None
    if not path.endswith(".jsonl") and os.path.isfile(path) and not _holds_audit_log(path):
        say_error(
            f"no audit log in {path!r}: a SQLite file without the audit tables "
            f"(a guard's store?); pass {option} PATH"
        )
        return None
    try:
        return AuditLog(path)
    except AuditError as exc:
        say_error(exc)
        return None


def _holds_audit_log(path: str) -> bool:
    """Whether the SQLite file at ``path`` holds an audit log, looked at read-only (opening
    it as a log would set one up in it). True when it cannot tell: opening it says why."""
    uri = pathlib.Path(path).absolute().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'guardrails_audit'"
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return True
    return found is not None


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {"kind": args.kind, "thread": args.thread, "agent": args.agent}


def _tail(args: argparse.Namespace) -> int:
    log = open_existing(args.log)
    if log is None:
        return 1
    stop = threading.Event()
    try:
        with log:
            since = log.head()[0]  # read first: what tail misses, follow prints
            for record in log.tail(args.n, **_filters(args)):
                print(record, flush=True)
                since = max(since, record.seq)
            if args.follow:
                for record in log.follow(since, poll=args.poll, stop=stop, **_filters(args)):
                    print(record, flush=True)
    except KeyboardInterrupt:
        stop.set()
    except AuditError as exc:
        say_error(exc)
        return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    witness = None
    if args.witness:
        seq, _, digest = args.witness.partition(":")
        if not seq.isdigit() or not digest:
            say_error(f"--witness must be SEQ:HASH, found {args.witness!r}")
            return 2
        witness = (int(seq), digest)
    log = open_existing(args.log)
    if log is None:
        return 1
    try:
        with log:
            report = log.verify(witness=witness)
    except AuditError as exc:
        say_error(exc)
        return 1
    print(report)
    if report.ok:
        return 0
    unchecked = all(p.kind in ("unchecked", "truncated") for p in report.problems)
    return 3 if unchecked else 1


def _export(args: argparse.Namespace) -> int:
    log = open_existing(args.log)
    if log is None:
        return 1
    try:
        with log:
            if args.output:
                with open(args.output, "w", encoding="utf-8", newline="") as out:
                    n = log.export(out, args.format, since_seq=args.since, **_filters(args))
                print(f"{n} records written to {args.output}", file=sys.stderr)
            else:
                log.export(sys.stdout, args.format, since_seq=args.since, **_filters(args))
    except AuditError as exc:
        say_error(exc)
        return 1
    return 0


def _stats(args: argparse.Namespace) -> int:
    log = open_existing(args.log)
    if log is None:
        return 1
    try:
        with log:
            print(log.stats(**_filters(args)))
    except AuditError as exc:
        say_error(exc)
        return 1
    return 0
