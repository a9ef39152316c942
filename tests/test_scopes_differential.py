"""Scopes judged by what the value really does: the real consumer is the oracle.

Hypothesis drives the grammars of ``tests/scope_oracles.py`` (few examples here; the long
run is ``benchmarks/scope_differential.py``): every value a scope allows is handed to the
real consumer, and anything it touches outside the scope fails the test. The regression
tests below are the disagreements those runs found, plus the cases reported against the
scopes, each checked against the consumer too where one exists.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import scope_oracles as so
from hypothesis import HealthCheck, given, settings

from guardrails_plugin.scopes import Emails, Paths, ScopeViolation, Shell, Sql, Urls, _sql_functions

FEW = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def reason(scope: object, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)  # type: ignore[attr-defined]
    return str(caught.value)


# --- oracles -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[so.PostgresOracle]:
    oracle = so.PostgresOracle(postgres_url)
    yield oracle
    oracle.close()


@pytest.fixture(scope="module")
def bash() -> Iterator[so.BashOracle]:
    oracle = so.BashOracle()
    yield oracle
    oracle.close()


@pytest.fixture(scope="module")
def clients() -> Iterator[so.UrlOracle]:
    oracle = so.UrlOracle()
    yield oracle
    oracle.close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[so.SmtpOracle]:
    oracle = so.SmtpOracle()
    yield oracle
    oracle.close()


@pytest.fixture
def tree() -> Iterator[so.PathTree]:
    built = so.PathTree()
    yield built
    built.close()


# The oracles catch what they are meant to catch (else the tests below could not fail).


def test_postgres_oracle_flags_a_write_a_setting_a_lock_and_a_foreign_table(
    pg: so.PostgresOracle,
) -> None:
    for statement in (
        "SELECT nextval('s1')",
        "SELECT set_config('search_path', 'x', false)",
        "SELECT pg_advisory_lock(1)",
        "SELECT * FROM secrets",
        "SELECT query_to_xml('select * from secrets', true, true, '')",
    ):
        problem, _ = pg.run(statement)
        assert problem is not None, statement
    assert pg.run("SELECT * FROM orders") == (None, False)


def test_sqlite_oracle_flags_a_foreign_table_and_an_impure_function() -> None:
    lite = so.SqliteOracle(so.SQL_TABLES)
    assert lite.run("SELECT * FROM secrets")[0] is not None
    assert lite.run("SELECT * FROM v_secrets")[0] is not None
    assert lite.run("SELECT load_extension('x')")[0] is not None or lite.run("SELECT 1")[1]
    assert lite.run("SELECT lower(name) FROM orders") == (None, False)


def test_bash_oracle_records_programs_that_run(bash: so.BashOracle) -> None:
    assert bash.run("ls; rm -rf x", {"ls"})[0] == "bash ran ['rm']"
    assert bash.run("nosuchprogram", {"ls"})[0] == "bash ran ['nosuchprogram']"
    assert bash.run("ls | grep x", {"ls", "grep"}) == (None, False)


def test_url_oracle_records_the_host_each_client_would_connect_to(
    clients: so.UrlOracle,
) -> None:
    problem, _ = clients.run("http://example.com\\x.evil.com/")
    assert problem is not None
    assert "x.evil.com" in problem
    assert clients.run("https://api.example.com/x") == (None, False)


def test_smtp_oracle_records_envelope_recipients(smtp: so.SmtpOracle) -> None:
    assert smtp.run("a@corp.com, b@evil.com")[0] == "smtp delivered to ['b@evil.com']"
    assert smtp.run("John Q. Public <john@corp.com>") == (None, False)


def test_path_oracle_sees_links_and_hard_links(tree: so.PathTree) -> None:
    assert tree.judge("link_out/secret.txt", write=False) is not None
    assert tree.judge(str(tree.tree / "outside" / "link_back"), write=False) is not None
    assert tree.judge("hard", write=True) is not None
    assert tree.judge("sub/notes.txt", write=True) is None


# --- generated values against the consumers ------------------------------------------------


@FEW
@given(so.strategy(so.sql_statement))
def test_allowed_sql_touches_nothing_outside_on_postgres(
    pg: so.PostgresOracle, statement: str
) -> None:
    if so.sql_scope("postgres").contains(statement):
        assert pg.run(statement)[0] is None, statement


@FEW
@given(so.strategy(so.sql_statement))
def test_allowed_sql_touches_nothing_outside_on_sqlite(statement: str) -> None:
    if so.sql_scope("sqlite").contains(statement):
        assert so.SqliteOracle(so.SQL_TABLES).run(statement)[0] is None, statement


@FEW
@given(so.strategy(so.shell_line))
def test_allowed_command_lines_run_only_listed_programs(bash: so.BashOracle, line: str) -> None:
    if so.shell_scope().contains(line):
        assert bash.run(line, set(so.SHELL_PROGRAMS))[0] is None, line


@FEW
@given(so.strategy(so.url))
def test_allowed_urls_reach_only_allowed_hosts_with_every_client(
    clients: so.UrlOracle, value: str
) -> None:
    if so.url_scope().contains(value):
        assert clients.run(value)[0] is None, value


@FEW
@given(so.strategy(so.hostless_url))
def test_allowed_scheme_less_urls_reach_only_allowed_hosts_with_every_client(
    clients: so.UrlOracle, value: str
) -> None:
    """``default_scheme``: every value allowed, completed the ways web tools complete it,
    reaches only allowed hosts and ports with urllib, requests and httpx."""
    if so.hostless_url_scope().contains(value):
        for how, complete in so.HOSTLESS_COMPLETIONS:
            assert clients.run(complete(value))[0] is None, (how, value)


@settings(max_examples=400, deadline=None)
@given(so.strategy(so.hostless_url))
def test_a_scheme_less_value_is_judged_as_its_https_url(value: str) -> None:
    """The same parse and the same checks: a value without ``scheme://`` is in scope exactly
    when ``https://<value>`` is (values starting with a slash or backslash are refused)."""
    completed = value if re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", value) else "https://" + value
    expected = so.url_scope().contains(completed) and value[:1] not in ("/", "\\")
    assert so.hostless_url_scope().contains(value) == expected


