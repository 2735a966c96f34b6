"""The API's operational surface over real sockets: readiness by component, JSON answers to
requests the HTTP parser refuses, request ids in headers and logs, no token in any log line,
and the optional /metrics token.

The app is served the way ``insights api`` serves it (``api.server.ApiRunner`` on
127.0.0.1), backed by the session's Redis-protocol server and, for the broker checks, the
session's Kafka-protocol broker.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
import structlog
from aiohttp import web
from redis.asyncio import Redis

from aggregators.model import SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from aggregators.store.heartbeats import WorkerBeat
from api.app import create_app
from api.server import ApiRunner
from insights import devstack
from insights.logging import configure_logging
from insights.settings import Settings
from tests.golden_fixture import T1

pytestmark = pytest.mark.integration

TOKEN = "deployment-token-5f1c9a7e2b"
METRICS_TOKEN = "metrics-token-0d4e8b6a31"
WEEK = "start_time=2024-03-01T00:00:00Z&end_time=2024-03-08T00:00:00Z"
HEX_ID = re.compile(r"[0-9a-f]{32}")


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


def _settings(redis_url: str, **overrides: Any) -> Settings:
    return Settings(redis_url=redis_url, api_tokens=TOKEN, **overrides)


async def _get(base: str, path: str, **headers: str) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(base + path, headers=headers) as resp,
    ):
        raw = await resp.read()
        body = orjson.loads(raw) if resp.content_type == "application/json" else raw
        return resp.status, body, resp


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every log line of the test, as production writes them (JSON), in a buffer."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    quiet = {name: logging.getLogger(name).level for name in ("faust", "mode", "aiokafka")}
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    structlog.configure(cache_logger_on_first_use=False)  # module loggers stay unconfigured
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# --- readiness -----------------------------------------------------------------------------


async def _beat(store: RollupStore, partitions: tuple[str, ...] = ("insights.sessions:0",)) -> None:
    now_ms = time.time_ns() // 1_000_000
    await store.heartbeats.beat(WorkerBeat("host-a:1", now_ms, partitions))


def _not_ready(broker: str, workers: int) -> dict[str, Any]:
    return {
        "ready": False,
        "status": "unavailable",
        "redis": "ok",
        "broker": broker,
        "workers": workers,
    }


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def test_readyz_names_each_component(redis_client: Redis, redis_url: str) -> None:
    store = RollupStore(redis_client)
    async with serving(create_app(_settings(redis_url), store=store)) as base:
        status, body, _ = await _get(base, "/readyz")
        assert (status, body) == (503, _not_ready(broker="unknown", workers=0))
        await _beat(store, partitions=())  # alive but holding nothing: not ready
        assert (await _get(base, "/readyz"))[1]["workers"] == 0
        await _beat(store)
        status, body, _ = await _get(base, "/readyz")
        assert (status, body) == (
            200,
            {"ready": True, "status": "ok", "redis": "ok", "broker": "unknown", "workers": 1},
        )


async def test_readyz_checks_the_broker(
    redis_client: Redis, redis_url: str, kafka_bootstrap: str
) -> None:
    store = RollupStore(redis_client)
    await _beat(store)
    app = create_app(_settings(redis_url, kafka_bootstrap=kafka_bootstrap), store=store)
    async with serving(app) as base:
        status, body, _ = await _get(base, "/readyz")
        assert (status, body["broker"], body["redis"], body["workers"]) == (200, "ok", "ok", 1)


async def test_readyz_reports_a_broker_outage_without_its_address(
    redis_client: Redis, redis_url: str, silent_port: int
) -> None:
    store = RollupStore(redis_client)
    await _beat(store)
    dead = devstack.free_port()
    for bootstrap, state in (
        (f"127.0.0.1:{dead}", "unreachable"),
        (f"127.0.0.1:{silent_port}", "timeout"),
        (f"127.0.0.1:{dead},127.0.0.1:{silent_port}", "timeout"),
    ):
        settings = _settings(redis_url, kafka_bootstrap=bootstrap, readiness_broker_timeout_s=0.3)
        async with serving(create_app(settings, store=store)) as base:
            started = time.monotonic()
            status, body, _ = await _get(base, "/readyz")
            assert time.monotonic() - started < 2.0
            assert (status, body) == (503, _not_ready(broker=state, workers=1)), bootstrap
            raw = orjson.dumps(body).decode()
            assert str(dead) not in raw and str(silent_port) not in raw


async def test_broker_checks_are_cached_and_shared(redis_client: Redis, redis_url: str) -> None:
    """Twenty concurrent probes during an outage cost one bounded check, and the next probe
    within the cache period none."""
    connections: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)  # accepted, never answered

    silent = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    store = RollupStore(redis_client)
    await _beat(store)
    settings = _settings(
        redis_url, kafka_bootstrap=f"127.0.0.1:{port}", readiness_broker_timeout_s=0.5
    )
    try:
        async with serving(create_app(settings, store=store)) as base:
            started = time.monotonic()
            results = await asyncio.gather(*(_get(base, "/readyz") for _ in range(20)))
            assert time.monotonic() - started < 1.5
            assert {(r[0], r[1]["broker"]) for r in results} == {(503, "timeout")}
            assert len(connections) == 1
            assert (await _get(base, "/readyz"))[1]["broker"] == "timeout"
            assert len(connections) == 1  # from the cache
    finally:
        for writer in connections:
            writer.close()
        silent.close()
        await silent.wait_closed()


async def test_readyz_with_redis_down(silent_port: int) -> None:
    for url, states in (
        (f"redis://127.0.0.1:{devstack.free_port()}/0", {"unreachable"}),
        (f"redis://127.0.0.1:{silent_port}/0", {"timeout"}),
    ):
        app = create_app(_settings(url, store_timeout_s=0.5))
        async with serving(app) as base:
            status, body, _ = await _get(base, "/readyz")
            assert status == 503
            assert body["redis"] in states
            assert (body["ready"], body["workers"], body["broker"]) == (False, None, "unknown")
            assert "127.0.0.1" not in orjson.dumps(body).decode()


# --- requests refused by the HTTP parser ------------------------------------------------------


async def _raw_exchange(base: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 5)  # the server closes the connection
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "message"),
    [
        (
            b"GET /api/v2/insights/daus?x=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
            "Request line or header too long.",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
            "Request line or header too long.",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-" + b"c" * 9000 + b": 1\r\n\r\n",
            "Request line or header too long.",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
            + b"\r\n",
            "Too many request headers.",
        ),
        (b"BR\x00KEN / HTTP/1.1\r\n\r\n", "Malformed HTTP request."),
    ],
    ids=["request-line", "header-value", "header-name", "header-count", "method"],
)
async def test_parser_refusals_answer_json(
    redis_client: Redis, redis_url: str, request_bytes: bytes, message: str
) -> None:
    async with serving(create_app(_settings(redis_url), store=RollupStore(redis_client))) as base:
        status, headers, body = await _raw_exchange(base, request_bytes)
        assert status == 400
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert HEX_ID.fullmatch(headers["x-request-id"])
        parsed = orjson.loads(body)
        assert set(parsed) == {"message", "detail"}
        assert parsed["message"] == message
        assert parsed["detail"]
        for echo in (b"aaaa", b"bbbb", b"cccc", b"BR"):
            assert echo not in body  # the client's bytes are never quoted back
        # the server still serves the next connection
        assert (await _get(base, "/healthz"))[0] == 200


async def test_a_huge_token_header_is_refused_without_logging_it(
    redis_client: Redis, redis_url: str, log_output: io.StringIO
) -> None:
    secret = "s3cr3t-" + "t" * 9000
    async with serving(create_app(_settings(redis_url), store=RollupStore(redis_client))) as base:
        for header in ("Coder-Session-Token", "Authorization"):
            value = secret if header != "Authorization" else f"Bearer {secret}"
            request = f"GET /healthz HTTP/1.1\r\nHost: t\r\n{header}: {value}\r\n\r\n".encode()
            status, _, body = await _raw_exchange(base, request)
            assert status == 400
            assert orjson.loads(body)["message"] == "Request line or header too long."
    text = log_output.getvalue()
    assert "s3cr3t" not in text and "tttttttt" not in text
    refused = [line for line in _lines(log_output) if line["event"].startswith("request refused")]
    assert len(refused) == 2
    assert all(HEX_ID.fullmatch(line["request_id"]) for line in refused)


# --- request ids and logs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("incoming", "kept"),
    [
        (None, False),
        ("req-42.a_B", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("has space", False),
        ("semi;colon", False),
        ("ünïcode", False),
    ],
)
async def test_request_ids_are_echoed_or_generated(
    redis_client: Redis, redis_url: str, incoming: str | None, kept: bool
) -> None:
    headers = {} if incoming is None else {"X-Request-Id": incoming}
    async with serving(create_app(_settings(redis_url), store=RollupStore(redis_client))) as base:
        for path, auth, status in (
            ("/healthz", {}, 200),
            (f"/api/v2/insights/user-activity?{WEEK}", {}, 401),
            (f"/api/v2/insights/user-activity?{WEEK}", {"Coder-Session-Token": TOKEN}, 200),
            ("/api/v2/insights/templates?start_time=x", {"Coder-Session-Token": TOKEN}, 400),
            ("/api/v2/nope", {}, 404),
        ):
            got, _, resp = await _get(base, path, **headers, **auth)
            assert got == status
            rid = resp.headers["X-Request-Id"]
            if kept:
                assert rid == incoming
            else:
                assert HEX_ID.fullmatch(rid), rid


async def test_access_log_and_error_log_carry_the_request_id_and_no_token(
    redis_client: Redis,
    redis_url: str,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = RollupStore(redis_client)
    at_us = int(datetime(2024, 3, 2, 10, tzinfo=UTC).timestamp() * 1_000_000)
    user = "00000000-0000-0000-0000-000000000100"
    await store.apply(
        plan_batch([SessionEvent("s-1", at_us, user, "u", "", T1, "w", "a", 1, 0b1000)])
    )

    async def boom(*args: Any) -> Any:
        raise RuntimeError("internal detail")

    path = f"/api/v2/insights/user-activity?{WEEK}"
    async with serving(create_app(_settings(redis_url), store=store)) as base:
        with monkeypatch.context() as patch:
            patch.setattr(store.source, "read_days", boom)
            status, body, resp = await _get(
                base, path, **{"Coder-Session-Token": TOKEN, "X-Request-Id": "fail-1"}
            )
        assert (status, body["detail"]) == (500, "RuntimeError")
        assert resp.headers["X-Request-Id"] == "fail-1"
        # the token in each place a client may put it
        await _get(base, path, **{"Coder-Session-Token": TOKEN, "X-Request-Id": "ok-1"})
        await _get(base, path, Authorization=f"Bearer {TOKEN}", **{"X-Request-Id": "ok-2"})
        await _get(base, f"{path}&coder_session_token={TOKEN}", **{"X-Request-Id": "ok-3"})

    text = log_output.getvalue()
    assert TOKEN not in text
    lines = _lines(log_output)
    access = {line["request_id"]: line for line in lines if line["event"] == "http request"}
    assert set(access) >= {"ok-1", "ok-2", "ok-3", "fail-1"}
    assert access["ok-1"]["status"] == 200
    assert access["ok-1"]["method"] == "GET"
    assert access["ok-1"]["logger"] == "aiohttp.access"
    assert access["ok-3"]["path"].endswith("coder_session_token=[redacted]")
    assert access["fail-1"]["status"] == 500
    failed = [line for line in lines if line["event"] == "request failed"]
    assert len(failed) == 1
    assert failed[0]["request_id"] == "fail-1"
    assert failed[0]["level"] == "error"
    assert "RuntimeError" in failed[0]["exception"]


async def test_an_unexpected_exception_outside_a_query_is_a_logged_json_500(
    redis_client: Redis,
    redis_url: str,
    log_output: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api import params

    def broken(*args: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(params, "parse_daus_query", broken)
    async with serving(create_app(_settings(redis_url), store=RollupStore(redis_client))) as base:
        status, body, resp = await _get(
            base, "/api/v2/insights/daus", **{"Coder-Session-Token": TOKEN}
        )
    assert status == 500
    assert body == {"message": "An internal server error occurred.", "detail": "KeyError"}
    rid = resp.headers["X-Request-Id"]
    failed = [line for line in _lines(log_output) if line["event"] == "request failed"]
    assert [line["request_id"] for line in failed] == [rid]


# --- /metrics ---------------------------------------------------------------------------------


async def test_metrics_are_open_by_default(redis_client: Redis, redis_url: str) -> None:
    async with serving(create_app(_settings(redis_url), store=RollupStore(redis_client))) as base:
        status, body, _ = await _get(base, "/metrics")
        assert status == 200
        assert b"insights_http_requests_total" in body


async def test_metrics_token(redis_client: Redis, redis_url: str) -> None:
    settings = _settings(redis_url, metrics_token=METRICS_TOKEN)
    unauthorized = {
        "message": "You must be logged in to access this resource.",
        "detail": "Send the metrics token as Authorization: Bearer <token>.",
    }
    async with serving(create_app(settings, store=RollupStore(redis_client))) as base:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
            {"Authorization": f"Bearer {TOKEN}"},  # an API token does not open /metrics
            {"Coder-Session-Token": METRICS_TOKEN},
        ):
            status, body, resp = await _get(base, "/metrics", **headers)
            assert (status, body) == (401, unauthorized), headers
            assert resp.headers["WWW-Authenticate"] == "Bearer"
        status, body, _ = await _get(base, "/metrics", Authorization=f"Bearer {METRICS_TOKEN}")
        assert status == 200
        assert b"insights_http_requests_total" in body
        # the token guards /metrics only
        assert (await _get(base, "/healthz"))[0] == 200
