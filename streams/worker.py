"""The Faust worker: one agent per topic, batched, acknowledging only what Redis accepted.

Agents are thin translators: ``streams.batches`` decodes and plans, the store
applies the plan in one round trip.  Delivery is at least once (the embedded
broker has no idempotent producer either); the rollups are idempotent, so
redelivered batches change no number.

A store error either says the store cannot take writes right now (connection,
timeout, loading, read-only replica, cluster reconfiguration, memory or permission
limits: ``is_transient_store_error``), and the batch is retried with backoff until
it goes in, or it is about the batch itself (a script error on a malformed
operation, a bug), would fail the same way forever and would stall the partition
for good: then the batch's events go to the dead-letter topic and the worker moves
on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
import structlog

from aggregators.model import TOPIC_KINDS
from aggregators.store import RollupStore, WorkerBeat
from aggregators.store.client import RedisClient
from aggregators.timebase import NS_PER_MS, NS_PER_US, S_PER_DAY, US_PER_DAY, US_PER_S
from insights import metrics
from insights.kafka_client import kafka_ssl_context, uses_tls
from insights.settings import Settings
from streams.batches import (
    DeadLetter,
    DecodedBatch,
    RawMessage,
    decode_batch,
    unapplied_dead_letters,
)
from streams.dead_letter import store_error_reason
from streams.faust_transport import App
from streams.store_errors import is_transient_store_error

log = structlog.get_logger("insights.worker")

HEARTBEAT_S = 2.0
# Entries of workers silent this long are removed (a killed worker leaves its entry
# behind); readiness already ignores them after INSIGHTS_READINESS_MAX_AGE_S.
DEAD_WORKER_MS = 10 * 60 * 1000
PRUNE_EVERY_BEATS = 30
RETENTION_EVERY_S = 3600.0  # days go whole, so hourly passes keep at most a day extra
POSITION_TIMEOUT_S = 1.0  # bound of the position look-up of a partition not committed yet


def _now_us() -> int:
    return time.time_ns() // NS_PER_US


def broker_credentials(settings: Settings) -> Any:
    """``INSIGHTS_KAFKA_*`` security as Faust's ``broker_credentials`` (None: PLAINTEXT).

    Faust has no URL scheme for TLS or SASL (the broker URLs stay ``kafka://``); it turns
    these objects into the same aiokafka options ``insights.kafka_client.kafka_client_kwargs``
    gives the other clients, for its consumer, producer and topic admin alike.
    """
    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings) if uses_tls(settings) else None
    if protocol.startswith("SASL_"):
        # With a context Faust speaks SASL_SSL, without one SASL_PLAINTEXT.
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class InsightsWorker:
    """Owns the Faust app; ``start()``/``stop()`` run it inside the caller's event loop."""

    def __init__(
        self,
        settings: Settings,
        redis: RedisClient,
        *,
        embedded_broker: bool = False,
        clock_us: Callable[[], int] = _now_us,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.store = RollupStore(
            redis,
            dedupe_horizon_s=round(settings.dedupe_horizon_days * S_PER_DAY),
            day_buckets=settings.day_buckets,
        )
        self.clock_us = clock_us
        session_s, heartbeat_s = settings.group_timing(embedded_broker)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._beats = 0
        self._lag_series: set[tuple[str, str]] = set()  # (topic, partition) of lag series set
        self._input_topics = frozenset(settings.topic(kind) for kind in TOPIC_KINDS)
        # Faust keeps table state in a data dir; this app has no tables, so a private
        # temporary one keeps the working directory clean (and read-only containers work).
        self._datadir = tempfile.mkdtemp(prefix="insights-faust-")
        self.app = App(
            settings.app_id,
            datadir=self._datadir,
            # Tansu answers a fetch only when its wait expires (streams.faust_transport).
            fetch_max_wait_ms=100 if embedded_broker else settings.fetch_max_wait_ms,
            broker=[f"kafka://{b}" for b in settings.kafka_bootstrap.split(",")],
            broker_credentials=broker_credentials(settings),
            web_enabled=False,
            autodiscover=False,
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=1,
            consumer_auto_offset_reset="earliest",
            producer_acks=1,
            stream_wait_empty=False,
            broker_commit_interval=1.0,
            # Faust's 1 MiB default holds ~24 batched messages of 100 events per
            # partition fetch, so batches came out half full and the agent waited
            # on fetches (bench/bench_worker.py: 16k -> 32k session events/s).
            consumer_max_fetch_size=4 * 1024 * 1024,
            # A dead worker's partitions move once its session expires: the failover time
            # (README, "Failover"; on the embedded broker a join also waits half of it).
            broker_session_timeout=session_s,
            broker_heartbeat_interval=heartbeat_s,
        )
        self.dead_letters = self.app.topic(
            settings.dead_letter_topic, key_serializer="raw", value_serializer="raw"
        )
        for kind in TOPIC_KINDS:
            topic = self.app.topic(
                settings.topic(kind), key_serializer="raw", value_serializer="raw"
            )
            self.app.agent(topic, name=f"insights-{kind}", concurrency=1)(self._agent(kind))
        self.app.timer(HEARTBEAT_S)(self._heartbeat)
        if settings.retention_days is not None:
            self.app.timer(RETENTION_EVERY_S, on_leader=False)(self._retention)

    def _agent(self, kind: str) -> Callable[[Any], Any]:
        async def agent(stream: Any) -> None:
            async for events in stream.take_events(
                self.settings.batch_messages, within=self.settings.batch_within_s
            ):
                try:
                    await self.process(kind, events)
                except asyncio.CancelledError:
                    # take_events acks the batch when this body returns, even on
                    # cancellation.  Marking the messages acked here keeps the
                    # consumer from recording them, so their offsets stay
                    # uncommitted and the batch is redelivered after a restart.
                    for event in events:
                        event.message.acked = True
                    raise

        agent.__name__ = f"insights_{kind}"
        return agent

    async def process(self, kind: str, events: Sequence[Any]) -> DecodedBatch:
        topic = self.settings.topic(kind)
        started = time.perf_counter()
        raw = [
            RawMessage(
                e.message.topic, e.message.partition, e.message.offset, e.message.key, e.value
            )
            for e in events
        ]
        max_future_us = int(self.settings.max_future_s * US_PER_S)
        now_us = self.clock_us()
        batch = decode_batch(kind, raw, now_us, max_future_us)
        metrics.ROLLUP_OPS.labels(topic).observe(batch.plan.op_count())
        refused = await self._apply_until_accepted(topic, batch)
        letters = batch.dead_letters
        if refused is not None:
            reason = store_error_reason(refused)
            letters = letters + unapplied_dead_letters(kind, raw, now_us, max_future_us, reason)
            metrics.STORE_DEAD_LETTERED.labels(topic, type(refused).__name__).inc()
            log.error(
                "store refused a batch; its events go to the dead-letter topic",
                topic=topic,
                reason=reason,
                error=str(refused),
                events=batch.events,
                offsets=_offset_ranges(raw),
                exc_info=refused,
            )
        await self._publish(letters)
        for dead in letters:
            metrics.REJECTED.labels(topic, dead.code).inc()
        metrics.MESSAGES.labels(topic).inc(batch.messages)
        if refused is None:
            metrics.EVENTS.labels(topic).inc(batch.events)
            self._observe_event_lag(topic, batch.sample_times_us)
        metrics.BATCH_SECONDS.labels(topic).observe(time.perf_counter() - started)
        return batch

    async def _apply_until_accepted(self, topic: str, batch: DecodedBatch) -> Exception | None:
        """Apply the batch, retrying transient errors with capped exponential backoff (a
        Redis outage stalls, never drops); returns the error of a batch refused for good."""
        delay = 0.05
        while True:
            try:
                await self.store.apply(batch.plan)
                return None
            except Exception as exc:
                if not is_transient_store_error(exc):
                    return exc
                metrics.STORE_RETRIES.labels(topic).inc()
                log.warning(
                    "store write failed; retrying",
                    topic=topic,
                    error_type=type(exc).__name__,
                    error=str(exc),
                    retry_in_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.redis_retry_max_s)

    def _observe_event_lag(self, topic: str, times_us: Sequence[int]) -> None:
        """Apply time - event time of the batch's sample of events (``decode_batch``)."""
        applied_us = self.clock_us()
        histogram = metrics.EVENT_TIME_LAG.labels(topic)
        for time_us in times_us:
            histogram.observe(max(0, applied_us - time_us) / US_PER_S)

    async def _publish(self, letters: Sequence[DeadLetter]) -> None:
        """Send every dead letter, then wait for all: the producer batches them."""
        pending = [await self.dead_letters.send(key=d.key, value=d.value) for d in letters]
        for fut in pending:
            await fut

    async def _heartbeat(self) -> None:
        assignment = sorted(f"{tp.topic}:{tp.partition}" for tp in self.app.consumer.assignment())
        metrics.ASSIGNED.set(len(assignment))
        now_ms = time.time_ns() // NS_PER_MS
        beat = WorkerBeat(self.worker_id, now_ms, tuple(assignment))
        self._beats += 1
        try:
            await self.store.heartbeats.beat(beat)
            if self._beats % PRUNE_EVERY_BEATS == 0:
                await self.store.heartbeats.prune(now_ms, DEAD_WORKER_MS)
        except Exception as exc:  # readiness is advisory; the next beat retries
            log.warning("heartbeat failed", error=str(exc))
        try:
            await self._update_consumer_lag()
        except Exception as exc:  # a metric only; the next beat tries again
            log.debug("consumer lag not updated", error=str(exc))

    async def _update_consumer_lag(self) -> None:
        """``insights_consumer_lag_messages`` per assigned partition: the consumer's last seen
        log end offset (highwater, from its fetches: no request) minus the group's committed
        offset, or the consumer's position while nothing is committed.  A partition of the
        input topics (not Faust's own) gets its series once it was fetched from and loses it
        when it leaves the assignment."""
        consumer = self.app.consumer
        committed: Any = getattr(consumer, "_committed_offset", {})
        assigned: set[tuple[str, str]] = set()
        for tp in consumer.assignment():
            if tp.topic not in self._input_topics:
                continue
            labels = (tp.topic, str(tp.partition))
            assigned.add(labels)
            try:
                highwater = consumer.highwater(tp)
                done = committed.get(tp)
                if done is None and highwater is not None:
                    async with asyncio.timeout(POSITION_TIMEOUT_S):
                        done = await consumer.position(tp)
            except Exception:  # unassigned meanwhile, or no position yet: keep the last value
                continue
            if highwater is not None and done is not None:
                metrics.CONSUMER_LAG.labels(*labels).set(max(0, highwater - done))
        for labels in self._lag_series - assigned:
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(*labels)
        self._lag_series = assigned

    async def _retention(self) -> None:
        """Drop days older than the horizon: every worker may run it, it is idempotent."""
        assert self.settings.retention_days is not None
        first_kept = self.clock_us() // US_PER_DAY - self.settings.retention_days
        try:
            dropped = await self.store.retention.drop_days_before(first_kept)
        except Exception as exc:  # the next pass retries
            log.warning("retention pass failed", error=str(exc))
            return
        if dropped:
            log.info("retention dropped days", days=len(dropped), before_day=first_kept)

    async def start(self) -> None:
        await self.app.start()

    async def stop(self) -> None:
        await self.app.stop()
        shutil.rmtree(self._datadir, ignore_errors=True)
        # Stopping anyway: when Redis is gone too, the stale beat simply ages out.
        with contextlib.suppress(Exception):
            await self.store.heartbeats.remove(self.worker_id)


def _offset_ranges(raw: Sequence[RawMessage]) -> list[str]:
    """``topic:partition:first-last`` of a batch's messages (for the log)."""
    spans: dict[tuple[str, int], tuple[int, int]] = {}
    for m in raw:
        lo, hi = spans.get((m.topic, m.partition), (m.offset, m.offset))
        spans[m.topic, m.partition] = (min(lo, m.offset), max(hi, m.offset))
    return [f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(spans.items())]
