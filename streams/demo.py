"""The simulator's driver: a simulated deployment's events, sent to Kafka.

``insights simulate`` and ``insights up --demo`` both run :class:`DemoProducer`: it draws a
deployment (``streams.simulation``; the demo catalogue below), backfills its last D days,
newest day first so that recent dashboards fill first, then follows the clock and sends
what the deployment's agents report as time passes, or tops that up to a chosen rate.
Events go out as batch messages keyed by the contract's key (``user_id``, ``workspace_id``
for builds), at most 500 events and 1 MiB each.

A rich progress bar (events, events/s, ETA) shows on a terminal; every phase also ends
with one log line (``backfill done: N events over D days in S s``), so a log that is
not a terminal says when the history is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aggregators.timebase import NS_PER_US, US_PER_DAY, US_PER_MIN, US_PER_S
from insights.devstack import TANSU_PRODUCER_SETTINGS
from insights.kafka_client import kafka_client_kwargs
from insights.settings import Settings
from streams import simulation
from streams.decoding import MAX_MESSAGE_BYTES
from streams.kafka_admin import create_topics
from streams.producer import FRAMING_HEADROOM_BYTES, KEY_FIELDS
from streams.simulation import Deployment, Simulation, TimedEvent, User
from streams.workloads import WireEvent, build_event, uuid_from

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_SEED",
    "DEFAULT_USERS",
    "TEMPLATES",
    "DemoProducer",
    "build_events",
    "deployment",
    "events_for_half_hour",
    "make_users",
    "simulate",
]

log = structlog.get_logger("insights.simulate")

DEFAULT_USERS = 40
DEFAULT_SEED = 7
DEFAULT_DAYS = 62  # the 61-day DAU chart, full
# The simulation's catalogue under ids of their own (examples/agent_producer.py reports
# into the first one, "docker").
TEMPLATES = tuple(
    replace(t, template_id=f"10000000-0000-4000-8000-{i:012d}")
    for i, t in enumerate(simulation.TEMPLATES, 1)
)
BATCH = 500  # events per message at most
MAX_VALUE_BYTES = MAX_MESSAGE_BYTES - FRAMING_HEADROOM_BYTES
IN_FLIGHT = 128  # messages handed to the client before waiting for their acks
LIVE_TICK_S = 1.0
HALF_HOUR_US = 30 * US_PER_MIN


def _now_us() -> int:
    return time.time_ns() // NS_PER_US


def deployment(
    users: int = DEFAULT_USERS, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS, *, now_us: int
) -> Deployment:
    """The demo's deployment of ``users`` users over the ``days`` days up to ``now_us``."""
    return simulation.generate(
        users, seed, templates=TEMPLATES, period=simulation.day_range(days, now_us)
    )


# --- one half-hour at a time (tests and fixtures) ----------------------------------------------


def make_users(count: int, seed: int = DEFAULT_SEED) -> list[User]:
    """The demo deployment's users, all of them there all the time (no period)."""
    return list(simulation.generate(count, seed, templates=TEMPLATES).users)


@functools.lru_cache(maxsize=4)
def _simulation_of(users: tuple[User, ...]) -> Simulation:
    return Simulation(Deployment(TEMPLATES, users, DEFAULT_SEED))


def events_for_half_hour(
    users: list[User], hh_start_us: int, until_us: int | None = None
) -> Iterator[tuple[str, WireEvent]]:
    """(topic kind, event) pairs of one half-hour of ``users``' deployment, those up to
    ``until_us`` only when it is given.

    The events are a function of the users and the time: sending a half-hour again, as it
    fills, re-sends identical events, idempotent downstream.
    """
    sim = _simulation_of(tuple(users))
    for kind, time_us, event in sim.events(hh_start_us, hh_start_us + HALF_HOUR_US):
        if until_us is None or time_us <= until_us:
            yield kind, event


