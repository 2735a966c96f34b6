"""Producer SDK: send contract events to the service's topics, validated, batched and keyed.

Agent authors could write to Kafka with any client, but then every producer has to get
the contract right on its own: the per-topic key, the batch limits (1,000 events and
1 MiB per message), ids that make a retry a harmless redelivery, and events the worker
will not refuse.  A refused event only shows up later on the dead-letter topic, far from
the code that made it; this module refuses it at the call, with the field and the reason.

::

    async with EventProducer("kafka:9092") as producer:     # flushes on exit
        await producer.send("latency", {"time": ..., "user_id": ..., "latency_ms": 31.3, ...})
        await producer.send_many("sessions", reports)
        await producer.flush()                             # raises ProduceError on failure

What it does, and why:

* **Validation with the worker's own decoder** (``streams.decoding.decode_message``), so
  the SDK and the worker can never disagree on what is valid.  ``send_many`` validates
  every event of the call before it sends any: a bad event raises ``InvalidEvent``
  (naming the field and the reason of each bad event) and nothing of that call is sent,
  so a caller can fix and resend the whole call without duplicates.
* **Ids**: an event without ``id`` (or with ``id: null``) gets a random UUID before its
  first attempt, so that every retry of it, by this module or by the caller, carries the
  same id and is a redelivery the service ignores.  The caller's mappings are not
  modified; ``send``/``send_many`` return the ids, and ``ProduceError`` carries the events
  as sent.
* **Batches within the contract's limits**: events are packed into JSON-array messages of
  at most ``MAX_BATCH_EVENTS`` events and ``MAX_MESSAGE_BYTES`` bytes (the decoder's
  constants; less ``FRAMING_HEADROOM_BYTES`` so that the record, key and batch header also
  fit Kafka's default ``message.max.bytes`` and aiokafka's ``max_request_size``).  A
  batch costs the worker one message instead of hundreds.
* **Keys**: every message is keyed by the contract's key (``KEY_FIELDS``: ``user_id``, or
  ``workspace_id`` for builds), and all events of a message share it, so one user's
  events stay in one partition, in order.
* **Delivery**: a full message is handed to aiokafka at once; the rest waits at most
  ``linger_s`` (or until ``flush``).  Transient errors (aiokafka's retriable errors and
  timeouts) are retried with doubling, bounded backoff; duplicates a retry may cause are
  harmless because of the ids.  What still fails is never dropped silently: ``flush``
  (and the exit of the ``async with``) raises ``ProduceError`` listing every undelivered
  message with its events and error.

Defaults suit a real Kafka cluster: ``acks="all"`` and the idempotent producer.  The
embedded broker of ``insights up`` (Tansu) has no idempotent producer: pass
``acks=1, enable_idempotence=False`` (``insights.devstack.TANSU_PRODUCER_SETTINGS``).
Any other keyword goes to ``aiokafka.AIOKafkaProducer`` unchanged (TLS, SASL,
compression, ``linger_ms``, ``request_timeout_ms``...).

asyncio only; an instance is not thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, NamedTuple, Protocol, Self

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from aggregators.model import TOPIC_KINDS, TopicKind
from streams.decoding import (
    DEFAULT_MAX_FUTURE_US,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    decode_message,
)
from streams.decoding.limits import EVENT_TOO_LARGE, INVALID_JSON, NOT_OBJECT

__all__ = [
    "FRAMING_HEADROOM_BYTES",
    "KEY_FIELDS",
    "EventProblem",
    "EventProducer",
    "InvalidEvent",
    "KafkaProducerLike",
    "ProduceError",
    "TopicKind",
    "Undelivered",
]

#: The contract's message key of each topic (``docs/events.md``, "The topics").
KEY_FIELDS: Final[Mapping[str, str]] = {
    "sessions": "user_id",
    "app_usage": "user_id",
    "latency": "user_id",
    "builds": "workspace_id",
}

#: Bytes kept free below ``MAX_MESSAGE_BYTES`` for what Kafka adds around a value: the
#: record (key, lengths, ~30 bytes) and its batch header (61 bytes).  A full 1 MiB value
#: would exceed both aiokafka's default ``max_request_size`` (1,048,576) and Kafka's
#: default ``message.max.bytes`` (1,048,588).
FRAMING_HEADROOM_BYTES: Final = 1024

_US_PER_S = 1_000_000
# 'field "user_id": not a canonical UUID ...' -> the field's dotted path.
_FIELD_REASON = re.compile(r'field "([^"]*)": ')


class KafkaProducerLike(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` this module uses (the tests inject fakes)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> Awaitable[Any]:
        """Queue one message; the returned awaitable resolves once the broker acknowledged it."""
        ...


# --- errors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventProblem:
    """Why one event of a call was refused."""

    index: int  # position in the call's events (0 for ``send``)
    event_id: str | None  # the event's id when it had a usable one
    field: str | None  # dotted path of the offending field; None for whole-event problems
    reason: str  # one line, as the worker's dead-letter record would say it
    code: str  # the decoder's reason code (``streams.decoding.REASON_CODES``)


class InvalidEvent(ValueError):
    """Events the worker would refuse; nothing of the call that raised this was sent.

    ``problems`` lists every bad event of the call (not just the first), so a caller can
    fix them all at once; ``field``, ``reason`` and ``code`` are the first one's.
    """

    def __init__(self, kind: str, problems: list[EventProblem], *, many: bool) -> None:
        self.kind = kind
        self.problems: tuple[EventProblem, ...] = tuple(problems)
        first = problems[0]
        where = f"events[{first.index}]" if many else "event"
        named = f" (id {first.event_id!r})" if first.event_id is not None else ""
        text = f"invalid {kind} {where}{named}: {first.reason}"
        if len(problems) > 1:
            text += f" (and {len(problems) - 1} more invalid events; nothing was sent)"
        else:
            text += " (nothing was sent)"
        super().__init__(text)

    @property
    def field(self) -> str | None:
        return self.problems[0].field

    @property
    def reason(self) -> str:
        return self.problems[0].reason

    @property
    def code(self) -> str:
        return self.problems[0].code


@dataclass(frozen=True)
class Undelivered:
    """One message that could not be delivered: its events exactly as sent (ids filled in),
    so that sending them again (``send_many(kind, events)``) is a redelivery."""

    kind: str
    topic: str
    key: str
    events: tuple[dict[str, Any], ...]
    error: BaseException
    attempts: int


class ProduceError(Exception):
    """Messages that were not delivered after the retries; nothing else was lost.

    Raised by ``flush`` (and ``close``, which the ``async with`` exit calls) for every
    message that failed since the previous ``flush``.  The broker may still have stored
    some of them (a timeout does not say); resending is safe because ids are kept.
    """

    def __init__(self, undelivered: Iterable[Undelivered]) -> None:
        self.undelivered: tuple[Undelivered, ...] = tuple(undelivered)
        count = sum(len(u.events) for u in self.undelivered)
        first = self.undelivered[0]
        error = f"{type(first.error).__name__}: {first.error}".rstrip(": ")
        super().__init__(
            f"{count} events in {len(self.undelivered)} messages not delivered "
            f"(first: {first.topic}, key {first.key}, after {first.attempts} attempts: {error})"
        )

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Every undelivered event as ``(kind, event)``."""
        return [(u.kind, event) for u in self.undelivered for event in u.events]


