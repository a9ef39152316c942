"""``guardrails-plugin verify`` and ``guardrails-plugin diff``: proofs and policy diffs for CI.

``verify POLICY --assert "..." [--assert ...] [--json] [--depth N] [--rlimit STEPS]
[--timeout SECONDS]``: exit 0 when every
assertion is proven, 1 when one is refuted (its counterexample printed), 2 when one is
unknown or the input is wrong (an unknown names the limit it met: the resource limit,
the same on any machine, or the wall-clock ceiling). ``diff OLD NEW [--json]
[--rlimit STEPS] [--timeout SECONDS]``: every region NEW decides
differently, with an example call; exit 1 when NEW widens permissions, 0 when it provably
does not, 2 when that is not settled (the solver gave up, or only calls resting on
over-approximated scopes were found: each printed as ``unknown: ...``) or on error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .._errors import GuardrailsError
from .._say import say_error
from ..policy import Policy
from ..policy._files import collector_paused


def add_verify_commands(sub: Any) -> None:
    """Add ``verify`` and ``diff`` to the command's subparsers."""
    p = sub.add_parser(
        "verify", help="prove properties of a policy file, or print a call that breaks one"
    )
    p.add_argument("file", help="the policy file")
    p.add_argument(
        "--assert",
        dest="asserts",
        action="append",
        required=True,
        metavar="PROPERTY",
        help="a property (repeatable), e.g. 'agent billing never calls refund with amount > 1000'",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per property")
    p.add_argument("--depth", type=int, default=None, help="hand-offs followed (default: auto)")
    _limit_options(p)
    p.set_defaults(func=_verify)

    p = sub.add_parser(
        "diff", help="what NEW allows that OLD did not, and the reverse (exit 1 if NEW widens)"
    )
    p.add_argument("old", help="the policy file before")
    p.add_argument("new", help="the policy file after")
    p.add_argument("--json", action="store_true", help="the regions as JSON")
    _limit_options(p)
    p.set_defaults(func=_diff)


def _limit_options(p: Any) -> None:
    from ._z3 import RLIMIT, TIMEOUT

    p.add_argument(
        "--rlimit",
        type=_steps,
        default=RLIMIT,
        metavar="STEPS",
        help="z3 resource limit per solver call: the same answer on any machine and load "
        f"(default: {RLIMIT:,}; 0: none)",
    )
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=TIMEOUT,
        metavar="SECONDS",
        help=f"last-resort wall-clock ceiling per solver call (default: {TIMEOUT:g}; 0: none)",
    )


def _steps(text: str) -> int:
    try:
        n = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (no limit) or more: {text!r}")
    return n


def _seconds(text: str) -> float | None:
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not n >= 0 or n == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 (no ceiling) or more seconds: {text!r}")
    return n or None


def _verify(args: argparse.Namespace) -> int:
    from ._props import parse
    from ._verifier import Verifier

    try:
        with collector_paused():
            policy = Policy.from_yaml(args.file)
        props = [parse(a) for a in args.asserts]
        verifier = Verifier(policy, depth=args.depth, rlimit=args.rlimit, timeout=args.timeout)
        results = [verifier.check(p) for p in props]
    except GuardrailsError as exc:
        say_error(str(exc))
        return 2
    for r in results:
        print(json.dumps(r.to_dict(), default=repr) if args.json else str(r))
    if any(r.status == "unknown" for r in results):
        return 2
    return 1 if any(r.status == "refuted" for r in results) else 0


def _diff(args: argparse.Namespace) -> int:
    from ._compare import diff

    try:
        with collector_paused():
            old = Policy.from_yaml(args.old)
            new = Policy.from_yaml(args.new)
        regions = diff(old, new, rlimit=args.rlimit, timeout=args.timeout)
    except GuardrailsError as exc:
        say_error(str(exc))
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in regions], default=repr))
        for reason in regions.unsettled:
            print(f"unknown: {reason}", file=sys.stderr)
    else:
        for r in regions:
            print(str(r))
        for reason in regions.unsettled:
            print(f"unknown: {reason}")
        if not regions and not regions.unsettled:
            print("no call is decided differently")
    if regions.widens:
        return 1
    return 0 if regions.settled_widening else 2
