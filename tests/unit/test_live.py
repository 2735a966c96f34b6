"""api.live: which days changed, fanned out to every stream; slow streams merge, never queue."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from api.live import LIVE_DAYS, LiveHub, Versions, changed_days, event, iso_day, stream

NOW = datetime(2026, 12, 1, 13, 20, tzinfo=UTC)
TODAY = 20_788  # 2026-12-01


def test_iso_day() -> None:
    assert iso_day(TODAY) == "2026-12-01"
    assert iso_day(0) == "1970-01-01"


versions = st.dictionaries(st.integers(0, 30), st.none() | st.text("abc", max_size=2))


@given(versions, versions)
def test_changed_days_are_exactly_the_days_whose_version_differs(a: Versions, b: Versions) -> None:
    days = changed_days(a, b)
    assert days == sorted(days)
    for day in a.keys() | b.keys():
        assert (day in days) == (a.get(day) != b.get(day))


def test_event_text() -> None:
    text = event([TODAY, TODAY + 1], NOW)
    assert text.startswith(b"event: changed\ndata: ")
    assert text.endswith(b"\n\n")
    data = orjson.loads(text.split(b"data: ", 1)[1])
    assert data == {"days": ["2026-12-01", "2026-12-02"], "time": "2026-12-01T13:20:00Z"}


class Polls:
    """Version maps handed out one per poll (the last repeats); records the ranges asked."""

    def __init__(self, *maps: Versions) -> None:
        self.maps: Iterator[Versions] = iter(maps)
        self.last: Versions = {}
        self.ranges: list[tuple[int, int]] = []
        self.fail = False

    async def __call__(self, first: int, stop: int) -> Versions:
        self.ranges.append((first, stop))
        if self.fail:
            raise ConnectionError("store down")
        self.last = next(self.maps, self.last)
        return self.last


async def test_listeners_hear_the_days_that_changed() -> None:
    polls = Polls({1: "a", 2: "a"}, {1: "a", 2: "b", 3: "a"})
    hub = LiveHub(polls, lambda: NOW, interval_s=0.01)
    async with hub.subscribe() as one, hub.subscribe() as two:
        await asyncio.wait_for(one.wake.wait(), 5)
        await asyncio.wait_for(two.wake.wait(), 5)
        assert one.take() == [2, 3]
        assert two.take() == [2, 3]
        assert len(hub) == 2
    assert len(hub) == 0
    assert polls.ranges[0] == (TODAY - LIVE_DAYS, TODAY + 2)
    await hub.close()


async def test_a_slow_listener_gets_the_union_once() -> None:
    polls = Polls({1: "a"}, {1: "b"}, {1: "b", 5: "a"}, {1: "b", 5: "a", 7: "a"})
    hub = LiveHub(polls, lambda: NOW, interval_s=0.01)
    async with hub.subscribe() as sub:
        while len(polls.ranges) < 5:
            await asyncio.sleep(0.01)
        assert sub.take() == [1, 5, 7]
        assert sub.take() == []
    await hub.close()


async def test_a_failing_poll_keeps_the_streams_and_recovers() -> None:
    polls = Polls({1: "a"}, {1: "b"})
    polls.fail = True
    hub = LiveHub(polls, lambda: NOW, interval_s=0.01)
    async with hub.subscribe() as sub:
        while len(polls.ranges) < 3:
            await asyncio.sleep(0.01)
        assert not sub.wake.is_set()
        polls.fail = False
        await asyncio.wait_for(sub.wake.wait(), 5)
        assert sub.take() == [1]
    await hub.close()


async def test_no_listener_no_polling() -> None:
    polls = Polls({1: "a"})
    hub = LiveHub(polls, lambda: NOW, interval_s=0.01)
    async with hub.subscribe():
        while not polls.ranges:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    asked = len(polls.ranges)
    await asyncio.sleep(0.05)
    assert len(polls.ranges) == asked
    await hub.close()


async def test_the_stream_over_http_and_its_end_at_shutdown() -> None:
    polls = Polls({1: "a"}, {1: "a"}, {1: "b"})
    hub = LiveHub(polls, lambda: NOW, interval_s=0.01)

    async def view(request: web.Request) -> web.StreamResponse:
        return await stream(request, hub, keepalive_s=0.05)

    app = web.Application()
    app.router.add_get("/live", view)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/live")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-cache"
        seen = b""
        while b'"days":["1970-01-02"]' not in seen or b": keep-alive" not in seen:
            seen += await asyncio.wait_for(response.content.readany(), 5)
        assert seen.startswith(b'retry: 2000\nevent: changed\ndata: {"days":[],')
        await hub.close()
        rest = await asyncio.wait_for(response.content.read(), 5)  # the server ended it
        assert b"event: changed" not in rest
