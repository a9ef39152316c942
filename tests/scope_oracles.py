"""Differential testing of the scopes against the real programs that consume the values.

Each kind has a grammar-based hypothesis strategy that mixes tricks (encodings, separators,
quoting, comments, unicode look-alikes, nesting) and an oracle that hands every value the
scope *allows* to the real consumer and records what it really touched:

- SQL: a real PostgreSQL, as a role holding ``SELECT`` on the scope's tables only, inside a
  ``READ ONLY`` transaction that is rolled back (a permission error, a write refused or done
  -- a transaction id assigned --, a changed setting or a lock taken is a bypass; effects
  that happen only at commit, such as ``pg_notify``, are not seen); and SQLite with an authorizer that records every
  table read, function called and write attempted.
- Shell: ``bash`` in a scratch directory whose ``PATH`` holds only recording shims (and a
  ``command_not_found_handle`` that records the rest): any program that runs and is not in
  scope is a bypass.
- URLs: ``urllib``, ``requests`` and ``httpx`` through a recording resolver (``getaddrinfo``
  replaced, nothing leaves the process): any host or port outside the scope is a bypass.
- Email: ``smtplib``'s ``send_message`` to a local ``aiosmtpd`` server on loopback; any
  envelope recipient outside the scope is a bypass.
- Paths: a real tree with symlinks (in, out, to the root, dangling), a hard link and ``..``;
  the file ``os.open`` reaches (following links, ``O_NOFOLLOW``, ``O_CREAT`` for writes),
  read back from ``/proc/self/fd``; outside the root, the root itself for a write, or a
  hard-linked file for a write is a bypass.

Used by ``tests/test_scopes_differential.py`` (few examples each) and by
``benchmarks/scope_differential.py`` (100,000 and more per kind).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import smtplib
import socket
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from random import Random
from typing import Any

from hypothesis import strategies as st

from guardrails_plugin.scopes import Emails, Paths, Shell, Sql, Urls
from guardrails_plugin.scopes._sql_functions import (
    POSTGRES_IMPURE,
    POSTGRES_PURE,
    SQLITE_IMPURE,
    SQLITE_PURE,
)

# ---------------------------------------------------------------------------------------
# results


@dataclass
class Tally:
    """What one kind's run found."""

    tried: int = 0
    allowed: int = 0
    consumer_refused: int = 0  # allowed, but the consumer refused it (syntax, types...)
    bypasses: list[tuple[object, str]] = field(default_factory=list)

    def add(self, value: object, allowed: bool, problem: str | None, refused: bool) -> None:
        self.tried += 1
        self.allowed += allowed
        self.consumer_refused += refused
        if problem is not None:
            self.bypasses.append((value, problem))
            print(f"    BYPASS {value!r}: {problem}", flush=True)


def strategy(grammar: Callable[[Random], Any]) -> st.SearchStrategy[Any]:
    """A hypothesis strategy over one grammar (hypothesis drives the random choices)."""
    return st.randoms(use_true_random=False).map(grammar)


LOOKALIKES = ["\u0435", "\uff45", "\u0131", "\u212a", "\u017f", "\u00df", "\u200b", "\u00a0"]

# ---------------------------------------------------------------------------------------
# SQL

SQL_TABLES = ["orders", "customers"]
_pure_pg = sorted(POSTGRES_PURE)
_impure = sorted(POSTGRES_IMPURE | SQLITE_IMPURE)
_pure_lite = sorted(SQLITE_PURE)
_FAVOURITE_CALLS = [
    "set_config('search_path', 'x', false)", "nextval('s1')", "setval('s1', 5)",
    "currval('s1')", "query_to_xml('select * from secrets', true, true, '')",
    "table_to_xml('secrets', true, true, '')", "pg_notify('c', 'x')",
    "pg_advisory_lock(1)", "pg_try_advisory_lock(2)", "lo_from_bytea(0, 'x')",
    "pg_terminate_backend(1)", "pg_reload_conf()", "pg_read_file('/etc/passwd')",
    "current_setting('search_path')", "pg_relation_size('secrets')", "txid_current()",
    "lower(name)", "count(*)", "now()", "random()", "coalesce(name, 'x')",
    "length(name)", "upper('a')", "abs(-1)", "fts3_tokenizer('simple')",
    "ts_stat('select body from secrets')", "pg_get_viewdef('v_secrets')",
    "has_table_privilege('secrets', 'select')", "json_extract('{}', '$.a')",
    "to_char(now(), 'YYYY')", "md5('x')", "generate_series(1, 2)",
]  # fmt: skip
_ARGS = ["1", "'x'", "NULL", "id", "name", "true", "'secrets'", "'select * from secrets'", "1.5"]


