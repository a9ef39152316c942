"""``guardrails-plugin dashboard``: serve the operator dashboard until Ctrl-C.

    guardrails-plugin dashboard --store guard.db [--audit audit.db] [--graph myapp.graph:graph]
                                [--policy policy.yaml] [--host 127.0.0.1] [--port 8765] [--token TOKEN] [--by NAME]

``--graph`` imports the user's compiled graph (``module:attribute``, the module importable
from the current directory) with the persistent checkpointer its application uses: with it,
approving, editing or rejecting on the page resumes the waiting run; without it, the page
shows approvals but cannot answer them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from typing import Any

from .._say import say_error

TOKEN_ENV = "GUARDRAILS_DASHBOARD_TOKEN"


def add_dashboard_command(sub: Any) -> None:
    """Register ``dashboard`` on the CLI's subparsers (``parser.add_subparsers()``)."""
    p = sub.add_parser(
        "dashboard",
        help="serve the operator dashboard: live decisions, approvals, pause / resume / kill",
    )
    p.add_argument(
        "--store", help="SQLite file (or store URL) the guards use (default: $GUARDRAILS_STORE)"
    )
    p.add_argument("--audit", default=None, help="audit log file to stream decisions from")
    p.add_argument(
        "--graph",
        default=None,
        metavar="MODULE:ATTR",
        help="the compiled graph (with its checkpointer) that waits: answering resumes it",
    )
    p.add_argument(
        "--policy",
        default=None,
        help="the agents' policy file: the page plots its thread budgets' use",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free one)")
    p.add_argument(
        "--token",
        default=None,
        help=f"token that opens the dashboard; required off loopback (default: ${TOKEN_ENV})",
    )
    p.add_argument("--by", default="dashboard", help="who actions are recorded as")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a host name the page may be opened by besides the bound address (repeatable)",
    )
    p.set_defaults(func=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    try:
        from . import Dashboard, serve
        from ._serve import check_bind
    except ImportError as exc:
        say_error(exc)
        return 1
    from .._errors import PolicyError, StoreError
    from ..store import open_store

    # A token from the environment stays out of the banner (and so out of logs that
    # capture standard output); one given with --token is already on the command line.
    token_from_env = args.token is None and bool(os.environ.get(TOKEN_ENV))
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV)
    try:
        store = open_store(
            args.store if "://" in args.store else f"sqlite:///{args.store}", create=False
        )
        audit = _audit(args.audit) if args.audit else None
        graph = load_graph(args.graph) if args.graph else None
        policy = _policy(args.policy) if args.policy else None
        dashboard = Dashboard(
            store,
            audit=audit,
            graph=graph,
            token=token,
            by=args.by,
            hosts=args.allow_host,
            policy=policy,
        )
        check_bind(dashboard, args.host)
    except (ValueError, ImportError, AttributeError, TypeError, StoreError, PolicyError) as exc:
        say_error(exc)
        return 1

    def ready(address: str) -> None:
        if token_from_env:
            address += f"  (open it with ?token= and the token in ${TOKEN_ENV})"
        elif token:
            address += f"?token={token}"
        print(f"guardrails dashboard: {address}  (Ctrl-C to stop)", flush=True)

    # uvicorn stops gracefully on Ctrl-C, then raises KeyboardInterrupt again: that is the
    # normal way to stop.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            serve(dashboard, args.host, args.port, ready=ready)
    except OSError as exc:  # the port is taken: said before any address is printed
        say_error(exc)
        return 1
    print("guardrails dashboard: stopped", flush=True)
    return 0


def _audit(path: str) -> Any:
    try:
        from ..audit import AuditError, AuditLog
        from ..audit._log import is_postgres_url, open_sink
    except ImportError as exc:
        raise ImportError(f"--audit needs guardrails_plugin.audit: {exc}") from exc
    try:
        if is_postgres_url(path):  # the workers' log: never a new empty one by mistake
            return AuditLog(open_sink(path, create=False))
        return AuditLog(path)
    except AuditError as exc:
        raise ValueError(str(exc)) from exc


def _policy(path: str) -> Any:
    from ..policy import Policy

    if not os.path.isfile(path):
        raise ValueError(f"--policy: no policy file at {path!r}")
    return Policy.from_yaml(path)


def load_graph(spec: str) -> Any:
    """The object ``module:attr`` names (``attr`` may be dotted), importing ``module`` with
    the current directory on the path, as uvicorn does for apps."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--graph must look like module:attribute, found {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"--graph {spec}: cannot import {module_name!r}: {exc}") from exc
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise AttributeError(f"--graph {spec}: {module_name!r} has no {attr!r}") from None
    if not (hasattr(value, "invoke") and hasattr(value, "get_state")):
        raise TypeError(
            f"--graph {spec}: expected a compiled LangGraph graph, found {type(value).__name__}"
        )
    return value
