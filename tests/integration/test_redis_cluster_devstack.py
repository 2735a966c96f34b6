"""insights.devstack.cluster: three embedded masters joined into a Redis Cluster, with a
replica each, that redis-py's cluster client routes across."""

from __future__ import annotations

import itertools

import pytest
from redis.cluster import ClusterNode, RedisCluster

from insights.devstack.cluster import SLOTS, slot_ranges, start_redis_cluster

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("masters", [1, 2, 3, 7])
def test_slot_ranges_cover_every_slot_once(masters: int) -> None:
    ranges = slot_ranges(masters)
    assert ranges[0][0] == 0 and ranges[-1][1] == SLOTS - 1
    assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
    sizes = [hi - lo + 1 for lo, hi in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_a_three_master_cluster_with_replicas() -> None:
    cluster = start_redis_cluster(masters=3, replicas_per_master=1)
    try:
        assert cluster.address.startswith("redis+cluster://127.0.0.1:")
        seeds = cluster.address.split("://", 1)[1].split(",")
        assert len(seeds) == 6
        nodes = [ClusterNode(host, int(port)) for host, port in (s.rsplit(":", 1) for s in seeds)]
        with RedisCluster(startup_nodes=nodes, decode_responses=True) as client:
            assert len(client.get_primaries()) == 3
            assert len(client.get_replicas()) == 3
            for i in range(300):
                client.set(f"key:{i}", i)
            counts = [client.dbsize(target_nodes=node) for node in client.get_primaries()]
            assert sum(counts) == 300 and min(counts) > 50  # spread over every master
    finally:
        cluster.stop()
    assert not any(node.is_running() for node in cluster.nodes)
