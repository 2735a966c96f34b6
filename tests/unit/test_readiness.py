"""The broker check behind /readyz: bootstrap parsing, states, bounding, caching, sharing."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError
from redis.exceptions import BusyLoadingError, ClusterDownError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.readiness import (
    OK,
    TIMEOUT,
    UNKNOWN,
    UNREACHABLE,
    BrokerProbe,
    bootstrap_servers,
    store_state,
)


@pytest.mark.parametrize(
    ("bootstrap", "servers"),
    [
        ("", []),
        (" , ", []),
        ("127.0.0.1:19092", [("127.0.0.1", 19092)]),
        ("kafka-1:9093, kafka-2:9094", [("kafka-1", 9093), ("kafka-2", 9094)]),
        ("kafka", [("kafka", 9092)]),
        ("kafka://broker:29092", [("broker", 29092)]),
        ("[::1]:9093", [("::1", 9093)]),
        ("[::1]", [("::1", 9092)]),
    ],
)
def test_bootstrap_servers(bootstrap: str, servers: list[tuple[str, int]]) -> None:
    assert bootstrap_servers(bootstrap) == servers


@pytest.mark.parametrize("bootstrap", ["host:port", "host:0", "host:70000", ":9092", "[::1]:x"])
def test_bad_bootstrap_servers_are_refused(bootstrap: str) -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        bootstrap_servers(bootstrap)


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        (RedisConnectionError("Error 111 connecting to 10.0.0.1:6379"), UNREACHABLE),
        (ConnectionRefusedError(), UNREACHABLE),
        (OSError("no route"), UNREACHABLE),
        (RedisTimeoutError("Timeout reading from 10.0.0.1:6379"), TIMEOUT),
        (TimeoutError(), TIMEOUT),
        (BusyLoadingError("Redis is loading the dataset in memory"), "error"),
        (ResponseError("NOAUTH Authentication required."), "error"),
        # A cluster whose state is not ok (RollupStore.ping) answered, with an error.
        (ClusterDownError("cluster_state is not ok"), "error"),
    ],
)
def test_store_states_are_words(exc: BaseException, state: str) -> None:
    assert store_state(exc) == state


class FakeBroker:
    """Scripted outcome per bootstrap server; counts the checks."""

    def __init__(self, outcomes: dict[int, BaseException | float | None]) -> None:
        self.outcomes = outcomes
        self.calls: list[int] = []

    async def __call__(self, host: str, port: int, timeout_s: float) -> None:
        self.calls.append(port)
        outcome = self.outcomes[port]
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, float):
            await asyncio.sleep(outcome)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _probe(broker: FakeBroker, clock: Clock | None = None, timeout_s: float = 0.05) -> BrokerProbe:
    servers = [("127.0.0.1", port) for port in broker.outcomes]
    return BrokerProbe(servers, timeout_s, cache_s=2.0, check=broker, clock=clock or Clock())


async def test_no_bootstrap_servers_is_unknown_and_checks_nothing() -> None:
    broker = FakeBroker({})
    assert await _probe(broker).state() == UNKNOWN
    assert broker.calls == []


@pytest.mark.parametrize(
    ("outcomes", "state"),
    [
        ({1: None}, OK),
        ({1: ConnectionRefusedError()}, UNREACHABLE),
        ({1: KafkaConnectionError("closed")}, UNREACHABLE),
        ({1: EOFError()}, UNREACHABLE),
        ({1: IndexError("garbage frame")}, UNREACHABLE),
        ({1: 5.0}, TIMEOUT),  # hangs: cut by the probe's own deadline
        ({1: RequestTimedOutError()}, TIMEOUT),
        ({1: ConnectionRefusedError(), 2: None}, OK),  # any bootstrap server will do
        ({1: ConnectionRefusedError(), 2: 5.0}, TIMEOUT),
        ({1: ConnectionRefusedError(), 2: OSError()}, UNREACHABLE),
    ],
)
async def test_states(outcomes: dict[int, BaseException | float | None], state: str) -> None:
    broker = FakeBroker(outcomes)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await _probe(broker).state() == state
    assert loop.time() - started < 1.0  # servers are checked side by side, each bounded
    assert sorted(broker.calls) == sorted(outcomes)


async def test_results_are_cached_for_the_period() -> None:
    broker, clock = FakeBroker({1: None}), Clock()
    probe = _probe(broker, clock)
    assert await probe.state() == OK
    broker.outcomes[1] = ConnectionRefusedError()
    clock.now += 1.9
    assert await probe.state() == OK
    assert len(broker.calls) == 1
    clock.now += 0.2
    assert await probe.state() == UNREACHABLE
    assert len(broker.calls) == 2


async def test_concurrent_callers_share_one_check() -> None:
    broker = FakeBroker({1: 0.02, 2: ConnectionRefusedError()})
    probe = _probe(broker, timeout_s=1.0)
    states = await asyncio.gather(*(probe.state() for _ in range(50)))
    assert set(states) == {OK}
    assert sorted(broker.calls) == [1, 2]


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_check() -> None:
    broker = FakeBroker({1: 0.05})
    probe = _probe(broker, timeout_s=1.0)
    first = asyncio.create_task(probe.state())
    second = asyncio.create_task(probe.state())
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == OK
    assert broker.calls == [1]


async def test_close_cancels_a_running_check() -> None:
    broker = FakeBroker({1: 5.0})
    probe = _probe(broker, timeout_s=10.0)
    waiter = asyncio.create_task(probe.state())
    await asyncio.sleep(0.01)
    await probe.close()
    with pytest.raises(asyncio.CancelledError):
        await waiter
