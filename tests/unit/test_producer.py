"""streams.producer without a broker: a fake Kafka producer records what would be sent.

Every message the SDK makes must pass the worker's own decoder as a batch, within the
contract's limits, keyed by the contract's key; invalid events must raise before anything
of their call is sent; failures must come back in a ProduceError, never vanish.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson
import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from aggregators.timebase import US_PER_MIN
from streams.decoding import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_MESSAGE_BYTES, decode_message
from streams.producer import (
    FRAMING_HEADROOM_BYTES,
    EventProducer,
    InvalidEvent,
    ProduceError,
)
from streams.workloads import (
    AgentRef,
    App,
    app_usage_event,
    build_event,
    epoch_us,
    latency_event,
    session_event,
)

T = "30000000-0000-4000-8000-000000000001"
USERS = [f"30000000-0000-4000-8000-0000000002{i:02d}" for i in range(4)]
WORKSPACES = [f"30000000-0000-4000-8000-0000000003{i:02d}" for i in range(4)]
START_US = epoch_us(datetime(2024, 3, 4, 9, tzinfo=UTC))


def _agent(i: int) -> AgentRef:
    return AgentRef(USERS[i], f"user{i}", T, WORKSPACES[i], T)


def _session(i: int, n: int, **extra: Any) -> dict[str, Any]:
    event = session_event(_agent(i), f"s-{i}-{n}", START_US + n * US_PER_MIN, ["ssh"])
    return {**event, **extra}


class Sent:
    def __init__(self, topic: str, value: bytes, key: bytes | None) -> None:
        self.topic = topic
        self.value = value
        assert key is not None  # every message is keyed
        self.key = key
        self.events: list[dict[str, Any]] = orjson.loads(value)


class FakeProducer:
    """Stands in for AIOKafkaProducer: the next acknowledgements of a message with key K
    raise ``failures[K]`` (or ``failures[None]``, whatever the key) in turn."""

    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.attempts: list[Sent] = []
        self.delivered: list[Sent] = []
        self.failures: dict[bytes | None, list[BaseException]] = {}
        self.started = self.stopped = False
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Awaitable[Any]:
        sent = Sent(topic, value, key)
        self.attempts.append(sent)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending = self.failures.get(key) or self.failures.get(None)
        if pending:
            ack.set_exception(pending.pop(0))
        else:
            self.delivered.append(sent)
            ack.set_result(None)
        return ack


def _producer(**kwargs: Any) -> EventProducer:
    options: dict[str, Any] = {"linger_s": None, "retry_backoff_s": 0.001, **kwargs}
    return EventProducer("127.0.0.1:1", producer_factory=FakeProducer, **options)


def _fake() -> FakeProducer:
    return FakeProducer.instances[-1]


def _assert_worker_accepts(sent: Sent, kind: str) -> None:
    events, rejections = decode_message(sent.value, kind, START_US + 10**12)
    assert rejections == []
    assert len(events) == len(sent.events)


def _assert_packed(sent: list[Sent], limit: int) -> None:
    """Within the limit, and greedy: each message but the last could not take the next event."""
    assert all(len(s.value) <= limit for s in sent)
    for s, following in itertools.pairwise(sent):
        assert len(s.value) + 1 + len(orjson.dumps(following.events[0])) > limit


# --- packing ---------------------------------------------------------------------------------


async def test_big_batch_is_split_at_the_event_limit() -> None:
    events = [_session(0, n) for n in range(2 * MAX_BATCH_EVENTS + 500)]
    async with _producer() as p:
        ids = await p.send_many("sessions", events)
    sent = _fake().delivered
    assert [len(s.events) for s in sent] == [MAX_BATCH_EVENTS, MAX_BATCH_EVENTS, 500]
    assert [e["id"] for s in sent for e in s.events] == ids == [e["id"] for e in events]
    assert {s.topic for s in sent} == {"insights.sessions"}
    assert {s.key for s in sent} == {USERS[0].encode()}
    for s in sent:
        _assert_worker_accepts(s, "sessions")
    assert (p.delivered_events, p.delivered_messages) == (len(events), 3)
    assert _fake().stopped


async def test_big_events_are_split_at_the_byte_limit() -> None:
    pad = "x" * (60 << 10)  # unknown fields are ignored by the worker, but count in bytes
    events = [_session(1, n, note=pad) for n in range(40)]
    async with _producer() as p:
        await p.send_many("sessions", events)
    sent = _fake().delivered
    assert len(sent) >= 3
    assert p.max_message_bytes == MAX_MESSAGE_BYTES - FRAMING_HEADROOM_BYTES
    _assert_packed(sent, p.max_message_bytes)
    assert [e["id"] for s in sent for e in s.events] == [e["id"] for e in events]
    for s in sent:
        _assert_worker_accepts(s, "sessions")


async def test_a_smaller_max_request_size_lowers_the_message_limit() -> None:
    events = [_session(1, n, note="y" * 1000) for n in range(300)]
    async with _producer(max_request_size=100_000) as p:
        await p.send_many("sessions", events)
    assert p.max_message_bytes == 100_000 - FRAMING_HEADROOM_BYTES
    sent = _fake().delivered
    assert len(sent) > 1
    _assert_packed(sent, p.max_message_bytes)
    assert _fake().kwargs["max_request_size"] == 100_000


async def test_messages_are_keyed_by_the_contract_key_and_never_mix_keys() -> None:
    sessions = [_session(n % 3, n) for n in range(30)]
    # The worker lowercases UUIDs; so does the key, so one user stays in one partition.
    sessions.append(_session(0, 99, user_id=USERS[0].upper()))
    hh = (START_US, START_US + 5 * US_PER_MIN)
    usage = app_usage_event(_agent(2), "u-1", T, *hh, slug_or_port="code", app=App("c", "/i"))
    builds = [build_event(_agent(i), f"b-{i}", START_US, 1, []) for i in (0, 1)]
    async with _producer() as p:
        await p.send_many("sessions", sessions)
        await p.send("app_usage", usage)
        await p.send_many("builds", builds)
        await p.send("latency", latency_event(_agent(3), "l-1", START_US, 12.5))
    sent = _fake().delivered
    by_topic: dict[str, list[Sent]] = {}
    for s in sent:
        by_topic.setdefault(s.topic.removeprefix("insights."), []).append(s)
    assert sorted(s.key for s in by_topic["sessions"]) == sorted(u.encode() for u in USERS[:3])
    for s in by_topic["sessions"]:
        assert {e["user_id"].lower().encode() for e in s.events} == {s.key}
    assert sum(len(s.events) for s in by_topic["sessions"]) == 31
    assert [s.key for s in by_topic["app_usage"]] == [USERS[2].encode()]
    assert sorted(s.key for s in by_topic["builds"]) == [w.encode() for w in WORKSPACES[:2]]
    assert [s.key for s in by_topic["latency"]] == [USERS[3].encode()]
    for kind, messages in by_topic.items():
        for s in messages:
            _assert_worker_accepts(s, kind)


async def test_topic_prefix() -> None:
    async with _producer(topic_prefix="acme.") as p:
        await p.send("sessions", _session(0, 0))
        assert p.topic("builds") == "acme.builds"
    assert [s.topic for s in _fake().delivered] == ["acme.sessions"]


# --- ids -------------------------------------------------------------------------------------


async def test_missing_ids_are_filled_and_the_callers_events_are_left_alone() -> None:
    without = {k: v for k, v in _session(0, 1).items() if k != "id"}
    null_id = _session(0, 2, id=None)
    given = _session(0, 3, id="my-own-id")
    originals = [dict(without), dict(null_id), dict(given)]
    async with _producer() as p:
        ids = await p.send_many("sessions", [without, null_id, given])
        sample = latency_event(_agent(0), "x", START_US, 3)
        one = await p.send("latency", {k: v for k, v in sample.items() if k != "id"})
    assert [without, null_id, given] == originals
    assert ids[2] == "my-own-id"
    for filled in (ids[0], ids[1], one):
        assert uuid.UUID(filled).version == 4
    assert len({ids[0], ids[1], one}) == 3
    sent = {s.topic: s.events for s in _fake().delivered}
    assert [e["id"] for e in sent["insights.sessions"]] == ids
    assert sent["insights.latency"][0]["id"] == one


async def test_datetimes_and_uuids_are_serialised_as_the_contract_text() -> None:
    at = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
    event = latency_event(_agent(0), "dt", START_US, 20.0)
    event |= {"time": at, "user_id": uuid.UUID(USERS[0])}
    async with _producer() as p:
        await p.send("latency", event)
    (sent,) = _fake().delivered
    assert sent.events[0]["time"] == "2024-03-04T09:30:00Z"
    assert sent.events[0]["user_id"] == USERS[0]


# --- validation ------------------------------------------------------------------------------


async def test_an_invalid_event_raises_and_nothing_of_its_call_is_sent() -> None:
    good = [_session(0, n) for n in range(5)]
    bad_uuid = _session(1, 7, user_id="not-a-uuid")
    negative = _session(2, 8, sessions={"ssh": -1})
    async with _producer() as p:
        with pytest.raises(InvalidEvent) as caught:
            await p.send_many("sessions", [*good[:2], bad_uuid, *good[2:], negative])
        err = caught.value
        assert (err.kind, err.field, err.code) == ("sessions", "user_id", "bad_uuid")
        assert "canonical UUID" in err.reason
        assert str(err).startswith("invalid sessions events[2] (id 's-1-7'): field \"user_id\"")
        assert "1 more invalid events; nothing was sent" in str(err)
        assert [(q.index, q.field, q.code) for q in err.problems] == [
            (2, "user_id", "bad_uuid"),
            (6, "sessions.ssh", "bad_value"),
        ]
        await p.flush()
        assert _fake().attempts == []
        # The producer stays usable: the same call without the bad events goes through.
        await p.send_many("sessions", good)
    assert [len(s.events) for s in _fake().delivered] == [5]


@pytest.mark.parametrize(
    ("kind", "event", "field", "code"),
    [
        ("latency", {"time": "2024-03-04T09:00:00Z", "user_id": T}, "template_id", "missing_field"),
        (
            "latency",
            {**latency_event(_agent(0), "l", START_US, 1.0), "latency_ms": 0},
            "latency_ms",
            "bad_value",
        ),
        ("sessions", {**_session(0, 0), "time": "2024-03-04 09:00:00"}, "time", "bad_time"),
        ("builds", build_event(_agent(0), "b", START_US, 0, []), "build_number", "bad_value"),
        ("sessions", {**_session(0, 0), "id": "x" * 129}, "id", "bad_value"),
        ("sessions", {**_session(0, 0), "id": 7}, "id", "bad_type"),
        ("sessions", {**_session(0, 0), "note": "z" * MAX_EVENT_BYTES}, None, "event_too_large"),
        ("sessions", {**_session(0, 0), "note": {1, 2}}, None, "invalid_json"),
        ("sessions", ["not", "an", "object"], None, "not_object"),
    ],
)
async def test_each_kind_of_problem_names_its_field(
    kind: Any, event: Any, field: str | None, code: str
) -> None:
    async with _producer() as p:
        with pytest.raises(InvalidEvent) as caught:
            await p.send(kind, event)
    assert (caught.value.field, caught.value.code) == (field, code)
    assert str(caught.value).startswith(f"invalid {kind} event")
    assert _fake().attempts == []


async def test_the_future_limit_is_the_workers() -> None:
    soon = datetime.now(UTC) + timedelta(minutes=4)
    later = datetime.now(UTC) + timedelta(minutes=6)
    async with _producer() as p:
        await p.send("sessions", _session(0, 0, time=soon))
        with pytest.raises(InvalidEvent) as caught:
            await p.send("sessions", _session(0, 1, time=later))
        assert caught.value.code == "future_time"
    async with _producer(max_future_s=600) as p:
        await p.send("sessions", _session(0, 1, time=later))


async def test_unknown_kind_and_unstarted_producer() -> None:
    p = _producer()
    with pytest.raises(RuntimeError, match="not started"):
        await p.send("sessions", _session(0, 0))
    async with p:
        with pytest.raises(ValueError, match="unknown event kind 'dead_letter'"):
            await p.send("dead_letter", _session(0, 0))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="closed"):
        await p.flush()


# --- delivery --------------------------------------------------------------------------------


async def test_transient_errors_are_retried() -> None:
    async with _producer() as p:
        _fake().failures[None] = [KafkaConnectionError("reset"), KafkaConnectionError("reset")]
        await p.send("sessions", _session(0, 0))
        await p.flush()
        assert len(_fake().attempts) == 3
        assert len(_fake().delivered) == 1
        assert _fake().attempts[0].value == _fake().attempts[2].value  # same ids: a redelivery


async def test_failures_are_raised_with_the_undelivered_events() -> None:
    events = [_session(n % 2, n) for n in range(10)]
    async with _producer(max_attempts=3) as p:
        fake = _fake()
        fake.failures[USERS[0].encode()] = [KafkaConnectionError("down")] * 3
        fake.failures[USERS[1].encode()] = [MessageSizeTooLargeError()]
        await p.send_many("sessions", events)
        with pytest.raises(ProduceError) as caught:
            await p.flush()
        err = caught.value
        assert sorted((u.attempts, type(u.error).__name__) for u in err.undelivered) == [
            (1, "MessageSizeTooLargeError"),
            (3, "KafkaConnectionError"),
        ]
        assert sorted(e["id"] for _, e in err.events) == sorted(e["id"] for e in events)
        assert "10 events in 2 messages not delivered" in str(err)
        assert p.delivered_events == 0
        # Reported once: the next flush has nothing to say, and a resend goes through.
        await p.flush()
        for u in err.undelivered:
            await p.send_many("sessions", u.events)
    assert sorted(e["id"] for s in fake.delivered for e in s.events) == sorted(
        e["id"] for e in events
    )


async def test_exit_flushes_and_reports_failures() -> None:
    with pytest.raises(ProduceError):
        async with _producer(max_attempts=1) as p:
            _fake().failures[None] = [KafkaConnectionError("down")]
            await p.send("sessions", _session(0, 0))
    assert _fake().stopped


async def test_exit_after_an_error_in_the_body_still_delivers() -> None:
    with pytest.raises(KeyError):
        async with _producer() as p:
            await p.send("sessions", _session(0, 0))
            raise KeyError("boom")
    assert len(_fake().delivered) == 1


async def test_linger_sends_without_a_flush() -> None:
    async with _producer(linger_s=0.01) as p:
        await p.send("sessions", _session(0, 0))
        await p.send("sessions", _session(0, 1))
        assert _fake().attempts == []
        for _ in range(100):
            await asyncio.sleep(0.01)
            if p.delivered_events:
                break
        assert [len(s.events) for s in _fake().delivered] == [2]


async def test_in_flight_messages_are_bounded() -> None:
    release = asyncio.Event()

    class Slow(FakeProducer):
        async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Any:
            await release.wait()
            return await super().send(topic, value, key)

    p = EventProducer("x", producer_factory=Slow, linger_s=None, max_in_flight=2)
    async with p:
        events = [_session(0, n) for n in range(4 * MAX_BATCH_EVENTS)]
        sending = asyncio.create_task(p.send_many("sessions", events))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not sending.done()  # four full messages in flight, at most one may stay
        release.set()
        await sending
    assert p.delivered_messages == 4


# --- settings --------------------------------------------------------------------------------


def test_defaults_suit_kafka_and_callers_can_choose_tansus() -> None:
    def kwargs(**options: Any) -> dict[str, Any]:
        async def make() -> dict[str, Any]:
            async with _producer(**options):
                return _fake().kwargs

        return asyncio.run(make())

    assert kwargs() == {
        "bootstrap_servers": "127.0.0.1:1",
        "acks": "all",
        "enable_idempotence": True,
    }
    assert kwargs(acks=1)["enable_idempotence"] is False
    tansu = kwargs(acks=1, enable_idempotence=False, linger_ms=5)
    assert (tansu["acks"], tansu["enable_idempotence"], tansu["linger_ms"]) == (1, False, 5)


def test_invalid_options() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        EventProducer("x", max_attempts=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        EventProducer("x", max_in_flight=0)
    with pytest.raises(ValueError, match="max_request_size must be at least 66562 bytes"):
        EventProducer("x", max_request_size=60_000)
