"""The live app against its own OpenAPI document, with schemathesis, and hostile requests.

The aiohttp app runs on a real socket (127.0.0.1, free port) in a background thread with its
own event loop, served by the production runner (``api.server.ApiRunner``), backed by the
session's Redis-protocol server and seeded with the golden fixture (plus builds, latency
samples and recent activity, so 200 answers carry real data). Schemathesis generates requests
(valid and invalid) from :func:`api.openapi.openapi_document` and checks every answer: no
5xx, a documented status code and content type, a body that matches its schema. Beyond the
schema: oversized requests (long query values, many parameters, long or many headers) answer
a JSON 4xx, and a fuzzer of raw query strings, tokens and request ids finds no 5xx.

``INSIGHTS_SCHEMATHESIS_CASES`` sets the generated cases per operation and the fuzzer's
examples (default 50, for ``make test``); ``make test-deep`` runs 1,000 of each and the
deep-only checks.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import orjson
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
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
from api.server import MSG_TOO_LONG, MSG_TOO_MANY_HEADERS, ApiRunner
from insights.settings import Settings
from streams.decoding import decode_message
from tests import golden_fixture as golden

pytestmark = pytest.mark.integration

CASES_ENV = "INSIGHTS_SCHEMATHESIS_CASES"
CASES = int(os.environ.get(CASES_ENV, "50"))  # generated cases per operation, fuzz examples
DEEP = CASES >= 1000  # make test-deep
# Cases each operation actually got (hypothesis stops early once an input space is used up).
GENERATED: Counter[str] = Counter()

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


# The live stream stays open by design: its answers are checked in test_dashboard_http.py.
schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path="/api/v2/insights/live")


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
        self._runner = ApiRunner(create_app(settings_, store=store), access_log=None)
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
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_openapi(
    case: schemathesis.Case[Any], live_server: LiveServer, http: requests.Session
) -> None:
    """Generated requests (valid and invalid) with a deployment token: no 5xx, all conform."""
    GENERATED[f"{case.method} {case.path}"] += 1
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


# --- oversized requests: a JSON 4xx, whichever layer refuses them ------------------------------

_LONG = "9" * 10
_W = "start_time=2023-08-15T00:00:00Z&end_time=2023-08-22T00:00:00Z"
_ACTIVITY = "/api/v2/insights/user-activity"
_UUIDS = [f"00000000-0000-4000-8000-{i:012d}" for i in range(1000)]
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")  # an X-Request-Id kept as sent


def _raw(base_url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of ``request`` sent over a fresh connection. It goes out in
    chunks and stops once the server answers: an HTTP parser refuses a huge line before it
    is all read, and closes the connection."""
    host, port = base_url.removeprefix("http://").split(":")
    data = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        for i in range(0, len(request), 1 << 16):
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(request[i : i + (1 << 16)])
            except (BrokenPipeError, ConnectionResetError):
                break
        while chunk := _recv(sock):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body[: int(headers["content-length"])]


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1 << 16)
    except ConnectionResetError:  # after the answer: what it sent was read already
        return b""


def _get(target: str, *headers: str, token: str = TOKEN) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", f"Coder-Session-Token: {token}"]
    return ("\r\n".join([*lines, *headers, "Connection: close"]) + "\r\n\r\n").encode()


def _oversized() -> list[tuple[str, bytes, int]]:
    """(what, request, status): the app's validation answers 400 (404 for a path), the HTTP
    parser 400 over 8190 bytes a line or 128 headers; a long token under the limit is 401."""
    end = "end_time=2023-08-22T00:00:00Z"
    tpl, daus = "/api/v2/insights/templates", "/api/v2/insights/daus"
    again = "&start_time=2023-08-15T00:00:00Z"
    ids = "&".join(f"template_ids={u}" for u in _UUIDS)

    def unknown(n: int) -> str:
        return "&".join(f"x{i}=" for i in range(n))

    return [
        ("start_time of 2,000 characters", _get(f"{_ACTIVITY}?start_time={'9' * 2000}&{end}"), 400),
        ("start_time of 7,000 characters", _get(f"{_ACTIVITY}?start_time={'9' * 7000}&{end}"), 400),
        ("start_time of 9,000 characters", _get(f"{_ACTIVITY}?start_time={'9' * 9000}&{end}"), 400),
        ("tz_offset of 1 MiB", _get(f"{daus}?tz_offset={'1' * (1 << 20)}"), 400),
        ("template_ids of 5,000 characters", _get(f"{tpl}?{_W}&template_ids={'a' * 5000}"), 400),
        ("1,500 unknown parameters", _get(f"{_ACTIVITY}?{_W}&{unknown(1500)}"), 400),
        ("3,000 unknown parameters", _get(f"{_ACTIVITY}?{_W}&{unknown(3000)}"), 400),
        ("200 start_time parameters", _get(f"{_ACTIVITY}?{_W}{again * 199}"), 400),
        ("1,000 template_ids parameters", _get(f"{_ACTIVITY}?{_W}&{ids}"), 400),
        ("a path of 3,000 characters", _get("/api/v2/insights/" + "x" * 3000), 404),
        ("a path of 9,000 characters", _get("/api/v2/insights/" + "x" * 9000), 400),
        ("a session token of 10,000 characters", _get(daus, token="t" * 10_000), 400),
        ("a session token of 8,000 characters", _get(daus, token="t" * 8000), 401),
        ("a header of 1 MiB", _get(daus, "X-Big: " + "v" * (1 << 20)), 400),
        ("200 headers", _get(daus, *(f"X-H{i}: v" for i in range(200))), 400),
    ]  # fmt: skip