# --- packing ---------------------------------------------------------------------------------


class _Prepared(NamedTuple):
    """A validated event: its JSON text (what goes into the batch) and message key."""

    event: dict[str, Any]
    event_id: str
    key: str
    text: bytes


@dataclass
class _Message:
    kind: str
    topic: str
    key: str
    value: bytes
    events: tuple[dict[str, Any], ...]


@dataclass
class _Buffer:
    """The events of one (kind, key) waiting to fill a message.

    ``size`` is the byte length of the JSON array they would make: ``[`` ``]`` and the
    commas between elements included, so the limit check is exact.
    """

    items: list[_Prepared] = field(default_factory=list)
    size: int = 2

    def fits(self, text: bytes, max_events: int, max_bytes: int) -> bool:
        if not self.items:
            return True  # an event fits an empty message: its own size is checked on entry
        return len(self.items) < max_events and self.size + 1 + len(text) <= max_bytes

    def add(self, item: _Prepared) -> None:
        self.size += len(item.text) + (1 if self.items else 0)
        self.items.append(item)


def _transient(exc: BaseException) -> bool:
    """Worth another attempt: the broker or the network may recover (a leader election,
    a restart, a full buffer, a timeout).  Anything else (a message too large, an
    authorization failure, a closed producer) would fail the same way again."""
    if isinstance(exc, KafkaTimeoutError):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


