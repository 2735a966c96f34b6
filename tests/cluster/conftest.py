"""Cluster tier: the service against a real Redis Cluster of embedded servers on loopback.

One cluster per session: three masters with a replica each (``insights.devstack.cluster``,
``cluster-node-timeout`` 2 s, so a killed master's replica takes over in a few seconds).
A cluster has database 0 only, so the tests take turns: each starts from a flushed cluster.
Marked ``cluster`` (part of ``make test``; ``pytest -m cluster`` runs the tier alone).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis.cluster import ClusterNode, RedisCluster

from insights.devstack.cluster import ManagedCluster, start_redis_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[ManagedCluster]:
    cluster = start_redis_cluster(masters=3, replicas_per_master=1)
    try:
        yield cluster
    finally:
        cluster.stop()


def sync_client(cluster: ManagedCluster) -> RedisCluster:
    """A synchronous cluster client for the tests' own reads, seeded with every live node."""
    seeds = cluster.address.split("://", 1)[1].split(",")
    nodes = [ClusterNode(h, int(p)) for h, p in (s.rsplit(":", 1) for s in seeds)]
    live = [n for n, proc in zip(nodes, cluster.nodes, strict=True) if proc.is_running()]
    return RedisCluster(startup_nodes=live, decode_responses=True)


def flush(cluster: ManagedCluster) -> None:
    with sync_client(cluster) as client:
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