def _sql_call(r: Random, depth: int = 0) -> str:
    if r.randint(0, 5) == 0:
        return r.choice(_FAVOURITE_CALLS)
    name = r.choice(r.choice([_pure_pg, _impure, _pure_lite]))
    style = r.choice(["{n}", "{n}", '"{n}"', "pg_catalog.{n}", "public.{n}", "{N}"])
    shown = style.format(n=name, N=name.upper())
    args = [
        _sql_call(r, depth + 1) if depth < 2 and r.randint(0, 3) == 0 else r.choice(_ARGS)
        for _ in range(r.randint(0, 3))
    ]
    return f"{shown}({', '.join(args)})"


_SQL_TABLES = ["orders", "customers", "secrets", "ORDERS", '"orders"', '"Orders"',
               "public.orders", "pg_catalog.pg_authid", "pg_user", "sqlite_master",
               "secrets s", "orders o", "orders", "customers c"]  # fmt: skip
_SQL_SPACES = [" ", " ", " ", "  ", "\n", "\t", " /* c */ ", " -- c\n"]


def _select(r: Random, depth: int = 0) -> str:
    items = [
        _sql_call(r) if r.randint(0, 2) == 0 else r.choice(["*", "id", "name", "1"])
        for _ in range(r.randint(1, 3))
    ]
    sp = r.choice(_SQL_SPACES)
    text = f"SELECT{sp}{', '.join(items)}"
    source = r.randint(0, 5)
    if source <= 2:
        text += f"{sp}FROM {r.choice(_SQL_TABLES)}"
    elif source == 3:
        text += f" FROM {_sql_call(r)} AS f"
    elif source == 4 and depth < 1:
        text += f" FROM ({_select(r, depth + 1)}) AS q"
    else:
        text += f" FROM {r.choice(_SQL_TABLES)} JOIN {r.choice(_SQL_TABLES)} ON true"
    if r.random() < 0.4:
        text += f" WHERE id = {_sql_call(r) if r.random() < 0.5 else r.choice(_ARGS)}"
    if depth < 1 and r.randint(0, 5) == 0:
        text += f" UNION SELECT {_sql_call(r)}"
    if r.randint(0, 8) == 0:
        text += r.choice([" FOR UPDATE", " FOR SHARE"])
    return text


_SQL_OTHER = [
    "SET search_path = evil", "SHOW search_path", "RESET ROLE", "SELECT * INTO t2 FROM orders",
    "LOCK TABLE orders", "DISCARD ALL", "LISTEN c", "NOTIFY c", "PREPARE p AS SELECT 1",
    "EXECUTE p", "DO $$BEGIN PERFORM 1; END$$", "CALL p()", "VALUES (1), (2)", "TABLE secrets",
    "TABLE orders", "SELECT 1", "COPY orders TO STDOUT", "EXPLAIN SELECT 1",
    "SELECT pg_catalog.set_config('a.b', 'c', false)", "ANALYZE orders",
    "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
]  # fmt: skip
_SQL_TAILS = ["", "", "", ";", "; -- done", ";\n-- done\n", "; /* x */", " -- x",
              "; SELECT 1", "; SELECT * FROM secrets", ";;", "; ;"]  # fmt: skip


