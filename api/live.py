"""``GET /api/v2/insights/live``: server-sent events that tell a dashboard which days changed.

One poller per API process reads the versions of the recent days (``LIVE_DAYS`` UTC days up
to tomorrow: every write bumps its day's version, builds their own) and fans the changed
days out to every open stream; it runs only while a stream is open.  A slow client never
queues: its pending days are merged into one set until it reads them.  Each message is

    event: changed
    data: {"days": ["2026-12-01"], "time": "2026-12-01T13:20:00Z"}

(UTC dates; the first message after connecting lists no days and says the stream is live),
with a comment line as a keep-alive in between.  An ``EventSource`` cannot send headers,
so besides the headers of the other endpoints the token may come as the
``coder_session_token`` query parameter or cookie, as Coder accepts it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from aiohttp import web

from aggregators.source import RollupSource, Version

log = structlog.get_logger("insights.api.live")

LIVE_DAYS = 100  # past UTC days watched: the longest preset (12 weeks) and its local edges
POLL_S = 0.5  # freshness budget of the page: 2 s from event to screen
KEEPALIVE_S = 15.0  # below the idle timeouts of common proxies (30-60 s)
MAX_STREAMS = 1_000  # per process; each is a socket and a few hundred bytes
RETRY_MS = 2_000  # how soon a browser reconnects after a dropped stream
TOKEN_PARAM = "coder_session_token"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Versions = Mapping[int, Version]
Poll = Callable[[int, int], Awaitable[Versions]]  # (first UTC day, stop day) -> versions


def changed_days(before: Versions, after: Versions) -> list[int]:
    """Days whose version differs (appeared, moved or vanished), ascending."""
    return sorted(d for d in before.keys() | after.keys() if before.get(d) != after.get(d))


async def source_versions(source: RollupSource, first_day: int, stop_day: int) -> Versions:
    """A day's activity version and its builds version together: either moves the day."""
    snap = await source.snapshot(first_day, stop_day)
    builds = await source.build_versions(snap.days)
    return {day: f"{snap.day_versions[day]}/{b}" for day, b in zip(snap.days, builds, strict=True)}


def iso_day(epoch_day: int) -> str:
    return (_EPOCH + timedelta(days=epoch_day)).strftime("%Y-%m-%d")


def event(days: list[int], now: datetime) -> bytes:
    data = {"days": [iso_day(d) for d in days], "time": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return b"event: changed\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass(eq=False)
class Subscriber:
    pending: set[int] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def offer(self, days: list[int]) -> None:
        self.pending.update(days)
        self.wake.set()

    def take(self) -> list[int]:
        days, self.pending = sorted(self.pending), set()
        self.wake.clear()
        return days


class LiveHub:
    """Polls ``poll`` every ``interval_s`` while anyone listens; tells each listener which
    days changed since the previous poll."""

    def __init__(
        self,
        poll: Poll,
        clock: Callable[[], datetime],
        interval_s: float = POLL_S,
        max_streams: int = MAX_STREAMS,
    ) -> None:
        self._poll = poll
        self.clock = clock
        self.interval_s = interval_s
        self.max_streams = max_streams
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __len__(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscriber]:
        sub = Subscriber()
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="insights-live-poll")
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def full(self) -> bool:
        return len(self._subscribers) >= self.max_streams

    async def _run(self) -> None:
        known: Versions | None = None
        while self._subscribers and not self._closed:
            today = int((self.clock() - _EPOCH).total_seconds() // 86_400)
            try:
                now = await self._poll(today - LIVE_DAYS, today + 2)
            except Exception as exc:  # the store is down: keep the streams, try again
                log.debug("live poll failed", error=str(exc))
            else:
                if known is not None:
                    days = changed_days(known, now)
                    if days:
                        for sub in self._subscribers:
                            sub.offer(days)
                known = now
            await asyncio.sleep(self.interval_s)

    async def close(self) -> None:
        """Ends every stream (at shutdown: an open stream would hold it up)."""
        self._closed = True
        for sub in self._subscribers:
            sub.closed = True
            sub.wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def stream(
    request: web.Request, hub: LiveHub, keepalive_s: float = KEEPALIVE_S
) -> web.StreamResponse:
    """The event stream of one client, until it goes away or the process stops."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx would otherwise hold the events back
        }
    )
    await response.prepare(request)
    now = hub.clock
    async with hub.subscribe() as sub:
        await response.write(f"retry: {RETRY_MS}\n".encode() + event([], now()))
        while not sub.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(keepalive_s):
                    await sub.wake.wait()
            if sub.closed:
                break
            try:
                days = sub.take()
                await response.write(event(days, now()) if days else b": keep-alive\n\n")
            except (ConnectionResetError, RuntimeError):  # the client went away
                break
    return response
