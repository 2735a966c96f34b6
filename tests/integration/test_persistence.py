"""The embedded Redis-protocol server keeps its rollups across restarts and crashes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from aggregators.model import LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.queries import Window, user_activity_report, user_latency_report
from aggregators.reader import WindowReader
from aggregators.store import RollupStore
from insights.devstack import start_redis

pytestmark = pytest.mark.integration

DAY = 19_800
T, U = "00000000-0000-0000-0000-0000000000f1", "00000000-0000-0000-0000-0000000000f2"
WINDOW = Window(DAY * 86_400 * 10**9, (DAY + 1) * 86_400 * 10**9, "s", "e", ())


def _events() -> list[Any]:
    at = DAY * 86_400_000_000 + 3_600_000_000
    sessions = [
        SessionEvent(f"s{m}", at + m * 60_000_000, U, "u", "", T, "w", "a", 1, 0b1)
        for m in range(25)
    ]
    latency = [
        LatencyEvent(f"l{i}", at + i * 60_000_000, U, T, "w", "a", 20.0 + i) for i in range(5)
    ]
    return sessions + latency


async def _answers(url: str) -> tuple[Any, Any]:
    client = Redis.from_url(url)
    try:
        reader = WindowReader(RollupStore(client).source)
        return (
            await user_activity_report(reader, WINDOW),
            await user_latency_report(reader, WINDOW, [("p50", 0.5)]),
        )
    finally:
        await client.aclose()


async def _write(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await RollupStore(client).apply(plan_batch(_events()))
    finally:
        await client.aclose()


@pytest.mark.parametrize("how", ["stop", "kill -9 after a second"])
async def test_rollups_survive_a_restart_on_the_same_data_dir(tmp_path: Path, how: str) -> None:
    data = tmp_path / "data"
    server = start_redis(data_dir=data)
    try:
        await _write(server.address)
        before = await _answers(server.address)
        if how == "stop":
            server.stop()
        else:
            time.sleep(1.5)  # appendfsync everysec: a crash loses at most the last second
            os.kill(server.pid, signal.SIGKILL)
    finally:
        server.stop()
    assert (data / "appendonlydir").is_dir()
    again = start_redis(data_dir=data)
    try:
        assert await _answers(again.address) == before
        users = before[0]["report"]["users"]
        assert users and users[0]["seconds"] == 25 * 60
    finally:
        again.stop()