@FEW
@given(so.strategy(so.email_value))
def test_allowed_recipients_are_the_envelope_smtplib_sends_to(
    smtp: so.SmtpOracle, value: str | list[str]
) -> None:
    if so.email_scope().contains(value):
        assert smtp.run(value)[0] is None, value


@FEW
@given(so.strategy(so.path_value))
def test_allowed_paths_open_only_inside_the_root(tree: so.PathTree, drawn: tuple[str, str]) -> None:
    value = tree.value(drawn)
    for access, scope in so.path_scopes(tree).items():
        if scope.contains(value):
            assert tree.judge(value, write=access == "write") is None, (access, value)


# --- SQL: functions known to be pure, and nothing else -------------------------------------

PG = Sql(["orders", "customers"], dialect="postgres")
ISSUE_CALLS = [
    ("table_to_xml('users', true, true, '')", "table_to_xml"),
    ("query_to_xml('select * from users', true, true, '')", "query_to_xml"),
    ("database_to_xml(true, true, '')", "database_to_xml"),
    ("cursor_to_xml('c', 1, true, true, '')", "cursor_to_xml"),
    ("set_config('search_path', 'evil', false)", "set_config"),
    ("nextval('s1')", "nextval"),
    ("setval('s1', 1)", "setval"),
    ("pg_terminate_backend(1)", "pg_terminate_backend"),
    ("pg_cancel_backend(1)", "pg_cancel_backend"),
    ("pg_reload_conf()", "pg_reload_conf"),
    ("lo_unlink(1)", "lo_unlink"),
    ("lo_from_bytea(0, 'x')", "lo_from_bytea"),
    ("pg_notify('c', 'x')", "pg_notify"),
    ("pg_advisory_lock(1)", "pg_advisory_lock"),
    ("dblink_connect('host=evil')", "dblink_connect"),
    ("txid_current()", "txid_current"),
]


@pytest.mark.parametrize(("call", "name"), ISSUE_CALLS)
@pytest.mark.parametrize(
    "shape",
    [
        "SELECT {c}",
        "SELECT {c} FROM orders",
        "SELECT * FROM {c} AS t",
        "SELECT * FROM orders WHERE id = (SELECT {c})",
        "SELECT pg_catalog.{c}",
        "SELECT upper(CAST({c} AS text)) FROM orders",
        "WITH w AS (SELECT {c}) SELECT * FROM w",
    ],
)
def test_impure_functions_deny_anywhere_with_their_name(call: str, name: str, shape: str) -> None:
    text = shape.format(c=call)
    assert f"{name}()" in reason(PG, text) or f"{name}(" in reason(PG, text)


