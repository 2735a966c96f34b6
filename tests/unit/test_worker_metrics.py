"""The worker's own metrics: rollup ops and event-time lag per batch, consumer lag per
partition, and the worker's ``/metrics`` endpoint (``INSIGHTS_WORKER_METRICS_PORT``).

``InsightsWorker.process`` runs in-process with a fake store and dead-letter topic (no
broker, no Redis), as in ``test_store_errors``; the consumer is a stand-in with Faust's
consumer interface (assignment, highwater, committed offsets, position).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from faust.types import TP
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from aggregators.ops import BatchPlan
from insights import metrics
from insights.runtime import serve_worker_metrics
from insights.settings import Settings
from streams.batches import LAG_SAMPLE_EVENTS, RawMessage, decode_batch
from streams.worker import InsightsWorker
from streams.workloads import AgentRef, epoch_us, session_event

T = "40000000-0000-4000-8000-000000000001"
USER = "40000000-0000-4000-8000-000000000101"
AT = datetime(2024, 4, 2, 10, tzinfo=UTC)
LAG_S = 90
NOW_US = epoch_us(AT + timedelta(seconds=LAG_S))
TOPIC = "insights.sessions"


class FakeStore:
    def __init__(self, failure: Exception | None = None) -> None:
        self.failure = failure
        self.heartbeats = SimpleNamespace(beat=self._beat, prune=self._beat)
        self.beats = 0

    async def apply(self, plan: BatchPlan) -> int:
        if self.failure is not None:
            raise self.failure
        return 1

    async def _beat(self, *_: Any) -> None:
        self.beats += 1


class FakeTopic:
    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


@pytest.fixture
async def worker() -> AsyncIterator[InsightsWorker]:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
    redis = Redis.from_url(settings.redis_url)  # never connected: the store is replaced
    w = InsightsWorker(settings, redis, clock_us=lambda: NOW_US)
    w.dead_letters = FakeTopic()  # type: ignore[assignment]
    w.store = FakeStore()  # type: ignore[assignment]
    try:
        yield w
    finally:
        await redis.aclose()


def _event(n: int) -> dict[str, Any]:
    agent = AgentRef(USER, "alice", T, T, T)
    return session_event(agent, f"worker-metrics-{n}", epoch_us(AT), ["vscode"])


def _messages(singles: int, batch: int) -> list[RawMessage]:
    """``singles`` one-event messages, then one message holding ``batch`` events."""
    out = [RawMessage(TOPIC, 0, i, b"k", orjson.dumps(_event(i))) for i in range(singles)]
    events = [_event(1000 + i) for i in range(batch)]
    out.append(RawMessage(TOPIC, 0, singles, b"k", orjson.dumps(events)))
    return out


def _stream(messages: list[RawMessage]) -> list[Any]:
    return [
        SimpleNamespace(
            message=SimpleNamespace(
                topic=m.topic, partition=m.partition, offset=m.offset, key=m.key
            ),
            value=m.value,
        )
        for m in messages
    ]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _histogram(name: str) -> tuple[float, float]:
    return _value(f"{name}_count", topic=TOPIC), _value(f"{name}_sum", topic=TOPIC)


async def test_a_batch_observes_its_rollup_ops_and_a_sample_of_its_event_lag(
    worker: InsightsWorker,
) -> None:
    messages = _messages(singles=10, batch=300)
    ops_before = _histogram("insights_rollup_ops_per_batch")
    lag_before = _histogram("insights_event_time_lag_seconds")
    below_before = _value("insights_event_time_lag_seconds_bucket", topic=TOPIC, le="60.0")
    await worker.process("sessions", _stream(messages))

    decoded = decode_batch("sessions", messages, NOW_US, 300_000_000)
    ops = decoded.plan.op_count()
    assert ops > 0
    count, total = _histogram("insights_rollup_ops_per_batch")
    assert (count - ops_before[0], total - ops_before[1]) == (1, ops)

    # An evenly spaced sample of the 310 events (every second one), all 90 s late.
    sampled = len(decoded.sample_times_us)
    assert 1 < sampled <= LAG_SAMPLE_EVENTS
    count, total = _histogram("insights_event_time_lag_seconds")
    assert count - lag_before[0] == sampled
    assert total - lag_before[1] == pytest.approx(sampled * LAG_S)
    below = _value("insights_event_time_lag_seconds_bucket", topic=TOPIC, le="60.0")
    assert below == below_before
    within = _value("insights_event_time_lag_seconds_bucket", topic=TOPIC, le="120.0")
    assert within >= sampled


async def test_a_large_message_contributes_a_bounded_evenly_spaced_sample(
    worker: InsightsWorker,
) -> None:
    before = _histogram("insights_event_time_lag_seconds")[0]
    await worker.process("sessions", _stream(_messages(singles=0, batch=1000)))
    observed = _histogram("insights_event_time_lag_seconds")[0] - before
    assert 1 <= observed <= LAG_SAMPLE_EVENTS


async def test_no_event_lag_for_a_batch_the_store_refused(worker: InsightsWorker) -> None:
    worker.store = FakeStore(redis_errors.ResponseError("WRONGTYPE"))  # type: ignore[assignment]
    ops_before = _histogram("insights_rollup_ops_per_batch")[0]
    lag_before = _histogram("insights_event_time_lag_seconds")[0]
    await worker.process("sessions", _stream(_messages(singles=3, batch=3)))
    assert _histogram("insights_rollup_ops_per_batch")[0] == ops_before + 1
    assert _histogram("insights_event_time_lag_seconds")[0] == lag_before


class FakeConsumer:
    def __init__(self) -> None:
        self.assigned: set[TP] = set()
        self.highwaters: dict[TP, int | None] = {}
        self._committed_offset: dict[TP, int | None] = {}
        self.positions: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.assigned:
            raise AssertionError("Partition is not assigned")
        return self.highwaters.get(tp)

    async def position(self, tp: TP) -> int:
        return self.positions[tp]


def _lag(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(
        "insights_consumer_lag_messages", {"topic": topic, "partition": str(partition)}
    )


async def test_consumer_lag_per_partition(worker: InsightsWorker) -> None:
    consumer = FakeConsumer()
    worker.app.consumer = consumer  # type: ignore[assignment]
    sessions = [TP("insights.sessions", p) for p in range(3)]
    latency = TP("insights.latency", 0)
    leader = TP("coder-insights-streams-__assignor-__leader", 0)  # Faust's own: no series
    consumer.assigned = {*sessions, latency, leader}
    consumer.highwaters = {sessions[0]: 120, sessions[1]: 50, latency: 7, leader: 3}
    consumer._committed_offset = {sessions[0]: 100, sessions[1]: 50, latency: None}
    consumer.positions = {latency: 2}  # nothing committed yet: the position stands in
    await worker._heartbeat()
    assert worker.store.beats == 1  # type: ignore[attr-defined]
    assert [_lag("insights.sessions", p) for p in range(3)] == [20, 0, None]  # 2: not fetched yet
    assert _lag("insights.latency", 0) == 5
    assert _lag(leader.topic, 0) is None

    # A rebalance takes partition 0 away: its series goes; the others follow their offsets.
    consumer.assigned = {sessions[1], sessions[2], latency}
    consumer.highwaters.update({sessions[1]: 80, sessions[2]: 9})
    consumer._committed_offset.update({sessions[2]: 10, latency: 7})  # committed > highwater
    await worker._update_consumer_lag()
    assert [_lag("insights.sessions", p) for p in range(3)] == [None, 30, 0]
    assert _lag("insights.latency", 0) == 0

    consumer.assigned = set()
    await worker._update_consumer_lag()
    assert [_lag("insights.sessions", p) for p in range(3)] == [None, None, None]
    assert _lag("insights.latency", 0) is None


async def test_a_failing_lookup_keeps_the_partitions_last_value(worker: InsightsWorker) -> None:
    consumer = FakeConsumer()
    worker.app.consumer = consumer  # type: ignore[assignment]
    tp = TP("insights.app_usage", 1)
    consumer.assigned = {tp}
    consumer.highwaters = {tp: 40}
    consumer._committed_offset = {tp: 10}
    await worker._update_consumer_lag()
    assert _lag("insights.app_usage", 1) == 30

    def broken(_: TP) -> int:
        raise RuntimeError("consumer thread busy")

    consumer.highwater = broken  # type: ignore[method-assign]
    await worker._update_consumer_lag()
    assert _lag("insights.app_usage", 1) == 30
    consumer.assigned = set()
    await worker._update_consumer_lag()
    assert _lag("insights.app_usage", 1) is None


# --- the worker's /metrics endpoint ---------------------------------------------------------


def test_the_endpoint_is_off_unless_a_port_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().worker_metrics_port is None
    assert Settings().worker_metrics_host == "127.0.0.1"
    monkeypatch.setenv("INSIGHTS_WORKER_METRICS_PORT", "9464")
    assert Settings().worker_metrics_port == 9464


@pytest.mark.parametrize("token", ["", "scrape-token"])
async def test_the_worker_serves_its_metrics(token: str) -> None:
    metrics.ROLLUP_OPS.labels("insights.endpoint-test").observe(3)
    settings = Settings(worker_metrics_port=0, metrics_token=token)
    runner = await serve_worker_metrics(settings)
    try:
        host, port = runner.addresses[0][:2]
        assert host == "127.0.0.1"
        url = f"http://{host}:{port}/metrics"
        async with aiohttp.ClientSession() as session:
            if token:
                async with session.get(url) as resp:
                    assert resp.status == 401
                    assert resp.headers["WWW-Authenticate"] == "Bearer"
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with session.get(url, headers=headers) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                text = await resp.text()
            async with session.get(url.replace("/metrics", "/healthz")) as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert "insights_rollup_ops_per_batch_count" in names
    assert "insights_assigned_partitions" in names
