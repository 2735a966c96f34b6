"""The Coder importer's tier: a real PostgreSQL 16 (the ``pgserver`` wheel), started and
stopped by the test session, with Coder's tables (``coder_schema``, from dump.sql); the
modules that need the broker, Redis, the worker and the API run them as tests/e2e does."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.coder_import.pg import PgServer, pg_bindir, running_postgres
from tests.e2e.stack import Stack, running_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
# Redis databases of this tier's stacks, from the top down (tests/e2e counts up from 1), and
# emptied first: a stack must never see another's data.
_db = itertools.count(15, -1)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("needs the pgserver wheel (the dev extra): PostgreSQL 16 binaries")
    with running_postgres(bindir) as server:
        yield server


@pytest.fixture(scope="module")
def coder_stack(kafka_bootstrap: str, redis_url: str) -> Iterator[Stack]:
    db = next(_db)
    with Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{db}") as client:
        client.flushdb()
    with running_stack(kafka_bootstrap, redis_url, db) as stack:
        yield stack


def importer_env(stack: Stack) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTS_")}
    return env | {
        "INSIGHTS_KAFKA_BOOTSTRAP": stack.bootstrap,
        "INSIGHTS_REDIS_URL": stack.redis_url,
        "INSIGHTS_TOPIC_PREFIX": stack.prefix,
        "INSIGHTS_TOPIC_PARTITIONS": "3",
        "INSIGHTS_LOG_FORMAT": "console",
    }


def importer_argv(url: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "insights", "coder", "import", "--postgres-url", url, *extra]


def run_importer(
    stack: Stack, url: str, *extra: str, timeout_s: float = 120.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        importer_argv(url, *extra),
        env=importer_env(stack),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/coder_import/" not in str(item.fspath):
            continue
        fixtures = getattr(item, "fixturenames", ())
        if "coder_stack" in fixtures:
            item.add_marker(pytest.mark.e2e)
        elif "postgres" in fixtures:
            item.add_marker(pytest.mark.integration)
