"""Readiness, component by component: Redis, the Kafka broker and the workers.

The API reads Redis only, but its answers are current only while workers consume, and
they can only consume while the broker answers. ``/readyz`` therefore names each part's
state (``api.views.readyz``); states are fixed words, never addresses or error texts.

The broker check is what every Kafka client does first: connect to a bootstrap server and
exchange ApiVersions, bounded by ``INSIGHTS_READINESS_BROKER_TIMEOUT_S``. It connects with
the workers' security options (``insights.kafka_client``): with ``SSL`` / ``SASL_SSL`` the
TLS handshake verifies the broker's certificate and host name, and with ``SASL_*`` the
SASL handshake and authentication follow ApiVersions, so ``ok`` means the broker accepted
these credentials. A broker that answers but refuses the TLS handshake, the mechanism or
the credentials is ``error``. The result is kept for :data:`BROKER_CACHE_S`, and
concurrent readiness requests share one check, so a probe storm costs the broker at most
one connection per bootstrap server per period. Without ``INSIGHTS_KAFKA_BOOTSTRAP`` the
broker's state is ``unknown`` and does not count.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    IllegalSaslStateError,
    KafkaTimeoutError,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from redis.exceptions import AuthenticationError, AuthorizationError, BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

OK = "ok"
UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
UNKNOWN = "unknown"  # broker: no bootstrap servers configured
# It answered, with an error: Redis loading or refusing the credentials, a TLS handshake
# refused (certificate verification), the broker refusing the SASL mechanism or credentials.
ERROR = "error"

BROKER_CACHE_S = 2.0
DEFAULT_KAFKA_PORT = 9092

log = structlog.get_logger("insights.api")

Check = Callable[[str, int, float], Awaitable[None]]

# The broker answered but refused us: TLS verification or SASL.
_REFUSED: tuple[type[BaseException], ...] = (
    ssl.SSLError,
    SaslAuthenticationFailed,
    AuthenticationFailedError,
    AuthenticationMethodNotSupported,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)


def store_state(exc: BaseException) -> str:
    """The state word for a failed Redis call."""
    # It answered, but with an error (redis-py raises these as ConnectionErrors).
    if isinstance(exc, BusyLoadingError | AuthenticationError | AuthorizationError):
        return ERROR
    if any(isinstance(e, ssl.SSLError) for e in (exc, exc.__cause__, exc.__context__)):
        return ERROR  # a TLS handshake refused (redis-py raises it as a ConnectionError)
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


async def kafka_api_versions(
    host: str, port: int, timeout_s: float, security: Mapping[str, Any] | None = None
) -> None:
    """Connect (TLS when configured), exchange ApiVersions and authenticate (SASL when
    configured) with one broker, then hang up. ``security``: aiokafka's keyword arguments
    from ``insights.kafka_client.kafka_client_kwargs``."""
    conn = await create_conn(
        host,
        port,
        client_id="insights-readiness",
        request_timeout_ms=int(timeout_s * 1000),
        **(security or {}),
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
    def from_bootstrap(
        cls, bootstrap: str, timeout_s: float, *, security: Mapping[str, Any] | None = None
    ) -> BrokerProbe:
        """``security``: the clients' TLS/SASL options (``kafka_client_kwargs``)."""
        check: Check = kafka_api_versions
        if security:
            check = functools.partial(kafka_api_versions, security=dict(security))
        return cls(bootstrap_servers(bootstrap), timeout_s, check=check)

    async def state(self) -> str:
        """``ok``, ``error``, ``unreachable``, ``timeout``, or ``unknown`` without servers."""
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
            state = next((s for s in (OK, ERROR, TIMEOUT) if s in states), UNREACHABLE)
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
        except _REFUSED as exc:
            return ERROR, f"{host}:{port}: refused: {_reason(exc)}"
        except Exception as exc:
            return UNREACHABLE, f"{host}:{port}: {_reason(exc)}"
        return OK, ""


def _reason(exc: BaseException) -> str:
    """One line for the log (aiokafka's errors name no credentials)."""
    text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
    return f"{type(exc).__name__}: {text}"