def sql_statement(r: Random) -> str:
    """SELECTs mixing allowed and other tables, pure and impure calls in every position,
    quoting and schema tricks, comments, CTEs, trailing and extra statements."""
    kind = r.randint(0, 9)
    if kind == 0:
        body = (
            f"WITH w AS ({_select(r, 1)}) SELECT * FROM w"
            if r.random() < 0.5
            else f"WITH orders AS (SELECT 1) SELECT * FROM {r.choice(_SQL_TABLES)}"
        )
    elif kind == 1:
        body = r.choice(_SQL_OTHER)
    else:
        body = _select(r)
    return body + r.choice(_SQL_TAILS)


PG_SETUP = """
CREATE TABLE IF NOT EXISTS orders (id int, name text);
CREATE TABLE IF NOT EXISTS customers (id int, name text);
CREATE TABLE IF NOT EXISTS secrets (id int, name text, body text);
CREATE SEQUENCE IF NOT EXISTS s1;
CREATE OR REPLACE VIEW v_secrets AS SELECT * FROM secrets;
INSERT INTO orders VALUES (1, 'a');
INSERT INTO secrets VALUES (1, 's', 'top secret');
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'scope_reader') THEN
    CREATE ROLE scope_reader LOGIN;
  END IF;
END $$;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM scope_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM scope_reader;
GRANT USAGE ON SCHEMA public TO scope_reader;
GRANT SELECT ON orders, customers TO scope_reader;
"""

_SNAPSHOT = (
    "SELECT (SELECT string_agg(name || '=' || setting, ',' ORDER BY name) FROM pg_settings),"
    " (SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'),"
    " pg_current_xact_id_if_assigned()::text"
)


class PostgresOracle:
    """Runs allowed statements as ``scope_reader`` (SELECT on orders, customers only)."""

    def __init__(self, superuser_dsn: str) -> None:
        import psycopg

        self.admin = psycopg.connect(superuser_dsn, autocommit=True)
        self.admin.execute(PG_SETUP)  # type: ignore[arg-type]
        self.admin_pid = self.admin.info.backend_pid
        reader = psycopg.conninfo.make_conninfo(superuser_dsn, user="scope_reader")
        self.conn = psycopg.connect(reader, autocommit=True)
        self.conn.execute("SET statement_timeout = '2s'")
        self.psycopg = psycopg
        self.baseline: tuple[Any, ...] | None = None

    def close(self) -> None:
        self.conn.close()
        self.admin.close()

    def run(self, statement: str) -> tuple[str | None, bool]:
        """(bypass found, server refused the statement for another reason)."""
        errors = self.psycopg.errors
        conn = self.conn
        if self.baseline is None:
            conn.execute("BEGIN READ ONLY")
            self.baseline = conn.execute(_SNAPSHOT).fetchone()
            conn.execute("ROLLBACK")
        conn.execute("BEGIN READ ONLY")
        problem: str | None = None
        refused = False
        try:
            with conn.cursor() as cur:
                cur.execute(statement.encode(), prepare=False)  # type: ignore[arg-type]
                while cur.nextset():
                    pass
            if conn.execute(_SNAPSHOT).fetchone() != self.baseline:
                problem = (
                    "server: a setting changed, an advisory lock was taken or something was "
                    "written (a transaction id was assigned)"
                )
        except (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction) as exc:
            problem = f"server: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        except self.psycopg.Error:
            refused = True
        finally:
            conn.execute("ROLLBACK")
        if problem is not None:
            conn.execute("SELECT pg_advisory_unlock_all()")
        return problem, refused


_SQLITE_WRITES = {
    getattr(sqlite3, name)
    for name in dir(sqlite3)
    if name.startswith("SQLITE_")
    and name.split("_", 1)[1].split("_")[0] in ("INSERT", "UPDATE", "DELETE", "CREATE", "DROP")
} | {
    sqlite3.SQLITE_PRAGMA, sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH,
    sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_ALTER_TABLE, sqlite3.SQLITE_REINDEX,
    sqlite3.SQLITE_ANALYZE, sqlite3.SQLITE_SAVEPOINT,
}  # fmt: skip


