"""The HTTP API in-process against the real Redis server: auth, scopes, errors, DAUs, latency.

The clock is injected, so "today" and the 61-day DAU window are deterministic.
"""

from __future__ import annotations

import math
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from aggregators.model import Event, LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from aggregators.store.keys import Keyspace
from api.app import create_app
from insights import devstack
from insights.settings import Settings
from streams.decoding import decode_message
from tests.golden_fixture import T1, T2, T3, build_events

KEYS = Keyspace()  # generation 0, the live one of a fresh store

pytestmark = pytest.mark.integration

TOKEN = "deploy-token"
T1_TOKEN = "t1-token"
NOW = datetime(2024, 3, 10, 2, 30, tzinfo=UTC)
U = [f"00000000-0000-0000-0000-0000000001{i:02d}" for i in range(10)]
WEEK = "start_time=2024-03-01T00:00:00Z&end_time=2024-03-08T00:00:00Z"
Client = TestClient  # type: ignore[type-arg]


def _settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, api_tokens=f"{TOKEN},{T1_TOKEN}={T1}")


async def _client(app: Any) -> Client:
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def api(redis_client: Redis, redis_url: str) -> AsyncIterator[tuple[Client, RollupStore]]:
    store = RollupStore(redis_client)
    client = await _client(create_app(_settings(redis_url), store=store, clock=lambda: NOW))
    yield client, store
    await client.close()


async def _get(client: Client, path: str, **headers: str) -> tuple[int, Any]:
    resp = await client.get(path, headers=headers)
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    return resp.status, await resp.json()


UNAUTHORIZED = {"message": "You must be logged in to access this resource."}
NOT_FOUND = {"message": "Resource not found or you do not have access to this resource"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Coder-Session-Token": ""}, 401),
        ({"Coder-Session-Token": "nope"}, 401),
        ({"Coder-Session-Token": TOKEN}, 200),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
        ({"Authorization": f"bearer {TOKEN}"}, 200),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": "Bearer "}, 401),
        # both present: the session token decides
        ({"Coder-Session-Token": TOKEN, "Authorization": "Bearer nope"}, 200),
        ({"Coder-Session-Token": "nope", "Authorization": f"Bearer {TOKEN}"}, 401),
        ({"Coder-Session-Token": "", "Authorization": f"Bearer {TOKEN}"}, 200),
    ],
)
async def test_authentication(
    api: tuple[Client, RollupStore], headers: dict[str, str], status: int
) -> None:
    client, _ = api
    got, body = await _get(client, f"/api/v2/insights/user-activity?{WEEK}", **headers)
    assert got == status
    if status == 401:
        assert body == UNAUTHORIZED


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("", 404, NOT_FOUND),  # empty template_ids = all templates: deployment scope only
        (f"&template_ids={T2}", 404, NOT_FOUND),
        (f"&template_ids={T1},{T2}", 404, NOT_FOUND),
        (f"&template_ids={T1}", 200, None),
        (f"&template_ids={T1},{T1.upper()}", 200, None),
    ],
)
@pytest.mark.parametrize("endpoint", ["templates", "user-activity", "user-latency"])
async def test_template_scope(
    api: tuple[Client, RollupStore], endpoint: str, query: str, status: int, body: Any
) -> None:
    client, _ = api
    got, got_body = await _get(
        client, f"/api/v2/insights/{endpoint}?{WEEK}{query}", **{"Coder-Session-Token": T1_TOKEN}
    )
    assert got == status
    if body is not None:
        assert got_body == body


async def test_validation_runs_before_the_scope_check(api: tuple[Client, RollupStore]) -> None:
    client, _ = api
    status, body = await _get(
        client, "/api/v2/insights/templates?start_time=x", **{"Coder-Session-Token": T1_TOKEN}
    )
    assert status == 400
    assert body["message"] == "Query parameters have invalid values."


async def test_daus_need_deployment_scope_before_parsing(api: tuple[Client, RollupStore]) -> None:
    client, _ = api
    status, body = await _get(
        client, "/api/v2/insights/daus?tz_offset=bad", **{"Coder-Session-Token": T1_TOKEN}
    )
    assert (status, body) == (403, {"message": "Forbidden."})
    status, body = await _get(
        client, "/api/v2/insights/daus?tz_offset=bad", **{"Coder-Session-Token": TOKEN}
    )
    assert status == 400
    assert body["validations"][0]["field"] == "tz_offset"
    status, body = await _get(
        client, "/api/v2/insights/daus?tz_offset=15", **{"Coder-Session-Token": TOKEN}
    )
    assert body == {
        "message": "Query parameter has invalid value.",
        "validations": [{"field": "tz_offset", "detail": "must be between -12 and 14"}],
    }


