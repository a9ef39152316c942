"""SQL statements, checked on every table they touch and every kind of statement they are.

Why this file is long: tables, statement kinds and functions are read from one parse tree
in one walk; the function allow-list itself is generated data in ``_sql_functions.py``.

The value is parsed with ``sqlglot`` in the scope's dialect. Each statement is classified
(query, data change, schema change, or something the guard will not run), and every table
reference in the tree is collected: in ``FROM`` and joins, subqueries, set operations, CTE
bodies, ``INSERT``/``UPDATE``/``DELETE`` targets. A reference to a CTE defined in an
enclosing ``WITH`` is not a table. Names are compared after the dialect's own identifier
normalization (Postgres folds unquoted names to lower case, Snowflake to upper case, ...).

Every function a statement calls must be known to be pure in the scope's dialect: an
allow-list generated from the database's own catalog (``_sql_functions.py``, rebuilt by
``scripts/gen_sql_functions.py``: PostgreSQL's ``pg_proc`` immutable or stable functions that
``PUBLIC`` may execute, SQLite's innocuous or deterministic built-ins). A deny list of
dangerous functions cannot be complete (``set_config``, ``nextval``, ``query_to_xml``,
``pg_notify``, advisory locks, ``lo_*``, ``fts3_tokenizer``...), an allow-list can.
Functions are judged by name: overloads of built-in names that a database administrator
created in the search path are not seen.

sqlglot reports text it cannot fully parse on its ``sqlglot`` logger, quoting the text; the
scope silences that logger while it parses, so an attacker's SQL (and a newline in it) never
reaches the log.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokenizer_core import Token, TokenType

from . import _sql_functions
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


_SYNTAX_FUNCTIONS = frozenset(
    {
        "cast", "try_cast", "coalesce", "nullif", "greatest", "least", "row", "array", "case",
        "exists", "grouping", "trim", "interval", "xmlelement", "xmlforest", "xmlparse",
        "xmlserialize", "xmlroot", "xmlexists", "xmlconcat", "xmlpi", "xmlattributes",
        "json_object", "json_array", "json_arrayagg", "json_objectagg", "json_scalar",
        "json_serialize", "json_query", "json_value", "json_exists", "collate", "iif",
    }
)  # fmt: skip
"""Constructs that read like calls but are SQL syntax (``CAST(x AS int)``, ``COALESCE``)."""

_OTHER_PURE = _sql_functions.POSTGRES_PURE & _sql_functions.SQLITE_PURE
_OTHER_IMPURE = _sql_functions.POSTGRES_IMPURE | _sql_functions.SQLITE_IMPURE


def _function_lists(dialect_name: str | None) -> tuple[frozenset[str], frozenset[str]]:
    """(pure, known impure) function names for a dialect.

    PostgreSQL and SQLite have lists generated from their catalogs; other dialects get the
    names both catalogs agree are pure (the standard core: ``count``, ``lower``,
    ``coalesce``...) and refuse every name either catalog knows to be impure.
    """
    name = (dialect_name or "").lower()
    if name in ("postgres", "postgresql"):
        return _sql_functions.POSTGRES_PURE, _sql_functions.POSTGRES_IMPURE
    if name == "sqlite":
        return _sql_functions.SQLITE_PURE, _sql_functions.SQLITE_IMPURE
    return _OTHER_PURE, _OTHER_IMPURE


class _QuietFilter(logging.Filter):
    """Drops sqlglot's records while this thread parses a scope value (they quote it)."""

    def __init__(self) -> None:
        super().__init__()
        self.local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "quiet", False)


_QUIET = _QuietFilter()
logging.getLogger("sqlglot").addFilter(_QUIET)


@contextlib.contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    before = getattr(_QUIET.local, "quiet", False)
    _QUIET.local.quiet = True
    try:
        yield
    finally:
        _QUIET.local.quiet = before


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
    functions: tuple[tuple[str, str], ...]  # (name as the server resolves it, as shown)
    qualified_function: str | None  # a call qualified with a schema other than pg_catalog
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


_GENERATED_HEADS: dict[tuple[type[exp.Func], str | None], str | None] = {}


