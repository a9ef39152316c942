"""Regenerate ``guardrails_plugin/scopes/_sql_functions.py`` from the databases' own catalogs.

Run (needs PostgreSQL server binaries, as the tests do, and psycopg):

    python scripts/gen_sql_functions.py            # starts a throwaway cluster on loopback
    python scripts/gen_sql_functions.py --dsn postgresql://postgres@127.0.0.1:5432/postgres

PostgreSQL: every function, aggregate and window function in ``pg_catalog`` is read from
``pg_proc``. A *name* is pure when every overload of it is ``IMMUTABLE`` or ``STABLE``
(``provolatile`` ``'i'``/``'s'``), executable by ``PUBLIC`` (``has_function_privilege``), and
not one of the few stable functions that read a relation named in a string or run SQL given
as text (``table_to_xml`` and the other ``*_to_xml*`` exports; see ``PG_READS_BY_NAME``). A
handful of volatile functions without side effects (``random``, ``clock_timestamp``...) are
added by name (``PG_HARMLESS_VOLATILE``). Every other catalog name is recorded as impure, so a
call to it is refused even if sqlglot parses it into an unexpected node.

SQLite: ``PRAGMA function_list`` of the linked library: built-in functions flagged
``SQLITE_INNOCUOUS`` (SQLite's own "no side effects, safe in triggers and views") or
``SQLITE_DETERMINISTIC``, and not ``SQLITE_DIRECTONLY``, are pure, except ``sqlite_log`` (writes to the error log); everything else it lists is impure
(``fts3_tokenizer``, ``load_extension``, ``fts5``...).
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "guardrails_plugin" / "scopes" / "_sql_functions.py"

PG_READS_BY_NAME = frozenset(
    {
        "table_to_xml", "table_to_xmlschema", "table_to_xml_and_xmlschema",
        "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema",
        "cursor_to_xml", "cursor_to_xmlschema", "schema_to_xml", "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema", "database_to_xml", "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        # Stable, but assign a transaction id (a write to the server's state).
        "txid_current", "pg_current_xact_id",
    }
)  # fmt: skip
PG_HARMLESS_VOLATILE = frozenset(
    {"random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid"}
)
SQLITE_DETERMINISTIC = 0x800
SQLITE_DIRECTONLY = 0x80000
SQLITE_INNOCUOUS = 0x200000
SQLITE_EXCLUDED = frozenset({"sqlite_log"})

_CATALOG_QUERY = """
SELECT p.proname,
       bool_and(p.provolatile IN ('i', 's')
                AND p.prokind IN ('f', 'a', 'w')
                AND has_function_privilege('public', p.oid, 'EXECUTE')) AS pure,
       bool_and(p.prokind IN ('f', 'a', 'w')
                AND has_function_privilege('public', p.oid, 'EXECUTE')) AS callable
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pg_catalog'
GROUP BY p.proname
"""


@contextlib.contextmanager
def _server(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from postgres_server import postgres_server

    with postgres_server() as url:
        yield url


def postgres_names(dsn: str | None) -> tuple[str, frozenset[str], frozenset[str]]:
    import psycopg

    with _server(dsn) as url, psycopg.connect(url) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        rows = conn.execute(_CATALOG_QUERY).fetchall()
    pure = {name for name, ok, _ in rows if ok and name not in PG_READS_BY_NAME}
    pure |= {name for name, _, callable_ in rows if callable_ and name in PG_HARMLESS_VOLATILE}
    impure = {name for name, _, _ in rows} - pure
    return version, frozenset(pure), frozenset(impure)


def sqlite_names() -> tuple[str, frozenset[str], frozenset[str]]:
    conn = sqlite3.connect(":memory:")
    rows = conn.execute("PRAGMA function_list").fetchall()
    conn.close()
    by_name: dict[str, bool] = {}
    for name, builtin, _type, _enc, _narg, flags in rows:
        ok = (
            bool(builtin)
            and bool(flags & (SQLITE_INNOCUOUS | SQLITE_DETERMINISTIC))
            and not flags & SQLITE_DIRECTONLY
            and name not in SQLITE_EXCLUDED
        )
        by_name[name] = by_name.get(name, True) and ok
    pure = frozenset(n for n, ok in by_name.items() if ok)
    return sqlite3.sqlite_version, pure, frozenset(by_name) - pure


def _frozenset(name: str, items: frozenset[str]) -> str:
    lines = [f"{name}: frozenset[str] = frozenset(", "    {"]
    row = "       "
    for item in sorted(items):
        piece = f" {item!r},"
        if len(row) + len(piece) > 96:
            lines.append(row)
            row = "       "
        row += piece
    lines.append(row)
    lines.append("    }")
    lines.append(")  # fmt: skip")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="a PostgreSQL server to read (default: start one)")
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args()
    pg_version, pg_pure, pg_impure = postgres_names(opts.dsn)
    lite_version, lite_pure, lite_impure = sqlite_names()
    text = f'''"""Functions known to be pure, per SQL dialect: generated, do not edit.

Generated by ``python scripts/gen_sql_functions.py`` from PostgreSQL {pg_version}'s catalog
(``pg_proc``: immutable or stable, executable by PUBLIC, minus the functions that read a
relation named in a string or run SQL text) and SQLite {lite_version}'s ``PRAGMA
function_list`` (built-in, innocuous or deterministic, not direct-only). ``*_IMPURE`` holds every other name the catalog
lists: a call to one is refused whatever node sqlglot parses it into.
"""

{_frozenset("POSTGRES_PURE", pg_pure)}

{_frozenset("POSTGRES_IMPURE", pg_impure)}

{_frozenset("SQLITE_PURE", lite_pure)}

{_frozenset("SQLITE_IMPURE", lite_impure)}
'''
    opts.out.write_text(text)
    print(
        f"wrote {opts.out}: postgres {pg_version} {len(pg_pure)} pure / {len(pg_impure)} impure, "
        f"sqlite {lite_version} {len(lite_pure)} pure / {len(lite_impure)} impure"
    )


if __name__ == "__main__":
    main()