def build_events(users: list[User], at_us: int) -> Iterator[tuple[str, WireEvent]]:
    """Build 1 of every user's main workspace at ``at_us``, with its usual parameters."""
    for u in users:
        ws = u.main
        event = build_event(
            u.agent(), uuid_from("demo", "b", ws.workspace_id), at_us, 1, ws.params[0]
        )
        event |= {"template_name": ws.template.name, "organization_name": ws.template.organization}
        yield "builds", event


# --- sending -----------------------------------------------------------------------------------


class _Sender:
    """Packs consecutive events of one key into batch messages and sends them, waiting for
    the acknowledgements every ``IN_FLIGHT`` messages (errors surface there)."""

    def __init__(self, producer: AIOKafkaProducer, settings: Settings) -> None:
        self._producer = producer
        self._settings = settings
        self._buffers: dict[str, tuple[str, list[WireEvent]]] = {}
        self._pending: list[asyncio.Future[Any]] = []
        self.sent = 0  # events handed to the client

    async def add(self, kind: str, event: WireEvent) -> None:
        key = event[KEY_FIELDS[kind]]
        buffer = self._buffers.get(kind)
        if buffer is not None and (buffer[0] != key or len(buffer[1]) >= BATCH):
            del self._buffers[kind]
            await self._send(kind, *buffer)
            buffer = None
        if buffer is None:
            buffer = self._buffers[kind] = (key, [])
        buffer[1].append(event)

    async def add_all(self, events: Iterable[TimedEvent]) -> None:
        for kind, _, event in events:
            await self.add(kind, event)

    async def flush(self) -> None:
        """Send what is buffered and wait until the broker acknowledged everything."""
        buffers, self._buffers = self._buffers, {}
        for kind, (key, events) in buffers.items():
            await self._send(kind, key, events)
        await self._settle()

    async def _send(self, kind: str, key: str, events: list[WireEvent]) -> None:
        value = orjson.dumps(events)
        if len(value) > MAX_VALUE_BYTES and len(events) > 1:
            half = len(events) // 2
            await self._send(kind, key, events[:half])
            await self._send(kind, key, events[half:])
            return
        topic = self._settings.topic(kind)
        self._pending.append(await self._producer.send(topic, value, key=key.encode()))
        self.sent += len(events)
        if len(self._pending) >= IN_FLIGHT:
            await self._settle()
        else:
            await asyncio.sleep(0)  # generating is CPU work: let the rest of the loop run

    async def _settle(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)