def _now_us() -> int:
    return time.time_ns() // 1000


# --- the producer ----------------------------------------------------------------------------


class EventProducer:
    """Async context manager that validates, batches, keys and delivers contract events.

    ``bootstrap`` is aiokafka's ``bootstrap_servers`` (``"host:port[,host:port]"``);
    topics are ``topic_prefix + kind``.  SDK options (keyword only):

    * ``linger_s``: how long a message that is not full waits for more events of its
      key before it is sent (``None``: only when full or on ``flush``);
    * ``max_attempts``, ``retry_backoff_s``, ``retry_backoff_max_s``: attempts per
      message, and the backoff between them (doubling from the first up to the max);
    * ``max_in_flight``: messages handed to aiokafka but not yet acknowledged before
      ``send`` waits, which bounds memory when the broker is slower than the caller;
    * ``max_future_s``: the worker's ``INSIGHTS_MAX_FUTURE_S`` when it is not the default;
    * ``producer_factory``: builds the Kafka producer from its keyword arguments
      (``aiokafka.AIOKafkaProducer``; tests pass a fake).

    Every other keyword is passed to the Kafka producer.  ``acks`` defaults to ``"all"``
    and ``enable_idempotence`` to true when ``acks`` is ``"all"``, else false (aiokafka
    refuses idempotence with other acks).
    """

    def __init__(
        self,
        bootstrap: str | list[str],
        *,
        topic_prefix: str = "insights.",
        linger_s: float | None = 0.1,
        max_attempts: int = 5,
        retry_backoff_s: float = 0.1,
        retry_backoff_max_s: float = 2.0,
        max_in_flight: int = 64,
        max_future_s: float = DEFAULT_MAX_FUTURE_US / _US_PER_S,
        producer_factory: Callable[..., KafkaProducerLike] = AIOKafkaProducer,
        **aiokafka_kwargs: Any,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be >= 1")
        if linger_s is not None and linger_s < 0:
            raise ValueError("linger_s must be >= 0 or None")
        acks = aiokafka_kwargs.pop("acks", "all")
        idempotence = aiokafka_kwargs.pop("enable_idempotence", acks in ("all", -1))
        self._kafka_kwargs: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "acks": acks,
            "enable_idempotence": idempotence,
            **aiokafka_kwargs,
        }
        self._factory = producer_factory
        self._prefix = topic_prefix
        self._linger_s = linger_s
        self._max_attempts = max_attempts
        self._backoff_s = retry_backoff_s
        self._backoff_max_s = retry_backoff_max_s
        self._max_in_flight = max_in_flight
        self._max_future_us = round(max_future_s * _US_PER_S)
        request_limit = int(aiokafka_kwargs.get("max_request_size", MAX_MESSAGE_BYTES))
        self.max_message_bytes: Final = min(MAX_MESSAGE_BYTES, request_limit) - (
            FRAMING_HEADROOM_BYTES
        )
        """Largest message value this producer makes (the contract's limit less framing)."""
        if self.max_message_bytes < MAX_EVENT_BYTES + 2:
            # Every valid event must fit a message of its own ("[" event "]").
            least = MAX_EVENT_BYTES + 2 + FRAMING_HEADROOM_BYTES
            raise ValueError(f"max_request_size must be at least {least} bytes")
        self.max_batch_events: Final = MAX_BATCH_EVENTS
        self._producer: KafkaProducerLike | None = None
        self._closed = False
        self._buffers: dict[tuple[str, str], _Buffer] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: list[Undelivered] = []
        self.delivered_events = 0
        """Events whose message the broker acknowledged."""
        self.delivered_messages = 0
        """Messages the broker acknowledged."""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (``async with`` calls it).  A failed start leaves nothing running."""
        if self._closed:
            raise RuntimeError("this EventProducer was closed; make a new one")
        if self._producer is not None:
            return
        producer = self._factory(**self._kafka_kwargs)
        try:
            await producer.start()
        except BaseException:
            # aiokafka keeps its client (and a warning on garbage collection) otherwise.
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    async def close(self) -> None:
        """Flush, then disconnect; raises ``ProduceError`` for what could not be delivered.

        The connection is closed even when the flush fails or is cancelled.
        """
        if self._producer is None:
            self._closed = True
            return
        try:
            await self.flush()
        finally:
            producer, self._producer = self._producer, None
            self._closed = True
            self._cancel_timer()
            try:
                await producer.stop()
            finally:
                # Only left when the flush itself was cancelled: the caller gave up waiting.
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    await asyncio.wait(set(self._tasks))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Flush even when the body failed: what it sent before the error is valid.  A
        # ProduceError raised here keeps the body's exception as its context.
        await self.close()

    # --- sending -----------------------------------------------------------------------------

    def topic(self, kind: str) -> str:
        """The topic of events of ``kind``."""
        return self._prefix + kind

    async def send(self, kind: TopicKind, event: Mapping[str, Any]) -> str:
        """Validate one event and queue it for delivery; returns its id.

        Raises ``InvalidEvent`` (and sends nothing) when the worker would refuse it.
        Delivery failures are raised by ``flush``.
        """
        return (await self._send(kind, [event], many=False))[0]

    async def send_many(self, kind: TopicKind, events: Iterable[Mapping[str, Any]]) -> list[str]:
        """Validate every event, then queue them all; returns their ids, in order.

        When any event is invalid, ``InvalidEvent`` lists them all and none is sent.
        """
        return await self._send(kind, list(events), many=True)

    async def flush(self) -> None:
        """Send what is buffered and wait until every message is acknowledged or failed.

        Raises ``ProduceError`` with every message that failed since the last flush.
        """
        self._require_started()
        self._cancel_timer()
        self._seal_all()
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._failed:
            failed, self._failed = self._failed, []
            raise ProduceError(failed)

    async def _send(self, kind: str, events: list[Mapping[str, Any]], *, many: bool) -> list[str]:
        self._require_started()
        prepared = self._validate(kind, events, many=many)
        for item in prepared:
            self._buffer(kind, item)
        if self._buffers and self._timer is None and self._linger_s is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._linger_s, self._linger_expired)
        while len(self._tasks) >= self._max_in_flight:
            await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
        return [item.event_id for item in prepared]

    # --- validation --------------------------------------------------------------------------

    def _validate(
        self, kind: str, events: list[Mapping[str, Any]], *, many: bool
    ) -> list[_Prepared]:
        """All events of a call, validated and serialised, or ``InvalidEvent`` for all bad ones."""
        if kind not in KEY_FIELDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {TOPIC_KINDS}")
        key_field = KEY_FIELDS[kind]
        now_us = _now_us()
        prepared: list[_Prepared] = []
        problems: list[EventProblem] = []
        for index, event in enumerate(events):
            result = self._prepare(kind, key_field, index, event, now_us)
            if isinstance(result, EventProblem):
                problems.append(result)
            else:
                prepared.append(result)
        if problems:
            raise InvalidEvent(kind, problems, many=many)
        return prepared

    def _prepare(
        self, kind: str, key_field: str, index: int, event: Mapping[str, Any], now_us: int
    ) -> _Prepared | EventProblem:
        if not isinstance(event, Mapping):
            reason = f"expected a JSON object (a mapping), got {type(event).__name__}"
            return EventProblem(index, None, None, reason, NOT_OBJECT)
        event_id = event.get("id")
        if event_id is None:
            event_id = str(uuid.uuid4())
        body = {"id": event_id, **{k: v for k, v in event.items() if k != "id"}}
        shown_id = event_id if isinstance(event_id, str) else None
        try:
            # Aware datetimes and UUID objects become RFC 3339 and canonical text here.
            text = orjson.dumps(body, option=orjson.OPT_UTC_Z)
        except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
            return EventProblem(
                index, shown_id, None, f"not JSON-serialisable: {exc}", INVALID_JSON
            )
        if len(text) > MAX_EVENT_BYTES:
            reason = f"event is {len(text)} bytes as JSON (limit {MAX_EVENT_BYTES})"
            return EventProblem(index, shown_id, None, reason, EVENT_TOO_LARGE)
        decoded, rejected = decode_message(text, kind, now_us, self._max_future_us)
        if rejected:
            reason = rejected[0].reason
            match = _FIELD_REASON.match(reason)
            return EventProblem(
                index, shown_id, match.group(1) if match else None, reason, rejected[0].code
            )
        # The decoded key is the normalised (lowercase) UUID: one user, one partition.
        key: str = getattr(decoded[0], key_field)
        return _Prepared(body, decoded[0].id, key, text)

    # --- packing and delivery ----------------------------------------------------------------

    def _buffer(self, kind: str, item: _Prepared) -> None:
        slot = (kind, item.key)
        buffer = self._buffers.get(slot)
        if buffer is None:
            buffer = self._buffers[slot] = _Buffer()
        elif not buffer.fits(item.text, self.max_batch_events, self.max_message_bytes):
            self._dispatch(kind, item.key, buffer)
            buffer = self._buffers[slot] = _Buffer()
        buffer.add(item)
        if len(buffer.items) >= self.max_batch_events:
            del self._buffers[slot]
            self._dispatch(kind, item.key, buffer)

    def _seal_all(self) -> None:
        buffers, self._buffers = self._buffers, {}
        for (kind, key), buffer in buffers.items():
            self._dispatch(kind, key, buffer)

    def _linger_expired(self) -> None:
        self._timer = None
        if self._producer is not None:
            self._seal_all()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _dispatch(self, kind: str, key: str, buffer: _Buffer) -> None:
        value = b"[" + b",".join(item.text for item in buffer.items) + b"]"
        events = tuple(item.event for item in buffer.items)
        message = _Message(kind, self.topic(kind), key, value, events)
        task = asyncio.get_running_loop().create_task(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: _Message) -> None:
        """Attempt one message until acknowledged, or record it in ``_failed``.

        Raises nothing but ``CancelledError``, and records the message first then too.
        """
        attempts = 0
        delay = self._backoff_s
        key = message.key.encode()
        try:
            while True:
                attempts += 1
                try:
                    producer = self._producer
                    if producer is None:
                        raise RuntimeError("the producer was closed before delivery")
                    ack = await producer.send(message.topic, message.value, key=key)
                    await ack
                except Exception as exc:
                    if attempts < self._max_attempts and _transient(exc):
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, self._backoff_max_s)
                        continue
                    self._record_failure(message, exc, attempts)
                    return
                self.delivered_messages += 1
                self.delivered_events += len(message.events)
                return
        except asyncio.CancelledError as exc:
            self._record_failure(message, exc, attempts)
            raise

    def _record_failure(self, message: _Message, error: BaseException, attempts: int) -> None:
        self._failed.append(
            Undelivered(message.kind, message.topic, message.key, message.events, error, attempts)
        )

    def _require_started(self) -> None:
        if self._producer is None:
            state = "closed" if self._closed else "not started"
            raise RuntimeError(f"EventProducer is {state}: use `async with EventProducer(...)`")