class SqliteOracle:
    """Runs allowed statements on SQLite, recording reads, functions and writes."""

    def __init__(self, tables: list[str]) -> None:
        self.tables = set(tables)
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        for table in ("orders", "customers", "secrets"):
            self.conn.execute(f"CREATE TABLE {table} (id int, name text, body text)")
        self.conn.execute("CREATE VIEW v_secrets AS SELECT * FROM secrets")
        self.seen: list[str] = []
        self.conn.set_authorizer(self._authorize)

    def _authorize(self, action: int, a1: str | None, a2: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and a1 is not None and a1.lower() not in self.tables:
            self.seen.append(f"read table {a1}")
        elif action == sqlite3.SQLITE_FUNCTION and a2 is not None and a2 not in SQLITE_PURE:
            self.seen.append(f"called {a2}()")
        elif action in _SQLITE_WRITES:
            self.seen.append(f"write action {action} ({a1}, {a2})")
        return sqlite3.SQLITE_OK

    def run(self, statement: str) -> tuple[str | None, bool]:
        self.seen.clear()
        try:
            self.conn.executescript(f"BEGIN; {statement}\n; ROLLBACK;")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")
            refused = True
        else:
            refused = False
        seen = [s for s in self.seen if "write action 22" not in s]  # our BEGIN/ROLLBACK
        return (f"sqlite: {seen[0]}" if seen else None), refused and not seen


# ---------------------------------------------------------------------------------------
# Shell

SHELL_PROGRAMS = ["ls", "grep", "cat"]
SHELL_VOCABULARY = ["ls", "grep", "cat", "rm", "curl", "sh", "bash", "env", "xargs", "find",
                    "sudo", "python3", "id", "touch"]  # fmt: skip

_PROGRAM_WORDS = ["ls", "grep", "cat"] * 15 + [
    "rm", "curl", "id", "sh", "env", "xargs", "find", "touch", '"ls"', "'rm'", "l\\s", "r\\m",
    'r"m"', "$'rm'", "$'\\x72m'", "\\rm", "\\ls", "./rm", "/bin/ls", "$CMD", "${CMD}",
    "`echo rm`", "$(echo rm)", "r*", "l?", "{rm,ls}", "~/rm", "\uff52m", "l\u0455", "command",
    "exec", "eval", "builtin", "echo", "true", ".", "time", "!", "coproc",
]  # fmt: skip
_SHELL_ARGS = ["-la", "x", "-n", "'a b'", "\"x y\""] * 4 + [ "'a b'", '"$(rm)"', "'$(rm)'", "$(rm)", "`rm`",
               "<(rm)", "a\\;rm", "#rm", "a#rm", "$HOME", "~", "*", "-exec", "rm", "{}", "\\;",
               "}", "{", "a=b", "$(ls)", "\\\nrm"]  # fmt: skip
_SHELL_OPS = [" ; ", ";", " | ", " || ", " && ", " & ", "\n", " ;; ", "|&", " |\n", "\n\n"]
_SHELL_TAILS = ["", "", "", ";", " ;", "; ", "\n", " # done", " &", " >f", ";;", " \\"]


def _simple(r: Random) -> str:
    prefix = r.choice([""] * 8 + ["X=1 ", "PATH=. ", "CMD=rm ", "IFS=x ", "BASH_ENV=x "])
    args = [r.choice(_SHELL_ARGS) for _ in range(r.randint(0, 2))]
    return prefix + " ".join([r.choice(_PROGRAM_WORDS), *args])


def shell_line(r: Random, depth: int = 0) -> str:
    """Simple commands joined by operators, in subshells, groups, substitutions, with
    quoting, escapes, comments, assignments, look-alikes and trailing separators."""
    parts = [_simple(r)]
    for _ in range(r.randint(0, 2)):
        parts.append(r.choice(_SHELL_OPS))
        parts.append(_simple(r) if depth > 0 else shell_line(r, depth + 1))
    body = "".join(parts)
    wrap = r.randint(0, 9)
    if wrap == 1:
        body = f"({body})"
    elif wrap == 2:
        body = f"( {body} )"
    elif wrap == 3:
        body = f"{{ {body}; }}"
    elif wrap == 4:
        body = f"{{{body};}}"
    elif wrap == 5:
        body = f"{body} $({_simple(r)})"
    elif wrap == 6:
        body = f"(({body}))"
    return body + r.choice(_SHELL_TAILS)


class BashOracle:
    """Runs allowed lines under bash; PATH holds only shims that record their name."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="scope-bash-"))
        self.shims = self.base / "shims"
        self.work = self.base / "work"
        self.log = self.base / "ran.log"
        self.shims.mkdir()
        self.work.mkdir()
        for name in SHELL_VOCABULARY:
            shim = self.shims / name
            shim.write_text(f"#!/bin/sh\necho {name} >> {self.log}\n")
            shim.chmod(0o755)
        self.prologue = f'command_not_found_handle() {{ echo "$1" >> {self.log}; return 127; }}\n'

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def run(self, line: str, allowed: set[str]) -> tuple[str | None, bool]:
        self.log.write_text("")
        script = self.base / "line.sh"
        script.write_text(self.prologue + line + "\n")
        try:
            done = subprocess.run(
                ["/bin/bash", "--norc", "--noprofile", str(script)],
                cwd=self.work,
                env={"PATH": str(self.shims), "HOME": str(self.work), "LC_ALL": "C"},
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )
            refused = done.returncode == 2
        except subprocess.TimeoutExpired:
            refused = True
        ran = [name for name in self.log.read_text().split() if name]
        outside = [name for name in ran if name not in allowed]
        for entry in list(self.work.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink()
        return (f"bash ran {outside}" if outside else None), refused


# ---------------------------------------------------------------------------------------
# URLs

URL_HOSTS = ["example.com", "*.example.com", "127.0.0.1"]
URL_PORTS = [80, 443, 8080]

_URL_HOSTS = ["example.com", "api.example.com"] * 4 + ["evil.com", "example.com.evil.com",
              "EXAMPLE.COM", "example.com.", "127.0.0.1", "0x7f.1", "2130706433", "0177.0.0.1",
              "[::1]", "[::ffff:127.0.0.1]", "ex%61mple.com", "exampl%65.com",
              "xn--exmple-cua.com", "localhost", "10.0.0.1", "example.com%2eevil.com",
              "evil.com%00.example.com", "b\u00fccher.example.com", "stra\u00dfe.example.com",
              ] + [f"ex{c}mple.com" for c in LOOKALIKES]  # fmt: skip
_URL_SEPS = ["", "", "", "\\", "/", "@", "#", "?", ";", "\t", "\n", " ", "%2f", "%5c", "%40",
             ":", "\\@", "@@", "\r", "\x00", "\u3002", "\uff0e", ".", "_"]  # fmt: skip


def url(r: Random) -> str:
    """Schemes, separators, userinfo, hosts in every spelling, joined by characters that
    parsers treat differently, ports and paths."""
    scheme = r.choice(["http", "https", "https", "HTTP", "ftp", "file", "hTTps"])
    slashes = r.choice(["://"] * 8 + [":/", ":", ":\\\\", ":///", "://\\"])
    lead = r.choice([""] * 8 + [" ", "\t", "\x01"])
    userinfo = r.choice([""] * 6 + ["user@", "u:p@", "example.com@", "@"])
    hosts = [r.choice(_URL_HOSTS) for _ in range(r.choice([1, 1, 1, 1, 2, 3]))]
    authority = hosts[0] + "".join(r.choice(_URL_SEPS) + h for h in hosts[1:])
    port = r.choice(["", "", "", ":80", ":443", ":8080", ":22", ":0x50", ":080", ":"])
    path = r.choice(["", "/", "/a\\b", "/x?q=1", "#f", "?@evil.com", "/@evil.com", "/a b"])
    return f"{lead}{scheme}{slashes}{userinfo}{authority}{port}{path}"


def hostless_url(r: Random) -> str:
    """What a model types into a web tool that completes the scheme: a host (any spelling
    of :func:`url`'s), userinfo, separators, a port and a path, sometimes after a scheme
    (whole or broken), a leading slash or backslash, or a space."""
    lead = r.choice([""] * 10 + ["//", "/", "\\\\", " ", "https://", "http:", "HTTPS://",
                                 "ftp://", "javascript:", "www."])  # fmt: skip
    userinfo = r.choice([""] * 6 + ["user@", "u:p@", "example.com@", "@"])
    hosts = [r.choice(_URL_HOSTS) for _ in range(r.choice([1, 1, 1, 1, 2, 3]))]
    authority = hosts[0] + "".join(r.choice(_URL_SEPS) + h for h in hosts[1:])
    port = r.choice(["", "", "", ":80", ":443", ":8080", ":22", ":0x50", ":080", ":"])
    path = r.choice(["", "/", "/a\\b", "/x?q=1", "#f", "?@evil.com", "/@evil.com", "/a b",
                     "/r?u=https://evil.com"])  # fmt: skip
    return f"{lead}{userinfo}{authority}{port}{path}"


HOSTLESS_COMPLETIONS: list[tuple[str, Callable[[str], str]]] = [
    # how web tools complete a scheme-less value before their client sees it
    ("regex", lambda v: v if re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", v) else "https://" + v),
    (
        "startswith",
        lambda v: v if v.lower().startswith(("http://", "https://")) else "https://" + v,
    ),
]


def _url_host_allowed(host: str, port: int) -> bool:
    if port not in URL_PORTS:
        return False
    host = host.lower().rstrip(".").strip("[]")
    with contextlib.suppress(ValueError, OSError):
        return ipaddress.ip_address(socket.inet_ntoa(socket.inet_aton(host))) == (
            ipaddress.ip_address("127.0.0.1")
        )
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host)
        return False
    if not host.isascii():
        try:
            host = host.encode("idna").decode()
        except UnicodeError:
            return False
    return host == "example.com" or host.endswith(".example.com")


class UrlOracle:
    """urllib, requests and httpx with ``socket.getaddrinfo`` replaced by a recorder."""

    def __init__(self) -> None:
        import httpx
        import requests

        self.httpx = httpx.Client(trust_env=False, timeout=2)
        self.requests = requests.Session()
        self.requests.trust_env = False
        import urllib.request

        self.urllib = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self.seen: list[tuple[str, int]] = []

    def close(self) -> None:
        self.httpx.close()
        self.requests.close()

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        real = socket.getaddrinfo

        def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            shown = host.decode() if isinstance(host, bytes) else str(host)
            self.seen.append((shown, int(port or 0)))
            raise socket.gaierror(socket.EAI_NONAME, "recorded, not resolved")

        socket.getaddrinfo = fake  # type: ignore[assignment]
        try:
            yield
        finally:
            socket.getaddrinfo = real  # type: ignore[assignment]

    def run(self, url: str) -> tuple[str | None, bool]:
        clients: list[tuple[str, Callable[[], object]]] = [
            ("urllib", lambda: self.urllib.open(url, timeout=2)),
            ("requests", lambda: self.requests.get(url, timeout=2)),
            ("httpx", lambda: self.httpx.get(url)),
        ]
        problems, refused = [], 0
        with self.recording():
            for name, call in clients:
                self.seen.clear()
                with contextlib.suppress(Exception):  # every client fails on the recorder
                    call()
                if not self.seen:
                    refused += 1
                for host, port in self.seen:
                    if not _url_host_allowed(host, port):
                        problems.append(f"{name} connects to {host!r} port {port}")
        return (problems[0] if problems else None), refused == len(clients)


# ---------------------------------------------------------------------------------------
# Email

EMAIL_DOMAINS = ["corp.com"]
EMAIL_ADDRESSES = ["ceo@partner.org"]

_LOCALS = ["john", "a.b", "ceo", "x+tag", '"a@corp.com"', '"a b"', "a\\@b", "Bob",
           "\u0430dmin", "", "john", "ceo"]  # fmt: skip
_DOMAINS = ["corp.com"] * 6 + ["CORP.COM", "evil.com", "corp.com.evil.com", "sub.corp.com",
            "partner.org", "corp.com@evil.com", "[127.0.0.1]", "c\u043erp.com", "corp.com.",
            "xn--crp-8cd.com"]  # fmt: skip
_DISPLAYS = ["", "", "John Q. Public", '"Doe, John"', "=?utf-8?q?a=2C_b?=", "a@corp.com", "(c)",
             "A (x@evil.com)", '"x@evil.com"', "Bob <", "J. R. R."]  # fmt: skip
_EMAIL_SEPS = [", "] * 5 + [",", ",\t", "\t", " ", "; ", ",\n ", "\r\n", ",,", ", , "]


def _address(r: Random) -> str:
    spec = f"{r.choice(_LOCALS)}@{r.choice(_DOMAINS)}"
    display = r.choice(_DISPLAYS)
    form = r.randint(0, 3)
    if form == 0 or not display:
        return spec
    if form == 1:
        return f"{display} <{spec}>"
    if form == 2:
        return f"{spec} ({display})"
    return f"{display}<{spec}>"


def email_value(r: Random) -> str | list[str]:
    """Header strings and lists of them: display names, quoting, comments, groups, encoded
    words, look-alike domains, separators (tabs, semicolons, line breaks), empty entries."""
    addresses = [_address(r) for _ in range(r.randint(1, 3))]
    text = addresses[0] + "".join(r.choice(_EMAIL_SEPS) + a for a in addresses[1:])
    if r.randint(0, 5) == 0:
        text = f"team: {text};"
    if r.randint(0, 3) == 0:
        return [text, *(r.choice(["", " ", "ceo@partner.org"]) for _ in range(r.randint(0, 2)))]
    return text


def _email_allowed(addr: str) -> bool:
    local, _, domain = addr.rpartition("@")
    domain = domain.lower()
    return domain == "corp.com" or f"{local}@{domain}" == "ceo@partner.org"


class SmtpOracle:
    """smtplib's send_message to a local aiosmtpd server; records envelope recipients."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        oracle = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                oracle.received.append(list(envelope.rcpt_tos))
                return "250 OK"

        self.received: list[list[str]] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.smtp.quit()
        self.controller.stop()

    def run(self, value: str | list[str]) -> tuple[str | None, bool]:
        header = value if isinstance(value, str) else ", ".join(value)
        msg = EmailMessage()
        msg["From"] = "agent@corp.com"
        try:
            msg["To"] = header
        except Exception:
            return None, True
        msg.set_content("hello")
        self.received.clear()
        try:
            self.smtp.send_message(msg)
        except smtplib.SMTPServerDisconnected:
            self.smtp.connect("127.0.0.1", self.port)
            return None, True
        except (smtplib.SMTPException, ValueError, UnicodeError):
            with contextlib.suppress(Exception):
                self.smtp.rset()
            return None, True
        rcpts = [r for batch in self.received for r in batch]
        outside = [r for r in rcpts if not _email_allowed(r)]
        return (f"smtp delivered to {outside}" if outside else None), not rcpts


# ---------------------------------------------------------------------------------------
# Paths

_PATH_PARTS = [".", "..", "", "sub", "link_in", "link_out", "link_root", "link_abs_out",
               "hard", "dangling", "file.txt", "new.txt", "~", "~root", "outside", "root",
               "secret.txt", "link_back", "x\u2024", "...", "sub", "file.txt"]  # fmt: skip


def path_value(r: Random) -> tuple[str, str]:
    """(how the value starts, components): absolute from the tree, from the root, or
    relative to the base; joined with '/' or '//'."""
    start = r.choice(["{tree}/root/", "{tree}/root/", "{tree}/", "", "", "{tree}/root",
                      "{tree}/outside/"])  # fmt: skip
    parts = [r.choice(_PATH_PARTS) for _ in range(r.randint(0, 5))]
    return start, r.choice(["/", "/", "//"]).join(parts)


def _open(value: str, flags: int, base_fd: int) -> int:
    try:
        return os.open(value, flags, 0o600, dir_fd=base_fd)
    except IsADirectoryError:
        return os.open(value, os.O_PATH, dir_fd=base_fd)


class PathTree:
    """tree/root (allowed) and tree/outside with every kind of link between them."""

    def __init__(self) -> None:
        self.tree = Path(tempfile.mkdtemp(prefix="scope-paths-")).resolve()
        self.reset()

    def reset(self) -> None:
        tree = self.tree
        for entry in tree.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        root, outside = tree / "root", tree / "outside"
        (root / "sub").mkdir(parents=True)
        (outside / "dir").mkdir(parents=True)
        (root / "file.txt").write_text("in")
        (outside / "secret.txt").write_text("secret")
        (root / "link_in").symlink_to("sub")
        (root / "link_out").symlink_to("../outside")
        (root / "link_root").symlink_to(".")
        (root / "link_abs_out").symlink_to(outside / "secret.txt")
        (root / "dangling").symlink_to("../outside/created")
        (root / "sub" / "link_back").symlink_to("..")
        (outside / "link_back").symlink_to("../root/sub")
        os.link(outside / "secret.txt", root / "hard")
        self.root = str(root)

    def close(self) -> None:
        shutil.rmtree(self.tree, ignore_errors=True)

    def value(self, drawn: tuple[str, str]) -> str:
        start, rest = drawn
        return start.format(tree=self.tree) + rest

    def reached(self, value: str, *, write: bool) -> list[tuple[str, bool]]:
        """(real path, is a hard-linked file) of what os.open reaches, following links and
        with O_NOFOLLOW; for writes, as O_CREAT would create it."""
        base_fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY)
        found: list[tuple[str, bool]] = []
        try:
            for nofollow in (False, True):
                flags = os.O_PATH | (os.O_NOFOLLOW if nofollow else 0)
                if write and not nofollow:
                    flags = os.O_WRONLY | os.O_CREAT
                try:
                    fd = _open(value, flags, base_fd)
                except OSError:
                    parent, _, name = value.rstrip("/").rpartition("/")
                    if value.startswith("/") and not parent:
                        parent = "/"
                    try:
                        pfd = os.open(parent or ".", os.O_PATH | os.O_DIRECTORY, dir_fd=base_fd)
                    except OSError:
                        continue
                    try:
                        real = os.readlink(f"/proc/self/fd/{pfd}")
                    finally:
                        os.close(pfd)
                    if name not in ("", ".", ".."):
                        found.append((real.rstrip("/") + "/" + name, False))
                    continue
                try:
                    real = os.readlink(f"/proc/self/fd/{fd}")
                    info = os.fstat(fd)
                finally:
                    os.close(fd)
                hard = stat.S_ISREG(info.st_mode) and info.st_nlink > 1
                found.append((real, hard))
        finally:
            os.close(base_fd)
        return found

    def judge(self, value: str, *, write: bool) -> str | None:
        for real, hard in self.reached(value, write=write):
            inside = real.startswith(self.root + "/") or (real == self.root and not write)
            if not inside:
                return f"os.open reaches {real!r}"
            if write and hard:
                return f"os.open reaches {real!r}, a file hard-linked from elsewhere"
        return None


# ---------------------------------------------------------------------------------------
# scopes under test


def sql_scope(dialect: str) -> Sql:
    return Sql(SQL_TABLES, dialect=dialect, allow_multiple=True)


def shell_scope() -> Shell:
    return Shell(SHELL_PROGRAMS, allow_pipes=True, allow_chaining=True)


def url_scope() -> Urls:
    return Urls(URL_HOSTS, schemes=["http", "https"], ports=URL_PORTS)


def hostless_url_scope() -> Urls:
    return Urls(URL_HOSTS, schemes=["http", "https"], ports=URL_PORTS, default_scheme="https")


def email_scope() -> Emails:
    return Emails(addresses=EMAIL_ADDRESSES, domains=EMAIL_DOMAINS)


def path_scopes(tree: PathTree) -> dict[str, Paths]:
    return {
        "read": Paths([tree.root], access="read", base=tree.root),
        "write": Paths([tree.root], access="write", base=tree.root),
    }
