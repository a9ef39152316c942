"""The ``guardrails-plugin`` command: lint a policy file, try a call against it, run the demo,
and, for operators, the kill switch and the approvals waiting in a store::

    guardrails-plugin pause  --store guard.db --thread ticket-42 --reason "looping" --by alice
    guardrails-plugin kill   --store guard.db --agent researcher
    guardrails-plugin resume --store guard.db --thread ticket-42
    guardrails-plugin quarantine --store guard.db --agent scraper --reason "spreading"
    guardrails-plugin resume --store guard.db --agent scraper   # releases it, grants back
    guardrails-plugin flags  --store guard.db
    guardrails-plugin pending --store guard.db
    guardrails-plugin trips  --store guard.db [--scope ticket-42]
    guardrails-plugin audit tail|verify|export|stats [--log audit.db]
    guardrails-plugin replay policy.yaml --from audit.db [--json] [--fail-on-change]
    guardrails-plugin baseline learn --from audit.db --out baseline.json
    guardrails-plugin baseline show baseline.json [--agent NAME] [--json]
    guardrails-plugin simulate scenario.yaml [--workers 2] [--json out.json] [--html out.html]
    guardrails-plugin verify policy.yaml --assert "no agent calls delete_*" [--json]
    guardrails-plugin diff old.yaml new.yaml [--json]   # exit 1 when new widens
    guardrails-plugin lint --deep policy.yaml
    guardrails-plugin dashboard --store guard.db [--audit audit.db] [--graph app:graph]

``pause``, ``kill``, ``quarantine`` and ``resume`` take ``--audit audit.db`` to record the
action (and who took it) in the audit log the guards write (it must exist).

Commands that act on a store open only a store that exists: a mistyped path is an error,
never a new empty store that no guard reads (``init --store PATH`` makes one on purpose,
for a kill set before any guard starts). ``lint`` imports nothing the policy names unless
given ``--import`` (``--import MODULE`` also imports that module first: custom scope kinds).
``schema`` prints the JSON Schema of policy files; ``check --explain`` lists everything a
decision considered. Every failure is one line on standard error starting with ``error:``
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

import yaml

from ._errors import GuardrailsError, PolicyError, StoreError
from ._events import ToolCall
from ._say import say_error
from .audit._cli import add_audit_commands
from .cascade._breaker import TRIP_PREFIX, trips_in
from .controls import Controls
from .guard import ENV_AUDIT, ENV_POLICY, ENV_STORE, store_url
from .policy import Policy
from .policy._files import collector_paused
from .store import Store, open_store

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(data: object) -> str:
    """``data`` as YAML, keys in their order; libyaml's emitter when present (the pure-Python
    one takes seconds for a policy of tens of thousands of rules)."""
    text: str = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    return text.rstrip("\n")  # only the line end: str.rstrip() also ate a trailing U+00A0


def _lint(args: argparse.Namespace) -> int:
    with collector_paused():  # tens of thousands of rules: see collector_paused
        return _lint_paused(args)


def _lint_paused(args: argparse.Namespace) -> int:
    file, modules = _lint_arguments(args)
    if file is None:
        say_error("lint needs a policy file (see guardrails-plugin lint --help)")
        return 2
    args.file = file
    try:
        for module in modules:  # the operator's own: imported before the file is read
            _import(module)
        policy = Policy.from_yaml(file, imports=args.imports is not None)
    except PolicyError as exc:
        say_error(exc)
        return 1
    print(
        f"# {args.file}: valid ({len(policy.rules)} rules, {len(policy.budgets)} budgets, "
        f"{len(policy.flows)} flows)"
    )
    print(_dump(policy.to_dict()))
    warnings = policy.lint()
    if args.deep:
        from .verify import deep_lint

        warnings += deep_lint(policy)
    if args.tools is not None:
        warnings += [str(p) for p in policy.check_tools(_load_tools(args.tools))]
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 2 if warnings and args.strict else 0


def _load_tools(spec: str) -> list[object]:
    """The tools ``--tools module:attr`` names: a list of tools, or a callable returning
    one (``attr`` may be dotted; the current directory is on the import path)."""
    import difflib
    import importlib
    import os

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--tools must look like module:attribute, found {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"--tools {spec}: cannot import {module_name!r}: {exc}") from exc
    value: object = module
    for part in attr.split("."):
        if not hasattr(value, part):
            close = difflib.get_close_matches(part, [n for n in dir(value) if n[:1] != "_"])
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise AttributeError(f"--tools {spec}: no {part!r} in {module_name!r}{hint}")
        value = getattr(value, part)
    if callable(value) and not hasattr(value, "name"):
        value = value()
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list | tuple) or not all(hasattr(t, "name") for t in value):
        raise TypeError(
            f"--tools {spec}: expected a list of tools (or a function returning one), "
            f"found {type(value).__name__}"
        )
    return list(value)


def _lint_arguments(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """The file and the modules of ``lint [--import [MODULE]]... FILE``: a bare ``--import``
    just before the file takes the file as its value, so it is given back."""
    modules = [m for m in (args.imports or []) if m]
    file = args.file
    if file is None and modules and _looks_like_file(modules[-1]):
        file = modules.pop()
    return file, modules


def _looks_like_file(name: str) -> bool:
    import os

    return name.endswith((".yaml", ".yml", ".json")) or os.path.sep in name or os.path.isfile(name)


def _import(module: str) -> None:
    import importlib

    if not all(part.isidentifier() for part in module.split(".")):
        raise PolicyError(f"--import {module!r}: not a module name")
    try:
        importlib.import_module(module)
    except Exception as exc:
        raise PolicyError(f"--import {module!r}: {type(exc).__name__}: {exc}") from exc


def _check(args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_yaml(args.file)
    except PolicyError as exc:
        say_error(exc)
        return 1
    try:
        call_args = json.loads(args.args)
    except json.JSONDecodeError as exc:
        say_error(f"--args is not JSON: {exc}")
        return 1
    call = ToolCall(args.tool, call_args, agent=args.agent)
    if args.explain:
        from .guard import Guard

        explanation = Guard(policy).explain(call)
        print(explanation)
        decision = explanation.decision
    else:
        decision = policy.evaluate(call)
        print(f"{decision.effect}\t{decision.rule}\t{decision.reason}")
    return 0 if decision.allowed else 3


def _schema(args: argparse.Namespace) -> int:
    from .policy._schema import policy_schema, reference_markdown

    for module in args.imports:
        _import(module)
    if args.markdown:
        print(reference_markdown(), end="")
    else:
        print(json.dumps(policy_schema(), indent=2, ensure_ascii=False))
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        from .demo import run_demo
    except ImportError as exc:
        say_error(exc)
        return 1
    return run_demo(show_messages=args.verbose)


def _me() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return ""


def _store(path: str, *, create: bool = False) -> Store:
    """The store ``--store`` names: an existing one (``StoreError`` otherwise)."""
    return open_store(store_url(path), create=create)


def _init(args: argparse.Namespace) -> int:
    try:
        _store(args.store)
    except StoreError:
        _store(args.store, create=True)
        print(f"{args.store}: new guardrails store")
        return 0
    print(f"{args.store}: already a guardrails store")
    return 0


def _control(args: argparse.Namespace) -> int:
    store = _store(args.store)
    audit = None
    if args.audit:
        from .audit._cli import open_existing

        audit = open_existing(args.audit, "--audit")  # the guards' log: never a new one by mistake
        if audit is None:
            return 1
    controls = Controls(store, audit=audit)
    try:
        if args.command == "resume":
            lifted = controls.resume(thread=args.thread, agent=args.agent, by=args.by)
            where = _where(args)
            print(f"{where}: {'lifted' if lifted else 'nothing to lift'}")
            return 0 if lifted else 4
        if args.command == "quarantine":
            flag = controls.quarantine(args.agent, reason=args.reason, by=args.by)
        else:
            verb = controls.pause if args.command == "pause" else controls.kill
            flag = verb(thread=args.thread, agent=args.agent, reason=args.reason, by=args.by)
    except ValueError as exc:
        say_error(exc)
        return 1
    print(flag.describe())
    return 0


def _where(args: argparse.Namespace) -> str:
    if args.thread:
        return f"thread {args.thread!r}"
    if args.agent:
        return f"agent {args.agent!r}"
    return "everything"


def _flags(args: argparse.Namespace) -> int:
    flags = Controls(_store(args.store)).flags()
    if not flags:
        print("no pause, kill or quarantine in force")
    for f in flags:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.at))
        print(f"{when}  {f.describe()}")
    return 0


def _pending(args: argparse.Namespace) -> int:
    docs = _store(args.store).scan("pending/")
    waiting = [
        (key, doc)
        for key, doc in docs.items()
        if isinstance(doc, dict) and "asked" in doc and "final" not in doc
    ]
    if not waiting:
        print("no approval waiting")
    for key, doc in sorted(waiting, key=lambda kd: float(kd[1].get("at") or 0)):
        asked = doc["asked"]
        thread, _, call_id = key[len("pending/") :].partition("/")
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(doc.get("at") or 0)))
        print(
            f"{when}  thread {thread}  call {call_id}  {asked.get('agent')} -> "
            f"{asked.get('tool')}  rule {asked.get('rule')}: {asked.get('reason')}"
        )
    return 0


def _trips(args: argparse.Namespace) -> int:
    prefix = TRIP_PREFIX if args.scope is None else f"{TRIP_PREFIX}{args.scope}/"
    trips = trips_in(_store(args.store).scan(prefix))
    if not trips:
        print("no cascade trip recorded")
    for t in trips:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t.at))
        print(
            f"{when}  {t.scope}  {t.signal} at message {t.at_message} -> {t.response} "
            f"(culprit {t.culprit}): {t.reason}"
        )
        if args.verbose:
            for e in t.evidence:
                text = " ".join(str(e.get("content", "")).split())
                print(
                    f"    #{e.get('index')} {e.get('sender')} -> {e.get('recipient')}: {text[:100]}"
                )
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors as one ``error:`` line (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        say_error(f"{message} (see {self.prog} --help)")
        raise SystemExit(2)


#: The exit status when the reader of the output went away (``... | head``): the one a shell
#: reports for a program that SIGPIPE stopped (128 + 13), as ``yes | head`` under
#: ``set -o pipefail``; distinct from every status a command gives.
BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` names; its exit status (1 with one ``error:`` line when it
    failed; ``BROKEN_PIPE``, saying nothing, when the reader of its output went away)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _from_env(args, parser)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # what is still buffered fails here, not in the interpreter's exit
        return status
    except BrokenPipeError:
        _reader_gone()
        return BROKEN_PIPE
    except (GuardrailsError, OSError, ValueError, UnicodeError) as exc:
        say_error(str(exc) or type(exc).__name__)
    except Exception as exc:  # never a traceback: say what failed, in one line
        say_error(f"{type(exc).__name__}: {exc}")
    return 1


def _reader_gone() -> None:
    """The reader of standard output (or error) closed its end: point both at the null
    device, so that the interpreter's last flush at exit has nowhere to fail (the way the
    Python documentation's note on SIGPIPE recommends), and say nothing."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for stream in (sys.stdout, sys.stderr):
            # a replaced stream without a descriptor has nothing left to flush
            with contextlib.suppress(OSError, ValueError):
                os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def _from_env(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill in what the command line left out from the environment: the policy file
    (``GUARDRAILS_POLICY``), the store (``GUARDRAILS_STORE``), the audit log
    (``GUARDRAILS_AUDIT``). A store a command needs and neither names is an error."""
    if getattr(args, "file", "") is None and getattr(args, "func", None) is _lint:
        # ``lint --import FILE``: a bare --import just before the file took it as its value
        file, modules = _lint_arguments(args)
        if file is not None:
            args.file, args.imports = file, [*modules, ""]
    if getattr(args, "file", "") is None:
        args.file = os.environ.get(ENV_POLICY) or None
        if args.file is None:
            parser.error(f"a policy file is required (or set {ENV_POLICY})")
    if getattr(args, "store", "") is None:
        args.store = os.environ.get(ENV_STORE) or None
        if args.store is None:
            parser.error(f"--store is required (or set {ENV_STORE})")
    if getattr(args, "audit", "") is None:
        args.audit = os.environ.get(ENV_AUDIT) or None


_STORE_HELP = f"SQLite file (or store URL) the guards use (default: ${ENV_STORE})"


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="guardrails-plugin",
        description="Least-privilege guardrails for LangChain and LangGraph agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("lint", help="validate a YAML policy file and print the compiled policy")
    p.add_argument("file", nargs="?", help=f"the policy file (default: ${ENV_POLICY})")
    p.add_argument("--strict", action="store_true", help="exit 2 when there are warnings")
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        nargs="?",
        const="",
        metavar="MODULE",
        help="import the modules the file names ('imports:', 'when:', 'predicate' scopes), "
        "and MODULE first if given (repeatable); importing runs their code",
    )
    p.add_argument(
        "--tools",
        metavar="MODULE:ATTR",
        help="also check the policy against the app's tools (a list, or a function returning one)",
    )
    p.add_argument(
        "--deep",
        action="store_true",
        help="also ask z3 (the 'verify' extra): rules that never fire, asks never reached, "
        "scopes that accept nothing, permissions that cannot be delegated",
    )
    p.set_defaults(func=_lint)

    p = sub.add_parser("check", help="decide one tool call against a policy file (rules only)")
    p.add_argument("file")
    p.add_argument("tool")
    p.add_argument("--args", default="{}", help="the call's arguments as a JSON object")
    p.add_argument("--agent", default="agent")
    p.add_argument(
        "--explain",
        action="store_true",
        help="list every rule, grant, layer, flow and budget considered and what each said",
    )
    p.set_defaults(func=_check)

    p = sub.add_parser("schema", help="print the JSON Schema of policy files")
    p.add_argument(
        "--markdown", action="store_true", help="print the policy file reference instead"
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first, so the scope kinds it registers are in the schema",
    )
    p.set_defaults(func=_schema)

    p = sub.add_parser("demo", help="run an offline demo agent under a guard")
    p.add_argument("-v", "--verbose", action="store_true", help="also print the conversation")
    p.set_defaults(func=_demo)

    for verb, text in (
        ("pause", "pause a thread, an agent or everything at its next guarded step"),
        ("kill", "kill a thread, an agent or everything at its next guarded step"),
        ("resume", "lift a pause, kill or quarantine"),
    ):
        p = sub.add_parser(verb, help=text)
        p.add_argument("--store", help=_STORE_HELP)
        target = p.add_mutually_exclusive_group()
        target.add_argument("--thread")
        target.add_argument("--agent")
        if verb != "resume":
            p.add_argument("--reason", default="")
        p.add_argument("--by", default=_me(), help="who (default: your user name)")
        p.add_argument("--audit", default=None, help="audit log to record the action in")
        p.set_defaults(func=_control)

    p = sub.add_parser(
        "quarantine",
        help="isolate one agent: grants revoked, its calls and hand-offs denied (resume lifts)",
    )
    p.add_argument("--store", help=_STORE_HELP)
    p.add_argument("--agent", required=True)
    p.add_argument("--thread", default=None, help=argparse.SUPPRESS)
    p.add_argument("--reason", default="")
    p.add_argument("--by", default=_me(), help="who (default: your user name)")
    p.add_argument("--audit", default=None, help="audit log to record the action in")
    p.set_defaults(func=_control)

    p = sub.add_parser("init", help="make a new, empty store (commands never make one by mistake)")
    p.add_argument("--store", help=f"SQLite file (or store URL) to make (default: ${ENV_STORE})")
    p.set_defaults(func=_init)

    p = sub.add_parser("flags", help="list the pauses, kills and quarantines in force")
    p.add_argument("--store", help=_STORE_HELP)
    p.set_defaults(func=_flags)

    p = sub.add_parser("pending", help="list the approvals guarded graphs are waiting for")
    p.add_argument("--store", help=_STORE_HELP)
    p.set_defaults(func=_pending)

    p = sub.add_parser("trips", help="list the cascade breaker's trips")
    p.add_argument("--store", help=_STORE_HELP)
    p.add_argument("--scope", default=None, help="one thread (or run) only")
    p.add_argument("-v", "--verbose", action="store_true", help="also print the evidence")
    p.set_defaults(func=_trips)

    from .dashboard._cli import add_dashboard_command

    add_dashboard_command(sub)
    add_audit_commands(sub)
    from .replay._cli import add_replay_command

    add_replay_command(sub)
    from .baselines._cli import add_baseline_command

    add_baseline_command(sub)
    from .simulate._cli import add_simulate_command

    add_simulate_command(sub)
    from .verify._cli import add_verify_commands

    add_verify_commands(sub)
    return parser


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
