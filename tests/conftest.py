"""Shared fixtures: a real Redis-protocol server and a real Kafka-protocol broker.

Both are session-scoped and started lazily, so unit tests that request neither pay nothing:

* ``INSIGHTS_TEST_REDIS_URL`` / ``INSIGHTS_TEST_KAFKA_BOOTSTRAP`` point the suite at servers
  that already run (checked for reachability, never stopped by us). Careful: ``redis_client``
  runs FLUSHALL on that server before every test that uses it.
* Otherwise the embedded servers from :mod:`insights.devstack` (Valkey and an in-memory
  Tansu broker on 127.0.0.1) are started once per session and stopped at its end.

Tests that use any of these fixtures need a real server and belong under
``@pytest.mark.integration`` (or ``e2e``); ones that forget the marker get ``integration``
added at collection, so ``-m "not integration"`` always deselects them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from redis.asyncio import Redis

from insights import devstack

REDIS_URL_ENV = "INSIGHTS_TEST_REDIS_URL"
KAFKA_BOOTSTRAP_ENV = "INSIGHTS_TEST_KAFKA_BOOTSTRAP"

_SERVER_FIXTURES = frozenset({"redis_url", "kafka_bootstrap", "redis_client"})


def _testcontainers_hook(service: str) -> Iterator[str] | None:
    """TESTCONTAINERS HOOK: where containerised servers would plug in.

    Docker is not available on the project's machines (no engine behind the ``docker`` CLI), so
    this returns None and the embedded servers are used. Where ``docker info`` succeeds one
    could return a generator here that starts e.g. ``testcontainers.redis.RedisContainer`` or
    ``testcontainers.kafka.KafkaContainer``, yields its URL / bootstrap and stops it afterwards
    (``service`` is "redis" or "kafka"). Nothing in the suite depends on it.
    """
    del service
    return None


def _server(
    env: str,
    service: str,
    wait: Callable[[str], None],
    start: Callable[[], devstack.ManagedProcess],
) -> Iterator[str]:
    """An external server named by ``env`` (checked, never stopped), else an embedded one."""
    external = os.environ.get(env)
    if external:
        wait(external)
        yield external
        return
    containerised = _testcontainers_hook(service)
    if containerised is not None:
        yield from containerised
        return
    with start() as server:
        yield server.address


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://host:port/db`` of a Redis-protocol server for the whole session."""
    yield from _server(
        REDIS_URL_ENV,
        "redis",
        lambda url: devstack.wait_for_redis(url, timeout_s=10.0),
        devstack.start_redis,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """``host:port`` bootstrap of a Kafka-protocol broker for the whole session.

    The embedded broker is Tansu: use ``devstack.TANSU_PRODUCER_SETTINGS`` /
    ``TANSU_CONSUMER_SETTINGS`` and read the quirks in :mod:`insights.devstack`. Each test should
    create its own uniquely named topics (``streams.kafka_admin.create_topics``) and groups.
    """
    yield from _server(
        KAFKA_BOOTSTRAP_ENV,
        "kafka",
        lambda bootstrap: devstack.wait_for_kafka(bootstrap, timeout_s=30.0),
        devstack.start_broker,
    )


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    """An async client on an empty server (FLUSHALL before the test), closed afterwards.

    Responses are bytes (redis-py's default); create your own client for ``decode_responses``.
    """
    client = Redis.from_url(redis_url)
    try:
        await client.flushall()
        yield client
    finally:
        await client.aclose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if _SERVER_FIXTURES.intersection(fixtures) and not (
            item.get_closest_marker("integration") or item.get_closest_marker("e2e")
        ):
            item.add_marker(pytest.mark.integration)
