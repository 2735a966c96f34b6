"""Every way the service connects to Redis, driven against one server.

:func:`exercise_every_client` goes through each client the service builds from settings:
the store (what the worker writes with), the API app's own pool (a report and /readyz),
``insights worker-alive``'s check of a worker heartbeat and the maintenance commands'
client (rebuild / replay). The tests of Redis passwords, ACL users and TLS call it with
the settings under test.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from aggregators.model import SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from aggregators.store.heartbeats import WorkerBeat
from api.app import create_app
from api.server import ApiRunner
from insights import maintenance, runtime
from insights.redis_client import create_redis
from insights.settings import Settings
from tests.golden_fixture import T1

TOKEN = "deployment-token-7c2e91d04a"
USER = "00000000-0000-0000-0000-0000000000a1"
HOST = "security-test-host"
ACTIVITY = (
    "/api/v2/insights/user-activity?start_time=2024-03-01T00:00:00Z&end_time=2024-03-08T00:00:00Z"
)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` behind the production runner on 127.0.0.1; yields its base URL."""
    runner = ApiRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def get(base: str, path: str) -> tuple[int, Any, bytes]:
    headers = {"Coder-Session-Token": TOKEN}
    async with aiohttp.ClientSession() as session, session.get(base + path, headers=headers) as r:
        raw = await r.read()
        body = orjson.loads(raw) if r.content_type == "application/json" else None
        return r.status, body, raw


def api_settings(redis_url: str, **values: Any) -> Settings:
    return Settings(redis_url=redis_url, api_tokens=TOKEN, store_timeout_s=2.0, **values)


async def exercise_every_client(settings: Settings) -> None:
    """Write an event and a worker heartbeat, then read them back through every client
    (idempotent: a server may be exercised more than once; only ``cis:*`` keys are used,
    so a user restricted to those keys and without ``@dangerous`` commands will do)."""
    redis = create_redis(settings)
    try:
        store = RollupStore(redis)
        at_us = int(datetime(2024, 3, 2, 10, tzinfo=UTC).timestamp() * 1_000_000)
        await store.apply(
            plan_batch([SessionEvent("s-1", at_us, USER, "u", "", T1, "w", "a", 1, 0b1000)])
        )
        now_ms = time.time_ns() // 1_000_000
        await store.heartbeats.beat(WorkerBeat(f"{HOST}:1:a", now_ms, ("insights.sessions:0",)))
    finally:
        await redis.aclose()

    async with serving(create_app(settings)) as base:  # the app builds its own pool
        status, body, _ = await get(base, ACTIVITY)
        assert status == 200, body
        assert [u["user_id"] for u in body["report"]["users"]] == [USER]
        status, body, _ = await get(base, "/readyz")
        assert (status, body["redis"], body["workers"]) == (200, "ok", 1), body

    assert await runtime.host_worker_alive(settings, HOST, 30.0)
    assert await maintenance._with_redis(settings, lambda r: r.ping())
