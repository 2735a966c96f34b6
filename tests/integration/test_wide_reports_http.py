"""Wide interval reports over HTTP: encoded in a thread, one at a time, the same bytes.

The threshold is injected (``WideReports(intervals=50)``) so a 120-day window is "wide";
the encoder is wrapped to block until the test lets it go, so every assertion is about
order and concurrency, never about how long anything took.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from aggregators.model import SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from api import views
from api.app import create_app
from api.context import WIDE, WideReports
from insights.settings import Settings
from tests.golden_fixture import T1

pytestmark = pytest.mark.integration

TOKEN = "deploy-token"
AUTH = {"Coder-Session-Token": TOKEN}
NOW = datetime(2024, 3, 10, 2, 30, tzinfo=UTC)
WIDE_URL = (
    "/api/v2/insights/templates?start_time=2023-11-01T00:00:00Z"
    "&end_time=2024-03-01T00:00:00Z&interval=day"
)  # 121 intervals
WAIT_S = 20.0  # only ever reached when the behaviour under test is broken
Client = TestClient  # type: ignore[type-arg]


class CountingSlot(asyncio.Semaphore):
    """The wide-report slot, counting the requests that asked for it."""

    def __init__(self) -> None:
        super().__init__(1)
        self.asked = 0

    async def acquire(self) -> bool:
        self.asked += 1
        return await super().acquire()


class HeldEncoder:
    """``views.encode_pieces`` that waits in its thread until released, noting the order."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.release = threading.Event()
        self.events: list[str] = []
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()
        self._real = views.encode_pieces

    def __call__(self, body: object) -> list[bytes]:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.events.append("encode started")
        self.started.release()
        assert self.release.wait(WAIT_S), "never released"
        try:
            return self._real(body)
        finally:
            with self._lock:
                self.running -= 1
                self.events.append("encode done")


@pytest.fixture
async def wide_api(
    redis_client: Redis, redis_url: str
) -> AsyncIterator[tuple[Client, CountingSlot]]:
    store = RollupStore(redis_client)
    events = [
        SessionEvent(f"s{d}", us, f"user-{d}", "u", "", T1, "w", "a", 1, 0b1000)
        for d in range(3)
        if (us := int(datetime(2024, 1, 10 + d, 9, tzinfo=UTC).timestamp() * 1_000_000))
    ]
    await store.apply(plan_batch(events))
    settings = Settings(redis_url=redis_url, api_tokens=TOKEN)
    app = create_app(settings, store=store, clock=lambda: NOW)
    slot = CountingSlot()
    app[WIDE] = WideReports(intervals=50, slot=slot)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, slot
    await client.close()


async def _started(encoder: HeldEncoder) -> None:
    assert await asyncio.to_thread(encoder.started.acquire, True, WAIT_S), "no encode started"


async def test_healthz_is_answered_while_a_wide_report_is_encoded(
    wide_api: tuple[Client, CountingSlot], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = wide_api
    encoder = HeldEncoder()
    monkeypatch.setattr(views, "encode_pieces", encoder)
    wide = asyncio.create_task(client.get(WIDE_URL, headers=AUTH))
    await _started(encoder)
    health = await client.get("/healthz")  # the encoder is still held in its thread
    assert health.status == 200
    encoder.events.append("healthz answered")
    encoder.release.set()
    resp = await wide
    assert resp.status == 200
    assert encoder.events == ["encode started", "healthz answered", "encode done"]
    body: Any = await resp.json()
    assert len(body["interval_reports"]) == 121
    assert sum(i["active_users"] for i in body["interval_reports"]) == 3


async def test_wide_reports_queue_for_one_slot_and_answer_the_usual_bytes(
    wide_api: tuple[Client, CountingSlot], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, slot = wide_api
    encoder = HeldEncoder()
    monkeypatch.setattr(views, "encode_pieces", encoder)
    first = asyncio.create_task(client.get(WIDE_URL, headers=AUTH))
    await _started(encoder)
    second = asyncio.create_task(client.get(WIDE_URL + "&template_ids=" + T1, headers=AUTH))
    async with asyncio.timeout(WAIT_S):
        while slot.asked < 2:  # the second request is waiting for the slot
            await asyncio.sleep(0.01)
    assert encoder.events == ["encode started"]
    encoder.release.set()
    answers = [await first, await second]
    assert [r.status for r in answers] == [200, 200]
    assert encoder.most == 1
    assert encoder.events == ["encode started", "encode done"] * 2
    wide_bytes = await answers[0].read()
    assert answers[0].headers["Content-Length"] == str(len(wide_bytes))

    monkeypatch.undo()
    client.server.app[WIDE].intervals = 10_000  # the same report, encoded on the loop
    usual = await client.get(WIDE_URL, headers=AUTH)
    assert await usual.read() == wide_bytes
    assert usual.headers["Content-Type"] == answers[0].headers["Content-Type"]
