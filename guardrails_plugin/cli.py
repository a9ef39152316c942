"""The ``guardrails-plugin`` command: lint a policy file, try a call against it, run the demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import yaml

from ._errors import PolicyError
from ._events import ToolCall
from .policy import Policy


def _lint(args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_yaml(args.file)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"# {args.file}: valid ({len(policy.rules)} rules, {len(policy.budgets)} budgets, "
        f"{len(policy.flows)} flows)"
    )
    print(yaml.safe_dump(policy.to_dict(), sort_keys=False, allow_unicode=True).rstrip())
    warnings = policy.lint()
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 2 if warnings and args.strict else 0


def _check(args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_yaml(args.file)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        call_args = json.loads(args.args)
    except json.JSONDecodeError as exc:
        print(f"error: --args is not JSON: {exc}", file=sys.stderr)
        return 1
    decision = policy.evaluate(ToolCall(args.tool, call_args, agent=args.agent))
    print(f"{decision.effect}\t{decision.rule}\t{decision.reason}")
    return 0 if decision.allowed else 3


def _demo(args: argparse.Namespace) -> int:
    try:
        from .demo import run_demo
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run_demo(show_messages=args.verbose)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="guardrails-plugin",
        description="Least-privilege guardrails for LangChain and LangGraph agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("lint", help="validate a YAML policy file and print the compiled policy")
    p.add_argument("file")
    p.add_argument("--strict", action="store_true", help="exit 2 when there are warnings")
    p.set_defaults(func=_lint)

    p = sub.add_parser("check", help="decide one tool call against a policy file (rules only)")
    p.add_argument("file")
    p.add_argument("tool")
    p.add_argument("--args", default="{}", help="the call's arguments as a JSON object")
    p.add_argument("--agent", default="agent")
    p.set_defaults(func=_check)

    p = sub.add_parser("demo", help="run an offline demo agent under a guard")
    p.add_argument("-v", "--verbose", action="store_true", help="also print the conversation")
    p.set_defaults(func=_demo)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