@pytest.mark.parametrize(
    "call",
    [
        "table_to_xml('secrets', true, true, '')",
        "query_to_xml('select * from secrets', true, true, '')",
        "set_config('search_path', 'evil', false)",
        "nextval('s1')",
        "setval('s1', 1)",
        "pg_terminate_backend({admin_pid})",
        "pg_cancel_backend({admin_pid})",
        "pg_reload_conf()",
        "lo_from_bytea(0, 'x')",
        "pg_advisory_lock(1)",
        "txid_current()",
    ],
)
def test_the_reported_functions_really_reach_outside_on_postgres(
    pg: so.PostgresOracle, call: str
) -> None:
    # Run as the SELECT-only role, the server refuses them for privileges or read-only, or
    # they write (a transaction id is assigned), change a setting or take a lock. (pg_notify
    # acts at commit, which the rolled-back oracle never reaches: it is judged by the
    # catalog, where it is volatile.)
    text = f"SELECT {call.format(admin_pid=pg.admin_pid)}"
    assert pg.run(text)[0] is not None, text
    assert not PG.contains(text)


def test_quoted_or_upper_case_spellings_of_an_impure_function_deny() -> None:
    for text in ("SELECT \"nextval\"('s1')", "SELECT NEXTVAL('s1')", "SELECT NextVal('s1')"):
        assert "nextval()" in reason(PG, text)


def test_a_schema_qualified_call_denies_unless_pg_catalog() -> None:
    assert PG.contains("SELECT pg_catalog.lower(name) FROM orders")
    assert "qualified with a schema" in reason(PG, "SELECT public.lower(name) FROM orders")


def test_user_functions_deny_unless_listed() -> None:
    assert "my_score()" in reason(PG, "SELECT my_score(id) FROM orders")
    listed = Sql(["orders"], dialect="postgres", functions=["my_score"])
    assert listed.contains("SELECT my_score(id) FROM orders")
    assert listed.spec()["functions"] == ["my_score"]
    assert not listed.within(Sql(["orders"], dialect="postgres"))
    assert Sql(["orders"], dialect="postgres").within(listed)


def test_sqlite_fts3_tokenizer_and_load_extension_deny() -> None:
    lite = Sql(["orders"], dialect="sqlite")
    assert "fts3_tokenizer()" in reason(lite, "SELECT fts3_tokenizer('simple')")
    assert "load_extension()" in reason(lite, "SELECT load_extension('x')")
    assert lite.contains("SELECT lower(name), json_extract(name, '$.a') FROM orders")


@pytest.mark.parametrize(
    "text",
    [
        "SELECT count(*), max(lower(name)), max(length(coalesce(name, 'x'))), now() FROM orders",
        "SELECT id::text, CAST(id AS bigint), extract(year FROM now()) FROM orders",
        "SELECT row_number() OVER (ORDER BY id), string_agg(name, ',') FROM orders GROUP BY id",
        "SELECT * FROM generate_series(1, 3) AS g",
        "SELECT random(), md5(name), to_char(now(), 'YYYY') FROM orders",
    ],
)
def test_ordinary_pure_queries_are_allowed_and_run(pg: so.PostgresOracle, text: str) -> None:
    assert PG.contains(text)
    assert pg.run(text) == (None, False)


@pytest.mark.parametrize("tail", ["; -- done", ";\n-- done\n", "; /* done */", ";", " -- done"])
def test_a_trailing_comment_is_not_a_second_statement(tail: str) -> None:
    PG.check("SELECT * FROM orders" + tail)
    assert "2 statements" in reason(PG, "SELECT * FROM orders; SELECT 1 -- done")


