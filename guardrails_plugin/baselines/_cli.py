"""``guardrails-plugin baseline learn|show``: the command line of ``learn`` and ``Baseline``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from .._errors import GuardrailsError
from .._say import say_error
from ..replay._cli import add_source_arguments, open_from
from ..replay._replay import _timing, progress_bar
from ._anomaly import Anomaly
from ._baseline import Baseline
from ._learn import learn

__all__ = ["add_baseline_command", "describe"]


def add_baseline_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``baseline learn`` and ``baseline show`` to the ``guardrails-plugin`` command."""
    p = sub.add_parser(
        "baseline",
        help="learn what each agent habitually does from recorded traffic, and show it",
    )
    verbs = p.add_subparsers(dest="verb", required=True)
    learn_p = verbs.add_parser(
        "learn",
        help="learn a baseline from recorded tool calls",
        description=(
            "Read recorded tool calls from SOURCE (audit:PATH, calls:PATH, checkpoints:URL, or "
            "a path recognised by its content, as for replay) and write each agent's habits "
            "(tools, argument destinations, calls per run, transitions) to a JSON file."
        ),
    )
    add_source_arguments(learn_p)
    learn_p.add_argument("--out", required=True, help="the baseline file to write (JSON)")
    learn_p.add_argument("--cap", type=int, default=64, help="keys kept per count table")
    learn_p.set_defaults(func=_learn)
    show_p = verbs.add_parser("show", help="print what a baseline holds and what it scores")
    show_p.add_argument("baseline", help="a baseline file")
    show_p.add_argument("--agent", action="append", default=None, help="only this agent (repeat)")
    show_p.add_argument("--top", type=int, default=5, help="values shown per argument")
    show_p.add_argument("--json", action="store_true", help="print the baseline file's JSON")
    show_p.set_defaults(func=_show)


def _learn(args: argparse.Namespace) -> int:
    if args.cap < 1:
        say_error("--cap must be 1 or more")
        return 1
    try:
        source = open_from(args)
        start = time.perf_counter()
        baseline = learn(source, cap=args.cap, progress=progress_bar())
        if baseline.calls == 0:
            say_error(f"no tool calls in {args.source!r}: nothing to learn")
            return 1
        baseline.save(args.out)
    except GuardrailsError as exc:
        say_error(exc)
        return 1
    except Exception as exc:  # never a traceback: a checkpointer or driver failure, say it
        say_error(f"{type(exc).__name__}: {exc}")
        return 1
    print(
        f"learned {len(baseline.agents)} agents from {baseline.calls:,} calls -> {args.out}",
        file=sys.stderr,
    )
    print(_timing(start, baseline.calls), file=sys.stderr)
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.top < 0:
        say_error("--top must be 0 or more")
        return 1
    try:
        baseline = Baseline.load(args.baseline)
    except GuardrailsError as exc:
        say_error(exc)
        return 1
    agents = args.agent or sorted(baseline.agents)
    missing = [a for a in agents if a not in baseline.agents]
    if missing:
        say_error(f"no agent {missing[0]!r} in {args.baseline}")
        return 1
    if args.json:
        doc = baseline.to_doc()
        doc["agents"] = {a: doc["agents"][a] for a in agents}
        print(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False))
        return 0
    print(describe(baseline, agents, top=args.top))
    return 0


def describe(baseline: Baseline, agents: list[str] | None = None, *, top: int = 5) -> str:
    """A baseline for people: per agent, its calls and runs, each tool with its scored
    arguments' most frequent keys, and what ``Anomaly()`` with its defaults scores."""
    scorer = Anomaly(baseline)
    lines = [
        f"baseline of {len(baseline.agents)} agents, {baseline.calls:,} calls "
        f"(cap {baseline.cap} keys per table)"
        + (f"; {baseline.skipped:,} calls not learned" if baseline.skipped else "")
    ]
    for name in agents if agents is not None else sorted(baseline.agents):
        p = baseline.agents[name]
        scored = scorer.scored(name)
        volume = scored["volume"]
        lines.append("")
        if p.runs:
            per_run = f"calls per run: median {p.quantile(0.5)}, p99 {p.quantile(0.99)}" + (
                f" (scored above {volume})" if volume is not None else " (not scored)"
            )
        else:
            per_run = "no runs (its calls named no thread or run)"
        lines.append(f"{name}: {p.calls:,} calls in {p.runs:,} runs; {per_run}")
        lines.append(
            f"  tools {'scored' if scored['tools'] else 'not scored (too little or too open)'}"
            f"; transitions {'scored' if scored['transitions'] else 'not scored'}"
        )
        for tool, n in p.tools.top(len(p.tools.values)):
            names = p.params.get(tool)
            said = ""
            if names is not None and names.values:
                mark = "scored" if tool in scored["params"] else "not scored"
                said = f"; arguments {', '.join(sorted(names.values))} [{mark}]"
            lines.append(f"  {tool}: {n:,} calls{said}")
            for arg, c in sorted(p.args.get(tool, {}).items()):
                mark = "scored" if arg in scored["args"].get(tool, ()) else "not scored"
                if not c.values:
                    lines.append(f"    {arg} [open: a new value almost every call]")
                    continue
                shown = ", ".join(f"{_cut(k)} ({v:,})" for k, v in c.top(top))
                more = len(c.values) - min(top, len(c.values))
                tail = f", {more} more" if more > 0 else ""
                tail += f", {c.others:,} others" if c.others else ""
                lines.append(f"    {arg} [{mark}, novelty {c.novelty:.2f}]: {shown}{tail}")
        if p.tools.others:
            lines.append(f"  ({p.tools.others:,} calls of tools not kept)")
    return "\n".join(lines)


def _cut(key: str, most: int = 60) -> str:
    return key if len(key) <= most else key[: most - 1] + "…"
