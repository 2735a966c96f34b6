"""The live app against its own OpenAPI document, with schemathesis.

The aiohttp app runs on a real socket (127.0.0.1, free port) in a background thread with its
own event loop, backed by the session's Redis-protocol server and seeded with the golden
fixture (plus builds, latency samples and recent activity, so 200 answers carry real data).
Schemathesis generates requests from :func:`api.openapi.openapi_document` and checks every
answer: no 5xx, a documented status code and content type, a body that matches its schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from redis.asyncio import Redis
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from api.app import create_app
from api.openapi import openapi_document
from insights.settings import Settings
from streams.decoding import decode_message
from tests import golden_fixture as golden

pytestmark = pytest.mark.integration

TOKEN = "testtoken"
AUTH = {"Coder-Session-Token": TOKEN}
CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
T = TypeVar("T")


def _checks(case: schemathesis.Case[Any]) -> list[CheckFunction]:
    """``/readyz`` documents its 503 (no worker heartbeat exists in these tests)."""
    return CHECKS[1:] if case.path == "/readyz" else CHECKS


schema = schemathesis.openapi.from_dict(openapi_document())


def _rfc(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seed_events(now: datetime) -> dict[str, list[dict[str, Any]]]:
    """The golden fixture, with its builds inside 2023-08, latency samples and recent activity."""
    events = golden.all_events()
    events["builds"] = golden.build_events(loaded_at="2023-08-16T12:00:00Z")
    (session, *_), (app, *_) = events["sessions"], events["app_usage"]
    base = {k: session[k] for k in ("user_id", "template_id", "workspace_id", "agent_id")}
    latency = []
    for i in range(40):
        at = datetime(2023, 8, 15, tzinfo=UTC) + timedelta(minutes=3 * i)
        latency.append({"id": f"lat-{i}", "time": _rfc(at), **base, "latency_ms": 10.0 + i * 7.5})
    hour = now.replace(minute=0, second=0, microsecond=0)
    for days in (0, 1, 3, 30):
        at = hour - timedelta(days=days)
        events["sessions"].append({**session, "id": f"recent-s-{days}", "time": _rfc(at)})
        start, end = at - timedelta(minutes=20), at - timedelta(minutes=5)
        events["app_usage"].append(
            {
                **app,
                "id": f"recent-a-{days}",
                "session_id": f"00000000-0000-4000-8000-{days:012d}",
                "time": _rfc(end),
                "started_at": _rfc(start),
                "ended_at": _rfc(end),
            }
        )
        latency.append({"id": f"recent-l-{days}", "time": _rfc(at), **base, "latency_ms": 42.5})
    events["latency"] = latency
    return events


async def _seed(store: RollupStore, now: datetime) -> None:
    now_us = int(now.timestamp() * 1_000_000)
    for kind, batch in _seed_events(now).items():
        decoded, rejected = decode_message(orjson.dumps(batch), kind, now_us)
        assert not rejected, rejected[:3]
        await store.apply(plan_batch(decoded))


class LiveServer:
    """The app on 127.0.0.1 in a thread with its own event loop (the test itself is sync)."""

    def __init__(self, redis_url: str) -> None:
        self._redis_url = redis_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-app")
        self._runner: web.AppRunner | None = None
        self._redis: Redis | None = None
        self.base_url = ""

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def _start(self) -> None:
        self._redis = Redis.from_url(self._redis_url)
        await self._redis.flushdb()
        store = RollupStore(self._redis)
        await _seed(store, datetime.now(UTC))
        settings_ = Settings(redis_url=self._redis_url, api_tokens=TOKEN)
        self._runner = web.AppRunner(create_app(settings_, store=store), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._redis is not None:
            await self._redis.aclose()

    def __enter__(self) -> LiveServer:
        self._thread.start()
        try:
            self._run(self._start())
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._run(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


@pytest.fixture(scope="module")
def live_server(redis_url: str) -> Iterator[LiveServer]:
    with LiveServer(redis_url) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def _describe(case: schemathesis.Case[Any], response: schemathesis.Response) -> str:
    return f"{case.method} {case.formatted_path} query={case.query!r} -> {response.status_code}"


@schema.parametrize()
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_openapi(
    case: schemathesis.Case[Any], live_server: LiveServer, http: requests.Session
) -> None:
    """Generated requests (valid and invalid) with a deployment token: no 5xx, all conform."""
    case.call_and_validate(
        base_url=live_server.base_url, session=http, headers=AUTH, checks=_checks(case), timeout=30
    )


# --- known-good requests: answers with data must match the schema too ------------------------

_T1, _T2 = golden.T1, golden.T2
_WEEK = {"start_time": "2023-08-15T00:00:00Z", "end_time": "2023-08-22T00:00:00Z"}
_OFFSET_WEEK = {"start_time": "2023-08-15T00:00:00-03:00", "end_time": "2023-08-22T00:00:00-03:00"}
_FRACTION = {"start_time": "2023-08-15T00:00:00.5Z", "end_time": "2023-08-22T00:00:00+02:00"}


def _today_window() -> dict[str, str]:
    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=6)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return {"start_time": _rfc(start), "end_time": _rfc(end)}


REQUESTS: list[tuple[str, dict[str, Any] | None, int]] = [
    ("/api/v2/insights/templates", {**_WEEK, "interval": "day"}, 200),
    ("/api/v2/insights/templates", {**_WEEK, "interval": "week", "template_ids": [_T1]}, 200),
    ("/api/v2/insights/templates", {**_OFFSET_WEEK, "interval": "day"}, 200),
    ("/api/v2/insights/templates", {**_FRACTION}, 200),
    ("/api/v2/insights/templates", {**_WEEK, "sections": ["report"]}, 200),
    ("/api/v2/insights/templates", {**_WEEK, "sections": ["interval_reports"]}, 200),
    (
        "/api/v2/insights/templates",
        {**_WEEK, "interval": "week", "sections": ["interval_reports"]},
        200,
    ),
    (
        "/api/v2/insights/templates",
        {**_WEEK, "end_time": _WEEK["start_time"], "interval": "day"},
        200,
    ),
    (
        "/api/v2/insights/templates",
        {
            "start_time": "2023-08-01T00:00:00Z",
            **{"end_time": _WEEK["end_time"]},
            "interval": "week",
            "template_ids": [_T2],
        },
        200,
    ),
    ("/api/v2/insights/templates", {**_WEEK, "interval": "month"}, 400),
    (
        "/api/v2/insights/templates",
        {**_WEEK, "end_time": "2023-08-20T00:00:00Z", "interval": "week"},
        400,
    ),
    ("/api/v2/insights/templates", {"start_time": "2023-07-10"}, 400),
    ("/api/v2/insights/user-activity", {**_WEEK}, 200),
    ("/api/v2/insights/user-activity", {**_OFFSET_WEEK, "template_ids": [_T1, _T2]}, 200),
    ("/api/v2/insights/user-activity", {**_WEEK, "template_ids": ["nope"]}, 400),
    ("/api/v2/insights/user-latency", {**_WEEK}, 200),
    ("/api/v2/insights/user-latency", {**_WEEK, "percentiles": ["90", "99.9", "0.5"]}, 200),
    ("/api/v2/insights/user-latency", {**_FRACTION, "template_ids": [_T2]}, 200),
    ("/api/v2/insights/user-latency", {**_WEEK, "percentiles": ["100"]}, 400),
    ("/api/v2/insights/daus", None, 200),
    ("/api/v2/insights/daus", {"tz_offset": -3}, 200),
    ("/api/v2/insights/daus", {"tz_offset": 14}, 200),
    ("/api/v2/insights/daus", {"tz_offset": 15}, 400),
    ("/api/v2/openapi.json", None, 200),
    ("/healthz", None, 200),
    ("/readyz", None, 503),  # no worker heartbeat in this test
]


def _case(path: str, query: dict[str, Any] | None) -> schemathesis.Case[Any]:
    return schema[path]["GET"].Case(query=query)


@pytest.mark.parametrize(("path", "query", "status"), REQUESTS)
def test_known_requests_conform(
    live_server: LiveServer,
    http: requests.Session,
    path: str,
    query: dict[str, Any] | None,
    status: int,
) -> None:
    case = _case(path, query)
    response = case.call(base_url=live_server.base_url, session=http, headers=AUTH, timeout=30)
    assert response.status_code == status, _describe(case, response) + " " + response.text
    case.validate_response(response, checks=_checks(case), headers=AUTH)


def test_recent_windows_have_data(live_server: LiveServer, http: requests.Session) -> None:
    """Windows ending at the next hour and the DAUs see the recent seed; bodies conform."""
    for path in ("templates", "user-activity", "user-latency"):
        case = _case(f"/api/v2/insights/{path}", {**_today_window(), "template_ids": [_T1]})
        response = case.call(base_url=live_server.base_url, session=http, headers=AUTH, timeout=30)
        assert response.status_code == 200, _describe(case, response) + " " + response.text
        case.validate_response(response, checks=_checks(case), headers=AUTH)
        report = response.json()["report"]
        assert report["template_ids"] == [_T1], report
    case = _case("/api/v2/insights/daus", None)
    response = case.call(base_url=live_server.base_url, session=http, headers=AUTH, timeout=30)
    case.validate_response(response, checks=_checks(case), headers=AUTH)
    assert sum(e["amount"] for e in response.json()["entries"]) >= 3


def test_golden_week_bodies(live_server: LiveServer, http: requests.Session) -> None:
    """The seeded week really answers with data (so the conformance above is not vacuous)."""
    case = _case("/api/v2/insights/templates", {**_WEEK, "interval": "day"})
    body = case.call(base_url=live_server.base_url, session=http, headers=AUTH).json()
    assert body["report"]["active_users"] == 3
    assert len(body["interval_reports"]) == 7
    assert any("options" in p for p in body["report"]["parameters_usage"])
    assert any("options" not in p for p in body["report"]["parameters_usage"])
    case = _case("/api/v2/insights/user-latency", {**_WEEK, "percentiles": ["99"]})
    body = case.call(base_url=live_server.base_url, session=http, headers=AUTH).json()
    latencies = {u["user_id"]: u["latency_ms"] for u in body["report"]["users"]}
    assert list(latencies[golden.USER1]) == ["p50", "p95", "p99"]
    assert latencies[golden.USER1]["p50"] > 0
    assert latencies[golden.USER2] == {"p50": -1, "p95": -1, "p99": -1}