def test_sqlglot_does_not_log_the_attackers_sql(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = "EXPLAIN SELECT 1\nERROR:root:forged line"
    for dialect in ("postgres", "sqlite", None):
        assert not Sql(["orders"], dialect=dialect).contains(forged)
        # sqlglot warns while writing some functions back in another dialect: quiet too.
        Sql(["orders"], dialect=dialect).contains("SELECT to_char(now(), 'x'), initcap(x, y)")
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")]
    # Outside the scope's parse calls sqlglot's logger still works for the application.
    logging.getLogger("sqlglot").warning("application warning")
    assert [r for r in caplog.records if r.name == "sqlglot"]


def test_the_shipped_function_list_is_the_servers_catalog(postgres_url: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import gen_sql_functions

    version, pure, impure = gen_sql_functions.postgres_names(postgres_url)
    if version not in (_sql_functions.__doc__ or ""):
        pytest.skip(f"list generated from another PostgreSQL version than {version}")
    assert pure == _sql_functions.POSTGRES_PURE
    assert impure == _sql_functions.POSTGRES_IMPURE


# --- URLs -------------------------------------------------------------------------------

URLS = Urls(["example.com", "*.example.com"], schemes=["http", "https"])


@pytest.mark.parametrize(
    "value",
    [
        "http://example.com\\x.evil.com/",
        "http://example.com\\@evil.com/",
        "http://example.com\t.evil.com/",
        "http://example.com\n/",
        " http://example.com/",
        "http://ex%61mple.com/",
        "http://example.com%2eevil.com/",
        "http://@example.com/",
        "http://a@b@example.com/",
        "http:example.com",
        "http:/example.com",
        "http:\\\\example.com",
        "http://example.com:0x50/",
        "http://stra\u00dfe.example.com/",
    ],
)
def test_authorities_clients_read_differently_deny(clients: so.UrlOracle, value: str) -> None:
    why = reason(URLS, value)
    assert any(s in why for s in ("ambiguous", "not in allowed hosts", "not a valid URL")), why


def test_the_backslash_url_really_reaches_the_attacker_with_python_clients(
    clients: so.UrlOracle,
) -> None:
    problem, _ = clients.run("http://example.com\\x.evil.com/")
    assert problem is not None  # the reported bypass, seen by the real clients
    assert "backslash" in reason(URLS, "http://example.com\\x.evil.com/")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("evil.com", "not in allowed hosts"),
        ("example.com@evil.com", "not in allowed hosts"),
        ("user@example.com", "credentials"),
        ("example.com\\@evil.com", "backslash"),
        ("example.com\\x.evil.com/", "backslash"),
        ("ex%61mple.com/", "ambiguous"),
        ("0x7f.1", "IP address '127.0.0.1'"),
        ("2130706433/", "IP address '127.0.0.1'"),
        ("stra\u00dfe.example.com", "ambiguous"),
        ("//example.com", "starts with '/'"),
        ("\\\\example.com", "starts with '\\\\'"),
        ("http:example.com", "not a valid URL"),
        ("javascript:alert(1)", "not a valid URL"),
        ("example.com:8080", "port 8080"),
        (" example.com", "not a valid URL"),
        ("ftp://example.com", "scheme 'ftp'"),
    ],
)
def test_scheme_less_tricks_deny(value: str, why: str) -> None:
    scope = Urls(["example.com", "*.example.com"], default_scheme="https")
    assert why in reason(scope, value)


@pytest.mark.parametrize(
    "value", ["www.example.com", "example.com/a?b=1", "b\u00fccher.example.com:443/x"]
)
def test_scheme_less_hosts_are_allowed_and_reach_their_host(
    clients: so.UrlOracle, value: str
) -> None:
    scope = Urls(["example.com", "*.example.com"], default_scheme="https")
    scope.check(value)
    assert clients.run("https://" + value) == (None, False)
    with pytest.raises(ScopeViolation, match="not a valid URL"):
        Urls(["example.com", "*.example.com"]).check(value)  # without default_scheme


def test_default_scheme_round_trips_and_narrows() -> None:
    from guardrails_plugin.scopes import ScopeError, scope_from_spec

    scope = Urls(["example.com"], schemes=["http", "https"], default_scheme="HTTPS")
    assert scope.spec()["default_scheme"] == "https"
    assert scope_from_spec("url", scope.spec()) == scope
    assert "default_scheme" not in Urls(["example.com"]).spec()
    plain = Urls(["example.com"], schemes=["http", "https"])
    assert plain.within(scope)
    assert not scope.within(plain)
    with pytest.raises(ScopeError, match="default_scheme must be one of schemes"):
        Urls(["example.com"], default_scheme="http")


