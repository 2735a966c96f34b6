"""Demo producer: a small, realistic deployment emitting events in batches.

Users (from ``streams.simulation``) work in a few templates during their local
working hours, agents report every 30 s while a session is open, apps are used in
stretches, and latency samples follow a log-normal with an occasional slow tail.
``backfill`` fills past days (with a progress bar); ``run_live`` keeps emitting as
time passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator

import orjson
from aiokafka import AIOKafkaProducer
from rich.progress import Progress

from aggregators.model import BuildParameter, ParameterOption
from aggregators.timebase import (
    HALF_HOURS_PER_DAY,
    MIN_PER_HALF_HOUR,
    NS_PER_US,
    US_PER_DAY,
    US_PER_MIN,
    US_PER_S,
    minute_of_us,
)
from insights.kafka_client import kafka_client_kwargs
from insights.settings import Settings
from streams.simulation import Template, User, generate
from streams.workloads import (
    App,
    WireEvent,
    app_usage_event,
    build_event,
    latency_event,
    session_event,
    uuid_from,
)

TEMPLATES = (
    Template("10000000-0000-4000-8000-000000000001", "docker", ("code-server", "jupyter"), 1.0),
    Template("10000000-0000-4000-8000-000000000002", "kubernetes", ("code-server", "grafana"), 1.0),
    Template("10000000-0000-4000-8000-000000000003", "gpu-ml", ("jupyter",), 1.0),
)
BATCH = 100
HALF_HOUR_US = MIN_PER_HALF_HOUR * US_PER_MIN
REPORT_EVERY_US = 30 * US_PER_S
WORKDAY_HOURS = 8
# (topic kind, event time in epoch microseconds, event)
Timed = tuple[str, int, WireEvent]


def _uid(*parts: object) -> str:
    return uuid_from("demo", *parts)


def make_users(count: int, seed: int = 7) -> list[User]:
    return list(generate(count, seed, templates=TEMPLATES).users)


def _utc_start_hour(u: User) -> int:
    return (u.start_min - u.tz_min) // 60 % 24


def events_for_half_hour(
    users: list[User], hh_start_us: int, rnd: random.Random, until_us: int | None = None
) -> Iterator[tuple[str, WireEvent]]:
    """(topic kind, event) pairs of one half-hour of the deployment, those up to
    ``until_us`` only when it is given.

    Seed ``rnd`` with the half-hour: the live loop re-sends the current
    half-hour as it fills, and identical events are idempotent downstream.
    """
    for kind, time_us, event in _half_hour(users, hh_start_us, rnd):
        if until_us is None or time_us <= until_us:
            yield kind, event


def _half_hour(users: list[User], hh_start_us: int, rnd: random.Random) -> Iterator[Timed]:
    hour = minute_of_us(hh_start_us) // 60 % 24
    for u in users:
        working = (hour - _utc_start_hour(u)) % 24 < WORKDAY_HOURS and rnd.random() < 0.8
        if not working:
            continue
        yield from _sessions(u, hh_start_us, rnd)
        yield from _latency(u, hh_start_us, rnd)
        if rnd.random() < 0.4:
            yield _app(u, hh_start_us, rnd)


def _sessions(u: User, hh_start_us: int, rnd: random.Random) -> Iterator[Timed]:
    agent = u.agent()
    for step in range(HALF_HOUR_US // REPORT_EVERY_US):
        at = hh_start_us + step * REPORT_EVERY_US + rnd.randrange(1000)
        yield "sessions", at, session_event(agent, _uid("s", u.user_id, at), at, (u.tool,))


def _latency(u: User, hh_start_us: int, rnd: random.Random) -> Iterator[Timed]:
    agent = u.agent()
    for step in range(0, HALF_HOUR_US // REPORT_EVERY_US, 2):
        at = hh_start_us + step * REPORT_EVERY_US
        ms = rnd.lognormvariate(3.3, 0.4) * (8 if rnd.random() < 0.05 else 1)
        yield "latency", at, latency_event(agent, _uid("l", u.user_id, at), at, round(ms, 2))


def _app(u: User, hh_start_us: int, rnd: random.Random) -> Timed:
    slug = rnd.choice(u.main.template.apps)
    start = hh_start_us + rnd.randrange(20) * US_PER_MIN
    end = start + rnd.randrange(1, 10) * US_PER_MIN
    event = app_usage_event(
        u.agent(),
        _uid("a", u.user_id, start),
        _uid("as", u.user_id, start),
        start,
        end,
        slug_or_port=slug,
        app=App(slug, f"/icon/{slug}.svg"),
        requests=rnd.randrange(1, 50),
    )
    return "app_usage", end, event


REGIONS = (
    ParameterOption("Europe", "", "eu", ""),
    ParameterOption("US", "", "us", ""),
)


def build_events(users: list[User], at_us: int) -> Iterator[tuple[str, WireEvent]]:
    for u in users:
        region = BuildParameter(
            "region",
            "string",
            "Region",
            "Where the **workspace** runs",
            REGIONS,
            "eu" if int(u.user_id[-1], 16) % 3 else "us",
        )
        yield "builds", build_event(u.agent(), _uid("b", u.main.workspace_id), at_us, 1, [region])


def _now_us() -> int:
    return time.time_ns() // NS_PER_US


class DemoProducer:
    def __init__(
        self, settings: Settings, users: int = 40, clock_us: Callable[[], int] | None = None
    ) -> None:
        self.settings = settings
        self.users = make_users(users)
        self.clock_us = clock_us or _now_us

    async def _send(
        self, producer: AIOKafkaProducer, pairs: Iterator[tuple[str, WireEvent]]
    ) -> int:
        buffers: dict[str, list[WireEvent]] = {}
        sent = 0
        for kind, event in pairs:
            buf = buffers.setdefault(kind, [])
            buf.append(event)
            if len(buf) >= BATCH:
                await producer.send(self.settings.topic(kind), orjson.dumps(buf))
                sent += len(buf)
                buf.clear()
        for kind, buf in buffers.items():
            if buf:
                await producer.send(self.settings.topic(kind), orjson.dumps(buf))
                sent += len(buf)
        await producer.flush()
        return sent

    async def run(self, backfill_days: int, stop: asyncio.Event) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_idempotence=False,
            acks=1,
            linger_ms=5,
            **kafka_client_kwargs(self.settings),
        )
        await producer.start()
        try:
            now = self.clock_us()
            current = now - now % HALF_HOUR_US
            await self._send(producer, build_events(self.users, now - backfill_days * US_PER_DAY))
            half_hours = backfill_days * HALF_HOURS_PER_DAY
            first = current - half_hours * HALF_HOUR_US
            with Progress(transient=True) as progress:
                task = progress.add_task("demo backfill", total=half_hours)
                for hh in range(first, current, HALF_HOUR_US):
                    await self._send(
                        producer, events_for_half_hour(self.users, hh, random.Random(hh))
                    )
                    progress.advance(task)
            while not stop.is_set():
                now = self.clock_us()
                current = now - now % HALF_HOUR_US
                await self._send(
                    producer,
                    events_for_half_hour(self.users, current, random.Random(current), until_us=now),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=30)
        finally:
            await producer.stop()