def _called_name(func: exp.Func, dialect: sqlglot.Dialect, dialect_name: str | None) -> str | None:
    """The function name the server resolves for ``func``; ``None`` for syntax, not a call.

    An ``Anonymous`` node keeps the name as written (quoted names keep their case, unquoted
    ones fold as the dialect folds them). A node sqlglot knows (``Lower``, ``Rand``...) is
    named as sqlglot writes it back in the dialect (``RANDOM()`` for Postgres); a node it
    writes as an operator or keyword (``CURRENT_DATE``, ``a @> b``) is syntax.
    """
    if isinstance(func, exp.Anonymous):
        this = func.this
        if isinstance(this, exp.Identifier):
            return str(dialect.normalize_identifier(this.copy()).this)
        return str(this).lower()
    key = (type(func), dialect_name)
    if key not in _GENERATED_HEADS:
        text = func.sql(dialect=dialect)
        head = text.split("(", 1)[0]
        shown = head.strip().lower()
        _GENERATED_HEADS[key] = shown if "(" in text and shown.replace("_", "a").isalnum() else None
    return _GENERATED_HEADS[key]


def _impure_calls(tokens: list[Token], impure: frozenset[str]) -> str | None:
    """The first ``name(`` in the token stream naming a known impure function, if any.

    A second look, independent of the tree: whatever node sqlglot builds for ``nextval(...)``,
    the text calls ``nextval``.
    """
    for token, following in itertools.pairwise(tokens):
        if following.token_type is not TokenType.L_PAREN:
            continue
        if token.token_type is TokenType.IDENTIFIER:
            name = token.text
        elif token.token_type in (TokenType.STRING, TokenType.NUMBER):
            continue
        else:
            name = token.text.lower()
        if name in impure:
            return name
    return None


def _statement(
    tree: exp.Expression, dialect: sqlglot.Dialect, dialect_name: str | None
) -> _Statement:
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
    never = writes = file_function = problem = qualified = None
    tables: list[tuple[tuple[str, ...], str]] = []
    functions: dict[str, str] = {}
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
            called = _called_name(node, dialect, dialect_name)
            if called is not None and called not in functions:
                functions[called] = called
            parent = node.parent
            if (
                qualified is None
                and isinstance(parent, exp.Dot)
                and parent.expression is node
                and not (
                    isinstance(parent.this, exp.Column | exp.Identifier)
                    and parent.this.name.lower() == "pg_catalog"
                    and (dialect_name or "").lower() in ("postgres", "postgresql")
                )
            ):
                qualified = parent.sql(dialect=dialect)
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
        functions=tuple(functions.items()),
        qualified_function=qualified,
        problem=problem,
        tables=tuple(tables),
    )


def _statements_uncached(text: str, dialect_name: str | None) -> _Parsed:
    with _quiet_sqlglot():  # parse and generation warnings quote the attacker's text
        return _read_statements(text, dialect_name)


def _read_statements(text: str, dialect_name: str | None) -> _Parsed:
    dialect = sqlglot.Dialect.get_or_raise(dialect_name)
    try:
        tokens = dialect.tokenize(text)
        trees = dialect.parser().parse(tokens, text)
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScopeViolation(
            f"cannot parse SQL {preview(text)}: {first}", unreadable=True
        ) from None
    except RecursionError:
        raise ScopeViolation(
            f"cannot parse SQL {preview(text)}: nested too deeply", unreadable=True
        ) from None
    impure = _impure_calls(tokens, _function_lists(dialect_name)[1])
    try:
        statements = tuple(
            _statement(cast(exp.Expression, tree), dialect, dialect_name)
            for tree in trees
            # "SELECT 1; -- done": the comment after the last ';' is not a statement.
            if tree is not None and not isinstance(tree, exp.Semicolon)
        )
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:
        # A tree shape the walk does not expect: deny with a reason rather than crash.
        raise ScopeViolation(
            f"cannot check SQL {preview(text)}: unexpected syntax tree ({exc})", unreadable=True
        ) from None
    return _Parsed(statements, impure)