@pytest.mark.parametrize(
    "value",
    [
        "https://api.example.com/v1?q=1#x",
        "HTTP://EXAMPLE.COM:80/a\\b",
        "https://b\u00fccher.example.com/",
    ],
)
def test_plain_urls_stay_allowed_and_reach_their_host(clients: so.UrlOracle, value: str) -> None:
    URLS.check(value)
    assert clients.run(value) == (None, False)


# --- Shell ------------------------------------------------------------------------------

LS = Shell(["ls", "grep"])


@pytest.mark.parametrize(
    "line", ["(ls)", "( ls )", "{ ls; }", "ls;", "ls ;", "( ls -la )", "{ ls -l; }"]
)
def test_subshells_groups_and_a_trailing_semicolon_run_what_they_hold(
    bash: so.BashOracle, line: str
) -> None:
    LS.check(line)  # one program, listed: nothing else runs
    assert bash.run(line, {"ls"}) == (None, False)


@pytest.mark.parametrize("line", ["(rm)", "( rm )", "{ rm; }", "rm;", "(ls; rm)", "{ ls; rm; }"])
def test_unlisted_programs_in_subshells_and_groups_deny(bash: so.BashOracle, line: str) -> None:
    assert "'rm'" in reason(Shell(["ls"], allow_chaining=True), line)
    assert bash.run(line, {"ls"})[0] == "bash ran ['rm']"


def test_arithmetic_commands_deny(bash: so.BashOracle) -> None:
    line = "((cat -la '$(rm)'))"
    assert bash.run(line, {"cat"})[0] == "bash ran ['rm']"  # found by the differential run
    assert "arithmetic" in reason(Shell(["cat"]), line)
    assert Shell(["cat"]).contains("( (cat) )")


# --- Email ------------------------------------------------------------------------------

MAIL = Emails(domains=["corp.com"])


@pytest.mark.parametrize("value", [["", "a@corp.com"], ["a@corp.com", " "], ["a@corp.com", ""]])
def test_an_empty_entry_next_to_a_valid_address_denies(value: list[str]) -> None:
    why = reason(MAIL, value)
    assert "no recipient address" in why or "entry with no content" in why


@pytest.mark.parametrize(
    "value",
    ["John Q. Public <john@corp.com>", "a@corp.com,\tb@corp.com", "J. R. R. Tolkien <j@corp.com>"],
)
def test_honest_headers_are_allowed_and_delivered_there(smtp: so.SmtpOracle, value: str) -> None:
    MAIL.check(value)
    assert smtp.run(value) == (None, False)


def test_addresses_separated_by_a_tab_alone_are_one_malformed_address(smtp: so.SmtpOracle) -> None:
    assert "not a clean address list" in reason(MAIL, "a@corp.com\tb@corp.com")


def test_a_header_that_crashes_the_stdlib_parser_denies_with_a_reason() -> None:
    value = "team: john@evil.com (a@corp.com); john@partner.org;"  # found by the differential run
    assert "cannot parse recipient list" in reason(MAIL, value)


# --- Paths ------------------------------------------------------------------------------


def test_a_link_outside_that_points_inside_denies(tree: so.PathTree) -> None:
    value = str(tree.tree / "outside" / "link_back")  # found by the differential run
    assert tree.judge(value, write=False) is not None  # O_NOFOLLOW reaches the link, outside
    for access in ("read", "write"):
        assert "symlink at" in reason(Paths([tree.root], access=access), value)  # type: ignore[arg-type]


def test_writing_a_hard_linked_file_denies(tree: so.PathTree) -> None:
    value = os.path.join(tree.root, "hard")  # also a name of outside/secret.txt
    assert "hard links" in reason(Paths([tree.root], access="write"), value)
    Paths([tree.root], access="read").check(value)


def test_write_scope_denies_the_root_and_tilde_everywhere(tree: so.PathTree) -> None:
    write = Paths([tree.root], access="write", base=tree.root)
    for value in (tree.root, ".", "link_root", "sub/.."):
        assert "root itself" in reason(write, value)
    for value in ("~/x", "~root/x"):
        assert "starts with '~'" in reason(write, value)
