"""The store over redis-py's cluster client, against an embedded 3-master Redis Cluster.

The same writes, reads, scripts and maintenance as on one server: the oracle property test
with days in 8 buckets, NOSCRIPT after a script cache flush, retention and a rebuild's key
deletion on every primary, ``insights check`` naming the cluster, and the layout (buckets
per day) recorded once and refused when it differs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio.cluster import RedisCluster

from aggregators.model import SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import LayoutMismatch, RollupStore, keys
from insights.check import Findings
from insights.check import _redis as check_redis
from insights.devstack.cluster import ManagedCluster, start_redis_cluster
from insights.redis_client import create_redis
from insights.settings import Settings
from streams.rebuild import delete_generations
from tests.integration.test_store_vs_oracle import _events, _run, event_st

pytestmark = pytest.mark.integration

DAY = 19_584
DAY_US = DAY * 86_400 * 10**6
T = "00000000-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def cluster() -> Iterator[ManagedCluster]:
    c = start_redis_cluster(masters=3)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
async def client(cluster: ManagedCluster) -> AsyncIterator[RedisCluster]:
    redis = create_redis(Settings(redis_url=cluster.address))
    assert isinstance(redis, RedisCluster)
    try:
        await redis.flushall()
        yield redis
    finally:
        await redis.aclose()


def _sessions(users: int, day: int = DAY, tag: str = "s") -> list[SessionEvent]:
    return [
        SessionEvent(
            f"{tag}{i}",
            day * 86_400 * 10**6 + 600 * 10**6 * (i % 100),
            f"00000000-0000-4000-8000-{i:012d}",
            f"user{i}",
            "",
            T,
            "w",
            "a",
            1,
            1,
        )
        for i in range(users)
    ]


async def _keys_per_master(redis: RedisCluster, pattern: str) -> list[int]:
    counts = []
    for node in redis.get_primaries():
        found = [k async for k in _scan(redis, node, pattern)]
        counts.append(len(found))
    return counts


async def _scan(redis: RedisCluster, node: Any, pattern: str) -> AsyncIterator[Any]:
    cursor = 0
    while True:
        got = await redis.scan(cursor, match=pattern, count=1000, target_nodes=node)
        cursors, batch = got  # the cluster client answers {node: cursor}, keys
        cursor = cursors[node.name]
        for k in batch:
            yield k
        if not cursor:
            return


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=st.lists(event_st, min_size=1, max_size=60), split=st.integers(1, 25))
def test_store_on_a_cluster_matches_oracle(
    cluster: ManagedCluster, raw: list[tuple[Any, ...]], split: int
) -> None:
    asyncio.run(_run(cluster.address, _events(raw), split, buckets=8))


async def test_a_day_in_16_buckets_is_written_to_every_master(client: RedisCluster) -> None:
    store = RollupStore(client, day_buckets=16)
    assert await store.apply(plan_batch(_sessions(200))) > 0
    per_master = await _keys_per_master(client, f"{keys.ROOT}:g0:{{d{DAY}:*")
    assert len(per_master) == 3 and min(per_master) > 0, per_master
    # A second store (an API process) reads the recorded layout, whatever its own setting.
    reader = RollupStore(client, day_buckets=None)
    snap = await reader.source.snapshot(DAY, DAY + 1)
    assert reader.generations.keys.buckets == 16 and snap.days == (DAY,)


async def test_scripts_are_loaded_again_after_a_flush_of_the_script_cache(
    client: RedisCluster,
) -> None:
    store = RollupStore(client, day_buckets=16)
    assert await store.apply(plan_batch(_sessions(50))) > 0
    await client.script_flush()  # every primary: as a restarted or promoted node
    assert await store.apply(plan_batch(_sessions(50, DAY + 1, "again"))) > 0


async def test_retention_and_rebuild_deletion_cover_every_primary(client: RedisCluster) -> None:
    store = RollupStore(client, day_buckets=16)
    await store.apply(plan_batch(_sessions(100, DAY - 10, "old") + _sessions(100, DAY, "new")))
    assert await store.retention.drop_days_before(DAY) == [DAY - 10]
    old = await _keys_per_master(client, f"{keys.ROOT}:g0:{{d{DAY - 10}:*")
    assert sum(old) == 17  # only the version counters (16 buckets and the builds), which move on
    new = await _keys_per_master(client, f"{keys.ROOT}:g0:{{d{DAY}:*")
    assert min(new) > 0
    # Another generation's keys and older formats' go, on every master.
    rebuilt = RollupStore(client, generation=1, day_buckets=16)
    await rebuilt.apply(plan_batch(_sessions(100, DAY, "g1")))
    await client.set("cis:v3:g0:{d1}:ver", 1)
    deleted = await delete_generations(client, keep=1)
    assert deleted >= sum(new) + 1
    assert sum(await _keys_per_master(client, f"{keys.ROOT}:g0:*")) == 0
    assert sum(await _keys_per_master(client, f"{keys.ROOT}:g1:*")) > 0
    assert await client.hkeys(keys.layouts()) == [b"1"]


async def test_a_different_bucket_count_is_refused(client: RedisCluster) -> None:
    await RollupStore(client, day_buckets=16).apply(plan_batch(_sessions(5)))
    with pytest.raises(LayoutMismatch, match="INSIGHTS_REDIS_DAY_BUCKETS=4"):
        await RollupStore(client, day_buckets=4).generations.claim(strict=True)
    await RollupStore(client, day_buckets=16).generations.claim(strict=True)


async def test_a_worker_with_another_bucket_count_refuses_to_start(
    cluster: ManagedCluster, client: RedisCluster
) -> None:
    from insights.runtime import _claim_layout

    await RollupStore(client, day_buckets=16).apply(plan_batch(_sessions(5)))
    with pytest.raises(SystemExit, match=r"insights worker: INSIGHTS_REDIS_DAY_BUCKETS=4,"):
        await _claim_layout(Settings(redis_url=cluster.address, redis_day_buckets=4), client)
    # The cluster's default (16) is what the data was written with: it starts.
    await _claim_layout(Settings(redis_url=cluster.address), client)


async def test_ping_and_check_report_the_cluster(cluster: ManagedCluster) -> None:
    settings_ = Settings(redis_url=cluster.address)
    out: Findings = []
    await check_redis(settings_, out)
    lines = [f.line() for f in out]
    assert any(
        line.startswith("OK    redis cluster: cluster_state ok, 3 masters, 0 replicas,")
        for line in lines
    ), lines
    redis = create_redis(settings_)
    try:
        assert await RollupStore(redis).ping()
    finally:
        await redis.aclose()
