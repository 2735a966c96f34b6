"""Worker heartbeats through the store, and the container health check built on them."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner
from redis.asyncio import Redis

from aggregators.store import RollupStore, WorkerBeat
from insights import runtime
from insights.cli import main
from insights.settings import Settings

pytestmark = pytest.mark.integration


async def test_beats_round_trip_and_age(redis_client: Redis, redis_url: str) -> None:
    store = RollupStore(redis_client)
    now_ms = time.time_ns() // 1_000_000
    await store.heartbeats.beat(WorkerBeat("host-a:1:f", now_ms, ("insights.sessions:0",)))
    await store.heartbeats.beat(WorkerBeat("host-b:2:f", now_ms - 60_000, ()))
    beats = {b.worker_id: b for b in await store.heartbeats.read()}
    assert beats["host-a:1:f"].partitions == ("insights.sessions:0",)
    assert beats["host-a:1:f"].fresh(now_ms, 30_000)
    assert not beats["host-b:2:f"].fresh(now_ms, 30_000)
    settings = Settings(redis_url=redis_url)
    assert await runtime.host_worker_alive(settings, "host-a", 30)
    assert not await runtime.host_worker_alive(settings, "host-b", 30)
    assert not await runtime.host_worker_alive(settings, "host", 30)  # ids match whole hosts
    await store.heartbeats.remove("host-a:1:f")
    assert not await runtime.host_worker_alive(settings, "host-a", 30)


async def test_entries_of_dead_workers_are_pruned(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    now_ms = time.time_ns() // 1_000_000
    await store.heartbeats.beat(WorkerBeat("live:1:a", now_ms - 5_000, ("t:0",)))
    await store.heartbeats.beat(WorkerBeat("dead:2:b", now_ms - 700_000, ("t:1",)))
    assert await store.heartbeats.prune(now_ms, 600_000) == 1
    assert [b.worker_id for b in await store.heartbeats.read()] == ["live:1:a"]
    assert await store.heartbeats.prune(now_ms, 600_000) == 0


def test_worker_alive_command_fails_without_a_beat(redis_client: Redis, redis_url: str) -> None:
    del redis_client  # requested for its FLUSHALL: no beat of this host is left
    result = CliRunner().invoke(main, ["worker-alive"], env={"INSIGHTS_REDIS_URL": redis_url})
    assert result.exit_code == 1
