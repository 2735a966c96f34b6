"""Retention drops whole days older than the horizon and touches nothing newer."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from aggregators.model import BuildEvent, LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.queries import Window, user_activity_report
from aggregators.reader import WindowReader
from aggregators.store import RollupStore
from aggregators.store.keys import Keyspace

KEYS = Keyspace()  # generation 0, the live one of a fresh store

pytestmark = pytest.mark.integration

DAY = 19_800
T, U = "00000000-0000-0000-0000-0000000000e1", "00000000-0000-0000-0000-0000000000e2"
US_DAY = 86_400_000_000


def _day(day: int) -> list[Any]:
    at = day * US_DAY + 3_600_000_000
    return [
        SessionEvent(f"s{day}", at, U, "u", "", T, "w", "a", 1, 0b1),
        LatencyEvent(f"l{day}", at, U, T, "w", "a", 12.0),
        BuildEvent(f"b{day}", at, T, "w", U, day, ()),
    ]


async def _seconds(reader: WindowReader, day: int) -> int:
    window = Window(day * US_DAY * 1000, (day + 1) * US_DAY * 1000, "s", "e", ())
    body: Any = await user_activity_report(reader, window)
    return sum(u["seconds"] for u in body["report"]["users"])


async def test_days_before_the_horizon_go_whole_and_newer_days_stay(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    await store.apply(plan_batch([e for d in range(DAY - 3, DAY + 1) for e in _day(d)]))
    reader = WindowReader(store.source)
    assert [await _seconds(reader, d) for d in range(DAY - 3, DAY + 1)] == [60] * 4

    assert await store.retention.drop_days_before(DAY - 1) == [DAY - 3, DAY - 2]

    left = {k.decode() for k in await redis_client.keys("*")}
    for day in (DAY - 3, DAY - 2):
        kept = {k for k in left if k.startswith(KEYS.day_prefix(day))}
        shared_frames = {k for k in kept if k.startswith(KEYS.day_frame(day, ""))}  # TTL'd
        assert kept - shared_frames == {
            KEYS.day_version(day),  # the counters move on, so no cache takes old frames
            KEYS.day_builds_version(day),
        }
    for day in (DAY - 1, DAY):
        assert KEYS.cell(day, T, U) in left and KEYS.day_builds(day) in left
    # the same reader, holding frames of the dropped days, answers from what remains
    assert [await _seconds(reader, d) for d in range(DAY - 3, DAY + 1)] == [0, 0, 60, 60]
    assert await store.retention.drop_days_before(DAY - 1) == []