@dataclass(frozen=True, slots=True)
class _Parsed:
    statements: tuple[_Statement, ...]
    impure_call: str | None  # a known impure function called by name anywhere in the text


@functools.lru_cache(maxsize=1024)
def _statements_cached(text: str, dialect_name: str | None) -> _Parsed:
    return _statements_uncached(text, dialect_name)


def _statements(text: str, dialect_name: str | None) -> _Parsed:
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
    - ``functions``: names of further functions to allow (your own pure functions), beyond
      the built-ins known to be pure in the dialect. Written as the server resolves them:
      lower case for Postgres unless the function was created with a quoted name.

    Every function called must be known to be pure: a built-in that the dialect's catalog
    marks immutable or stable (PostgreSQL ``pg_proc.provolatile``; SQLite's innocuous or
    deterministic built-ins) and that any role may execute, or one listed in ``functions``.
    For dialects other than Postgres and SQLite, only the names both catalogs agree on (the
    standard core). Refused with a reason naming the function: ``set_config``, ``nextval``,
    ``query_to_xml``/``table_to_xml`` (they read a table named in a string), ``pg_notify``,
    advisory locks, ``lo_*``, ``dblink*``, ``fts3_tokenizer``, user-defined functions, and
    any call qualified with a schema (other than ``pg_catalog`` for Postgres).

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
        functions: str | Iterable[str] = (),
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
        extra = sorted(set(string_list(functions, "functions")))
        for name in extra:
            if not name or not all(c.isalnum() or c in "_$" for c in name):
                raise ScopeError(
                    f"functions: {preview(name)} is not a plain function name (letters, "
                    "digits, '_' or '$', no schema)"
                )
        self._functions = tuple(extra)
        pure, impure = _function_lists(dialect)
        self._pure = pure | frozenset(extra)
        self._impure = impure - frozenset(extra)

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
        parsed = _statements(value, self._dialect)
        statements = parsed.statements
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
        if parsed.impure_call is not None and parsed.impure_call not in self._pure:
            raise ScopeViolation(
                f"SQL {preview(value, 80)} calls {parsed.impure_call}(), which is not known to "
                "be pure (it may change data, settings or sequences, or reach beyond the "
                "allowed tables)"
            )

    def _check_statement(self, st: _Statement, label: str) -> None:
        if st.problem:
            raise ScopeViolation(f"{label} {st.problem}", unreadable=True)
        if st.never:
            raise ScopeViolation(f"{label} uses {st.never}, which is never allowed")
        if st.file_function:
            raise ScopeViolation(
                f"{label} calls {st.file_function}(), which reads or writes files or other servers"
            )
        if st.qualified_function:
            raise ScopeViolation(
                f"{label} calls {st.qualified_function}, a function qualified with a schema; "
                "only built-in functions known to be pure are allowed"
            )
        for name, shown in st.functions:
            if name not in self._pure and name not in _SYNTAX_FUNCTIONS:
                raise ScopeViolation(
                    f"{label} calls {shown}(), which is not known to be pure in dialect "
                    f"{self._dialect or 'sqlglot (generic)'}: it may change data, settings or "
                    "sequences, or read beyond the allowed tables; allowed: built-in pure "
                    "functions and functions listed in 'functions'"
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
                    f"{label} uses table {written}, which is not in allowed tables",
                    allowed=f"allowed tables {self._entries}",
                )

    def spec(self) -> dict[str, Any]:
        return {
            "tables": list(self._entries),
            "read_only": self._read_only,
            "dialect": self._dialect,
            "allow_multiple": self._allow_multiple,
            "functions": list(self._functions),
        }

    def within(self, other: Scope) -> bool:
        """Same dialect, no more statement kinds or statements, every table covered."""
        if not isinstance(other, Sql) or self._dialect != other._dialect:
            return False
        if other._read_only and not self._read_only:
            return False
        if self._allow_multiple and not other._allow_multiple:
            return False
        if not set(self._functions) <= set(other._functions):
            return False
        return all(other._table_allowed(parts) for parts in self._exact) and all(
            schema in other._schemas for schema in self._schemas
        )
