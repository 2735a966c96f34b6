"""Shared fixtures: a real Redis-protocol server and a real Kafka-protocol broker.

Started lazily, once per session, so unit tests that request neither pay nothing:

* ``INSIGHTS_TEST_REDIS_URL`` / ``INSIGHTS_TEST_KAFKA_BOOTSTRAP`` point the suite at servers
  that already run (checked for reachability, never stopped by us). Careful: ``redis_client``
  runs FLUSHALL on that server before every test that uses it.
* Otherwise ``INSIGHTS_TEST_SERVERS`` (auto, the default | containers | embedded; see
  :mod:`tests.containers`) decides once per session: where Docker answers and testcontainers
  is installed, the integration and e2e modules get Apache Kafka and Redis containers; the fault
  suite, the modules of ``tests.containers.EMBEDDED_MODULES`` and every session without Docker
  get the embedded servers from :mod:`insights.devstack` (Valkey and an in-memory Tansu broker
  on 127.0.0.1). The report header names the choice.

Tests that use any of these fixtures need a real server and belong under
``@pytest.mark.integration`` (or ``e2e``); ones that forget the marker get ``integration``
added at collection, so ``-m "not integration"`` always deselects them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from redis.asyncio import Redis

from insights import devstack
from tests import containers

REDIS_URL_ENV = "INSIGHTS_TEST_REDIS_URL"
KAFKA_BOOTSTRAP_ENV = "INSIGHTS_TEST_KAFKA_BOOTSTRAP"

_SERVER_FIXTURES = frozenset(
    {
        "redis_url",
        "kafka_bootstrap",
        "redis_client",
        "embedded_redis_url",
        "embedded_kafka_bootstrap",
        "container_redis_url",
        "container_kafka_bootstrap",
    }
)

_CHOICE = pytest.StashKey[containers.Choice]()
_USED = pytest.StashKey[dict[str, str]]()  # service -> what served it, for the summary


def pytest_configure(config: pytest.Config) -> None:
    # Decided here, before any test runs, so that a forced but impossible choice stops the
    # session with a usage error instead of failing every server test one by one.
    try:
        config.stash[_CHOICE] = containers.choose(os.environ)
    except (ValueError, containers.ContainersUnavailable) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_USED] = {}


def _external_note() -> str:
    named = [env for env in (KAFKA_BOOTSTRAP_ENV, REDIS_URL_ENV) if os.environ.get(env)]
    return f" ({', '.join(named)} set: those servers are used instead)" if named else ""


def pytest_report_header(config: pytest.Config) -> str:
    return f"insights test servers: {config.stash[_CHOICE].describe()}{_external_note()}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # The header is not printed under -q (as `make test` runs), so CI logs get what was used.
    used = terminalreporter.config.stash.get(_USED, {})
    if used:
        served = ", ".join(f"{service}: {what}" for service, what in sorted(used.items()))
        terminalreporter.write_line(f"insights test servers used: {served}")


def _server(
    config: pytest.Config,
    env: str,
    service: str,
    wait: Callable[[str], None],
    start: Callable[[], AbstractContextManager[str]],
    kind: str,
) -> Iterator[str]:
    """An external server named by ``env`` (checked, never stopped), else one we start."""
    external = os.environ.get(env)
    if external:
        wait(external)
        config.stash[_USED][service] = f"external ({env})"
        yield external
        return
    with start() as address:
        used = config.stash[_USED]
        used[service] = f"{used[service]} + {kind}" if service in used else kind
        yield address


def _embedded(
    start: Callable[[], devstack.ManagedProcess],
) -> Callable[[], AbstractContextManager[str]]:
    @contextmanager
    def run() -> Iterator[str]:
        with start() as server:
            yield server.address

    return run


def _wait_redis(url: str) -> None:
    devstack.wait_for_redis(url, timeout_s=10.0)


def _wait_kafka(bootstrap: str) -> None:
    devstack.wait_for_kafka(bootstrap, timeout_s=30.0)


@pytest.fixture(scope="session")
def embedded_redis_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The session's embedded Redis-protocol server (or the external one)."""
    yield from _server(
        pytestconfig,
        REDIS_URL_ENV,
        "redis",
        _wait_redis,
        _embedded(devstack.start_redis),
        "embedded",
    )


@pytest.fixture(scope="session")
def embedded_kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """The session's embedded Tansu broker (or the external one)."""
    yield from _server(
        pytestconfig,
        KAFKA_BOOTSTRAP_ENV,
        "kafka",
        _wait_kafka,
        _embedded(devstack.start_broker),
        "embedded",
    )


@pytest.fixture(scope="session")
def container_redis_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The session's Redis container (or the external server)."""
    yield from _server(
        pytestconfig,
        REDIS_URL_ENV,
        "redis",
        _wait_redis,
        containers.redis_container,
        f"container {containers.REDIS_IMAGE}",
    )


@pytest.fixture(scope="session")
def container_kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    """The session's Apache Kafka container (or the external broker)."""
    yield from _server(
        pytestconfig,
        KAFKA_BOOTSTRAP_ENV,
        "kafka",
        _wait_kafka,
        containers.kafka_container,
        f"container {containers.KAFKA_IMAGE}",
    )


def _backing(request: pytest.FixtureRequest, service: str) -> str:
    """The session fixture serving ``service`` to the requesting module."""
    return f"{containers.source_for(request.config.stash[_CHOICE], request.path)}_{service}"


# Module-scoped (the servers behind them live for the session): the choice between a container
# and the embedded server depends on the requesting module.
@pytest.fixture(scope="module")
def redis_url(request: pytest.FixtureRequest) -> str:
    """``redis://host:port/db`` of a Redis-protocol server for the whole session."""
    url: str = request.getfixturevalue(_backing(request, "redis_url"))
    return url


@pytest.fixture(scope="module")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """``host:port`` bootstrap of a Kafka-protocol broker for the whole session.

    The embedded broker is Tansu: use ``devstack.TANSU_PRODUCER_SETTINGS`` /
    ``TANSU_CONSUMER_SETTINGS`` and read the quirks in :mod:`insights.devstack` (the settings
    work on Apache Kafka too; a consumer session under 6 s does not, Kafka's minimum). Each
    test should create its own uniquely named topics (``streams.kafka_admin.create_topics``)
    and groups.
    """
    bootstrap: str = request.getfixturevalue(_backing(request, "kafka_bootstrap"))
    return bootstrap


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
