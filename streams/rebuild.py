"""Re-read the input topics into the rollups: ``rebuild`` (a new generation) and ``replay``.

**Rebuild** fills generation G = live + 1 from the earliest retained offsets
with its own consumer group (``<app id>.rebuild.g<G>``), committing offsets
only after Redis accepted a batch, while the API keeps serving the live
generation.  Once it has caught up with the live consumer group it moves the
generation pointer (one SET: workers and API processes follow within about a
second), waits until every live worker reports G in its heartbeat, drains
what was produced until then (events a worker applied to the old generation
before it switched), and deletes the other generations.  Its state (G and
the group) is kept in Redis, so a killed rebuild resumes where its group
committed; rollups are idempotent, so what it re-applies changes nothing.

**Replay** re-reads every partition from the offsets of a time up to the end
of the log as it was when the replay started, into the live generation:
safe at any time, because applying an event twice changes nothing (within
the dedupe horizon for latency samples; older samples would count again).

Topic retention bounds both: what the broker no longer holds cannot be
re-read.  Events the worker once dead-lettered are refused again (the
"not in the future" check uses the current time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from aggregators.model import TOPIC_KINDS
from aggregators.store import RollupStore, codec, keys
from aggregators.store.client import RedisClient
from aggregators.timebase import NS_PER_MS, NS_PER_US, S_PER_DAY, US_PER_S
from insights.kafka_client import kafka_client_kwargs
from insights.settings import Settings
from streams.batches import RawMessage, decode_batch
from streams.store_errors import is_transient_store_error

log = structlog.get_logger("insights.rebuild")

FETCH_RECORDS = 2_000
SWITCH_WAIT_S = 30.0  # for live workers to report the new generation
DELETE_CHUNK = 500


@dataclass
class Progress:
    """What a long job has done; handed to the caller's ``on_progress`` after each batch."""

    phase: str
    messages: int = 0
    target: int = 0  # messages to read in this phase (it may grow while catching up)
    events: int = 0
    refused: int = 0  # events the decoder refused (dead-lettered when first consumed)
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RebuildResult:
    generation: int
    previous: int
    messages: int
    events: int
    deleted_keys: int
    resumed: bool


def _now_us() -> int:
    return time.time_ns() // NS_PER_US


