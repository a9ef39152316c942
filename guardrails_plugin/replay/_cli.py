"""``guardrails-plugin replay POLICY --from SOURCE``: the command line of ``replay``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

from .._errors import GuardrailsError
from .._say import say_error
from ..policy import Policy
from ._replay import _timing, open_source, progress_bar, replay
from ._sources import Recorded

__all__ = ["add_replay_command", "add_source_arguments", "open_from"]


def add_replay_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``replay`` to the ``guardrails-plugin`` command."""
    p = sub.add_parser(
        "replay",
        help="re-decide recorded tool calls with a policy file and report what would change",
        description=(
            "Re-decide recorded tool calls with POLICY (a fresh store, the recorded times) and "
            "report the calls newly denied, asked or allowed, per rule and per agent, and the "
            "budgets that would run out. SOURCE: audit:PATH (an audit log), calls:PATH (JSON "
            "Lines of tool calls), checkpoints:URL (LangGraph checkpoints: sqlite:///file.db "
            "or a postgresql:// URL), or a path, recognised by its content."
        ),
    )
    p.add_argument("policy", help="the candidate policy file (YAML or JSON)")
    add_source_arguments(p)
    p.add_argument(
        "--asks",
        choices=("approve", "deny"),
        default="approve",
        help="how calls the policy asks about go on (default: approved, budgets count them)",
    )
    p.add_argument("--examples", type=int, default=5, help="examples kept per kind of change")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--fail-on-change",
        action="store_true",
        help="exit 4 when any call is newly denied, asked or allowed (for CI)",
    )
    p.set_defaults(func=_replay)


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    """``--from SOURCE`` and what reading checkpoints takes (``--thread``, ``--agent``): the
    recorded traffic that ``replay`` re-decides and ``baseline learn`` learns from."""
    p.add_argument("--from", dest="source", required=True, metavar="SOURCE")
    p.add_argument(
        "--thread",
        dest="threads",
        action="append",
        default=None,
        help="checkpoints: a thread to read (repeat; default: every thread)",
    )
    p.add_argument(
        "--agent", default="agent", help="checkpoints: the agent of messages without a name"
    )


def open_from(args: argparse.Namespace) -> Iterator[Recorded]:
    """The recorded traffic the arguments of ``add_source_arguments`` name."""
    return open_source(args.source, threads=args.threads, agent=args.agent)


def _replay(args: argparse.Namespace) -> int:
    if args.examples < 0:
        say_error("--examples must be 0 or more")
        return 1
    try:
        policy = Policy.from_yaml(args.policy)
        source = open_from(args)
        start = time.perf_counter()
        report = replay(
            policy,
            source,
            asks=args.asks,
            examples=args.examples,
            progress=progress_bar(),
            name=args.source,
        )
    except GuardrailsError as exc:
        say_error(exc)
        return 1
    except Exception as exc:  # never a traceback: a checkpointer or driver failure, say it
        say_error(f"{type(exc).__name__}: {exc}")
        return 1
    print(report.to_json(indent=2) if args.json else str(report))
    print(_timing(start, report.calls), file=sys.stderr)
    return 4 if args.fail_on_change and report.changed else 0
