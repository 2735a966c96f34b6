"""The service on a 3-master Redis Cluster: worker and API processes with a cluster URL.

* Coder's golden fixture through the real path answers byte-identical golden files.
* A generated workload through two workers: every endpoint exact against the oracle, and
  each of its days written to all three masters (the day's buckets spread over the shards).
* Failover: a master SIGKILLed while events stream in; its replica takes over (node timeout
  2 s), the workers wait out the refused writes and the redirections, and every endpoint is
  exact at the end. Last in the module: the cluster stays a master short afterwards.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from redis import Redis as SyncRedis

from aggregators.store import keys
from insights.devstack.cluster import ManagedCluster
from tests.cluster.conftest import flush, sync_client
from tests.e2e.stack import Stack, deployment
from tests.e2e.test_golden import REQUESTS, WEEK, _as_golden, _golden, _week_complete
from tests.faults.exact import Expectation, Windows, today_utc, wait_until_exact
from tests.faults.support import Sender, send
from tests.faults.workload import generate
from tests.golden_fixture import all_events

SEED = 11
USERS, DAYS = 12, 3
PAUSE_S = 0.05
FAILOVER_TIMEOUT_S = 30.0


@pytest.fixture
def cluster(redis_cluster: ManagedCluster) -> ManagedCluster:
    flush(redis_cluster)
    return redis_cluster


def _days_on_masters(cluster: ManagedCluster, days: list[int]) -> dict[int, int]:
    """Day -> how many masters hold keys of it (SCAN on each primary)."""
    out: dict[int, int] = {}
    with sync_client(cluster) as client:
        primaries = client.get_primaries()
        for day in days:
            pattern = f"{keys.ROOT}:g*:{{d{day}:*"
            holding = 0
            for node in primaries:
                cursor, batch = 0, []
                while True:  # the cluster client answers {node: cursor}, keys
                    cursors, batch = client.scan(
                        cursor, match=pattern, count=10_000, target_nodes=node
                    )
                    cursor = cursors[node.name]
                    if batch or not cursor:
                        break
                holding += bool(batch)
            out[day] = holding
    return out


@pytest.fixture
def golden_stack(cluster: ManagedCluster, kafka_bootstrap: str) -> Iterator[Stack]:
    with deployment(kafka_bootstrap, cluster.address, 0, workers=1, partitions=3) as dep:
        for kind, batch in all_events().items():
            dep.stack.produce_events(kind, batch)
        dep.stack.wait_for(f"/api/v2/insights/user-activity?{WEEK}", _week_complete, 60)
        yield dep.stack


def test_golden_fixture_on_a_cluster(golden_stack: Stack) -> None:
    for name, (query, interval) in sorted(REQUESTS.items()):
        status, _, raw = golden_stack.get(f"/api/v2/insights/templates?{query}&interval={interval}")
        assert status == 200
        assert _as_golden(raw) == _golden("template", name), name
        status, _, raw = golden_stack.get(f"/api/v2/insights/user-activity?{query}")
        assert status == 200
        assert _as_golden(raw) == _golden("user-activity", name), name


def test_two_workers_exact_and_every_day_on_every_master(
    cluster: ManagedCluster, kafka_bootstrap: str
) -> None:
    windows = Windows(today_utc() - timedelta(days=DAYS), DAYS)
    work = generate(SEED, users=USERS, first_day=windows.first, days=DAYS, tag="cluster")
    messages = work.messages(random.Random(SEED), 50, 150)
    expected = Expectation(work.events, windows)
    with deployment(kafka_bootstrap, cluster.address, 0, workers=2, partitions=4) as dep:
        send(dep.stack.bootstrap, [(dep.stack.topic(k), v, None) for k, v in messages])
        wait_until_exact(dep.stack, expected, 90)
        first = (windows.first - windows.first.__class__(1970, 1, 1)).days
        spread = _days_on_masters(cluster, [first + d for d in range(DAYS)])
        print(f"\ncluster: {len(work):,} events exact; masters holding each day: {spread}")
        assert all(n == 3 for n in spread.values()), spread


def _master_of(cluster: ManagedCluster, day: int) -> int:
    """Index in ``cluster.masters`` of the master holding bucket 0 of ``day``."""
    with sync_client(cluster) as client:
        slot = client.keyslot(f"{{d{day}:0}}")
        node = client.nodes_manager.get_node_from_slot(slot)
    return [_port(m) for m in cluster.masters].index(int(node.port))


def _port(node: Any) -> int:
    return int(node.address.rsplit(":", 1)[1].split("/")[0])


def _wait_promoted(cluster: ManagedCluster, victim: Any, timeout_s: float) -> float:
    """Until a surviving master sees the victim failed and three healthy masters again (its
    replica promoted) with every slot served."""
    survivor = next(m for m in cluster.masters if m is not victim)
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with SyncRedis(port=_port(survivor), decode_responses=True) as r:
            nodes = str(r.execute_command("CLUSTER", "NODES")).splitlines()
            info = str(r.execute_command("CLUSTER", "INFO"))
        masters = [n for n in nodes if "master" in n.split()[2] and "fail" not in n.split()[2]]
        victim_failed = any(
            f":{_port(victim)}@" in n and "fail" in n.split()[2] and "fail?" not in n.split()[2]
            for n in nodes
        )
        if victim_failed and len(masters) == 3 and "cluster_state:ok" in info:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError("no replica took over in time")


def test_a_master_killed_during_ingest_loses_nothing(
    cluster: ManagedCluster, kafka_bootstrap: str
) -> None:
    windows = Windows(today_utc() - timedelta(days=2), 2)
    work = generate(SEED + 1, users=USERS, first_day=windows.first, days=2, tag="failover")
    messages = work.messages(random.Random(SEED + 1), 20, 60)
    expected = Expectation(work.events, windows)
    first = (windows.first - windows.first.__class__(1970, 1, 1)).days
    victim = cluster.masters[_master_of(cluster, first)]
    settings = {"INSIGHTS_REDIS_RETRY_MAX_S": "1"}
    with deployment(
        kafka_bootstrap, cluster.address, 0, workers=2, partitions=4, settings=settings
    ) as dep:
        stack = dep.stack
        sender = Sender(stack.bootstrap, [(stack.topic(k), v, None) for k, v in messages], PAUSE_S)
        sender.start()
        time.sleep(PAUSE_S * len(messages) / 4)
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        promoted_s = _wait_promoted(cluster, victim, FAILOVER_TIMEOUT_S)
        # Events were still being produced once the replica had taken over: ingest spanned
        # the whole failover.
        assert sender.is_alive(), "the stream ended before the failover was over"
        sender.join()
        exact_at = wait_until_exact(stack, expected, 90)
        assert all(p.poll() is None for p in dep.workers), stack.log_tail()
        logs = "".join(p.read_text() for p in stack.logs.glob("worker*.log"))
        # The cluster client retries MOVED and connection errors itself a few times; the
        # worker's own retries (logged) come on top when those run out.
        retries = logs.count("store write failed; retrying")
        print(
            f"\ncluster failover: {len(work):,} events; replica promoted {promoted_s:.1f} s "
            f"after the SIGKILL, every endpoint exact {exact_at - killed_at:.1f} s after it; "
            f"{retries} store writes retried"
        )
