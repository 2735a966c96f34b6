"""From raw Kafka messages to a rollup plan and dead letters: the agents' translator.

Pure except for the injected clock value.  One message may hold one event or a
batch of events; each element is judged on its own (``streams.decoding``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from aggregators.model import Event
from aggregators.ops import BatchPlan, plan_batch
from streams.dead_letter import STORE_ERROR, dead_letter_record
from streams.decoding import Rejection, _dumps_iterative, decode_message


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


#: Event times a batch keeps for the event-time lag metric, evenly spaced over its events.
LAG_SAMPLE_EVENTS = 256


@dataclass
class DecodedBatch:
    plan: BatchPlan
    events: int = 0
    messages: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    sample_times_us: list[int] = field(default_factory=list)  # of good events


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
    stride = max(1, -(-len(events) // LAG_SAMPLE_EVENTS))
    times = [e.time_us for e in events[::stride]]
    return DecodedBatch(plan_batch(events), len(events), count, dead, times)


def _dead_letter(msg: RawMessage, rej: Rejection) -> DeadLetter:
    value = dead_letter_record(msg.topic, msg.partition, msg.offset, msg.key, rej)
    return DeadLetter(msg.key, value, rej.code)


def unapplied_dead_letters(
    kind: str, messages: Iterable[RawMessage], now_us: int, max_future_us: int, reason: str
) -> list[DeadLetter]:
    """One dead letter (code ``STORE_ERROR``) per valid event of ``messages``: the batch the
    store refused for good.

    The failure path only, so the messages are decoded again (with the batch's clock
    value, hence the same verdicts) rather than keeping every event's source on the hot
    path.  The events refused by validation already have their own dead letters and are
    left out.  A single-event message gives its whole text (``index`` null); a batch
    element gives its compact JSON and its position.
    """
    out: list[DeadLetter] = []
    for msg in messages:
        good, rejected = decode_message(msg.value, kind, now_us, max_future_us)
        if not good or msg.value is None:
            continue
        doc = orjson.loads(msg.value)  # it decoded, so it is JSON
        elements: list[tuple[int | None, str]]
        if type(doc) is list:
            refused = {rej.index for rej in rejected}
            elements = [(i, _json_text(e)) for i, e in enumerate(doc) if i not in refused]
        else:
            elements = [(None, msg.value.decode("utf-8"))]
        for index, text in elements:
            rej = Rejection(index, reason, text, "text", STORE_ERROR)
            value = dead_letter_record(msg.topic, msg.partition, msg.offset, msg.key, rej)
            out.append(DeadLetter(msg.key, value, STORE_ERROR))
    return out


def _json_text(element: object) -> str:
    try:
        return orjson.dumps(element).decode()
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (unknown fields)
        return _dumps_iterative(element)
