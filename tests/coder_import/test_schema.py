"""The schema check against a real PostgreSQL: Coder's tables as dump.sql creates them pass,
a read-only role with the README's grants is enough, and a schema the importer does not know
stops ``insights coder import`` with one line before anything is produced."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import psycopg
import pytest

from streams.coder_import.coder_schema import KNOWN_COLUMNS
from streams.coder_import.schema_check import SchemaError, check_schema
from tests.coder_import.pg import PgServer, add_constraints, create_coder_database

# The README's grants ("Use with an existing Coder deployment"), verbatim.
GRANTS = """
CREATE ROLE insights_reader LOGIN PASSWORD 'reader';
GRANT CONNECT ON DATABASE {db} TO insights_reader;
GRANT USAGE ON SCHEMA public TO insights_reader;
GRANT SELECT ON workspace_agent_stats, workspace_app_stats, workspace_apps, workspace_builds,
    workspace_build_parameters, template_version_parameters, template_versions, workspaces,
    users, templates, organizations TO insights_reader;
"""


async def _check(url: str) -> None:
    conn = await psycopg.AsyncConnection.connect(url)
    try:
        await check_schema(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def coder_db(postgres: PgServer) -> str:
    url = create_coder_database(postgres, "coder_schema")
    add_constraints(url)
    return url


def test_dump_sql_tables_are_the_known_schema(coder_db: str) -> None:
    with psycopg.connect(coder_db) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public'"
        ).fetchall()
    types = {(t, c): d for t, c, d in rows}
    for table, columns in KNOWN_COLUMNS.items():
        for column, data_type in columns.items():
            assert types.get((table, column)) == data_type, (table, column)
    asyncio.run(_check(coder_db))


def test_a_select_only_role_is_enough(postgres: PgServer, coder_db: str) -> None:
    with psycopg.connect(coder_db, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS insights_reader")
        conn.execute(GRANTS.format(db="coder_schema"))
    reader = postgres.url("coder_schema", user="insights_reader", password="reader")
    asyncio.run(_check(reader))
    with psycopg.connect(coder_db, autocommit=True) as conn:
        conn.execute("REVOKE SELECT ON workspace_apps FROM insights_reader")
    with pytest.raises(SchemaError, match=r"may not SELECT workspace_apps"):
        asyncio.run(_check(reader))


def test_an_unknown_schema_fails_with_one_line(postgres: PgServer) -> None:
    url = create_coder_database(postgres, "coder_changed")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE workspace_agent_stats DROP COLUMN session_count_ssh")
    done = subprocess.run(
        [sys.executable, "-m", "insights", "coder", "import", "--postgres-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        # nowhere to produce to: the check must stop the run before Kafka or Redis are used
        env={
            "PATH": "/usr/bin:/bin",
            "INSIGHTS_KAFKA_BOOTSTRAP": "127.0.0.1:1",
            "INSIGHTS_REDIS_URL": "redis://127.0.0.1:1/0",
        },
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "Error: Coder schema not recognised (Coder's coderd/database/dump.sql at 94187117111b):"
        " column workspace_agent_stats.session_count_ssh is missing"
    ]


def test_not_a_coder_database(postgres: PgServer) -> None:
    with psycopg.connect(postgres.url("postgres", password="postgres"), autocommit=True) as c:
        c.execute("DROP DATABASE IF EXISTS not_coder")
        c.execute("CREATE DATABASE not_coder")
    with pytest.raises(SchemaError, match="not a Coder database this importer knows"):
        asyncio.run(_check(postgres.url("not_coder", password="postgres")))
