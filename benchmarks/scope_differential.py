"""Differential run of the scopes against the real consumers, many values per kind.

Run:  python benchmarks/scope_differential.py [--n 100000] [--kinds sql,shell,url,email,path]
      [--seed 1]

For each kind, ``--n`` values are generated from the grammar in ``tests/scope_oracles.py``
(the same grammar the tests drive through hypothesis, here driven by ``random.Random(seed)``
for speed; pick a seed the tests never used); every value the scope allows goes to the real consumer
(PostgreSQL and SQLite, bash with recording shims, urllib/requests/httpx through a recording
resolver, smtplib to a local aiosmtpd server, os.open on a real tree) and any disagreement is
printed as a bypass. Denied values are not run (a deny is never a bypass). Needs PostgreSQL
server binaries for the SQL kind (as the tests do). Nothing leaves the machine: the servers
listen on 127.0.0.1 and the URL clients never resolve a name.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import scope_oracles as so

from guardrails_plugin.scopes import Scope

PROGRESS_EVERY = 2000


def drive(
    grammar: Callable[[Random], Any],
    n: int,
    run_seed: int,
    one: Callable[[Any], None],
    tallies: dict[str, so.Tally],
) -> None:
    rng = Random(run_seed)
    start = time.perf_counter()
    for i in range(1, n + 1):
        one(grammar(rng))
        if i % PROGRESS_EVERY == 0 and i < n:
            took = time.perf_counter() - start
            counts = ", ".join(
                f"{name} {t.allowed} allowed {len(t.bypasses)} bypasses"
                for name, t in tallies.items()
            )
            print(f"  ... {i} values, {took:.0f} s: {counts}", flush=True)


def judged(scope: Scope, value: object) -> bool:
    return scope.contains(value)


def run_sql(n: int, run_seed: int) -> dict[str, so.Tally]:
    from postgres_server import postgres_server

    tallies = {"sql/postgres": so.Tally(), "sql/sqlite": so.Tally()}
    pg_scope, lite_scope = so.sql_scope("postgres"), so.sql_scope("sqlite")
    lite = so.SqliteOracle(so.SQL_TABLES)
    with postgres_server() as url:
        pg = so.PostgresOracle(url)

        def one(text: str) -> None:
            for name, scope, oracle in (
                ("sql/postgres", pg_scope, pg),
                ("sql/sqlite", lite_scope, lite),
            ):
                allowed = judged(scope, text)
                problem, refused = oracle.run(text) if allowed else (None, False)
                tallies[name].add(text, allowed, problem, refused)

        try:
            drive(so.sql_statement, n, run_seed, one, tallies)
        finally:
            pg.close()
    return tallies


def run_shell(n: int, run_seed: int) -> dict[str, so.Tally]:
    tally, scope, oracle = so.Tally(), so.shell_scope(), so.BashOracle()
    allowed_programs = set(so.SHELL_PROGRAMS)

    def one(line: str) -> None:
        allowed = judged(scope, line)
        problem, refused = oracle.run(line, allowed_programs) if allowed else (None, False)
        tally.add(line, allowed, problem, refused)

    try:
        drive(so.shell_line, n, run_seed, one, {"shell": tally})
    finally:
        oracle.close()
    return {"shell": tally}


def run_url(n: int, run_seed: int) -> dict[str, so.Tally]:
    tally, scope, oracle = so.Tally(), so.url_scope(), so.UrlOracle()

    def one(url: str) -> None:
        allowed = judged(scope, url)
        problem, refused = oracle.run(url) if allowed else (None, False)
        tally.add(url, allowed, problem, refused)

    try:
        drive(so.url, n, run_seed, one, {"url": tally})
    finally:
        oracle.close()
    return {"url": tally}


def run_email(n: int, run_seed: int) -> dict[str, so.Tally]:
    tally, scope, oracle = so.Tally(), so.email_scope(), so.SmtpOracle()

    def one(value: str | list[str]) -> None:
        allowed = judged(scope, value)
        problem, refused = oracle.run(value) if allowed else (None, False)
        tally.add(value, allowed, problem, refused)

    try:
        drive(so.email_value, n, run_seed, one, {"email": tally})
    finally:
        oracle.close()
    return {"email": tally}


def run_path(n: int, run_seed: int) -> dict[str, so.Tally]:
    tree = so.PathTree()
    scopes = so.path_scopes(tree)
    tallies = {f"path/{access}": so.Tally() for access in scopes}
    counter = [0]

    def one(drawn: tuple[str, str]) -> None:
        counter[0] += 1
        if counter[0] % 500 == 0:
            tree.reset()  # writes create files; start from the same tree now and then
        value = tree.value(drawn)
        for access, scope in scopes.items():
            allowed = judged(scope, value)
            problem = tree.judge(value, write=access == "write") if allowed else None
            tallies[f"path/{access}"].add(value, allowed, problem, False)

    try:
        drive(so.path_value, n, run_seed, one, tallies)
    finally:
        tree.close()
    return tallies


KINDS: dict[str, Callable[[int, int], dict[str, so.Tally]]] = {
    "sql": run_sql,
    "shell": run_shell,
    "url": run_url,
    "email": run_email,
    "path": run_path,
}


def main() -> None:
    # Stop cleanly on SIGTERM too (background jobs ignore SIGINT): servers and trees go away.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="values per kind")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    for kind in opts.kinds.split(","):
        if kind not in KINDS:
            print(f"error: unknown kind {kind!r}; known: {', '.join(KINDS)}")
            raise SystemExit(2)
    print(f"{'kind':<14}{'values':>9}{'allowed':>9}{'refused':>9}{'bypasses':>9}{'s':>8}")
    for kind in opts.kinds.split(","):
        start = time.perf_counter()
        tallies = KINDS[kind](opts.n, opts.seed)
        took = time.perf_counter() - start
        for name, t in tallies.items():
            print(
                f"{name:<14}{t.tried:>9}{t.allowed:>9}{t.consumer_refused:>9}"
                f"{len(t.bypasses):>9}{took:>8.0f}",
                flush=True,
            )
            for value, problem in t.bypasses[:20]:
                print(f"    BYPASS {value!r}: {problem}", flush=True)


if __name__ == "__main__":
    main()
