"""Message framing: one Kafka message value -> its events and rejections (``decode_message``).

A value is one event object or a batch array of them; this module applies the message
and event size limits, refuses tombstones and unparsable values whole, and turns each
element's validation failure into a ``Rejection`` carrying its JSON text.
"""

from __future__ import annotations

import base64

import orjson

from aggregators.model import TOPIC_KINDS, Event
from streams.decoding.events import _DECODERS, _Decoder
from streams.decoding.fields import JsonObject, _Invalid, _json_type
from streams.decoding.limits import (
    BAD_MESSAGE,
    BATCH_TOO_LONG,
    DEFAULT_MAX_FUTURE_US,
    EVENT_TOO_LARGE,
    INVALID_JSON,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TOO_LARGE,
    NO_VALUE,
    NOT_OBJECT,
    NOT_UTF8,
    Rejection,
)

_TRUNCATED = f" (payload cut to its first {MAX_EVENT_BYTES} bytes)"


def _message_payload(value: bytes, cut: bool = False) -> tuple[str, str]:
    """(payload, encoding) of raw message bytes: text when UTF-8, else base64."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value[:MAX_EVENT_BYTES] if cut else value).decode("ascii"), "base64"
    if cut:
        # Cutting may split a character; drop the partial one rather than the payload.
        text = value[:MAX_EVENT_BYTES].decode("utf-8", "ignore")
    return text, "text"


def _whole(code: str, reason: str, value: bytes, cut: bool = False) -> list[Rejection]:
    payload, encoding = _message_payload(value, cut)
    return [Rejection(None, reason + (_TRUNCATED if cut else ""), payload, encoding, code)]


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _refuse_unparsable(value: bytes, exc: orjson.JSONDecodeError) -> list[Rejection]:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return _whole(NOT_UTF8, f"message is not valid UTF-8 (byte offset {bad.start})", value)
    return _whole(INVALID_JSON, f"message is not valid JSON: {_one_line(str(exc))}", value)


# --- batch elements' JSON text -------------------------------------------------------------


class _Raw(str):
    """JSON text to copy as is (parsed JSON strings are exactly ``str``, never this)."""


def _dumps_iterative(root: object) -> str:
    """Compact JSON like orjson's, without recursion (see ``_dumps``)."""
    parts: list[str] = []
    stack: list[object] = [root]
    while stack:
        item = stack.pop()
        if type(item) is _Raw:
            parts.append(item)
        elif type(item) is dict:
            tokens: list[object] = [_Raw("{")]
            for n, (key, value) in enumerate(item.items()):
                tokens += (_Raw(("," if n else "") + orjson.dumps(key).decode() + ":"), value)
            tokens.append(_Raw("}"))
            stack.extend(reversed(tokens))
        elif type(item) is list:
            tokens = [_Raw("[")]
            for n, value in enumerate(item):
                tokens += (_Raw(","), value) if n else (value,)
            tokens.append(_Raw("]"))
            stack.extend(reversed(tokens))
        else:
            parts.append(orjson.dumps(item).decode())
    return "".join(parts)


def _dumps(element: object) -> bytes:
    """JSON text of a parsed element.

    orjson parses up to 1024 levels of nesting but serialises only 254, so a deep
    (hostile) element needs the slow iterative fallback to be dead-lettered at all.
    """
    try:
        return orjson.dumps(element)
    except orjson.JSONEncodeError:
        return _dumps_iterative(element).encode()


def _element_rejection(index: int, code: str, reason: str, element: object) -> Rejection:
    return Rejection(index, reason, _dumps(element).decode(), "text", code)


def _too_large_element(index: int, text: bytes) -> Rejection:
    reason = f"event is {len(text)} bytes (limit {MAX_EVENT_BYTES}){_TRUNCATED}"
    payload = text[:MAX_EVENT_BYTES].decode("utf-8", "ignore")
    return Rejection(index, reason, payload, "text", EVENT_TOO_LARGE)


# --- messages ----------------------------------------------------------------------------


def _decode_batch(
    batch: list[object], decode: _Decoder, limit_us: int, measure: bool
) -> tuple[list[Event], list[Rejection]]:
    events: list[Event] = []
    rejections: list[Rejection] = []
    for index, element in enumerate(batch):
        if type(element) is not dict:
            reason = f"batch element is {_json_type(element)}, expected an object"
            rejections.append(_element_rejection(index, NOT_OBJECT, reason, element))
            continue
        if measure:
            encoded = _dumps(element)
            if len(encoded) > MAX_EVENT_BYTES:
                rejections.append(_too_large_element(index, encoded))
                continue
        try:
            events.append(decode(element, limit_us))
        except _Invalid as exc:
            rejections.append(_element_rejection(index, exc.code, exc.reason, element))
    return events, rejections


def _decode_single(
    value: bytes, element: JsonObject, decode: _Decoder, limit_us: int
) -> tuple[list[Event], list[Rejection]]:
    if len(value) > MAX_EVENT_BYTES:
        reason = f"event is {len(value)} bytes (limit {MAX_EVENT_BYTES})"
        return [], _whole(EVENT_TOO_LARGE, reason, value, cut=True)
    try:
        return [decode(element, limit_us)], []
    except _Invalid as exc:
        # Keep the producer's own text as the payload rather than a re-serialisation.
        payload, encoding = _message_payload(value)
        return [], [Rejection(None, exc.reason, payload, encoding, exc.code)]


def decode_message(
    value: bytes | None, kind: str, now_us: int, max_future_us: int = DEFAULT_MAX_FUTURE_US
) -> tuple[list[Event], list[Rejection]]:
    """Decode one Kafka message value of topic ``kind`` (one of TOPIC_KINDS).

    Never raises on bad data: every event of the message is either in the first list
    or rejected in the second (a batch of n elements gives n results in total; a
    single-event message or a refused message gives exactly one).  An unknown
    ``kind`` is a programming error and raises ``ValueError``.
    """
    decode = _DECODERS.get(kind)
    if decode is None:
        raise ValueError(f"unknown topic kind {kind!r}; expected one of {TOPIC_KINDS}")
    if value is None:
        return [], [Rejection(None, "message has no value (tombstone)", "", "text", NO_VALUE)]
    if len(value) > MAX_MESSAGE_BYTES:
        reason = f"message is {len(value)} bytes (limit {MAX_MESSAGE_BYTES})"
        return [], _whole(MESSAGE_TOO_LARGE, reason, value, cut=True)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return [], _refuse_unparsable(value, exc)
    limit_us = now_us + max_future_us
    if type(doc) is dict:
        return _decode_single(value, doc, decode, limit_us)
    if type(doc) is list:
        if len(doc) > MAX_BATCH_EVENTS:
            reason = f"batch has {len(doc)} events (limit {MAX_BATCH_EVENTS})"
            return [], _whole(BATCH_TOO_LONG, reason, value)
        # Only a message over the event limit can hold an element over it.
        return _decode_batch(doc, decode, limit_us, measure=len(value) > MAX_EVENT_BYTES)
    reason = f"message is a JSON {_json_type(doc)}, expected an object or an array of objects"
    return [], _whole(BAD_MESSAGE, reason, value)
