"""SQL statements, checked on every table they touch and every kind of statement they are.

The value is parsed with ``sqlglot`` in the scope's dialect. Each statement is classified
(query, data change, schema change, or something the guard will not run), and every table
reference in the tree is collected: in ``FROM`` and joins, subqueries, set operations, CTE
bodies, ``INSERT``/``UPDATE``/``DELETE`` targets. A reference to a CTE defined in an
enclosing ``WITH`` is not a table. Names are compared after the dialect's own identifier
normalization (Postgres folds unquoted names to lower case, Snowflake to upper case, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from ._base import Scope, ScopeError, ScopeViolation
from ._text import describe, preview, string_list

__all__ = ["FILE_FUNCTIONS", "Sql"]

FILE_FUNCTIONS: frozenset[str] = frozenset(
    {
        # PostgreSQL
        "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import",
        "lo_export", "pg_file_write", "dblink", "dblink_exec",
        # MySQL / MariaDB
        "load_file", "sys_exec", "sys_eval",
        # SQLite (fileio extension, shell functions)
        "readfile", "writefile", "edit", "fsdir", "load_extension",
        # DuckDB
        "read_csv", "read_csv_auto", "read_json", "read_json_auto", "read_json_objects",
        "read_ndjson", "read_ndjson_auto", "read_parquet", "parquet_scan", "read_text",
        "read_blob", "read_xlsx", "glob", "sniff_csv", "st_read", "iceberg_scan", "delta_scan",
        # ClickHouse table functions
        "file", "url", "s3", "hdfs", "remote", "remotesecure",
        # SQL Server
        "openrowset", "opendatasource", "openquery", "xp_cmdshell",
    }
)  # fmt: skip
"""Functions that read or write files, reach other servers or run programs: always denied.

