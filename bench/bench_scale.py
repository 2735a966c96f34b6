"""Events/s with 1, 2 and 4 worker processes over 8 partitions, against one Redis and
against a three-master Redis Cluster, in one run.

Starts its own servers on 127.0.0.1 (the embedded broker, one embedded Redis and a cluster
of three embedded masters, ``insights.devstack``) and stops them at the end. The workload
(agents reporting sessions and latency samples every 30 s, batch messages of 100 events
keyed by user, spread over 8 partitions) is produced once; each scenario then runs N
``insights worker`` processes with a fresh consumer group from the earliest offsets into
a flushed store, and is timed between 10 % and 90 % of its messages committed (so the
group join, the first uncommitted second and the tail are not counted). CPU seconds of the
workers, the broker and the Redis server(s) over that span say where the time went; a
2-core machine caps the absolute figures, so compare ratios.

    .venv/bin/python bench/bench_scale.py [--events 400000] [--latency 200000]
        [--workers 1,2,4] [--partitions 8] [--json out.json]

A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis import Redis as SyncRedis
from redis.cluster import RedisCluster as SyncCluster
from rich.console import Console
from rich.table import Table

from aggregators.model import KINDS, TOPIC_KINDS
from insights import devstack
from insights.devstack.cluster import ManagedCluster, start_redis_cluster
from streams.kafka_admin import create_topics
from streams.simulation import generate
from streams.workloads import latency_event, random_uuid, session_event

REPO = Path(__file__).resolve().parents[1]
BATCH = 100  # events per message
REPORT_EVERY_US = 30_000_000
BASE_US = (int(time.time()) // 86_400 - 1) * 86_400 * 1_000_000  # yesterday, UTC midnight
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except FileNotFoundError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / _TICK


def workload(kind: str, events: int, partitions: int, seed: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, batch message) of ``events`` session reports or latency samples:
    2,000 agents every 30 s from yesterday's midnight, each agent's on its user's partition.
    Session reports of a half-hour collapse into one operation per user; every latency
    sample is one (its id guard and bins), so that kind is the one that loads Redis."""
    rng = random.Random(seed)
    users = generate(2_000, seed).users
    per_agent = max(1, events // len(users))
    out: list[tuple[int, bytes, bytes]] = []
    for user in users:
        agent = user.agent()
        chunk: list[dict[str, Any]] = []
        for k in range(per_agent):
            at = BASE_US + k * REPORT_EVERY_US + rng.randrange(1_000_000)
            if kind == "latency":
                ms = round(rng.lognormvariate(3.0, 0.5), 2)
                chunk.append(latency_event(agent, random_uuid(rng), at, ms))
                if len(chunk) == BATCH:
                    out.append(
                        (user.index % partitions, agent.user_id.encode(), orjson.dumps(chunk))
                    )
                    chunk = []
                continue
            counts = dict.fromkeys(KINDS, 0)
            counts[user.tool] = 1
            chunk.append(session_event(agent, random_uuid(rng), at, counts, 1))
            if len(chunk) == BATCH:
                out.append((user.index % partitions, agent.user_id.encode(), orjson.dumps(chunk)))
                chunk = []
        if chunk:
            out.append((user.index % partitions, agent.user_id.encode(), orjson.dumps(chunk)))
    return out


async def produce(bootstrap: str, topic: str, messages: list[tuple[int, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, acks=1, linger_ms=5
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, partition=p) for p, key, value in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, tps: list[TopicPartition]) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    return sum(m.offset for m in got.values() if m is not None and m.offset > 0)


@dataclass
class Result:
    store: str
    workers: int
    events: int
    seconds: float
    workers_cpu: float
    broker_cpu: float
    redis_cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def flush(url: str) -> None:
    if url.startswith("redis+cluster://"):
        seeds = [s.rsplit(":", 1) for s in url.split("://", 1)[1].split(",")]
        with SyncCluster(host=seeds[0][0], port=int(seeds[0][1])) as c:
            c.flushall(target_nodes=SyncCluster.PRIMARIES)
    else:
        with SyncRedis.from_url(url) as r:
            r.flushall()


def run_scenario(
    name: str,
    redis_url: str,
    redis_pids: list[int],
    broker: devstack.ManagedProcess,
    prefix: str,
    partitions: int,
    workers: int,
    messages: int,
    events: int,
    logs: Path,
) -> Result:
    flush(redis_url)
    group = f"bench-scale-{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("INSIGHTS_")},
        "INSIGHTS_KAFKA_BOOTSTRAP": broker.address,
        "INSIGHTS_REDIS_URL": redis_url,
        "INSIGHTS_TOPIC_PREFIX": prefix,
        "INSIGHTS_TOPIC_PARTITIONS": str(partitions),
        "INSIGHTS_APP_ID": group,
        "INSIGHTS_LOG_FORMAT": "json",
    }
    procs = []
    for i in range(workers):
        with (logs / f"{name}-{workers}-{i}.log").open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "insights", "worker"],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    tps = [TopicPartition(prefix + kind, p) for kind in TOPIC_KINDS for p in range(partitions)]

    def cpu() -> tuple[float, float, float]:
        return (
            sum(cpu_seconds(p.pid) for p in procs),
            cpu_seconds(broker.pid),
            sum(cpu_seconds(pid) for pid in redis_pids),
        )

    # The rate is taken between 10 % and 90 % of the messages committed: the group join,
    # the first batches before a commit (every second) and the tail are left out.
    marks: list[tuple[float, int, tuple[float, float, float]]] = []
    thresholds = (messages // 10, messages * 9 // 10)
    try:
        deadline = time.monotonic() + 600
        done = 0
        while done < messages:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{name}: workers stopped or too slow; logs in {logs}")
            done = asyncio.run(committed(broker.address, group, tps))
            if len(marks) < 2 and done >= thresholds[len(marks)]:
                marks.append((time.monotonic(), done, cpu()))
            time.sleep(0.05)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    (t0, m0, cpu0), (t1, m1, cpu1) = marks
    seconds = t1 - t0
    counted = round(events * (m1 - m0) / messages)
    return Result(
        name, workers, counted, seconds, cpu1[0] - cpu0[0], cpu1[1] - cpu0[1], cpu1[2] - cpu0[2]
    )


def report(results: list[Result], console: Console) -> None:
    table = Table(title="events/s by workers and store (8 partitions, loopback, 2 cores)")
    for col in ("store", "workers", "events/s", "vs 1 worker", "worker CPU", "broker CPU",
                "Redis CPU"):  # fmt: skip
        table.add_column(col, justify="right")
    base = {r.store: r.rate for r in results if r.workers == 1}
    single = {r.workers: r.rate for r in results if r.store == "one Redis"}
    for r in results:
        ratio = f"{r.rate / base[r.store]:.2f}x" if r.store in base else "-"
        if r.store != "one Redis" and r.workers in single:
            ratio += f" ({r.rate / single[r.workers]:.2f}x one Redis)"
        table.add_row(
            r.store,
            str(r.workers),
            f"{r.rate:,.0f}",
            ratio,
            f"{r.workers_cpu / r.seconds:.2f} cores",
            f"{r.broker_cpu / r.seconds:.2f} cores",
            f"{r.redis_cpu / r.seconds:.2f} cores",
        )
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000, help="session reports")
    parser.add_argument("--latency", type=int, default=200_000, help="latency samples")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    console = Console()
    counts = [int(n) for n in args.workers.split(",")]
    logs = Path(f"/tmp/bench-scale-{uuid.uuid4().hex[:6]}")
    logs.mkdir()
    broker = devstack.start_broker()
    single = devstack.start_redis()
    cluster: ManagedCluster | None = None
    try:
        cluster = start_redis_cluster(masters=3)
        prefix = f"scale{uuid.uuid4().hex[:6]}."
        topics = [prefix + kind for kind in (*TOPIC_KINDS, "dead_letter")]
        asyncio.run(create_topics(broker.address, topics, args.partitions))
        sessions = workload("sessions", args.events, args.partitions, seed=5)
        samples = workload("latency", args.latency, args.partitions, seed=6)
        messages = [*sessions, *samples]
        events = sum(len(orjson.loads(m)) for _, _, m in messages)
        started = time.monotonic()
        asyncio.run(produce(broker.address, prefix + "sessions", sessions))
        asyncio.run(produce(broker.address, prefix + "latency", samples))
        console.print(
            f"produced {events:,} events (session reports, latency samples) in "
            f"{len(messages):,} messages over {args.partitions} partitions in "
            f"{time.monotonic() - started:.1f} s"
        )
        stores = [
            ("one Redis", single.address, [single.pid]),
            ("3-master cluster", cluster.address, [m.pid for m in cluster.masters]),
        ]
        results = []
        for name, url, pids in stores:
            for n in counts:
                r = run_scenario(
                    name, url, pids, broker, prefix, args.partitions, n, len(messages), events,
                    logs,
                )  # fmt: skip
                console.print(f"{name}, {n} worker(s): {r.rate:,.0f} events/s")
                results.append(r)
        report(results, console)
        if args.json:
            Path(args.json).write_text(
                json.dumps([asdict(r) | {"rate": r.rate} for r in results], indent=2)
            )
    finally:
        if cluster is not None:
            cluster.stop()
        single.stop()
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
