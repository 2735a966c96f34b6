"""Coder's ``coderd_insights_*`` gauges on ``GET /metrics``, against the real Redis server.

Events go in through ``RollupStore.apply(plan_batch(...))``; the app, with an injected
clock, refreshes the gauges in the background; the test scrapes ``/metrics`` and compares
with the values and labels Coder's collector gives for the same activity, and with the
``/api/v2/insights/templates`` report of the same window.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from aggregators.model import AppUsageEvent, BuildEvent, BuildParameter, Event, SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from api.app import create_app
from api.coder_metrics import (
    APPLICATIONS_USAGE_SECONDS,
    PARAMETERS,
    REFRESHED,
    TEMPLATES_ACTIVE_USERS,
)
from insights.settings import Settings

pytestmark = pytest.mark.integration

Client = TestClient  # type: ignore[type-arg]
TOKEN = "deploy-token"
METRICS_TOKEN = "scrape-token"
NOW = datetime(2024, 3, 10, 2, 40, tzinfo=UTC)  # window: [02:00, 03:00)
T1 = "10000000-0000-4000-8000-000000000001"
T2 = "10000000-0000-4000-8000-000000000002"
T3 = "10000000-0000-4000-8000-000000000003"  # builds only
U1 = "10000000-0000-4000-8000-000000000101"
U2 = "10000000-0000-4000-8000-000000000102"
U3 = "10000000-0000-4000-8000-000000000103"
W1 = "10000000-0000-4000-8000-000000000201"
W2 = "10000000-0000-4000-8000-000000000202"
W3 = "10000000-0000-4000-8000-000000000203"
VSCODE, JETBRAINS, SSH = 0b1, 0b10, 0b1000  # bits of aggregators.model.KINDS

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _us(hour: int, minute: int) -> int:
    return int(datetime(2024, 3, 10, hour, minute, tzinfo=UTC).timestamp() * 1_000_000)


def _session(user: str, template: str, hour: int, minute: int, kinds: int) -> Event:
    at = _us(hour, minute)
    return SessionEvent(f"s-{user}-{at}", at, user, "u", "", template, W1, W1, 1, kinds)


def _app(user: str, template: str, start: tuple[int, int], end: tuple[int, int]) -> Event:
    started, ended = _us(*start), _us(*end)
    return AppUsageEvent(
        f"a-{user}-{started}", ended, f"session-{started}", user, "u", "", template, W1, W1,
        "path", "golden-slug", "Golden Slug", "/icon/code.svg", started, ended, 1,
    )  # fmt: skip


def _build(template: str, workspace: str, number: int, at: tuple[int, int], **params: str) -> Event:
    parameters = tuple(
        BuildParameter(name, "bool" if value in ("true", "false") else "string", "", "", (), value)
        for name, value in params.items()
    )
    time_us = _us(*at)
    return BuildEvent(
        f"b-{workspace}-{number}", time_us, template, workspace, U1, number, parameters
    )


IN_WINDOW: list[Event] = [
    _session(U1, T1, 2, 5, VSCODE | SSH),
    _session(U1, T1, 2, 6, VSCODE),
    _session(U2, T1, 2, 35, JETBRAINS),
    _session(U3, T2, 2, 45, SSH),
    _app(U1, T1, (2, 10), (2, 13)),  # three minutes
    _build(T1, W1, 1, (2, 20), region="eu", gpu="true"),
    _build(T1, W2, 1, (2, 25), region="eu", gpu="true"),
    _build(T1, W1, 2, (2, 30), region="us", gpu="false"),  # W1's latest
    _build(T3, W3, 1, (2, 15), size="large"),
]
EVENTS = [
    *IN_WINDOW,
    _session(U3, T2, 1, 50, SSH),  # before the window
    _build(T3, W3, 0, (1, 0), size="small"),
]


def _expected_app_usage(template: str, **seconds: float) -> Samples:
    names = {"vscode": "Visual Studio Code", "jetbrains": "JetBrains", "pty": "Web Terminal"}
    names["ssh"] = "SSH"
    return {
        (
            APPLICATIONS_USAGE_SECONDS,
            (("application_name", names[k]), ("slug", ""), ("template_name", template)),
        ): seconds.get(k, 0.0)
        for k in names
    }


EXPECTED: Samples = {
    (TEMPLATES_ACTIVE_USERS, (("template_name", T1),)): 2,
    (TEMPLATES_ACTIVE_USERS, (("template_name", T2),)): 1,
    **_expected_app_usage(T1, vscode=120, jetbrains=60, ssh=60),
    **_expected_app_usage(T2, ssh=60),
    (
        APPLICATIONS_USAGE_SECONDS,
        (("application_name", "Golden Slug"), ("slug", "golden-slug"), ("template_name", T1)),
    ): 180,
    **{
        (
            PARAMETERS,
            (
                ("parameter_name", name),
                ("parameter_type", type_),
                ("parameter_value", value),
                ("template_name", template),
            ),
        ): count
        for template, name, type_, value, count in [
            (T1, "gpu", "bool", "false", 1),
            (T1, "gpu", "bool", "true", 1),
            (T1, "region", "string", "eu", 1),
            (T1, "region", "string", "us", 1),
            (T3, "size", "string", "large", 1),
        ]
    },
}


@pytest.fixture
async def store(redis_client: Redis) -> RollupStore:
    store = RollupStore(redis_client)
    await store.apply(plan_batch(EVENTS))
    return store


class _Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@contextlib.asynccontextmanager
async def _serve(
    redis_url: str, store: RollupStore, clock: Callable[[], datetime], **settings: Any
) -> AsyncIterator[Client]:
    config = Settings(redis_url=redis_url, api_tokens=TOKEN, **settings)
    client = TestClient(TestServer(create_app(config, store=store, clock=clock)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _scrape(client: Client, **headers: str) -> Samples:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200
    out: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            if sample.name.startswith("coderd_insights_") or sample.name == REFRESHED:
                out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def _until(client: Client, condition: Callable[[Samples], bool]) -> Samples:
    async with asyncio.timeout(10):
        while not condition(samples := await _scrape(client)):
            await asyncio.sleep(0.05)
    return samples


def _coder(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if k[0] != REFRESHED}


async def _refreshed_after(client: Client, after: float, **headers: str) -> Samples:
    """The first scrape whose gauges were computed after ``after`` (a unix time)."""
    async with asyncio.timeout(10):
        while True:
            samples = await _scrape(client, **headers)
            stamp = samples.get((REFRESHED, ()))
            if stamp is not None and stamp > after:
                return samples
            await asyncio.sleep(0.05)


async def test_coder_gauges_have_coders_names_labels_and_values(
    store: RollupStore, redis_url: str
) -> None:
    async with _serve(redis_url, store, _Clock()) as client:
        samples = await _refreshed_after(client, 0)
        assert _coder(samples) == EXPECTED


async def test_gauges_equal_each_templates_report_of_the_window(
    redis_client: Redis, redis_url: str
) -> None:
    store = RollupStore(redis_client)
    await store.apply(plan_batch(IN_WINDOW))
    async with _serve(redis_url, store, _Clock()) as client:
        samples = await _refreshed_after(client, 0)
        assert _coder(samples) == EXPECTED
        # Nothing before 02:00 that day, so the report from midnight covers the same data.
        window = "start_time=2024-03-10T00:00:00Z&end_time=2024-03-10T03:00:00Z"
        for template in (T1, T2, T3):
            resp = await client.get(
                f"/api/v2/insights/templates?{window}&template_ids={template}",
                headers={"Coder-Session-Token": TOKEN},
            )
            assert resp.status == 200
            report = (await resp.json())["report"]
            active = samples.get((TEMPLATES_ACTIVE_USERS, (("template_name", template),)))
            assert (active or 0) == report["active_users"]
            for app in report["apps_usage"]:
                if app["type"] == "app" or app["slug"] == "sftp" or not active:
                    continue
                labels = (
                    ("application_name", app["display_name"]),
                    ("slug", ""),
                    ("template_name", template),
                )
                assert samples[APPLICATIONS_USAGE_SECONDS, labels] == app["seconds"]


async def test_series_follow_the_window_and_a_dead_store_keeps_the_last_values(
    store: RollupStore, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    async with _serve(redis_url, store, clock, coder_metrics_refresh_s=0.05) as client:
        first = await _refreshed_after(client, 0)
        assert _coder(first) == EXPECTED
        # New activity appears at a next refresh (once the read path's staleness budget
        # let it refold the day).
        await store.apply(plan_batch([_session(U3, T1, 2, 50, VSCODE)]))
        t1 = (TEMPLATES_ACTIVE_USERS, (("template_name", T1),))
        later = await _until(client, lambda samples: samples.get(t1) == 3)
        # An hour on, the window holds nothing: every series is gone, the timestamp stays.
        clock.now = NOW + timedelta(hours=1)
        empty = await _until(client, lambda samples: set(samples) == {(REFRESHED, ())})
        assert empty[REFRESHED, ()] > later[REFRESHED, ()]
        # With the store failing, scrapes still answer at once with the last values.
        clock.now = NOW
        await _until(client, lambda samples: samples.get(t1) == 3)
        failures = _failures()

        async def refused(*_: object) -> None:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

        monkeypatch.setattr(store.source, "snapshot", refused)
        async with asyncio.timeout(5):
            while _failures() < failures + 2:
                await asyncio.sleep(0.02)
        stale = await _scrape(client)
        await asyncio.sleep(0.2)  # a few more failed refreshes
        started = time.monotonic()
        still = await _scrape(client)
        assert time.monotonic() - started < 0.5
        assert still == stale
        assert stale[t1] == 3
        assert _failures() >= failures + 4


def _failures() -> float:
    return REGISTRY.get_sample_value("insights_coder_gauges_refresh_failures_total") or 0.0


async def test_the_metrics_token_guards_the_coder_gauges_too(
    store: RollupStore, redis_url: str
) -> None:
    async with _serve(redis_url, store, _Clock(), metrics_token=METRICS_TOKEN) as client:
        assert (await client.get("/metrics")).status == 401
        samples = await _refreshed_after(client, 0, Authorization=f"Bearer {METRICS_TOKEN}")
        assert _coder(samples) == EXPECTED


async def test_refresh_zero_turns_the_gauges_off(store: RollupStore, redis_url: str) -> None:
    async with _serve(redis_url, store, _Clock(), coder_metrics_refresh_s=0) as client:
        await asyncio.sleep(0.2)
        assert await _scrape(client) == {}


async def test_templates_named_by_events_are_labelled_with_their_names(
    store: RollupStore, redis_url: str
) -> None:
    # A minute U2 already spent in T1: only the names are new.
    naming = _session(U2, T1, 2, 35, JETBRAINS)._replace(  # type: ignore[call-arg]
        id="naming", template_name="golden-template", organization_name="acme"
    )
    await store.apply(plan_batch([naming]))
    renamed = {
        (name, tuple((k, "golden-template" if v == T1 else v) for k, v in labels)): value
        for (name, labels), value in EXPECTED.items()
    }
    async with _serve(redis_url, store, _Clock()) as client:
        samples = await _refreshed_after(client, 0)
        assert _coder(samples) == renamed
