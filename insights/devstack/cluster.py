"""A Redis Cluster of embedded servers on 127.0.0.1: masters with their slot ranges and,
optionally, a replica per master.

No cluster tool is needed: the nodes start in cluster mode with no slots, each master is
given its share of the 16,384 slots (``CLUSTER ADDSLOTSRANGE``), every node meets the first
one (``CLUSTER MEET``), replicas follow their master (``CLUSTER REPLICATE``), and the cluster
is ready once every node reports ``cluster_state:ok`` and knows every other node.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from redis import Redis as SyncRedis

from insights.devstack.process import EmbeddedStartError, ManagedProcess, free_port
from insights.devstack.servers import start_redis

SLOTS = 16_384
CLUSTER_SCHEME = "redis+cluster"


@dataclass
class ManagedCluster:
    masters: list[ManagedProcess]
    replicas: list[ManagedProcess] = field(default_factory=list)

    @property
    def nodes(self) -> list[ManagedProcess]:
        return [*self.masters, *self.replicas]

    @property
    def address(self) -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...``: every node is a seed."""
        seeds = ",".join(_host_port(n) for n in self.nodes)
        return f"{CLUSTER_SCHEME}://{seeds}"

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


def _host_port(node: ManagedProcess) -> str:
    return node.address.removeprefix("redis://").rsplit("/", 1)[0]


def _client(node: ManagedProcess) -> SyncRedis:
    host, port = _host_port(node).rsplit(":", 1)
    return SyncRedis(host=host, port=int(port), decode_responses=True, socket_timeout=5)


def slot_ranges(masters: int) -> list[tuple[int, int]]:
    """Contiguous, inclusive slot ranges, as even as 16,384 allows."""
    bounds = [SLOTS * i // masters for i in range(masters + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(masters)]


def start_redis_cluster(
    masters: int = 3, replicas_per_master: int = 0, timeout_s: float = 30.0
) -> ManagedCluster:
    """Start and join the cluster; on any failure every node started is stopped."""
    if masters < 1 or replicas_per_master < 0:
        raise ValueError("a cluster needs at least one master")
    cluster = ManagedCluster([])
    try:
        cluster.masters = [_start_node() for _ in range(masters)]
        cluster.replicas = [_start_node() for _ in range(masters * replicas_per_master)]
        _join(cluster, timeout_s)
    except BaseException:
        cluster.stop()
        raise
    return cluster


# A node's cluster bus listens on its port + 10,000, so the port must be 55,535 or less.
MAX_NODE_PORT = 65_535 - 10_000
_NODE_ATTEMPTS = 5


def _start_node() -> ManagedProcess:
    """A cluster-mode server on a free port low enough for its bus port (another process may
    take the port first: then another one)."""
    for attempt in range(1, _NODE_ATTEMPTS + 1):
        port = free_port()
        while port > MAX_NODE_PORT:
            port = free_port()
        try:
            return start_redis(port, cluster=True)
        except EmbeddedStartError:
            if attempt == _NODE_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _join(cluster: ManagedCluster, timeout_s: float) -> None:
    first = cluster.masters[0]
    host, port = _host_port(first).rsplit(":", 1)
    for node, (lo, hi) in zip(cluster.masters, slot_ranges(len(cluster.masters)), strict=True):
        with _client(node) as r:
            r.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
    for node in cluster.nodes[1:]:
        with _client(node) as r:
            r.execute_command("CLUSTER", "MEET", host, int(port))
    deadline = time.monotonic() + timeout_s
    _wait_met(cluster, deadline)
    ids = []
    for master in cluster.masters:
        with _client(master) as r:
            ids.append(r.execute_command("CLUSTER", "MYID"))
    per_master = len(cluster.replicas) // len(cluster.masters)
    for i, replica in enumerate(cluster.replicas):
        with _client(replica) as r:
            r.execute_command("CLUSTER", "REPLICATE", ids[i // per_master])
    _wait_ok(cluster, deadline)


def _known_nodes(node: ManagedProcess) -> int:
    with _client(node) as r:
        return len(str(r.execute_command("CLUSTER", "NODES")).strip().splitlines())


def _wait_met(cluster: ManagedCluster, deadline: float) -> None:
    """Until every node knows every node (gossip spreads the meets)."""
    want = len(cluster.nodes)
    while not all(_known_nodes(node) >= want for node in cluster.nodes):
        if time.monotonic() > deadline:
            raise EmbeddedStartError(f"the {want} cluster nodes did not all meet in time")
        time.sleep(0.05)


def _replicas_listed(cluster: ManagedCluster) -> bool:
    """Clients learn replicas from ``CLUSTER SLOTS``, which lists one once it has synced:
    every node must list every replica (a client may ask any of them first)."""
    for node in cluster.nodes:
        with _client(node) as r:
            slots = r.execute_command("CLUSTER", "SLOTS")
        if sum(len(entry) - 3 for entry in slots) < len(cluster.replicas):
            return False
    return True


def _wait_ok(cluster: ManagedCluster, deadline: float) -> None:
    while True:
        states = []
        for node in cluster.nodes:
            with _client(node) as r:
                info = r.execute_command("CLUSTER", "INFO")
            states.append("cluster_state:ok" in str(info))
        if all(states) and _replicas_listed(cluster):
            return
        if time.monotonic() > deadline:
            raise EmbeddedStartError("the cluster did not reach cluster_state:ok in time")
        time.sleep(0.05)