Matched by name, case-insensitively, wherever they appear (``FROM read_csv(...)`` or
``SELECT pg_read_file(...)``). The list is short on purpose and not complete: a user-defined
function can do anything, so pair a read-only scope with a read-only database role.
"""


def _classes(*names: str) -> tuple[type[exp.Expression], ...]:
    """The sqlglot expression classes that exist in the installed version."""
    found = (getattr(exp, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type))


_QUERIES = _classes("Select", "SetOperation", "Values")
_CHANGES = _classes("Insert", "Update", "Delete", "Merge", "TruncateTable")
_SCHEMA_CHANGES = _classes("Create", "Drop", "Alter")
_SCHEMA_KINDS = frozenset({"TABLE", "VIEW", "INDEX"})
_TRANSACTIONS = _classes("Transaction", "Commit", "Rollback")
# Statements never run through this scope: they read or write files, change the session
# (search_path decides what an unqualified name means), privileges or attached databases.
_NEVER = _classes(
    "Copy", "LoadData", "Attach", "Detach", "Pragma", "Set", "Use", "Grant",
    "Revoke", "Put", "Get", "Export", "Kill", "Execute", "ExecuteSql", "Declare", "Block",
    "Cache", "Uncache", "Refresh", "UserDefinedFunction", "ToFile",
)  # fmt: skip
# Inside a read-only statement: anything that writes, or locks rows (SELECT ... FOR UPDATE).
_WRITES = (*_CHANGES, *_SCHEMA_CHANGES, *_classes("Into", "Lock", "MultitableInserts"))


@dataclass(frozen=True, slots=True)
class _Statement:
    """What one statement does, as far as the scope decides (independent of settings)."""

    kind: str  # "SELECT", "DROP", ...
    is_query: bool
    writable: bool  # a kind read-write scopes may run (DML, table DDL, transactions)
    never: str | None  # a construct no scope runs
    writes: str | None  # a write or lock inside the statement
    file_function: str | None
    problem: str | None  # a part the guard cannot read (opaque command, odd table reference)
    tables: tuple[tuple[tuple[str, ...], str], ...]  # (normalized parts, as written)


_NAMES = {
    "userdefinedfunction": "CREATE FUNCTION",
    "into": "SELECT ... INTO",
    "lock": "FOR UPDATE/SHARE",
    "truncatetable": "TRUNCATE",
    "loaddata": "LOAD DATA",
    "executesql": "EXECUTE",
}


def _name(node: exp.Expression) -> str:
    """How a reason names a node: "DELETE", "CREATE FUNCTION", ..."""
    return _NAMES.get(node.key, node.key.upper())


def _cte_names(with_: exp.With, dialect: sqlglot.Dialect, upto: int | None) -> set[str]:
    names: set[str] = set()
    for cte in with_.expressions[:upto]:
        alias = cte.args.get("alias")
        ident = alias.this if isinstance(alias, exp.TableAlias) else None
        if isinstance(ident, exp.Identifier):
            names.add(dialect.normalize_identifier(ident).this)
    return names


def _is_cte_reference(table: exp.Table, name: str, dialect: sqlglot.Dialect) -> bool:
    """Whether an unqualified ``table`` names a CTE visible where it stands.

    Walks up the tree: the main query of a ``WITH`` sees all its CTEs; the body of CTE number
    ``i`` sees only CTEs ``0..i-1`` (and itself when ``RECURSIVE``), so in
    ``WITH s AS (SELECT * FROM s)`` the inner ``s`` is the real table.
    """
    child: object = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            index = next((i for i, cte in enumerate(node.expressions) if cte is child), 0)
            upto = index + 1 if node.args.get("recursive") else index
            if name in _cte_names(node, dialect, upto):
                return True
        else:
            with_ = node.args.get("with_") or node.args.get("with")
            if (
                isinstance(with_, exp.With)
                and with_ is not child
                and name in _cte_names(with_, dialect, None)
            ):
                return True
        child, node = node, node.parent
    return False


def _table_parts(table: exp.Table, dialect: sqlglot.Dialect) -> tuple[str, ...] | None:
    parts = [table.args.get("catalog"), table.args.get("db"), table.this]
    names: list[str] = []
    for part in parts:
        if part is None:
            continue
        if not isinstance(part, exp.Identifier):
            return None
        names.append(dialect.normalize_identifier(part).this)
    return tuple(names)


def _function_name(func: exp.Func) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    return func.sql_name().lower()


def _statement(tree: exp.Expression, dialect: sqlglot.Dialect) -> _Statement:
    top = tree
    while isinstance(top, exp.Subquery):
        top = top.this
    is_query = isinstance(top, _QUERIES)
    statement_like = _QUERIES + _CHANGES + _SCHEMA_CHANGES + _TRANSACTIONS + _NEVER
    kind = _name(top) if isinstance(top, statement_like) else f"bare expression ({_name(top)})"
    writable = isinstance(top, _CHANGES + _TRANSACTIONS) or (
        isinstance(top, _SCHEMA_CHANGES)
        and str(top.args.get("kind") or "").upper() in _SCHEMA_KINDS
    )
    never = writes = file_function = problem = None
    tables: list[tuple[tuple[str, ...], str]] = []
    for node in tree.walk():
        if problem is None and isinstance(node, exp.Command):
            problem = (
                f"is a {str(node.this).upper()} statement that sqlglot keeps as opaque text, "
                "so the guard cannot read it"
            )
        if never is None and isinstance(node, _NEVER):
            never = _name(node)
        if writes is None and node is not top and isinstance(node, _WRITES):
            writes = _name(node)
        if isinstance(node, exp.Func):
            if file_function is None and _function_name(node) in FILE_FUNCTIONS:
                file_function = _function_name(node)
        elif isinstance(node, exp.Table):
            if isinstance(node.this, exp.Func):
                continue  # a table function: judged by its name above
            parts = _table_parts(node, dialect)
            if parts is None:
                problem = problem or f"uses a table reference the guard cannot read ({node.sql()})"
                continue
            if len(parts) == 1 and _is_cte_reference(node, parts[0], dialect):
                continue
            written = (node.args.get("catalog"), node.args.get("db"), node.this)
            shown = ".".join(part.sql(dialect=dialect) for part in written if part is not None)
            tables.append((parts, shown))
    if is_query and isinstance(top, exp.Select) and top.args.get("into") is not None:
        writes = writes or "SELECT ... INTO"
    return _Statement(
        kind=kind,
        is_query=is_query,
        writable=writable,
        never=never,
        writes=writes,
        file_function=file_function,
        problem=problem,
        tables=tuple(tables),
    )


def _statements_uncached(text: str, dialect_name: str | None) -> tuple[_Statement, ...]:
    dialect = sqlglot.Dialect.get_or_raise(dialect_name)
    try:
        trees = sqlglot.parse(text, read=dialect)
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScopeViolation(
            f"cannot parse SQL {preview(text)}: {first}", unreadable=True
        ) from None
    except RecursionError:
        raise ScopeViolation(
            f"cannot parse SQL {preview(text)}: nested too deeply", unreadable=True
        ) from None
    try:
        return tuple(
            _statement(cast(exp.Expression, tree), dialect) for tree in trees if tree is not None
        )
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:
        # A tree shape the walk does not expect: deny with a reason rather than crash.
        raise ScopeViolation(
            f"cannot check SQL {preview(text)}: unexpected syntax tree ({exc})", unreadable=True
        ) from None


@functools.lru_cache(maxsize=1024)
def _statements_cached(text: str, dialect_name: str | None) -> tuple[_Statement, ...]:
    return _statements_uncached(text, dialect_name)


def _statements(text: str, dialect_name: str | None) -> tuple[_Statement, ...]:
    if len(text) <= 8192:
        return _statements_cached(text, dialect_name)
    return _statements_uncached(text, dialect_name)


class Sql(Scope):
    """SQL that touches only listed tables, read-only by default.

    ``tables`` entries are unquoted identifiers: ``"orders"``, ``"schema.orders"``,
    ``"catalog.schema.orders"``, or ``"schema.*"`` / ``"catalog.schema.*"`` for every table
    of one schema. A reference matches an entry only when it is written with the same number
    of parts: ``"orders"`` allows ``FROM orders`` but not ``FROM public.orders``, and
    ``"public.orders"`` allows ``FROM public.orders`` but not ``FROM orders`` (an unqualified
    name resolves through the session's search path, which the guard cannot see). Both sides
    are normalized as the dialect does, so with Postgres ``ORDERS`` and ``"orders"`` match
    ``"orders"`` but ``"Orders"`` does not.

    - ``read_only=True``: every statement must be a query (``SELECT``, set operations,
      ``VALUES``, ``WITH ... SELECT``), with no write anywhere inside (a data-modifying CTE
      such as ``WITH x AS (DELETE ... RETURNING *) SELECT ...``, ``SELECT ... INTO``,
      ``SELECT ... FOR UPDATE``).
    - ``read_only=False`` also allows ``INSERT``, ``UPDATE``, ``DELETE``, ``MERGE``,
      ``TRUNCATE``, ``CREATE``/``DROP``/``ALTER`` of tables, views and indexes, and
      transaction control, still on listed tables only.
    - ``allow_multiple``: more than one statement (``;``-separated) per value.
    - ``dialect``: a sqlglot dialect name (``"postgres"``, ``"sqlite"``, ``"duckdb"``...).

    Always denied: text that does not parse or that sqlglot keeps as an opaque command
    (``EXPLAIN``, ``VACUUM``...), ``COPY``, ``LOAD DATA``, ``ATTACH``, ``PRAGMA``, ``SET``,
    ``USE``, ``GRANT``, ``CREATE FUNCTION`` and the like, and any call to a function in
    ``FILE_FUNCTIONS`` (``read_csv``, ``pg_read_file``, ``load_file``...). Read-only is judged
    on statements, not on what functions do: pair it with a read-only database role.

    Example::

        >>> scope = Sql(["orders", "customers"], dialect="postgres")
        >>> scope.contains("SELECT * FROM orders o JOIN customers c ON o.cid = c.id")
        True
        >>> scope.contains("SELECT * FROM orders JOIN secrets ON true")
        False
        >>> scope.contains("SELECT * FROM orders; DROP TABLE orders")
        False
    """

    kind = "sql"

    def __init__(
        self,
        tables: str | Iterable[str],
        *,
        read_only: bool = True,
        dialect: str | None = None,
        allow_multiple: bool = False,
    ) -> None:
        if dialect is not None and not isinstance(dialect, str):
            raise ScopeError(
                f"dialect must be a sqlglot dialect name or None, found {describe(dialect)}"
            )
        try:
            parsed_dialect = sqlglot.Dialect.get_or_raise(dialect)
        except ValueError as exc:
            raise ScopeError(f"dialect: {exc}") from None
        for setting, flag in (("read_only", read_only), ("allow_multiple", allow_multiple)):
            if not isinstance(flag, bool):
                raise ScopeError(f"{setting} must be a bool, found {describe(flag)}")
        entries = sorted({entry.strip() for entry in string_list(tables, "tables")})
        if not entries:
            raise ScopeError("tables must list at least one table, found none")
        exact: set[tuple[str, ...]] = set()
        schemas: set[tuple[str, ...]] = set()
        for entry in entries:
            parts = entry.split(".")
            wildcard = parts[-1] == "*"
            names = parts[:-1] if wildcard else parts
            if not 1 <= len(parts) <= 3 or (wildcard and not names):
                raise ScopeError(
                    f"tables: {preview(entry)} must be 'table', 'schema.table', "
                    "'catalog.schema.table' or 'schema.*'"
                )
            for name in names:
                if not name or not all(c.isalnum() or c in "_$-" for c in name):
                    raise ScopeError(
                        f"tables: {preview(entry)} has a part that is not a plain identifier "
                        f"({name!r}); write names unquoted, separated by '.'"
                    )
            normalized = self._normalize_entry(names, wildcard, parsed_dialect)
            (schemas if wildcard else exact).add(normalized)
        self._entries = entries
        self._exact = frozenset(exact)
        self._schemas = frozenset(schemas)
        self._read_only = read_only
        self._dialect = dialect
        self._allow_multiple = allow_multiple

    @staticmethod
    def _normalize_entry(
        names: list[str], wildcard: bool, dialect: sqlglot.Dialect
    ) -> tuple[str, ...]:
        # Build the Table node a query would hold, so dialects that normalize table names
        # differently from other identifiers (BigQuery) treat entries like references.
        full: list[str | None] = [*names, "_"] if wildcard else list(names)
        catalog, db, name = [None] * (3 - len(full)) + full
        assert name is not None
        parts = _table_parts(exp.table_(name, db=db, catalog=catalog, quoted=False), dialect)
        assert parts is not None  # built from plain identifiers
        return parts[:-1] if wildcard else parts

    def _table_allowed(self, parts: tuple[str, ...]) -> bool:
        return parts in self._exact or (len(parts) > 1 and parts[:-1] in self._schemas)

    def check(self, value: object) -> None:
        if not isinstance(value, str):
            raise ScopeViolation(
                f"expected SQL text (str), found {describe(value)}", unreadable=True
            )
        statements = _statements(value, self._dialect)
        if not statements:
            raise ScopeViolation(f"found no SQL statement in {preview(value)}", unreadable=True)
        if len(statements) > 1 and not self._allow_multiple:
            raise ScopeViolation(
                f"SQL {preview(value)} holds {len(statements)} statements; one is allowed "
                "(allow_multiple=False)"
            )
        for number, statement in enumerate(statements, 1):
            if len(statements) == 1:
                label = f"SQL {preview(value, 80)}"
            else:
                label = f"statement {number} of {len(statements)} ({statement.kind})"
            self._check_statement(statement, label)

    def _check_statement(self, st: _Statement, label: str) -> None:
        if st.problem:
            raise ScopeViolation(f"{label} {st.problem}", unreadable=True)
        if st.never:
            raise ScopeViolation(f"{label} uses {st.never}, which is never allowed")
        if st.file_function:
            raise ScopeViolation(
                f"{label} calls {st.file_function}(), which reads or writes files or other servers"
            )
        if self._read_only:
            if not st.is_query:
                raise ScopeViolation(f"{label} is a {st.kind}; only read-only queries are allowed")
            if st.writes:
                raise ScopeViolation(
                    f"{label} writes or locks data ({st.writes} inside a query); "
                    "only read-only queries are allowed"
                )
        elif not (st.is_query or st.writable):
            raise ScopeViolation(
                f"{label} is a {st.kind}; allowed: queries, INSERT, UPDATE, DELETE, "
                "MERGE, TRUNCATE and CREATE/DROP/ALTER of tables, views and indexes"
            )
        for parts, written in st.tables:
            if not self._table_allowed(parts):
                raise ScopeViolation(
                    f"{label} uses table {written}, which is not in allowed tables {self._entries}"
                )

    def spec(self) -> dict[str, Any]:
        return {
            "tables": list(self._entries),
            "read_only": self._read_only,
            "dialect": self._dialect,
            "allow_multiple": self._allow_multiple,
        }

    def within(self, other: Scope) -> bool:
        """Same dialect, no more statement kinds or statements, every table covered."""
        if not isinstance(other, Sql) or self._dialect != other._dialect:
            return False
        if other._read_only and not self._read_only:
            return False
        if self._allow_multiple and not other._allow_multiple:
            return False
        return all(other._table_allowed(parts) for parts in self._exact) and all(
            schema in other._schemas for schema in self._schemas
        )
