"""Sql: every table a statement touches must be listed; read-only means queries only."""

from __future__ import annotations

import pytest

from guardrails_plugin.scopes import ScopeError, ScopeViolation, Sql

SCOPE = Sql(["orders", "customers", "public.items", "analytics.*"], dialect="postgres")


def reason(scope: Sql, value: object) -> str:
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return str(caught.value)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM orders",
        "select id from ORDERS",  # unquoted names fold as Postgres folds them
        'SELECT * FROM "orders"',
        "SELECT o.id FROM orders o JOIN customers c ON o.cid = c.id",
        "SELECT * FROM orders WHERE cid IN (SELECT id FROM customers)",
        "SELECT * FROM orders UNION SELECT * FROM orders",
        "SELECT 1 INTERSECT SELECT 2",
        "VALUES (1), (2)",
        "(SELECT * FROM orders)",
        "WITH recent AS (SELECT * FROM orders) SELECT * FROM recent",
        "SELECT * FROM public.items",
        "SELECT * FROM analytics.events JOIN analytics.sessions USING (sid)",
        "SELECT * FROM generate_series(1, 3)",
        "SELECT count(*) FROM orders;",
    ],
)
def test_queries_on_listed_tables_are_allowed(query: str) -> None:
    SCOPE.check(query)


# --- every table ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM orders JOIN secrets ON true",
        "SELECT * FROM orders, secrets",
        "SELECT * FROM orders WHERE id IN (SELECT id FROM secrets)",
        "SELECT (SELECT max(x) FROM secrets)",
        "SELECT * FROM orders WHERE EXISTS (SELECT 1 FROM secrets)",
        "SELECT * FROM orders UNION SELECT * FROM secrets",
        "SELECT * FROM (SELECT * FROM secrets) AS s",
        "SELECT * FROM LATERAL (SELECT * FROM secrets) AS s",
        "WITH x AS (SELECT * FROM secrets) SELECT * FROM x",
        "TABLE secrets",
    ],
)
def test_a_table_not_listed_anywhere_in_the_tree_is_denied(query: str) -> None:
    assert "uses table secrets, which is not in allowed tables" in reason(SCOPE, query)


def test_cte_named_like_a_forbidden_table_reads_only_its_body() -> None:
    # "secrets" here is the CTE, whose body reads the allowed orders table.
    assert SCOPE.contains("WITH secrets AS (SELECT * FROM orders) SELECT * FROM secrets")


def test_cte_body_naming_itself_reads_the_real_table() -> None:
    # Not RECURSIVE: inside its own body, "secrets" is the real table.
    query = "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets"
    assert "uses table secrets" in reason(SCOPE, query)


def test_cte_is_visible_only_inside_its_own_query() -> None:
    query = "SELECT * FROM (WITH s AS (SELECT 1) SELECT * FROM s) AS x JOIN s ON true"
    assert "uses table s," in reason(SCOPE, query)


def test_later_cte_is_not_visible_to_an_earlier_one() -> None:
    query = "WITH a AS (SELECT * FROM b), b AS (SELECT * FROM orders) SELECT * FROM a"
    assert "uses table b," in reason(SCOPE, query)
    assert SCOPE.contains(
        "WITH b AS (SELECT * FROM orders), a AS (SELECT * FROM b) SELECT * FROM a"
    )


def test_recursive_cte_may_name_itself() -> None:
    query = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
        "SELECT * FROM n"
    )
    assert SCOPE.contains(query)


def test_quoted_cte_name_of_different_case_does_not_shadow_a_table() -> None:
    # Postgres folds the CTE name S to s; "S" is another (real) table.
    assert 'uses table "S"' in reason(SCOPE, 'WITH S AS (SELECT 1) SELECT * FROM "S"')


def test_unqualified_entry_does_not_match_a_qualified_reference() -> None:
    assert "public.orders" in reason(SCOPE, "SELECT * FROM public.orders")
    assert "uses table items" in reason(SCOPE, "SELECT * FROM items")


def test_schema_wildcard_matches_only_that_schema_at_that_depth() -> None:
    assert not SCOPE.contains("SELECT * FROM analytics_old.events")
    assert not SCOPE.contains("SELECT * FROM db.analytics.events")
    assert not SCOPE.contains("SELECT * FROM analytics")


def test_quoted_names_keep_their_case() -> None:
    assert 'uses table "Orders"' in reason(SCOPE, 'SELECT * FROM "Orders"')


