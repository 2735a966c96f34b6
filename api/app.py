"""aiohttp application factory: typed app keys, resources in ``cleanup_ctx``."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from aiohttp import web

from aggregators.lru import MIB, Lru
from aggregators.reader import WindowReader
from aggregators.store import RollupStore
from api import coder_metrics, views
from api.auth import TokenRegistry
from api.context import (
    BROKER,
    CLOCK,
    ENCODED,
    LIVE,
    READER,
    SETTINGS,
    STORE,
    TOKENS,
    WIDE,
    WideReports,
)
from api.live import LiveHub, source_versions
from api.readiness import BrokerProbe
from api.request_id import request_id_middleware
from insights.kafka_client import kafka_client_kwargs
from insights.redis_client import RedisClient, create_redis
from insights.settings import Settings


def _utc_now() -> datetime:
    return datetime.now(UTC)


def redis_client(settings: Settings) -> RedisClient:
    """A pool whose every wait is bounded, so a dead store answers 503, never hangs (the
    credentials and TLS of ``INSIGHTS_REDIS_*`` apply, as to every client)."""
    return create_redis(
        settings,
        socket_timeout=settings.store_timeout_s,
        socket_connect_timeout=settings.store_timeout_s,
        retry_on_timeout=False,
        decode_responses=True,  # hiredis decodes replies in C; the store takes either
        health_check_interval=10,
    )


def create_app(
    settings: Settings,
    store: RollupStore | None = None,
    clock: Callable[[], datetime] = _utc_now,
    tokens: TokenRegistry | None = None,
) -> web.Application:
    app = web.Application(middlewares=[request_id_middleware, views.metrics_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[TOKENS] = tokens or TokenRegistry.from_settings(
        settings.api_tokens, settings.api_token_file
    )
    app[BROKER] = BrokerProbe.from_bootstrap(
        settings.kafka_bootstrap,
        settings.readiness_broker_timeout_s,
        # The check connects as the workers do: TLS and SASL included.
        security=kafka_client_kwargs(settings) if settings.kafka_bootstrap else None,
    )
    app.on_cleanup.append(_close_broker_probe)
    app[WIDE] = WideReports()
    app[LIVE] = LiveHub(lambda first, stop: source_versions(app[READER].source, first, stop), clock)
    app.on_shutdown.append(_close_live)  # an open event stream would hold shutdown up
    # An eighth of the cache budget for encoded answers, the rest for the reader's caches.
    app[ENCODED] = Lru(64, _cache_bytes(settings) // 8, lambda entry: len(entry[1]) + 100)
    if store is not None:
        app[STORE] = store
        app[READER] = _reader(settings, store)
    else:
        app.cleanup_ctx.append(_store_ctx)
    if settings.coder_metrics_refresh_s > 0:
        app.cleanup_ctx.append(coder_metrics.refresher_ctx)  # after the store's
    app.on_startup.append(_tune_gc)
    views.setup_routes(app)
    return app


def create_metrics_app(settings: Settings) -> web.Application:
    """``GET /metrics`` alone, behind the same token: a worker's endpoint
    (``INSIGHTS_WORKER_METRICS_PORT``)."""
    app = web.Application(middlewares=[request_id_middleware])
    app[SETTINGS] = settings
    app.router.add_get("/metrics", views.metrics_view)
    return app


def _cache_bytes(settings: Settings) -> int:
    return settings.api_cache_mb * MIB


def _reader(settings: Settings, store: RollupStore) -> WindowReader:
    return WindowReader(
        store.source,
        max_staleness_s=settings.read_staleness_ms / 1000,
        cache_bytes=_cache_bytes(settings) - _cache_bytes(settings) // 8,
    )


async def _tune_gc(app: web.Application) -> None:
    """A report allocates thousands of short-lived dicts; with the default gen-0
    threshold (700) that triggers full collections mid-request, which showed up
    as 2-3x tail latency (bench/bench_api.py).  Cycles are rare here, so collect
    less often."""
    gc.set_threshold(100_000, 50, 100)


async def _close_live(app: web.Application) -> None:
    await app[LIVE].close()


async def _close_broker_probe(app: web.Application) -> None:
    await app[BROKER].close()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    client = redis_client(app[SETTINGS])
    app[STORE] = store = RollupStore(client, day_buckets=app[SETTINGS].day_buckets)
    app[READER] = _reader(app[SETTINGS], store)
    yield
    await client.aclose()
