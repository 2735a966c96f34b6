"""From raw Kafka messages to a rollup plan and dead letters: the agents' translator.

Pure except for the injected clock value.  One message may hold one event or a
batch of events; each element is judged on its own (``streams.decoding``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from aggregators.model import Event
from aggregators.ops import BatchPlan, plan_batch
from streams.dead_letter import dead_letter_record
from streams.decoding import Rejection, decode_message


class RawMessage(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class DeadLetter(NamedTuple):
    key: bytes | None
    value: bytes
    code: str  # low-cardinality reason code, the metric label


@dataclass
class DecodedBatch:
    plan: BatchPlan
    events: int = 0
    messages: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_batch(
    kind: str, messages: Iterable[RawMessage], now_us: int, max_future_us: int
) -> DecodedBatch:
    events: list[Event] = []
    dead: list[DeadLetter] = []
    count = 0
    for msg in messages:
        count += 1
        good, rejected = decode_message(msg.value, kind, now_us, max_future_us)
        events.extend(good)
        dead.extend(_dead_letter(msg, rej) for rej in rejected)
    return DecodedBatch(plan_batch(events), len(events), count, dead)


def _dead_letter(msg: RawMessage, rej: Rejection) -> DeadLetter:
    value = dead_letter_record(msg.topic, msg.partition, msg.offset, msg.key, rej)
    return DeadLetter(msg.key, value, rej.code)