@pytest.fixture(params=["refused", "silent"])
def dead_store_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A port nobody listens on, or one that accepts and never answers."""
    if request.param == "refused":
        yield f"redis://127.0.0.1:{devstack.free_port()}/0"
        return
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


async def test_store_down_is_503_quickly_and_validation_still_works(dead_store_url: str) -> None:
    settings = _settings(dead_store_url)
    settings.store_timeout_s = 1.0
    client = await _client(create_app(settings, clock=lambda: NOW))  # the app's own pool
    try:
        auth = {"Coder-Session-Token": TOKEN}
        for path in (f"templates?{WEEK}", f"user-activity?{WEEK}", f"user-latency?{WEEK}", "daus"):
            started = time.monotonic()
            status, body = await _get(client, f"/api/v2/insights/{path}", **auth)
            assert time.monotonic() - started < 2 * settings.store_timeout_s + 0.5
            assert status == 503
            assert body["message"] == "Insights store unavailable."
            assert body["detail"] in ("store connection failed", "store timed out")
            port = dead_store_url.rsplit(":", 1)[1].split("/")[0]
            assert port not in body["detail"] and "127.0.0.1" not in body["detail"]
        assert (await _get(client, "/api/v2/insights/templates?x=1", **auth))[0] == 400
        assert (await _get(client, "/api/v2/insights/templates"))[0] == 401
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "127.0.0.1" not in await ready.text()  # unauthenticated: no internal address
        body = await ready.json()
        assert body["redis"] in ("unreachable", "timeout")
        assert (body["ready"], body["status"], body["workers"]) == (False, "unavailable", None)
        assert (await client.get("/healthz")).status == 200
    finally:
        await client.close()


def _active(user: str, at: datetime, template: str = T1) -> Event:
    us = int(at.timestamp() * 1_000_000)
    return SessionEvent(f"s-{user}-{us}", us, user, "u", "", template, "w", "a", 1, 0b1000)


@pytest.mark.parametrize("offset_h", [-3, 0, 9])
async def test_daus_count_true_local_days(api: tuple[Client, RollupStore], offset_h: int) -> None:
    client, store = api
    local_now = NOW + timedelta(hours=offset_h)  # wall clock at the offset, labelled UTC
    today = datetime(local_now.year, local_now.month, local_now.day, tzinfo=UTC)
    midnight_utc = today - timedelta(hours=offset_h)  # yesterday 24:00 local, in UTC
    events = [
        _active(U[0], midnight_utc - timedelta(minutes=5)),  # last minutes of yesterday
        _active(U[1], midnight_utc + timedelta(minutes=5)),  # first minutes of today
        _active(U[2], midnight_utc - timedelta(days=60, minutes=-5)),  # first day of the window
        _active(U[3], midnight_utc - timedelta(days=60, minutes=5)),  # just before the window
    ]
    await store.apply(plan_batch(events))
    status, body = await _get(
        client, f"/api/v2/insights/daus?tz_offset={offset_h}", **{"Coder-Session-Token": TOKEN}
    )
    assert status == 200
    entries = body["entries"]
    assert body["tz_hour_offset"] == offset_h
    assert len(entries) == 61
    assert entries[-1] == {"date": local_now.strftime("%Y-%m-%d"), "amount": 1}
    assert entries[-2]["amount"] == 1
    assert entries[0] == {"date": (today - timedelta(days=60)).strftime("%Y-%m-%d"), "amount": 1}
    assert sum(e["amount"] for e in entries) == 3


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "uniform": lambda r: r.uniform(5, 300),
    "lognormal": lambda r: r.lognormvariate(3.5, 0.8),
    "bimodal": lambda r: r.gauss(25, 3) if r.random() < 0.9 else r.gauss(700, 40),
    "constant": lambda r: 42.0,
}


@pytest.mark.parametrize("shape", sorted(DISTRIBUTIONS))
async def test_latency_quantiles_within_one_percent(
    api: tuple[Client, RollupStore], shape: str
) -> None:
    client, store = api
    rnd = random.Random(shape)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    samples: list[float] = []
    events: list[Event] = []
    for i in range(3000):
        at = start + timedelta(minutes=rnd.randrange(7 * 1440))
        value = max(0.1, DISTRIBUTIONS[shape](rnd))
        samples.append(value)
        template = (T1, T2)[i % 2]
        us = int(at.timestamp() * 1_000_000)
        events.append(LatencyEvent(f"l{i}", us, U[0], template, "w", "a", value))
    events.append(_active(U[1], start + timedelta(hours=1)))  # activity, no samples
    for i in range(0, len(events), 500):
        await store.apply(plan_batch(events[i : i + 500]))
    status, body = await _get(
        client,
        f"/api/v2/insights/user-latency?{WEEK}&percentiles=90,99.9",
        **{"Coder-Session-Token": TOKEN},
    )
    assert status == 200
    users = {u["user_id"]: u for u in body["report"]["users"]}
    assert users[U[1]]["latency_ms"] == {"p50": -1, "p90": -1, "p95": -1, "p99.9": -1}
    assert users[U[0]]["template_ids"] == [T1, T2]
    ordered = sorted(samples)
    got = users[U[0]]["latency_ms"]
    assert list(got) == ["p50", "p90", "p95", "p99.9"]
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99.9", 0.999)):
        ref = ordered[math.floor(q * (len(ordered) - 1))]
        assert abs(got[key] - ref) <= 0.01 * ref, (key, got[key], ref)


async def test_parameters_usage_groups_identical_definitions(
    api: tuple[Client, RollupStore],
) -> None:
    client, store = api
    events, rejected = decode_message(
        orjson.dumps(build_events("2024-03-02T10:00:00Z")), "builds", int(NOW.timestamp() * 1e6)
    )
    assert not rejected
    await store.apply(plan_batch(events))
    status, body = await _get(
        client,
        f"/api/v2/insights/templates?{WEEK}&sections=report",
        **{"Coder-Session-Token": TOKEN},
    )
    assert status == 200
    assert "interval_reports" not in body
    usage = body["report"]["parameters_usage"]
    summary = [
        (p["name"], p["template_ids"], [(v["value"], v["count"]) for v in p["values"]])
        for p in usage
    ]
    assert summary == [
        ("otherparam1", [T3], [("", 1), ("xyz", 1)]),
        ("param1", [T1, T2], [("", 1), ("ABC", 1), ("abc", 2)]),
        ("param2", [T1, T2], [("", 1), ("123", 3)]),
        ("param3", [T1, T2], [("", 1), ("BBB", 2), ("bbb", 1)]),
        ("param4", [T1], [("option1", 2), ("option2", 1)]),
    ]
    assert "options" not in usage[1]
    assert usage[4]["options"][0] == {
        "name": "option1",
        "description": "",
        "value": "option1",
        "icon": "",
    }
    assert list(usage[4]) == [
        "template_ids",
        "display_name",
        "name",
        "type",
        "description",
        "options",
        "values",
    ]


async def test_a_window_of_centuries_reads_only_days_with_data(
    api: tuple[Client, RollupStore],
) -> None:
    client, store = api
    await store.apply(plan_batch([_active(U[0], datetime(2024, 3, 2, 10, tzinfo=UTC))]))
    query = "start_time=1800-01-03T00:00:00Z&end_time=2024-03-08T00:00:00Z"
    auth = {"Coder-Session-Token": TOKEN}
    status, body = await _get(client, f"/api/v2/insights/templates?{query}&interval=week", **auth)
    assert status == 200
    assert body["report"]["active_users"] == 1
    intervals = body["interval_reports"]
    assert sum(i["active_users"] for i in intervals) == 1
    assert intervals[0]["start_time"] == "1800-01-03T00:00:00Z"
    status, body = await _get(client, f"/api/v2/insights/user-latency?{query}", **auth)
    assert status == 200
    assert [u["user_id"] for u in body["report"]["users"]] == [U[0]]


PLURAL = "Query parameters have invalid values."
SINGULAR = "Query parameter has invalid value."
D = "2024-03-03T00:00:00Z"  # a past midnight; NOW is 2024-03-10T02:30Z


@pytest.mark.parametrize(
    ("path", "status", "message", "field"),
    [  # insights-api.md 3.6, over HTTP (exact details are tabled in tests/unit/test_params.py)
        (f"templates?start_time={D}&end_time={D}", 200, None, None),
        (f"templates?{WEEK}", 200, None, None),
        (
            "templates?start_time=2024-03-10T00:00:00Z&end_time=2024-03-10T02:00:00Z",
            200,
            None,
            None,
        ),
        (
            "templates?start_time=2024-03-10T00:00:00Z&end_time=2024-03-10T03:00:00Z",
            200,
            None,
            None,
        ),
        (
            "templates?start_time=2024-03-01T00:00:00%2B03:00&end_time=2024-03-08T00:00:00%2B03:00",
            200,
            None,
            None,
        ),
        (
            "templates?start_time=2023-03-26T00:00:00%2B02:00&end_time=2023-03-27T00:00:00%2B03:00",
            200,
            None,
            None,
        ),
        (
            "templates?start_time=2024-03-09T00:00:00Z&end_time=2024-03-10T02:30:00Z",
            400,
            SINGULAR,
            "end_time",
        ),
        (
            "templates?start_time=2024-03-08T00:00:00Z&end_time=2024-03-09T23:00:00Z",
            400,
            SINGULAR,
            "end_time",
        ),
        (
            "templates?start_time=2023-07-10&end_time=2024-03-09T00:00:00Z",
            400,
            SINGULAR,
            "start_time",
        ),
        (
            "templates?start_time=0001-01-01T00:00:00Z&end_time=2024-03-09T00:00:00Z",
            400,
            SINGULAR,
            "start_time",
        ),
        (
            "templates?start_time=2024-03-09T00:00:00Z&end_time=2024-03-11T00:00:00Z",
            400,
            SINGULAR,
            "end_time",
        ),
        (
            "templates?start_time=2024-03-10T00:00:00Z&end_time=2024-03-09T00:00:00Z",
            400,
            SINGULAR,
            "end_time",
        ),
        (f"templates?{WEEK}&interval=invalid", 400, SINGULAR, "interval"),
        (
            "templates?start_time=2024-03-01T00:00:00Z&end_time=2024-03-06T00:00:00Z&interval=week",
            400,
            SINGULAR,
            None,
        ),
        (
            "templates?start_time=2024-03-04T00:00:00Z&end_time=2024-03-10T00:00:00Z&interval=week",
            200,
            None,
            None,
        ),
        (
            "templates?start_time=2024-02-25T00:00:00Z&end_time=2024-03-10T00:00:00Z&interval=week",
            200,
            None,
            None,
        ),
        (f"templates?{WEEK}&sections=invalid", 400, SINGULAR, "sections"),
        (f"templates?{WEEK}&foo=1", 400, PLURAL, "foo"),
        (f"templates?{WEEK}&start_time={D}", 400, PLURAL, "start_time"),
        ("templates?end_time=2024-03-08T00:00:00Z", 400, PLURAL, "start_time"),
        (f"templates?{WEEK}&template_ids=abc", 400, PLURAL, "template_ids"),
        (f"user-activity?{WEEK}&interval=day", 400, PLURAL, "interval"),
        (f"user-latency?{WEEK}&percentiles=100", 400, PLURAL, "percentiles"),
        (f"user-latency?{WEEK}&percentiles=99.9,90", 200, None, None),
        ("daus?tz_offset=+3", 400, PLURAL, "tz_offset"),
        ("daus?tz_offset=-12", 200, None, None),
        ("daus?tz_offset=-13", 400, SINGULAR, "tz_offset"),
    ],
)
async def test_validation_over_http(
    api: tuple[Client, RollupStore], path: str, status: int, message: str | None, field: str | None
) -> None:
    client, _ = api
    got, body = await _get(client, f"/api/v2/insights/{path}", **{"Coder-Session-Token": TOKEN})
    assert got == status, body
    if message is not None:
        assert body["message"] == message
        if field is None:
            assert body == {
                "message": message,
                "detail": "Last report interval should have at least 6 days.",
            }
        else:
            assert body["validations"][0]["field"] == field


async def test_unreadable_stored_parameters_are_the_specs_500(
    api: tuple[Client, RollupStore], redis_client: Redis
) -> None:

    client, store = api
    day = int(NOW.timestamp()) // 86_400 - 3
    await store.apply(plan_batch([_active(U[0], datetime.fromtimestamp(day * 86_400 + 3600, UTC))]))
    await redis_client.hset(KEYS.day_builds(day), f"{T1}|w|1", b'{"t":"1","i":"x","p":"not json"}')
    await redis_client.incr(KEYS.day_builds_version(day))
    status, body = await _get(
        client, f"/api/v2/insights/templates?{WEEK}", **{"Coder-Session-Token": TOKEN}
    )
    assert status == 500
    assert body == {
        "message": "Internal error converting template parameter insights.",
        "detail": "bad data",
    }


async def test_unexpected_failures_are_a_500_without_internals(
    api: tuple[Client, RollupStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, store = api
    await store.apply(plan_batch([_active(U[0], datetime(2024, 3, 2, 10, tzinfo=UTC))]))

    async def boom(*args: Any) -> Any:
        raise RuntimeError("internal detail of 10.1.2.3")

    monkeypatch.setattr(store.source, "read_days", boom)
    auth = {"Coder-Session-Token": TOKEN}
    status, body = await _get(client, f"/api/v2/insights/user-activity?{WEEK}", **auth)
    assert status == 500
    assert body == {"message": "Internal error fetching user activity.", "detail": "RuntimeError"}


async def test_unknown_routes_and_methods_answer_json(api: tuple[Client, RollupStore]) -> None:
    client, _ = api
    assert await _get(client, "/api/v2/insights/nope") == (404, {"message": "Route not found."})
    assert await _get(client, "/nothing/here") == (404, {"message": "Route not found."})
    response = await client.post("/api/v2/insights/daus")
    assert response.status == 405
    assert await response.json() == {"message": "Method not allowed."}
    assert "GET" in response.headers["Allow"]