class _Display:
    """A rich progress bar per phase on a terminal; nothing otherwise (the log lines say
    it all)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self.started = 0.0

    def start(self, phase: str, total: int | None) -> None:
        self.started = time.monotonic()
        if not self.console.is_terminal:
            return
        self.bar = Progress(
            TextColumn("[bold]{task.description:<9}"),
            BarColumn(),
            TextColumn("{task.completed:>12,.0f} events  {task.fields[rate]:>9,.0f} ev/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(phase, total=total, rate=0.0)

    def update(self, events: int) -> None:
        if self.bar is not None and self.task is not None:
            rate = events / max(time.monotonic() - self.started, 1e-6)
            self.bar.update(self.task, completed=events, rate=rate)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = self.task = None


@dataclass
class Sent:
    """What a run sent."""

    backfill_events: int = 0
    live_events: int = 0


class DemoProducer:
    """Sends a simulated deployment's events: a backfill of past days, then live events.

    ``users`` and ``seed`` draw the deployment (``deployment``); ``rate`` is the live
    events/s (0: the deployment's own pace, each open session reporting every 30 s);
    ``clock_us`` is the clock (epoch microseconds); ``console`` shows the progress bar
    when it is a terminal.
    """

    def __init__(
        self,
        settings: Settings,
        users: int = DEFAULT_USERS,
        clock_us: Callable[[], int] | None = None,
        *,
        seed: int = DEFAULT_SEED,
        rate: float = 0.0,
        console: Console | None = None,
    ) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.settings = settings
        self.users = users
        self.seed = seed
        self.rate = rate
        self.clock_us = clock_us or _now_us
        self.display = _Display(console or Console(stderr=True))
        self.sent = Sent()

    async def run(self, backfill_days: int, stop: asyncio.Event, *, live: bool = True) -> None:
        """Backfill ``backfill_days`` days up to now, then (``live``) keep sending until
        ``stop`` is set (``sent`` counts the events)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            linger_ms=5,
            **TANSU_PRODUCER_SETTINGS,
            **kafka_client_kwargs(self.settings),
        )
        await producer.start()
        try:
            now = self.clock_us()
            sim = Simulation(deployment(self.users, self.seed, backfill_days, now_us=now))
            sender = _Sender(producer, self.settings)
            await self._backfill(sim, sender, backfill_days, now, stop)
            if live and not stop.is_set():
                await self._live(sim, sender, now, stop)
        finally:
            await producer.stop()

    async def _backfill(
        self, sim: Simulation, sender: _Sender, days: int, now: int, stop: asyncio.Event
    ) -> None:
        if days <= 0:
            return
        started = time.monotonic()
        self.display.start("backfill", sim.count(now - days * US_PER_DAY, now))
        try:
            for day in range(days):  # newest first: recent dashboards fill first
                end = now - day * US_PER_DAY
                for plan in sim.plans(end - US_PER_DAY, end):
                    await sender.add_all(sim.plan_events(plan, end - US_PER_DAY, end))
                    self.display.update(sender.sent)
                if stop.is_set():
                    break
            await sender.flush()
        finally:
            self.display.stop()
        self.sent.backfill_events = sender.sent
        seconds = time.monotonic() - started
        word = "backfill done" if not stop.is_set() else "backfill stopped"
        log.info(
            f"{word}: {sender.sent:,} events over {days} day{'s' * (days != 1)} in {seconds:.1f} s",
            events=sender.sent,
            days=days,
            seconds=round(seconds, 1),
            users=self.users,
            seed=self.seed,
        )

    async def _live(
        self, sim: Simulation, sender: _Sender, since: int, stop: asyncio.Event
    ) -> None:
        base = sender.sent
        pace = f"{self.rate:g} events/s" if self.rate else "the deployment's own pace"
        log.info(f"live: sending events as they happen at {pace}", rate=self.rate)
        started = time.monotonic()
        self.display.start("live", None)
        extra_rng = random.Random(os.urandom(16))  # extra reports get ids of their own
        owed = 0.0
        try:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=LIVE_TICK_S)
                now = self.clock_us()
                if now <= since:
                    continue
                before = sender.sent
                await sender.add_all(sim.events(since, now))
                if self.rate:
                    owed += self.rate * (now - since) / US_PER_S - (sender.sent - before)
                    extra = int(owed)
                    if extra > 0:
                        await sender.add_all(sim.extra_events(extra_rng, since, now, extra))
                        owed -= extra
                    owed = max(owed, 0.0)
                await sender.flush()
                since = now
                self.display.update(sender.sent - base)
        finally:
            self.display.stop()
            self.sent.live_events = sender.sent - base
            seconds = time.monotonic() - started
            log.info(
                f"live done: {self.sent.live_events:,} events in {seconds:.1f} s",
                events=self.sent.live_events,
                seconds=round(seconds, 1),
            )


async def simulate(
    settings: Settings,
    *,
    users: int,
    seed: int,
    days: int,
    rate: float,
    live: bool,
    console: Console | None = None,
) -> Sent:
    """``insights simulate``: create the topics when missing, then run a
    :class:`DemoProducer` until it is done (``live=False``) or SIGINT/SIGTERM."""
    await create_topics(
        settings.kafka_bootstrap,
        settings.all_topics,
        settings.topic_partitions,
        security=kafka_client_kwargs(settings),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        producer = DemoProducer(settings, users, seed=seed, rate=rate, console=console)
        await producer.run(days, stop, live=live)
        return producer.sent
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
