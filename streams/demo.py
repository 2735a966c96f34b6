"""Demo producer: a small, realistic deployment emitting events in batches.

Users work in a few templates during their local working hours, agents report
every 30 s while a session is open, apps are used in stretches, and latency
samples follow a log-normal with an occasional slow tail.  ``backfill`` fills
past days (with a progress bar); ``run_live`` keeps emitting as time passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer
from rich.progress import Progress

from insights.settings import Settings

KINDS = ("vscode", "jetbrains", "reconnecting_pty", "ssh", "sftp")
TEMPLATES = {
    "10000000-0000-4000-8000-000000000001": ("docker", ["code-server", "jupyter"]),
    "10000000-0000-4000-8000-000000000002": ("kubernetes", ["code-server", "grafana"]),
    "10000000-0000-4000-8000-000000000003": ("gpu-ml", ["jupyter"]),
}
BATCH = 100
US = 1_000_000
Event = dict[str, object]


def _uid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "demo/" + "/".join(map(str, parts))))


def _rfc(time_us: int) -> str:
    dt = datetime.fromtimestamp(time_us / US, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


@dataclass(frozen=True)
class DemoUser:
    user_id: str
    username: str
    template_id: str
    workspace_id: str
    agent_id: str
    utc_start_h: int
    kind: str


def make_users(count: int, seed: int = 7) -> list[DemoUser]:
    rnd = random.Random(seed)
    users = []
    for i in range(count):
        template = rnd.choice(list(TEMPLATES))
        users.append(
            DemoUser(
                _uid("user", i),
                f"dev{i:03d}",
                template,
                _uid("ws", i),
                _uid("agent", i),
                rnd.choice([1, 7, 8, 9, 13, 14]),
                rnd.choice(["vscode", "vscode", "ssh", "jetbrains", "reconnecting_pty"]),
            )
        )
    return users


def events_for_half_hour(
    users: list[DemoUser], hh_start_us: int, rnd: random.Random
) -> Iterator[tuple[str, Event]]:
    """(topic kind, event) pairs of one half-hour of the deployment.

    Seed ``rnd`` with the half-hour: the live loop re-sends the current
    half-hour as it fills, and identical events are idempotent downstream.
    """
    hour = (hh_start_us // (3600 * US)) % 24
    for u in users:
        working = (hour - u.utc_start_h) % 24 < 8 and rnd.random() < 0.8
        if not working:
            continue
        yield from _sessions(u, hh_start_us, rnd)
        yield from _latency(u, hh_start_us, rnd)
        if rnd.random() < 0.4:
            yield "app_usage", _app(u, hh_start_us, rnd)


def _agent_fields(u: DemoUser, with_profile: bool = True) -> Event:
    """Who and where: the fields every agent-side event carries."""
    fields: Event = {
        "user_id": u.user_id,
        "template_id": u.template_id,
        "workspace_id": u.workspace_id,
        "agent_id": u.agent_id,
    }
    if with_profile:
        fields.update(username=u.username, avatar_url="")
    return fields


def _sessions(u: DemoUser, hh_start_us: int, rnd: random.Random) -> Iterator[tuple[str, Event]]:
    for step in range(60):
        at = hh_start_us + step * 30 * US + rnd.randrange(1000)
        yield (
            "sessions",
            {
                "id": _uid("s", u.user_id, at),
                "time": _rfc(at),
                **_agent_fields(u),
                "connection_count": 1,
                "sessions": {k: int(k == u.kind) for k in KINDS},
            },
        )


def _latency(u: DemoUser, hh_start_us: int, rnd: random.Random) -> Iterator[tuple[str, Event]]:
    for step in range(0, 60, 2):
        at = hh_start_us + step * 30 * US
        ms = rnd.lognormvariate(3.3, 0.4) * (8 if rnd.random() < 0.05 else 1)
        yield (
            "latency",
            {
                "id": _uid("l", u.user_id, at),
                "time": _rfc(at),
                **_agent_fields(u, with_profile=False),
                "latency_ms": round(ms, 2),
            },
        )


def _app(u: DemoUser, hh_start_us: int, rnd: random.Random) -> Event:
    slug = rnd.choice(TEMPLATES[u.template_id][1])
    start = hh_start_us + rnd.randrange(20) * 60 * US
    end = start + rnd.randrange(1, 10) * 60 * US
    return {
        "id": _uid("a", u.user_id, start),
        "time": _rfc(end),
        "session_id": _uid("as", u.user_id, start),
        **_agent_fields(u),
        "access_method": "path",
        "slug_or_port": slug,
        "app": {"display_name": slug, "icon": f"/icon/{slug}.svg"},
        "started_at": _rfc(start),
        "ended_at": _rfc(end),
        "requests": rnd.randrange(1, 50),
    }


def build_events(users: list[DemoUser], at_us: int) -> Iterator[tuple[str, Event]]:
    for u in users:
        yield (
            "builds",
            {
                "id": _uid("b", u.workspace_id),
                "time": _rfc(at_us),
                "template_id": u.template_id,
                "workspace_id": u.workspace_id,
                "user_id": u.user_id,
                "build_number": 1,
                "parameters": [
                    {
                        "name": "region",
                        "type": "string",
                        "display_name": "Region",
                        "description": "Where the **workspace** runs",
                        "options": [
                            {"name": "Europe", "description": "", "value": "eu", "icon": ""},
                            {"name": "US", "description": "", "value": "us", "icon": ""},
                        ],
                        "value": "eu" if int(u.user_id[-1], 16) % 3 else "us",
                    },
                ],
            },
        )


class DemoProducer:
    def __init__(
        self, settings: Settings, users: int = 40, clock_us: Callable[[], int] | None = None
    ) -> None:
        self.settings = settings
        self.users = make_users(users)
        self.clock_us = clock_us or (lambda: int(datetime.now(UTC).timestamp() * US))

    async def _send(self, producer: AIOKafkaProducer, pairs: Iterator[tuple[str, Event]]) -> int:
        buffers: dict[str, list[Event]] = {}
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
        )
        await producer.start()
        try:
            now = self.clock_us()
            half = 1800 * US
            current = now - now % half
            await self._send(producer, build_events(self.users, now - backfill_days * 86400 * US))
            first = current - backfill_days * 48 * half
            with Progress(transient=True) as progress:
                task = progress.add_task("demo backfill", total=backfill_days * 48)
                for hh in range(first, current, half):
                    await self._send(
                        producer, events_for_half_hour(self.users, hh, random.Random(hh))
                    )
                    progress.advance(task)
            while not stop.is_set():
                now = self.clock_us()
                current = now - now % half
                pairs = (
                    (k, e)
                    for k, e in events_for_half_hour(self.users, current, random.Random(current))
                    if str(e["time"]) <= _rfc(now)
                )
                await self._send(producer, pairs)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=30)
        finally:
            await producer.stop()
