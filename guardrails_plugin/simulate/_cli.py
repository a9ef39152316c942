"""``guardrails-plugin simulate SCENARIO``: the command line of ``simulate``."""

from __future__ import annotations

import argparse
from typing import Any

from .._errors import GuardrailsError
from .._say import say_error
from ._html import render_html
from ._run import progress_bar, simulate
from ._scenario import Scenario

__all__ = ["add_simulate_command"]


def add_simulate_command(sub: argparse._SubParsersAction[Any]) -> None:
    """Add ``simulate`` to the ``guardrails-plugin`` command."""
    p = sub.add_parser(
        "simulate",
        help="run a population of simulated agents, with faults, through the guard",
        description=(
            "Build the population SCENARIO describes (roles, tools, policies, hand-offs, "
            "call rates, argument distributions, faults: compromised agents, injected "
            "instructions, a store outage, slow approvers), run every interaction through "
            "the guard in simulated time, and report honest calls stopped, harmful calls "
            "let through, time and messages to containment, blast radius, budget "
            "exhaustion and throughput. The same seed gives the same report. Format: "
            "docs/simulation.md."
        ),
    )
    p.add_argument("scenario", help="the scenario file (YAML)")
    p.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    p.add_argument(
        "--interactions", type=int, default=None, help="override how many interactions to run"
    )
    p.add_argument("--shards", type=int, default=None, help="override the scenario's shards")
    p.add_argument(
        "--workers", type=int, default=1, help="local processes to run the shards on (default 1)"
    )
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run the shards as Ray tasks on the cluster at ADDRESS ('local': a new local "
        "instance; needs the ray extra)",
    )
    p.add_argument(
        "--store",
        dest="sim_store",
        default=None,
        metavar="URL",
        help="keep the shards' state in this store (redis://..., sqlite:///path, a SQLite "
        "path, postgresql://...) instead of memory",
    )
    p.add_argument(
        "--fidelity",
        choices=("engine", "graph"),
        default="engine",
        help="engine: events straight into the guard (millions); graph: through real "
        "LangGraph graphs and the guard's adapters (thousands)",
    )
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the JSON report here")
    p.add_argument("--html", dest="html_out", metavar="OUT", help="write the HTML report here")
    p.add_argument(
        "--timing",
        action="store_true",
        help="add wall-clock figures to the JSON report (then it differs from run to run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=_simulate)


def _simulate(args: argparse.Namespace) -> int:
    for name in ("interactions", "shards", "seed"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "seed" else 1):
            say_error(f"--{name} must be {'0' if name == 'seed' else '1'} or more")
            return 1
    if args.workers < 1:
        say_error("--workers must be 1 or more")
        return 1
    store = args.sim_store
    if store is not None and "://" not in store:
        store = f"sqlite:///{store}"
    try:
        scenario = Scenario.from_yaml(args.scenario)
        if args.shards is not None:
            scenario = scenario.replace(shards=args.shards)
        total = args.interactions if args.interactions is not None else scenario.interactions
        bar, close = progress_bar(total, quiet=args.quiet)
        try:
            report = simulate(
                scenario,
                seed=args.seed,
                interactions=args.interactions,
                workers=args.workers,
                ray=args.ray,
                store=store,
                progress=bar,
                fidelity=args.fidelity,
            )
        finally:
            close()
        if args.json_out:
            _write(args.json_out, report.to_json(timing=args.timing, indent=2) + "\n")
        if args.html_out:
            _write(args.html_out, render_html(report))
    except GuardrailsError as exc:
        say_error(exc)
        return 1
    except Exception as exc:  # never a traceback: a store, a worker or Ray failing
        say_error(f"{type(exc).__name__}: {exc}")
        return 1
    if not args.quiet:
        print(report)
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise GuardrailsError(f"cannot write {path!r}: {exc.strerror or exc}") from None
