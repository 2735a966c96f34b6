"""``insights check``: is the pipeline healthy?  One line per finding, a problem exits 1.

It reads what an operator would look at by hand: the broker (reachable, the input and
dead-letter topics with their partition counts), the live consumer group's lag per
partition, Redis (reachable; a cluster's state, masters, replicas and slots; the live
generation, a rebuild in progress) and the workers'
heartbeats.  Each check is bounded in time, and a failed one never hides the others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio.cluster import RedisCluster

from aggregators.model import TOPIC_KINDS
from aggregators.store import RollupStore, keys
from aggregators.timebase import NS_PER_MS
from insights.kafka_client import kafka_client_kwargs
from insights.redis_client import cluster_state, create_redis, redact_url
from insights.settings import Settings

Level = Literal["ok", "warn", "fail"]
STEP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Finding:
    level: Level
    what: str
    detail: str

    def line(self) -> str:
        return f"{self.level.upper():4}  {self.what}: {self.detail}"


Findings = list[Finding]


async def run_checks(settings: Settings, lag_warn: int) -> Findings:
    out: Findings = []
    await _bounded(out, "broker", _broker(settings, out, lag_warn))
    await _bounded(out, "redis", _redis(settings, out))
    return out


async def _bounded(out: Findings, what: str, step: Awaitable[None]) -> None:
    try:
        await asyncio.wait_for(step, STEP_TIMEOUT_S)
    except TimeoutError:
        out.append(Finding("fail", what, f"no answer within {STEP_TIMEOUT_S:.0f} s"))
    except Exception as exc:  # one line per finding: the type says enough, no internals
        out.append(Finding("fail", what, f"unreachable ({type(exc).__name__})"))


async def _broker(settings: Settings, out: Findings, lag_warn: int) -> None:
    bootstrap = settings.kafka_bootstrap.split(",")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **kafka_client_kwargs(settings)
    )
    await consumer.start()
    try:
        out.append(Finding("ok", "broker", f"{settings.kafka_bootstrap} answers"))
        topics = await consumer.topics()
        inputs: list[TopicPartition] = []
        for kind in (*TOPIC_KINDS, "dead_letter"):
            name = settings.topic(kind)
            if name not in topics:
                level: Level = "fail" if kind != "dead_letter" else "warn"
                out.append(Finding(level, f"topic {name}", "missing (the worker creates it)"))
                continue
            parts = sorted(consumer.partitions_for_topic(name) or ())
            out.append(Finding("ok", f"topic {name}", f"{len(parts)} partitions"))
            if kind != "dead_letter":
                inputs += [TopicPartition(name, p) for p in parts]
        if inputs:
            ends: dict[TopicPartition, int] = await consumer.end_offsets(inputs)
            await _lag(settings, ends, out, lag_warn)
    finally:
        await consumer.stop()


async def _lag(
    settings: Settings, ends: dict[TopicPartition, int], out: Findings, lag_warn: int
) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","), **kafka_client_kwargs(settings)
    )
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(settings.app_id, partitions=list(ends))
    finally:
        await admin.close()
    committed = {tp: m.offset for tp, m in got.items() if m is not None and m.offset >= 0}
    group = f"group {settings.app_id}"
    if not committed:
        level: Level = "warn" if any(ends.values()) else "ok"
        out.append(Finding(level, group, "has committed nothing yet"))
        return
    for tp in sorted(ends, key=lambda t: (t.topic, t.partition)):
        lag = ends[tp] - committed.get(tp, 0)
        level = "warn" if lag > lag_warn else "ok"
        out.append(Finding(level, f"lag {tp.topic}:{tp.partition}", f"{lag:,} messages"))


async def _redis(settings: Settings, out: Findings) -> None:
    redis = create_redis(settings, socket_timeout=5.0, socket_connect_timeout=5.0)
    try:
        await redis.ping()
        out.append(Finding("ok", "redis", f"{redact_url(settings.redis_url)} answers"))
        if isinstance(redis, RedisCluster):
            cluster = await cluster_state(redis)
            level: Level = "ok" if cluster.healthy else "fail"
            out.append(Finding(level, "redis cluster", cluster.describe()))
        store = RollupStore(redis)
        generation = await store.generations.live()
        out.append(Finding("ok", "rollups", f"generation {generation} is live"))
        if await redis.exists(keys.rebuild_state()):
            out.append(Finding("warn", "rebuild", "one is in progress or was interrupted"))
        await _workers(store, settings, generation, out)
    finally:
        await redis.aclose()


async def _workers(store: RollupStore, settings: Settings, generation: int, out: Findings) -> None:
    now_ms = time.time_ns() // NS_PER_MS
    max_age_ms = int(settings.readiness_max_age_s * 1000)
    beats = await store.heartbeats.read()
    live = [b for b in beats if b.fresh(now_ms, max_age_ms)]
    if not live:
        out.append(Finding("fail", "workers", "no worker sent a heartbeat recently"))
    for b in live:
        age_s = (now_ms - b.at_ms) / 1000
        detail = f"{len(b.partitions)} partitions, beat {age_s:.0f} s ago"
        level: Level = "ok" if b.partitions else "warn"
        if b.generation != generation:
            level, detail = "warn", f"{detail}, still on generation {b.generation}"
        out.append(Finding(level, f"worker {b.worker_id}", detail))
    silent = len(beats) - len(live)
    if silent:
        out.append(Finding("warn", "workers", f"{silent} silent (pruned after 10 minutes)"))


def check(settings: Settings, echo: Callable[[str], Any], lag_warn: int) -> int:
    findings = asyncio.run(run_checks(settings, lag_warn))
    for f in findings:
        echo(f.line())
    return 1 if any(f.level == "fail" for f in findings) else 0
