"""The dashboard's server side over HTTP against the real Redis server: the page and its files,
the live event stream (auth, a write seen as a changed day) and the ``tz`` extension."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from aggregators.model import SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from api.app import create_app
from insights.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "deploy-token"
T1 = "10000000-0000-4000-8000-000000000001"
U1 = "10000000-0000-4000-8000-0000000000a1"
NOW = datetime(2026, 3, 31, 10, 30, tzinfo=UTC)  # two days after Berlin's spring change
Client = TestClient  # type: ignore[type-arg]


@pytest.fixture
async def api(redis_client: Redis, redis_url: str) -> AsyncIterator[tuple[Client, RollupStore]]:
    store = RollupStore(redis_client)
    settings = Settings(redis_url=redis_url, api_tokens=TOKEN)
    client = TestClient(TestServer(create_app(settings, store=store, clock=lambda: NOW)))
    await client.start_server()
    yield client, store
    await client.close()


def _session(at: datetime, n: int) -> SessionEvent:
    us = int(at.timestamp() * 1_000_000)
    return SessionEvent(f"live-{n}", us, U1, "alice", "", T1, "w1", "a1", 1, 0b10)


async def test_the_page_and_its_files(api: tuple[Client, RollupStore]) -> None:
    client, _ = api
    page = await client.get("/")
    assert page.status == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "static/dashboard.js" in await page.text()
    script = await client.get("/static/dashboard.js")
    assert script.status == 200
    assert "javascript" in script.headers["Content-Type"]
    assert (await client.get("/static/vendor/LICENSE")).status == 200
    for path in ("/static/", "/static/nope.js", "/static/../views.py", "/static/%2e%2e/app.py"):
        response = await client.get(path)
        assert response.status in (403, 404), path
        assert (await response.json())["message"]


@pytest.mark.parametrize(
    ("query", "headers", "cookies", "status"),
    [
        ("", {}, {}, 401),
        ("?coder_session_token=nope", {}, {}, 401),
        (f"?coder_session_token={TOKEN}&x=1", {}, {}, 400),
        ("", {"Coder-Session-Token": TOKEN}, {}, 200),
        (f"?coder_session_token={TOKEN}", {}, {}, 200),
        ("", {}, {"coder_session_token": TOKEN}, 200),
    ],
)
async def test_live_authentication(
    api: tuple[Client, RollupStore],
    query: str,
    headers: dict[str, str],
    cookies: dict[str, str],
    status: int,
) -> None:
    client, _ = api
    client.session.cookie_jar.update_cookies(cookies)
    response = await client.get("/api/v2/insights/live" + query, headers=headers)
    assert response.status == status
    if status == 200:
        assert response.headers["Content-Type"] == "text/event-stream"
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)
        assert first.startswith(b"retry: 2000\nevent: changed\ndata: ")
    else:
        assert (await response.json())["message"]
    response.close()


async def test_a_write_is_announced_as_its_day(api: tuple[Client, RollupStore]) -> None:
    client, store = api
    await store.apply(plan_batch([_session(datetime(2026, 3, 30, 9, 0, tzinfo=UTC), 0)]))
    response = await client.get(f"/api/v2/insights/live?coder_session_token={TOKEN}")
    await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)  # "live", no days
    await asyncio.sleep(1.2)  # the hub has its first versions: the next write is a change
    await store.apply(plan_batch([_session(datetime(2026, 3, 29, 23, 0, tzinfo=UTC), 1)]))
    message = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
    while message.startswith(b":"):  # keep-alive comments
        message = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
    data = orjson.loads(message.split(b"data: ", 1)[1])
    assert data["days"] == ["2026-03-29"]
    response.close()


async def _json(client: Client, path: str) -> tuple[int, Any]:
    response = await client.get(path, headers={"Coder-Session-Token": TOKEN})
    return response.status, await response.json()


async def test_daus_in_a_zone(api: tuple[Client, RollupStore]) -> None:
    client, store = api
    # 2026-03-29 22:30Z is 00:30 on the 30th in Berlin (CEST since 01:00Z that day).
    await store.apply(plan_batch([_session(datetime(2026, 3, 29, 22, 30, tzinfo=UTC), 0)]))
    status, body = await _json(client, "/api/v2/insights/daus?tz=Europe/Berlin")
    assert status == 200
    assert body["tz_hour_offset"] == 2
    entries = {e["date"]: e["amount"] for e in body["entries"]}
    assert len(body["entries"]) == 61
    assert body["entries"][-1]["date"] == "2026-03-31"
    assert entries["2026-03-30"] == 1 and entries["2026-03-29"] == 0
    _, offset_body = await _json(client, "/api/v2/insights/daus?tz_offset=1")
    offset_entries = {e["date"]: e["amount"] for e in offset_body["entries"]}
    assert offset_entries["2026-03-29"] == 1  # 23:30 at +01:00: the fixed offset's answer


async def test_tz_errors(api: tuple[Client, RollupStore]) -> None:
    client, _ = api
    status, body = await _json(client, "/api/v2/insights/daus?tz=Europe/Berlin&tz_offset=2")
    assert status == 400
    assert body["validations"] == [{"field": "tz", "detail": 'cannot be combined with "tz_offset"'}]
    status, body = await _json(client, "/api/v2/insights/daus?tz=Mars/Base")
    assert (status, body["validations"][0]["detail"]) == (400, 'unknown time zone "Mars/Base"')


async def test_week_intervals_split_at_the_zones_midnights(
    api: tuple[Client, RollupStore],
) -> None:
    client, store = api
    await store.apply(plan_batch([_session(datetime(2026, 3, 29, 22, 30, tzinfo=UTC), 0)]))
    window = "start_time=2026-03-23T00:00:00%2B01:00&end_time=2026-03-31T00:00:00%2B02:00"
    status, body = await _json(
        client, f"/api/v2/insights/templates?{window}&interval=day&tz=Europe/Berlin"
    )
    assert status == 200
    days = body["interval_reports"]
    assert len(days) == 8
    assert days[5]["start_time"] == "2026-03-28T00:00:00+01:00"
    assert days[6]["start_time"] == "2026-03-29T00:00:00+01:00"
    assert days[6]["end_time"] == "2026-03-30T00:00:00+02:00"  # a 23-hour day
    assert [d["active_users"] for d in days] == [0, 0, 0, 0, 0, 0, 0, 1]
    status, plain = await _json(client, f"/api/v2/insights/templates?{window}&interval=day")
    assert status == 200
    assert plain["interval_reports"][7]["start_time"] == "2026-03-30T00:00:00+01:00"


async def test_template_names(redis_client: Redis, redis_url: str) -> None:
    store = RollupStore(redis_client)
    t2 = "10000000-0000-4000-8000-000000000002"
    settings = Settings(redis_url=redis_url, api_tokens=f"{TOKEN},scoped={t2}")
    async with TestClient(TestServer(create_app(settings, store=store, clock=lambda: NOW))) as c:
        at = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
        named = _session(at, 0)._replace(template_name="docker", organization_name="coder")
        other = _session(at, 1)._replace(template_id=t2, template_name="aws", organization_name="x")
        await store.apply(plan_batch([named, other]))
        path = "/api/v2/insights/template-names"
        response = await c.get(path, headers={"Coder-Session-Token": TOKEN})
        assert await response.json() == {
            "templates": [
                {"template_id": t2, "name": "aws", "organization_name": "x"},
                {"template_id": T1, "name": "docker", "organization_name": "coder"},
            ]
        }
        response = await c.get(path, headers={"Coder-Session-Token": "scoped"})
        assert [t["name"] for t in (await response.json())["templates"]] == ["aws"]
        assert (await c.get(path)).status == 401
        response = await c.get(path + "?x=1", headers={"Coder-Session-Token": TOKEN})
        assert response.status == 400