OVERSIZED = _oversized()


@pytest.mark.parametrize(("request_bytes", "status"), [o[1:] for o in OVERSIZED],
                         ids=[o[0] for o in OVERSIZED])  # fmt: skip
def test_oversized_requests_answer_json_4xx(
    live_server: LiveServer, request_bytes: bytes, status: int
) -> None:
    """Long query values, many parameters, long paths and headers: refused by the app's
    validation or by the HTTP parser (over 8190 bytes a line, 128 headers), in JSON either
    way, with a request id; the parser's answers quote none of the request's bytes (the
    app's validation errors quote a bad value, as Coder's do)."""
    got, headers, body = _raw(live_server.base_url, request_bytes)
    assert got == status, body[:300]
    assert headers["content-type"].startswith("application/json"), headers
    assert _SANE_ID.fullmatch(headers["x-request-id"]), headers
    message = orjson.loads(body)["message"]
    assert isinstance(message, str) and message
    if message in (MSG_TOO_LONG, MSG_TOO_MANY_HEADERS):
        assert len(body) < 300 and not re.search(rb"(.)\1{40}", body), body


def test_many_valid_parameters_are_served(live_server: LiveServer) -> None:
    """Within the line limit, many repeated or listed values are no fault: 200."""
    targets = [
        f"/api/v2/insights/templates?{_W}&" + "&".join(f"template_ids={u}" for u in _UUIDS[:150]),
        f"/api/v2/insights/templates?{_W}&template_ids=" + ",".join(_UUIDS[:150]),
        f"/api/v2/insights/templates?{_W}" + "&sections=report" * 400,
        f"/api/v2/insights/user-latency?{_W}&percentiles="
        + ",".join(f"{i / 10:g}" for i in range(1, 1000)),
    ]
    for target in targets:
        status, headers, body = _raw(live_server.base_url, _get(target))
        assert status == 200, (target[:120], body[:300])
        assert headers["content-type"].startswith("application/json")
        orjson.loads(body)


# --- raw query strings, tokens and request ids: no 5xx, JSON answers ---------------------------

_PATHS = [
    "/api/v2/insights/daus",
    "/api/v2/insights/templates",
    _ACTIVITY,
    "/api/v2/insights/user-latency",
    "/api/v2/insights/nope",
    "/healthz",
    "/api/v2/openapi.json",
]
_NAMES = ["start_time", "end_time", "interval", "template_ids", "sections", "percentiles",
          "tz_offset", "tz", "coder_session_token"]  # fmt: skip
_KNOWN_VALUES = [
    "2023-08-15T00:00:00Z", "2023-08-22T00:00:00Z", "2023-08-15T00:00:00-03:00",
    "2023-08-15T00:00:00.5Z", "2023-08-15T00:00:00+05:45", "0001-01-01T00:00:00Z",
    "9999-12-31T00:00:00Z", "2023-02-29T00:00:00Z", "day", "week", "month", "report",
    "interval_reports", golden.T1, golden.T2, golden.T1.upper(), f"{golden.T1},{golden.T2}", "50",
    "99.9", "100", "0", "-0", "1e3", "nan", "-3", "14", "15", "+3", "America/Sao_Paulo",
    "Europe/Nowhere", "", " ", "%", "null",
]  # fmt: skip
_visible = st.characters(min_codepoint=33, max_codepoint=126)
_values = st.one_of(
    st.sampled_from(_KNOWN_VALUES).map(lambda v: quote(v, safe=":,")),
    st.text(max_size=30).map(lambda v: quote(v, safe="")),
    st.binary(max_size=12).map(lambda b: "".join(f"%{x:02X}" for x in b)),  # any bytes
    st.text(_visible, max_size=20).map(lambda v: quote(v, safe="%+;=&,")),  # raw specials
)
_params = st.lists(
    st.tuples(st.one_of(st.sampled_from(_NAMES), st.text(max_size=8)), st.none() | _values),
    max_size=8,
)
_header_values = st.none() | st.sampled_from([TOKEN]) | st.text(_visible, min_size=1, max_size=140)
FUZZED: Counter[str] = Counter()