def test_case_folding_follows_the_dialect() -> None:
    snowflake = Sql(["orders"], dialect="snowflake")
    assert snowflake.contains("SELECT * FROM Orders")
    assert snowflake.contains('SELECT * FROM "ORDERS"')
    assert not snowflake.contains('SELECT * FROM "orders"')


def test_catalog_schema_table_entries() -> None:
    scope = Sql(["prod.public.orders", "prod.sales.*"])
    assert scope.contains("SELECT * FROM prod.public.orders")
    assert scope.contains("SELECT * FROM prod.sales.leads")
    assert not scope.contains("SELECT * FROM public.orders")
    assert not scope.contains("SELECT * FROM dev.public.orders")


# --- read-only --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statement", "kind"),
    [
        ("DELETE FROM orders", "DELETE"),
        ("UPDATE orders SET total = 0", "UPDATE"),
        ("INSERT INTO orders VALUES (1)", "INSERT"),
        ("DROP TABLE orders", "DROP"),
        ("TRUNCATE orders", "TRUNCATE"),
        ("ALTER TABLE orders ADD COLUMN x INT", "ALTER"),
        ("CREATE TABLE orders2 AS SELECT * FROM orders", "CREATE"),
        ("MERGE INTO orders USING customers ON true WHEN MATCHED THEN DELETE", "MERGE"),
    ],
)
def test_writes_are_denied_when_read_only(statement: str, kind: str) -> None:
    assert f"is a {kind}; only read-only queries" in reason(SCOPE, statement)


def test_data_modifying_cte_is_denied() -> None:
    query = "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone"
    assert "DELETE inside a query" in reason(SCOPE, query)


def test_select_into_is_denied() -> None:
    assert "SELECT ... INTO" in reason(SCOPE, "SELECT * INTO orders_copy FROM orders")


def test_locking_read_is_denied() -> None:
    assert "FOR UPDATE" in reason(SCOPE, "SELECT * FROM orders FOR UPDATE")


def test_read_write_scope_allows_changes_on_listed_tables_only() -> None:
    scope = Sql(["orders", "audit"], read_only=False, dialect="postgres")
    assert scope.contains("DELETE FROM orders WHERE id = 1")
    assert scope.contains("INSERT INTO audit SELECT * FROM orders")
    assert scope.contains("UPDATE orders SET total = 0 WHERE id = 1")
    assert scope.contains("WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone")
    assert scope.contains("CREATE INDEX idx ON orders (id)")
    assert "uses table secrets" in reason(scope, "INSERT INTO orders SELECT * FROM secrets")
    assert "uses table secrets" in reason(scope, "DROP TABLE secrets")
    assert "CREATE FUNCTION" in reason(
        scope, "CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql"
    )


# --- statements and functions never run -------------------------------------------------


def test_second_statement_is_denied_without_allow_multiple() -> None:
    assert "holds 2 statements" in reason(SCOPE, "SELECT * FROM orders; DROP TABLE secrets")


def test_every_statement_is_checked_with_allow_multiple() -> None:
    scope = Sql(["orders"], allow_multiple=True)
    assert scope.contains("SELECT * FROM orders; SELECT 1")
    assert "statement 2 of 2 (DROP)" in reason(scope, "SELECT * FROM orders; DROP TABLE orders")


@pytest.mark.parametrize(
    "statement",
    [
        "COPY orders TO '/tmp/leak.csv'",
        "SET search_path = secret_schema",
        "GRANT ALL ON orders TO mallory",
    ],
)
def test_session_file_and_opaque_statements_are_never_allowed(statement: str) -> None:
    assert "never allowed" in reason(SCOPE, statement)
    assert not Sql(["orders"], read_only=False, dialect="postgres").contains(statement)


def test_statements_sqlglot_keeps_as_opaque_text_are_denied() -> None:
    message = reason(SCOPE, "EXPLAIN SELECT * FROM orders")
    assert "EXPLAIN statement that sqlglot keeps as opaque text" in message
    assert not Sql(["orders"], read_only=False, dialect="postgres").contains("VACUUM orders")


def test_sqlite_attach_and_pragma_are_never_allowed() -> None:
    scope = Sql(["orders"], read_only=False, dialect="sqlite")
    assert "ATTACH" in reason(scope, "ATTACH 'other.db' AS o")
    assert "PRAGMA" in reason(scope, "PRAGMA writable_schema = 1")


