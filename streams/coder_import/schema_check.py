"""Is this a Coder database the importer knows, and may it read it?

Compares ``information_schema`` of the connected database's schema (``current_schema()``,
``public`` for Coder) with ``coder_schema.KNOWN_COLUMNS``: every table and column the
importer reads must be there with the type Coder's dump.sql gives it, and the role must be
allowed to ``SELECT`` each table.  Newer Coder releases add tables and columns; those are
fine.  Anything else is refused before a row is read, with one line that says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streams.coder_import.coder_schema import DUMP_SQL_COMMIT, KNOWN_COLUMNS

__all__ = ["SchemaError", "check_schema", "schema_problem"]

_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type
FROM information_schema.columns AS c
WHERE c.table_schema = current_schema() AND c.table_name = ANY(%(tables)s)
"""
_PRIVILEGES = """
SELECT t, has_table_privilege(quote_ident(current_schema()) || '.' || quote_ident(t), 'SELECT')
FROM unnest(%(tables)s::text[]) AS t
WHERE to_regclass(quote_ident(current_schema()) || '.' || quote_ident(t)) IS NOT NULL
"""


class SchemaError(Exception):
    """The database is not a Coder schema the importer knows, or may not be read."""


def schema_problem(
    found: Mapping[str, Mapping[str, str]], readable: Mapping[str, bool], role: str
) -> str | None:
    """The first problem, as one line, or None when the importer can read everything."""
    known = f"Coder's coderd/database/dump.sql at {DUMP_SQL_COMMIT[:12]}"
    # information_schema shows a role only the columns it may read: privileges come first.
    missing_tables = [t for t in KNOWN_COLUMNS if t not in readable]
    if missing_tables:
        names = ", ".join(missing_tables)
        return f"not a Coder database this importer knows ({known}): no table {names}"
    denied = [t for t in KNOWN_COLUMNS if not readable[t]]
    if denied:
        return (
            f"role {role!r} may not SELECT {', '.join(denied)} "
            "(README: Use with an existing Coder deployment, the grants)"
        )
    for table, columns in KNOWN_COLUMNS.items():
        have = found.get(table, {})
        for column, data_type in columns.items():
            if column not in have:
                return f"Coder schema not recognised ({known}): column {table}.{column} is missing"
            if have[column] != data_type:
                return (
                    f"Coder schema not recognised ({known}): {table}.{column} is "
                    f"{have[column]}, expected {data_type}"
                )
    return None


async def check_schema(conn: Any) -> None:
    """Raise ``SchemaError`` unless ``conn`` (a psycopg ``AsyncConnection``) is a Coder
    database the importer knows and may read."""
    tables = list(KNOWN_COLUMNS)
    found: dict[str, dict[str, str]] = {}
    async with conn.cursor() as cur:
        await cur.execute(_COLUMNS, {"tables": tables})
        for table, column, data_type in await cur.fetchall():
            found.setdefault(table, {})[column] = data_type
        await cur.execute(_PRIVILEGES, {"tables": tables})
        readable = {t: bool(ok) for t, ok in await cur.fetchall()}
        await cur.execute("SELECT current_user")
        row = await cur.fetchone()
    problem = schema_problem(found, readable, str(row[0]) if row else "?")
    if problem is not None:
        raise SchemaError(problem)