@given(
    path=st.sampled_from(_PATHS),
    params=_params,
    token=_header_values,
    request_id=_header_values,
)
@settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_fuzzed_queries_tokens_and_request_ids(
    live_server: LiveServer,
    http: requests.Session,
    path: str,
    params: list[tuple[str, str | None]],
    token: str | None,
    request_id: str | None,
) -> None:
    """Any query string (unknown, repeated and bare names, any bytes percent-encoded, raw
    separators), any token, any request id: never a 5xx, always JSON, 401 without a valid
    token, the request id echoed exactly when it is a sane one."""
    FUZZED[path] += 1
    query = "&".join(
        quote(name, safe="") if value is None else f"{quote(name, safe='')}={value}"
        for name, value in params
    )
    headers = {k: v for k, v in (("Coder-Session-Token", token), ("X-Request-Id", request_id)) if v}
    url = f"{live_server.base_url}{path}" + (f"?{query}" if query else "")
    response = http.get(url, headers=headers, timeout=30)
    body = response.json()
    where = f"GET {path}?{query} token={token!r} -> {response.status_code} {response.text[:300]}"
    assert response.status_code < 500, where
    assert response.headers["Content-Type"].startswith("application/json"), where
    if response.status_code >= 400:
        assert isinstance(body["message"], str), where
    authorised = token == TOKEN or any(n == "coder_session_token" and v == TOKEN for n, v in params)
    if path.startswith("/api/v2/insights/") and path != "/api/v2/insights/nope" and not authorised:
        assert response.status_code == 401, where
    echoed = response.headers["X-Request-Id"]
    if request_id is not None and _SANE_ID.fullmatch(request_id):
        assert echoed == request_id, where
    else:
        assert echoed != request_id and _SANE_ID.fullmatch(echoed), where


# --- deep only --------------------------------------------------------------------------------


@pytest.mark.skipif(not DEEP, reason="make test-deep only: a 92 MB answer, some seconds")
def test_a_huge_day_interval_report_does_not_hold_up_other_requests(
    live_server: LiveServer,
) -> None:
    query = "start_time=0001-01-02T00:00:00Z&end_time=2023-08-22T00:00:00Z&interval=day"
    url = f"{live_server.base_url}/api/v2/insights/templates?{query}"
    big: list[int] = []
    worker = threading.Thread(
        target=lambda: big.append(requests.get(url, headers=AUTH, timeout=120).status_code)
    )
    waits: list[float] = []
    with requests.Session() as session:
        worker.start()
        time.sleep(0.3)
        while worker.is_alive():
            t0 = time.monotonic()
            session.get(f"{live_server.base_url}/healthz", timeout=120)
            waits.append(time.monotonic() - t0)
            time.sleep(0.05)
    worker.join()
    assert big == [200]
    assert max(waits) < 1.0, f"/healthz waited {max(waits):.1f} s"


# --- how many cases ran (last: it reads what the tests above counted) -------------------------

INSIGHTS_OPERATIONS = [
    f"GET /api/v2/insights/{name}"
    for name in ("daus", "templates", "user-activity", "user-latency")
]


def test_generated_case_counts() -> None:
    """The cases each operation got from schemathesis and the fuzzer's requests (``-s``
    prints them). In the deep run every insights endpoint gets at least ``CASES`` of each; the
    other operations take no input, so a handful of cases is all there is."""
    if not GENERATED and not FUZZED:
        pytest.skip("neither generator ran in this session")
    gets = {op: n for op, n in GENERATED.items() if op.startswith("GET ")}
    others = sum(GENERATED.values()) - sum(gets.values())
    methods = len({op.split()[0] for op in GENERATED} - {"GET"})
    print(
        f"\nschemathesis cases (max_examples {CASES:,} per operation): "
        + ", ".join(f"{op} {n:,}" for op, n in sorted(gets.items()))
        + f"; {others} with {methods} methods the API does not serve"
        + f"\nfuzzed requests: {sum(FUZZED.values()):,} ("
        + ", ".join(f"{path} {n:,}" for path, n in sorted(FUZZED.items()))
        + ")"
    )
    if DEEP:
        short = {op: GENERATED[op] for op in INSIGHTS_OPERATIONS if GENERATED[op] < CASES}
        assert not short, short
        assert sum(FUZZED.values()) >= CASES