class _Reader:
    """One consumer over the input topics, applying what it reads to one store."""

    def __init__(self, settings: Settings, store: RollupStore, group: str | None) -> None:
        self.settings = settings
        self.store = store
        self.kind_of = {settings.topic(kind): kind for kind in TOPIC_KINDS}
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap.split(","),
            group_id=group,
            client_id=f"{settings.app_id}.maintenance",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Tansu answers a fetch only when its wait expires; Kafka answers sooner.
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **kafka_client_kwargs(settings),
        )
        self.group = group
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.consumer.start()
        for topic in self.kind_of:
            for p in sorted(self.consumer.partitions_for_topic(topic) or ()):
                self.partitions.append(TopicPartition(topic, p))
        self.consumer.assign(self.partitions)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def positions(self) -> dict[TopicPartition, int]:
        return {tp: await self.consumer.position(tp) for tp in self.partitions}

    async def end_offsets(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        return ends

    async def read_until(
        self, target: Mapping[TopicPartition, int], progress: Progress, report: ProgressCallback
    ) -> None:
        """Consume and apply until every partition's position reaches ``target``."""
        open_tps = {tp for tp in self.partitions if tp in target}
        while True:
            pos = await self.positions()
            open_tps = {tp for tp in open_tps if pos[tp] < target[tp]}
            if not open_tps:
                return
            self.consumer.resume(*open_tps)
            paused = [tp for tp in self.partitions if tp not in open_tps]
            if paused:
                self.consumer.pause(*paused)
            batches = await self.consumer.getmany(timeout_ms=500, max_records=FETCH_RECORDS)
            for tp, records in batches.items():
                records = [r for r in records if r.offset < target.get(tp, 0)]
                if records:
                    await self._apply(tp, records, progress)
                    report(progress)

    async def _apply(self, tp: TopicPartition, records: list[Any], progress: Progress) -> None:
        raw = [RawMessage(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        max_future_us = int(self.settings.max_future_s * US_PER_S)
        batch = decode_batch(self.kind_of[tp.topic], raw, _now_us(), max_future_us)
        await _apply_retrying(self.store, batch.plan)
        if self.group is not None:
            await self.consumer.commit({tp: records[-1].offset + 1})
        progress.messages += len(records)
        progress.events += batch.events
        progress.refused += len(batch.dead_letters)


async def _apply_retrying(store: RollupStore, plan: Any) -> None:
    """Transient store failures are waited out (the worker's classification); anything
    else ends the job, which resumes when run again."""
    delay = 0.1
    while True:
        try:
            await store.apply(plan)
            return
        except Exception as exc:
            if not is_transient_store_error(exc):
                raise
            log.warning("store write failed; retrying", error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def _horizon_s(settings: Settings) -> int:
    return round(settings.dedupe_horizon_days * S_PER_DAY)


async def _live_group_offsets(settings: Settings, tps: list[TopicPartition]) -> dict[Any, int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap.split(","), **kafka_client_kwargs(settings)
    )
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(settings.app_id, partitions=tps)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in got.items() if meta is not None and meta.offset >= 0}


def _remaining(target: Mapping[TopicPartition, int], pos: Mapping[TopicPartition, int]) -> int:
    return sum(max(0, target[tp] - pos.get(tp, 0)) for tp in target)


async def _caught_up_target(
    settings: Settings, reader: _Reader, ends: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """Where the live group stands: its committed offsets, or the end of the log for
    partitions it never committed (no worker ran, or it has read nothing yet)."""
    live = await _live_group_offsets(settings, reader.partitions)
    return {tp: live.get(tp, ends[tp]) for tp in reader.partitions}


async def rebuild(
    settings: Settings, redis: RedisClient, report: ProgressCallback = lambda _: None
) -> RebuildResult:
    probe = RollupStore(redis)
    live = await probe.generations.live()
    raw_state = await redis.get(keys.rebuild_state())
    state = orjson.loads(raw_state) if raw_state is not None else None
    resumed = state is not None and int(state["generation"]) >= live
    if resumed:
        assert state is not None
        generation, previous = int(state["generation"]), int(state["previous"])
    else:
        generation, previous = live + 1, live
        group = f"{settings.app_id}.rebuild.g{generation}"
        state = {"generation": generation, "previous": previous, "group": group}
        await redis.set(keys.rebuild_state(), orjson.dumps(state))
    log.info("rebuild", generation=generation, live=live, resumed=resumed)
    store = RollupStore(
        redis,
        dedupe_horizon_s=_horizon_s(settings),
        generation=generation,
        day_buckets=settings.day_buckets,
    )
    # The new generation's layout (buckets per day) is the setting's; a resumed rebuild
    # with another setting is refused rather than mixing two layouts in one generation.
    await store.generations.claim(strict=True)
    reader = _Reader(settings, store, str(state["group"]))
    await reader.start()
    try:
        progress = Progress("catching up")
        if live != generation:
            await _catch_up(settings, reader, progress, report)
            await store.generations.switch(generation)
            log.info("rebuild switched generation", generation=generation, previous=live)
        progress = Progress("switching", started=progress.started, events=progress.events)
        report(progress)
        await _wait_for_workers(store, generation)
        ends = await reader.end_offsets()
        pos = await reader.positions()
        progress.phase, progress.target = "draining", _remaining(ends, pos)
        progress.messages = 0
        await reader.read_until(ends, progress, report)
        progress.phase = "deleting old generations"
        report(progress)
        deleted = await delete_generations(redis, keep=generation)
    finally:
        await reader.stop()
    await redis.delete(keys.rebuild_state())
    return RebuildResult(generation, previous, progress.messages, progress.events, deleted, resumed)


async def _catch_up(
    settings: Settings, reader: _Reader, progress: Progress, report: ProgressCallback
) -> None:
    """Read until the live group's committed offsets, then look again: it moves on."""
    while True:
        ends = await reader.end_offsets()
        target = await _caught_up_target(settings, reader, ends)
        pos = await reader.positions()
        left = _remaining(target, pos)
        progress.target = progress.messages + left
        report(progress)
        if left == 0:
            return
        await reader.read_until(target, progress, report)


async def _wait_for_workers(store: RollupStore, generation: int) -> None:
    """Until every live worker writes ``generation`` (workers re-read the pointer about
    every second); a worker that never does is reported, not waited for forever."""
    deadline = time.monotonic() + SWITCH_WAIT_S
    while True:
        now_ms = time.time_ns() // NS_PER_MS
        beats = [b for b in await store.heartbeats.read() if b.fresh(now_ms, 10_000)]
        behind = [b.worker_id for b in beats if b.generation != generation]
        if not behind:
            return
        if time.monotonic() > deadline:
            log.warning("workers still on the old generation", workers=behind)
            return
        await asyncio.sleep(0.5)


async def delete_generations(redis: RedisClient, keep: int) -> int:
    """Unlink every key of every generation but ``keep``, and every key of older store
    formats (a rebuild is how an upgrade migrates); returns how many went. SCAN covers
    every primary of a cluster (redis-py's cluster client scans each in turn)."""
    mine = f"{keys.ROOT}:g{keep}:"
    deleted = 0
    chunk: list[Any] = []
    patterns = [f"{keys.ROOT}:g*", *(f"cis:{v}:*" for v in keys.OLDER_VERSIONS)]
    for pattern in patterns:
        async for key in redis.scan_iter(match=pattern, count=1000):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name.startswith(mine):
                continue
            chunk.append(key)
            if len(chunk) >= DELETE_CHUNK:
                deleted += await redis.unlink(*chunk)
                chunk.clear()
    if chunk:
        deleted += await redis.unlink(*chunk)
    layouts = [f for f in await redis.hkeys(keys.layouts()) if codec.text(f) != str(keep)]
    if layouts:
        await redis.hdel(keys.layouts(), *layouts)
    return deleted


@dataclass(frozen=True)
class ReplayResult:
    messages: int
    events: int
    partitions: int


async def replay(
    settings: Settings, redis: RedisClient, from_ms: int, report: ProgressCallback = lambda _: None
) -> ReplayResult:
    """Re-apply every event stored at or after ``from_ms`` (broker timestamps), up to the
    end of the log when the replay started, into the live generation."""
    store = RollupStore(
        redis, dedupe_horizon_s=_horizon_s(settings), day_buckets=settings.day_buckets
    )
    reader = _Reader(settings, store, None)
    await reader.start()
    try:
        ends = await reader.end_offsets()
        found = await reader.consumer.offsets_for_times({tp: from_ms for tp in reader.partitions})
        target: dict[TopicPartition, int] = {}
        for tp in reader.partitions:
            at = found.get(tp)
            if at is not None and at.offset < ends[tp]:
                reader.consumer.seek(tp, at.offset)
                target[tp] = ends[tp]
        pos = await reader.positions()
        progress = Progress("replaying", target=_remaining(target, pos))
        report(progress)
        await reader.read_until(target, progress, report)
    finally:
        await reader.stop()
    return ReplayResult(progress.messages, progress.events, len(target))