@pytest.mark.parametrize(
    ("query", "dialect", "function"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "duckdb", "read_csv"),
        ("SELECT * FROM read_csv_auto('/etc/passwd')", "duckdb", "read_csv_auto"),
        ("SELECT * FROM orders JOIN read_parquet('s3://b/x') ON true", "duckdb", "read_parquet"),
        ("SELECT pg_read_file('/etc/passwd')", "postgres", "pg_read_file"),
        ("SELECT LOAD_FILE('/etc/passwd')", "mysql", "load_file"),
        ("SELECT * FROM orders WHERE x = readfile('/etc/passwd')", "sqlite", "readfile"),
    ],
)
def test_file_reading_functions_are_denied(query: str, dialect: str, function: str) -> None:
    scope = Sql(["orders"], dialect=dialect)
    assert f"calls {function}()" in reason(scope, query)


def test_duckdb_file_path_as_a_table_name_is_denied() -> None:
    assert not Sql(["orders"], dialect="duckdb").contains("SELECT * FROM '/etc/passwd'")


# --- what cannot be understood ----------------------------------------------------------


@pytest.mark.parametrize("text", ["SELEC * FORM orders", "SELECT * FROM (", "SELECT 'unclosed"])
def test_text_that_does_not_parse_as_a_query_is_denied(text: str) -> None:
    assert not SCOPE.contains(text)


@pytest.mark.parametrize("text", ["", ";", " ;; "])
def test_no_statement_is_denied(text: str) -> None:
    assert "no SQL statement" in reason(SCOPE, text)


@pytest.mark.parametrize("value", [None, 3, ["SELECT 1"], b"SELECT 1"])
def test_wrong_types_are_denied(value: object) -> None:
    assert "expected SQL text" in reason(SCOPE, value)


# --- settings, spec, within -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tables": []}, "at least one table"),
        ({"tables": ["*"]}, "must be 'table'"),
        ({"tables": ["a.b.c.d"]}, "must be 'table'"),
        ({"tables": ['"Orders"']}, "not a plain identifier"),
        ({"tables": ["a..b"]}, "not a plain identifier"),
        ({"tables": ["orders"], "dialect": "nosuchsql"}, "dialect"),
        ({"tables": ["orders"], "read_only": "yes"}, "read_only must be a bool"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        Sql(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scope",
    [SCOPE, Sql("orders"), Sql(["a.b.c", "x.*"], read_only=False, allow_multiple=True)],
)
def test_spec_round_trips(scope: Sql) -> None:
    assert type(scope)(**scope.spec()) == scope


def test_within_fewer_tables_and_no_more_power() -> None:
    assert Sql(["orders"], dialect="postgres").within(SCOPE)
    assert Sql(["analytics.events"], dialect="postgres").within(SCOPE)
    assert Sql(["analytics.*"], dialect="postgres").within(SCOPE)
    assert not SCOPE.within(Sql(["orders"], dialect="postgres"))
    assert not Sql(["secrets"], dialect="postgres").within(SCOPE)
    assert not Sql(["orders"], read_only=False, dialect="postgres").within(SCOPE)
    assert not Sql(["orders"], allow_multiple=True, dialect="postgres").within(SCOPE)
    assert not Sql(["orders"], dialect="mysql").within(SCOPE)
    assert Sql(["orders"]).within(Sql(["orders"], read_only=False, allow_multiple=True))


def flagged(scope: Sql, value: object) -> bool:
    """Whether ``scope`` refuses ``value`` as unreadable (as opposed to readable but outside)."""
    with pytest.raises(ScopeViolation) as caught:
        scope.check(value)
    return caught.value.unreadable


@pytest.mark.parametrize(
    "value", [3, "", "SELECT * FROM (", "EXPLAIN SELECT * FROM orders", "VACUUM"]
)
def test_values_the_scope_cannot_read_are_flagged_unreadable(value: object) -> None:
    assert flagged(SCOPE, value) is True


@pytest.mark.parametrize(
    "value",
    [
        "SELECT * FROM secrets",
        "DELETE FROM orders",
        "COPY orders TO '/tmp/x'",
        "SELECT 1; SELECT 2",
    ],
)
def test_readable_statements_outside_the_scope_are_not_flagged(value: str) -> None:
    assert flagged(SCOPE, value) is False
