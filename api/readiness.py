"""Readiness, component by component: Redis, the Kafka broker and the workers.

The API reads Redis only, but its answers are current only while workers consume, and
they can only consume while the broker answers. ``/readyz`` therefore names each part's
state (``api.views.readyz``); states are fixed words, never addresses or error texts.

The broker check is what every Kafka client does first: connect to a bootstrap server and
exchange ApiVersions, bounded by ``INSIGHTS_READINESS_BROKER_TIMEOUT_S``. Its result is
kept for :data:`BROKER_CACHE_S`, and concurrent readiness requests share one check, so a
probe storm costs the broker at most one connection per bootstrap server per period.
Without ``INSIGHTS_KAFKA_BOOTSTRAP`` the broker's state is ``unknown`` and does not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaTimeoutError, RequestTimedOutError
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

OK = "ok"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
UNKNOWN = "unknown"  # broker: no bootstrap servers configured
ERROR = "error"  # Redis: it answered with an error (loading, auth, ...)

BROKER_CACHE_S = 2.0
DEFAULT_KAFKA_PORT = 9092

log = structlog.get_logger("insights.api")

Check = Callable[[str, int, float], Awaitable[None]]


def store_state(exc: BaseException) -> str:
    """The state word for a failed Redis call."""
    if isinstance(exc, BusyLoadingError):  # answers, but with an error (a ConnectionError)
        return ERROR
    if isinstance(exc, TimeoutError | RedisTimeoutError):
        return TIMEOUT
    if isinstance(exc, ConnectionError | RedisConnectionError | OSError):
        return UNREACHABLE
    return ERROR


def bootstrap_servers(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port[,host:port]`` (port 9092 when left out, ``[v6]:port``) as pairs."""
    servers = []
    for raw in bootstrap.split(","):
        item = raw.strip().rpartition("://")[2]
        if not item:
            continue
        if item.startswith("["):  # [v6] or [v6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or str(DEFAULT_KAFKA_PORT)
        elif item.count(":") == 1:
            host, _, port = item.partition(":")
        else:
            host, port = item, str(DEFAULT_KAFKA_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"not a host:port bootstrap server: {item!r}")
        servers.append((host, int(port)))
    return servers


async def kafka_api_versions(host: str, port: int, timeout_s: float) -> None:
    """Connect and exchange ApiVersions with one broker, then hang up."""
    conn = await create_conn(
        host, port, client_id="insights-readiness", request_timeout_ms=int(timeout_s * 1000)
    )
    conn.close()


class BrokerProbe:
    """The broker's state as seen from this process, checked at most once per ``cache_s``."""

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        timeout_s: float = 1.0,
        cache_s: float = BROKER_CACHE_S,
        check: Check = kafka_api_versions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.servers = tuple(servers)
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._check = check
        self._clock = clock
        self._state = UNKNOWN
        self._checked_at: float | None = None
        self._running: asyncio.Task[str] | None = None

    @classmethod
    def from_bootstrap(cls, bootstrap: str, timeout_s: float) -> BrokerProbe:
        return cls(bootstrap_servers(bootstrap), timeout_s)

    async def state(self) -> str:
        """``ok``, ``unreachable``, ``timeout``, or ``unknown`` without servers."""
        if not self.servers:
            return UNKNOWN
        if self._checked_at is not None and self._clock() - self._checked_at < self._cache_s:
            return self._state
        if self._running is None:
            self._running = asyncio.create_task(self._refresh())
        # A caller that goes away (a client hung up) must not cancel the shared check.
        return await asyncio.shield(self._running)

    async def close(self) -> None:
        task, self._running = self._running, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh(self) -> str:
        try:
            outcomes = await asyncio.gather(*(self._check_one(h, p) for h, p in self.servers))
            states = [state for state, _ in outcomes]
            state = OK if OK in states else TIMEOUT if TIMEOUT in states else UNREACHABLE
            if state != self._state:
                reasons = [reason for _, reason in outcomes if reason]
                if state == OK:
                    log.info("broker reachable", previous=self._state)
                else:
                    log.warning("broker not reachable", state=state, reasons=reasons)
            self._state, self._checked_at = state, self._clock()
            return state
        finally:
            self._running = None

    async def _check_one(self, host: str, port: int) -> tuple[str, str]:
        """(state, reason for the log) of one bootstrap server."""
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._check(host, port, self._timeout_s)
        except (TimeoutError, KafkaTimeoutError, RequestTimedOutError):
            return TIMEOUT, f"{host}:{port}: no answer within {self._timeout_s:g}s"
        except Exception as exc:
            text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
            return UNREACHABLE, f"{host}:{port}: {type(exc).__name__}: {text}"
        return OK, ""
