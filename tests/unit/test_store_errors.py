"""Store errors in the worker: transient ones are retried, the others dead-letter the batch.

``is_transient_store_error`` decides; ``streams.batches.unapplied_dead_letters`` builds the
records of a refused batch; ``InsightsWorker.process`` (with a fake store and a fake
dead-letter topic, no broker) retries, dead-letters, counts and returns so that the batch
is acknowledged.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from aggregators.ops import BatchPlan
from insights.settings import Settings
from streams.batches import RawMessage, decode_batch, unapplied_dead_letters
from streams.dead_letter import STORE_ERROR, store_error_reason
from streams.worker import InsightsWorker, is_transient_store_error
from streams.workloads import AgentRef, epoch_us, session_event

T = "30000000-0000-4000-8000-000000000001"
USER = "30000000-0000-4000-8000-000000000101"
AT = datetime(2024, 4, 2, 10, tzinfo=UTC)
NOW_US = epoch_us(AT + timedelta(days=1))
MAX_FUTURE_US = 300_000_000
TOPIC = "insights.sessions"


def _pipeline_error(cls: type[redis_errors.ResponseError], reply: str) -> Exception:
    # What redis-py raises for a failed command of a pipeline (annotate_exception).
    return cls(f"Command # 1 (EVALSHA abc 1 k {{...}}) of pipeline caused error: {(reply,)}")


TRANSIENT = [
    redis_errors.ConnectionError("Error 111 connecting to 10.0.0.5:6379. Connection refused."),
    redis_errors.TimeoutError("Timeout reading from socket"),
    redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
    redis_errors.ReadOnlyError("You can't write against a read only replica."),
    redis_errors.ClusterDownError("CLUSTERDOWN The cluster is down"),
    redis_errors.MasterDownError("MASTERDOWN Link with MASTER is down"),
    redis_errors.TryAgainError("TRYAGAIN Multiple keys request during rehashing of slot"),
    redis_errors.NoScriptError("No matching script. Please use EVAL."),
    redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    redis_errors.AuthenticationError("invalid username-password pair"),
    redis_errors.NoPermissionError("this user has no permissions to run the 'evalsha' command"),
    redis_errors.ResponseError("BUSY Redis is busy running a script."),
    redis_errors.ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."),
    _pipeline_error(redis_errors.ResponseError, "NOREPLICAS Not enough good replicas to write."),
    _pipeline_error(redis_errors.ReadOnlyError, "You can't write against a read only replica."),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
]

PERMANENT = [
    redis_errors.ResponseError(
        "user_script:12: Script attempted to access nonexistent global variable 'guarded' "
        "script: 1f0e, on @user_script:12."
    ),
    redis_errors.ResponseError("WRONGTYPE Operation against a key holding the wrong kind"),
    _pipeline_error(redis_errors.ResponseError, "ERR user_script:3: attempt to index a nil value"),
    redis_errors.ResponseError(),
    redis_errors.DataError("Invalid input of type: 'NoneType'."),
    redis_errors.ExecAbortError("Transaction discarded because of previous errors."),
    TypeError("Type is not JSON serializable: set"),
    KeyError("t"),
    ValueError("bad op"),
    RuntimeError("bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_store_errors_are_retried(exc: Exception) -> None:
    assert is_transient_store_error(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_errors_of_the_batch_are_not_retried(exc: Exception) -> None:
    assert not is_transient_store_error(exc)


def test_the_reason_names_the_type_only() -> None:
    exc = redis_errors.ResponseError("Error connecting to 10.1.2.3:6379, user_script:1: boom")
    assert store_error_reason(exc) == "store_error: ResponseError"


# --- the records of a refused batch ----------------------------------------------------------


def _event(n: int) -> dict[str, Any]:
    agent = AgentRef(USER, "alice", T, T, T)
    return session_event(agent, f"store-error-{n}", epoch_us(AT + timedelta(minutes=n)), ["ssh"])


def _messages() -> list[RawMessage]:
    bad = dict(_event(1), user_id="not-a-uuid")
    return [
        RawMessage(TOPIC, 2, 40, b"k1", orjson.dumps([_event(0), bad, _event(2)])),
        RawMessage(TOPIC, 2, 41, None, orjson.dumps(_event(3))),
        RawMessage(TOPIC, 2, 42, b"\xff", orjson.dumps(dict(_event(4), time="soon"))),
        RawMessage(TOPIC, 0, 7, b"k2", None),  # tombstone
        RawMessage(TOPIC, 0, 8, b"k2", b"[]"),
        RawMessage(TOPIC, 0, 9, b"\xfe\xff", orjson.dumps([_event(5)])),
    ]


def test_a_refused_batch_gives_one_record_per_valid_event() -> None:
    messages = _messages()
    reason = store_error_reason(redis_errors.ResponseError("x"))
    letters = unapplied_dead_letters("sessions", messages, NOW_US, MAX_FUTURE_US, reason)
    records = [orjson.loads(d.value) for d in letters]
    where = [(r["partition"], r["offset"], r["index"], r["key"]) for r in records]
    assert where == [
        (2, 40, 0, "k1"),
        (2, 40, 2, "k1"),
        (2, 41, None, None),
        (0, 9, 0, base64.b64encode(b"\xfe\xff").decode()),
    ]
    assert {r["topic"] for r in records} == {TOPIC}
    assert {r["reason"] for r in records} == {"store_error: ResponseError"}
    assert {d.code for d in letters} == {STORE_ERROR}
    assert [d.key for d in letters] == [b"k1", b"k1", None, b"\xfe\xff"]
    # The payloads are the events themselves: producing them again replays the batch.
    payloads = [orjson.loads(r["payload"]) for r in records]
    assert payloads == [_event(0), _event(2), _event(3), _event(5)]
    assert records[2]["payload"] == messages[1].value.decode()  # type: ignore[union-attr]
    # Exactly the events the batch held; the refused ones have their own records already.
    batch = decode_batch("sessions", messages, NOW_US, MAX_FUTURE_US)
    assert batch.events == len(letters)
    assert len(batch.dead_letters) == 3


# --- the worker --------------------------------------------------------------------------


class FakeStore:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0
        self.applied: list[BatchPlan] = []

    async def apply(self, plan: BatchPlan) -> int:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.applied.append(plan)
        return 1


class FakeTopic:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


@pytest.fixture
async def worker() -> AsyncIterator[InsightsWorker]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0", redis_retry_max_s=0.05
    )
    redis = Redis.from_url(settings.redis_url)  # never connected: the store is replaced
    w = InsightsWorker(settings, redis, clock_us=lambda: NOW_US)
    w.dead_letters = FakeTopic()  # type: ignore[assignment]
    try:
        yield w
    finally:
        await redis.aclose()


def _stream_events(messages: list[RawMessage]) -> list[Any]:
    return [
        SimpleNamespace(
            message=SimpleNamespace(
                topic=m.topic, partition=m.partition, offset=m.offset, key=m.key
            ),
            value=m.value,
        )
        for m in messages
    ]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_permanent_error_dead_letters_the_batch_and_moves_on(
    worker: InsightsWorker,
) -> None:
    store = FakeStore([redis_errors.ResponseError("user_script:1: attempt to index a nil")])
    worker.store = store  # type: ignore[assignment]
    before = _snapshot()
    batch = await worker.process("sessions", _stream_events(_messages()))
    # Returned normally: take_events acknowledges the batch, so its offsets advance.
    assert store.calls == 1
    assert batch.events == 4
    sent = [orjson.loads(value) for _, value in worker.dead_letters.sent]  # type: ignore[attr-defined]
    store_errors = [r for r in sent if r["reason"].startswith("store_error")]
    assert len(store_errors) == 4
    assert {r["reason"] for r in store_errors} == {"store_error: ResponseError"}
    assert len(sent) == 4 + 3  # and the validation refusals, as always
    assert _changes(before) == {
        "batches": 1,
        "store_error": 4,
        "refused": 3,
        "retries": 0,
        "events": 0,
    }


async def test_a_transient_error_is_retried_until_the_batch_goes_in(
    worker: InsightsWorker,
) -> None:
    store = FakeStore(
        [redis_errors.ConnectionError("Error 111"), redis_errors.BusyLoadingError("loading")]
    )
    worker.store = store  # type: ignore[assignment]
    before = _snapshot()
    await worker.process("sessions", _stream_events(_messages()))
    assert store.calls == 3
    assert len(store.applied) == 1
    sent = [orjson.loads(value) for _, value in worker.dead_letters.sent]  # type: ignore[attr-defined]
    assert len(sent) == 3
    assert not any(r["reason"].startswith("store_error") for r in sent)
    assert _changes(before) == {
        "batches": 0,
        "store_error": 0,
        "refused": 3,
        "retries": 2,
        "events": 4,
    }


_COUNTERS = {
    "batches": ("insights_store_batches_dead_lettered_total", {"reason": "ResponseError"}),
    "store_error": ("insights_events_rejected_total", {"reason": STORE_ERROR}),
    "retries": ("insights_store_retries_total", {}),
    "events": ("insights_events_total", {}),
}


def _snapshot() -> dict[str, float]:
    snap = {k: _metric(n, topic=TOPIC, **labels) for k, (n, labels) in _COUNTERS.items()}
    snap["refused"] = sum(
        _metric("insights_events_rejected_total", topic=TOPIC, reason=code)
        for code in ("bad_uuid", "bad_time", "no_value")
    )
    return snap


def _changes(before: dict[str, float]) -> dict[str, float]:
    after = _snapshot()
    return {k: after[k] - before[k] for k in before}


# --- failover settings -------------------------------------------------------------------


def test_failover_defaults_fit_kafka_and_the_embedded_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("INSIGHTS_BROKER_SESSION_TIMEOUT_S", "INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.broker_session_timeout_s is None and s.broker_heartbeat_interval_s is None
    # Kafka refuses sessions under group.min.session.timeout.ms (6 s by default).
    assert s.group_timing(embedded_broker=False) == (6.0, 1.0)
    # The embedded broker has no floor, but shorter sessions stalled a worker after an empty
    # broker restart now and then (insights/settings.py): the same timing.
    assert s.group_timing(embedded_broker=True) == (6.0, 1.0)


def test_a_set_session_rules_on_every_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S", raising=False)
    monkeypatch.setenv("INSIGHTS_BROKER_SESSION_TIMEOUT_S", "12")
    for embedded in (False, True):
        assert Settings().group_timing(embedded) == (12.0, 2.0)  # a sixth: the defaults' ratio


def test_heartbeat_is_at_most_a_third_of_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSIGHTS_BROKER_SESSION_TIMEOUT_S", "9")
    monkeypatch.setenv("INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S", "3")
    assert Settings().broker_heartbeat_interval_s == 3.0
    monkeypatch.delenv("INSIGHTS_BROKER_SESSION_TIMEOUT_S")
    with pytest.raises(ValidationError, match="at most a third"):  # 3 s > a third of 6 s
        Settings()
    monkeypatch.setenv("INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S", "3.5")
    with pytest.raises(ValidationError, match="at most a third"):
        Settings()
    with pytest.raises(ValidationError):
        Settings(broker_session_timeout_s=6, broker_heartbeat_interval_s=0)


async def test_the_worker_hands_the_group_timing_to_its_consumer() -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        redis_url="redis://127.0.0.1:1/0",
        broker_session_timeout_s=12,
        broker_heartbeat_interval_s=2.5,
    )
    redis = Redis.from_url(settings.redis_url)
    try:
        for embedded in (False, True):
            w = InsightsWorker(settings, redis, embedded_broker=embedded)
            assert w.app.conf.broker_session_timeout == 12.0
            assert w.app.conf.broker_heartbeat_interval == 2.5
        auto = Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")
        for embedded, timing in ((False, (6.0, 1.0)), (True, (6.0, 1.0))):
            w = InsightsWorker(auto, redis, embedded_broker=embedded)
            conf = w.app.conf
            assert (conf.broker_session_timeout, conf.broker_heartbeat_interval) == timing
    finally:
        await redis.aclose()
