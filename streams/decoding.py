"""Kafka message value -> validated, normalised events plus rejections.

This is the worker's per-event hot path, so it uses only the stdlib and orjson:
precompiled regexes, exact ``type(x) is T`` checks (``bool`` is an ``int``
subclass and must not pass as a count), no per-event allocations beyond the
result tuples and one datetime per time field.  Validation failures are raised
as a private exception from small field helpers and caught once per event;
raising is only paid on the bad path.

The contract is ``shared/spec/events.md``.  Where it is silent, this module
decides (and the unit tests pin):

* ``time`` and the other RFC 3339 fields: ``T``/``Z`` may be lowercase (RFC 3339
  section 5.6 allows it); a space separator, a missing offset, ``hh:mm``
  without seconds, leap second ``60`` (Go and Python never emit it) and instants
  before 1970-01-01T00:00:00Z (no such event can exist) are refused.
  Fractional seconds take any number of digits and are truncated to
  microseconds.  ``-00:00`` is UTC.
* The future limit (``now_us + max_future_us``) applies to ``time`` and to an
  app session's ``ended_at`` (so a session cannot plant activity in the
  future); ``started_at`` is then bounded through ``ended_at >= started_at``.
* Optional fields (``avatar_url``, ``requests``, ``app`` and the lenient
  parameter fields) treat JSON ``null`` like absence.  Required fields refuse
  ``null``.
* ``app``: when present it yields non-``None`` display name and icon (absent
  or null members become ``""``), so ``app_display_name is None`` exactly when
  the event has no app.
* ``requests`` defaults to 0; ``build_number`` must be >= 1 (Coder numbers
  builds from 1); ``username`` may be any string, including ``""``;
  ``slug_or_port`` is any string whatever the access method.
* Builds: a parameter needs ``name`` (non-empty string), ``type`` (string) and
  ``value`` (string); ``display_name``/``description`` default to ``""`` and
  ``options`` to ``[]``.  An option needs ``name`` and ``value`` strings;
  ``description``/``icon`` default to ``""``.
* Unknown top-level fields are ignored (forward compatibility), like unknown
  session kinds.
* An event's size is the byte length of its JSON text: the message itself for
  a single-event message; for a batch element (whose source span orjson does
  not expose), its compact re-serialisation, computed only when the message
  itself is over the limit, since an element's source text cannot be larger.
* An empty batch ``[]`` yields no events and no rejections.  A missing value
  (tombstone) is refused whole.
* Payloads of size refusals are cut to their first 64 KiB (the reason says so)
  so that the dead-letter record stays producible.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, TypeVar

import orjson

from aggregators.model import (
    KINDS,
    TOPIC_KINDS,
    AppUsageEvent,
    BuildEvent,
    BuildParameter,
    Event,
    LatencyEvent,
    ParameterOption,
    SessionEvent,
)
from aggregators.timebase import US_PER_DAY, US_PER_S

__all__ = [
    "DEFAULT_MAX_FUTURE_US",
    "MAX_BATCH_EVENTS",
    "MAX_EVENT_BYTES",
    "MAX_MESSAGE_BYTES",
    "REASON_CODES",
    "TOPIC_KINDS",
    "Rejection",
    "decode_message",
]

MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB per message
MAX_BATCH_EVENTS = 1000
MAX_EVENT_BYTES = 64 << 10  # 64 KiB per event
DEFAULT_MAX_FUTURE_US = 300_000_000  # 5 minutes
MAX_LATENCY_MS = 600_000
MAX_ID_CHARS = 128

# Reason codes: the stable, low-cardinality metric label of a rejection.
NO_VALUE = "no_value"
NOT_UTF8 = "not_utf8"
INVALID_JSON = "invalid_json"
MESSAGE_TOO_LARGE = "message_too_large"
BAD_MESSAGE = "bad_message"
BATCH_TOO_LONG = "batch_too_long"
NOT_OBJECT = "not_object"
EVENT_TOO_LARGE = "event_too_large"
MISSING_FIELD = "missing_field"
BAD_TYPE = "bad_type"
BAD_UUID = "bad_uuid"
BAD_TIME = "bad_time"
FUTURE_TIME = "future_time"
BAD_VALUE = "bad_value"
REASON_CODES: tuple[str, ...] = (
    NO_VALUE,
    NOT_UTF8,
    INVALID_JSON,
    MESSAGE_TOO_LARGE,
    BAD_MESSAGE,
    BATCH_TOO_LONG,
    NOT_OBJECT,
    EVENT_TOO_LARGE,
    MISSING_FIELD,
    BAD_TYPE,
    BAD_UUID,
    BAD_TIME,
    FUTURE_TIME,
    BAD_VALUE,
)


class Rejection(NamedTuple):
    # Shadows tuple.index (harmless: nothing here calls it); the name is the dead-letter field.
    index: int | None  # type: ignore[assignment]  # batch position; None: single event/message
    reason: str  # one line, names the field
    payload: str  # the refused event's JSON text, or the whole message
    payload_encoding: str  # "text" or "base64" (message bytes that are not UTF-8)
    code: str  # one of REASON_CODES, for metrics


JsonObject = dict[str, object]
_Decoder = Callable[[JsonObject, int], Event]
_T = TypeVar("_T")


class _Invalid(Exception):
    """One validation failure; ``field`` is a dotted path, prefixed as it propagates out."""

    def __init__(self, code: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail

    @property
    def reason(self) -> str:
        if self.field is None:
            return self.detail
        return f'field "{self.field}": {self.detail}'


# --- scalar fields -----------------------------------------------------------------------

_JSON_TYPE_NAMES: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _wrong(obj: JsonObject, key: str, expected: str) -> _Invalid:
    """The error for a field that failed its type check: missing, or of another type."""
    if key not in obj:
        return _Invalid(MISSING_FIELD, key, "required")
    return _Invalid(BAD_TYPE, key, f"expected {expected}, got {_json_type(obj[key])}")


def _str(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if type(value) is str:
        return value
    raise _wrong(obj, key, "a string")


def _nonempty_str(obj: JsonObject, key: str) -> str:
    value = _str(obj, key)
    if value:
        return value
    raise _Invalid(BAD_VALUE, key, "must not be empty")


def _opt_str(obj: JsonObject, key: str) -> str:
    """An optional string: absent or null is ``""``."""
    value = obj.get(key)
    if type(value) is str:
        return value
    if value is None:
        return ""
    raise _Invalid(BAD_TYPE, key, f"expected a string or null, got {_json_type(value)}")


def _count(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if type(value) is int:
        if value >= 0:
            return value
        raise _Invalid(BAD_VALUE, key, "must be >= 0")
    raise _wrong(obj, key, "a non-negative integer")


def _opt_count(obj: JsonObject, key: str) -> int:
    """An optional non-negative integer: absent or null is 0."""
    if obj.get(key) is None:
        return 0
    return _count(obj, key)


def _event_id(obj: JsonObject) -> str:
    value = obj.get("id")
    if type(value) is str and 0 < len(value) <= MAX_ID_CHARS:
        return value
    if type(value) is not str:
        raise _wrong(obj, "id", "a string")
    raise _Invalid(BAD_VALUE, "id", f"must be 1 to {MAX_ID_CHARS} characters, got {len(value)}")


# Canonical producers send lowercase; match that first so the common case skips ``lower()``.
_UUID_LOWER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_UUID_ANY_CASE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
).fullmatch


# Memo of canonical UUIDs already validated.  The same user, template, workspace and
# agent ids come back in every report (an agent reports every ~30 s), and a set lookup
# costs ~40 ns against ~300 ns for the regex.  Bounded crudely (cleared when full): a
# miss only costs the regex again, and results never depend on what is remembered.
_known_uuids: set[str] = set()
_KNOWN_UUIDS_MAX = 1 << 16


def _remember_uuid(value: str) -> None:
    if len(_known_uuids) >= _KNOWN_UUIDS_MAX:
        _known_uuids.clear()
    _known_uuids.add(value)


def _uuid(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if type(value) is not str:
        raise _wrong(obj, key, "a UUID string")
    if value in _known_uuids:
        return value
    if _UUID_LOWER(value):
        _remember_uuid(value)
        return value
    if _UUID_ANY_CASE(value):
        return value.lower()
    raise _Invalid(BAD_UUID, key, "not a canonical UUID (8-4-4-4-12 hex digits)")


# --- RFC 3339 time -----------------------------------------------------------------------

# The regex decides what is RFC 3339; ``datetime.fromisoformat`` (C, ~4x faster than
# converting the groups in Python) then checks the calendar (month lengths, leap years,
# hour/minute/second ranges) and does the arithmetic.  fromisoformat alone is far too
# lenient (basic format, any separator, ``,`` fractions, ``+hhmm``, minute 60 in offsets),
# hence the regex first.  ASCII ``\d`` only; ``\Z`` because ``$`` accepts a trailing newline.
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)\Z",
    re.ASCII,
).match
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _parse_rfc3339(text: str) -> int | None:
    """Epoch microseconds (UTC) of an RFC 3339 date-time, or None when malformed.

    Fractional digits beyond the sixth are truncated (fromisoformat does so on 3.11+).
    """
    if _RFC3339(text) is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # fromisoformat wants "T" and "Z" (the only letters the regex lets through).
        upper = text.upper()
        if upper == text:
            return None  # a date that does not exist, e.g. Feb 30
        return _parse_rfc3339(upper)
    return (parsed - _EPOCH) // _ONE_US


def _time(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if type(value) is not str:
        raise _wrong(obj, key, "an RFC 3339 time string")
    time_us = _parse_rfc3339(value)
    if time_us is None:
        raise _Invalid(BAD_TIME, key, "not an RFC 3339 date-time with offset")
    if time_us < 0:
        raise _Invalid(BAD_TIME, key, "before 1970-01-01T00:00:00Z")
    return time_us


def _event_time(obj: JsonObject, limit_us: int) -> int:
    return _not_future("time", _time(obj, "time"), limit_us)


def _not_future(key: str, time_us: int, limit_us: int) -> int:
    if time_us <= limit_us:
        return time_us
    ahead_s = (time_us - limit_us) // US_PER_S
    raise _Invalid(FUTURE_TIME, key, f"too far in the future (over the limit by {ahead_s} s)")


# --- per-topic event decoders --------------------------------------------------------------

# Events are built with ``_make``: it skips the generated keyword-handling ``__new__``
# (~240 ns of the ~4 us an event costs) yet still checks the field count.

# (bit, kind, field path) for SessionEvent.kinds_mask, in model.KINDS order.
_SESSION_KINDS = tuple((1 << i, kind, f"sessions.{kind}") for i, kind in enumerate(KINDS))


def _bad_kind_count(path: str, count: object) -> _Invalid:
    if type(count) is int:
        return _Invalid(BAD_VALUE, path, "must be >= 0")
    return _Invalid(BAD_TYPE, path, f"expected a non-negative integer, got {_json_type(count)}")


def _kinds_mask(obj: JsonObject) -> int:
    sessions = obj.get("sessions")
    if type(sessions) is not dict:
        raise _wrong(obj, "sessions", "an object")
    mask = 0
    for bit, kind, path in _SESSION_KINDS:
        count = sessions.get(kind, 0)  # a missing kind is 0; unknown kinds are never read
        if type(count) is not int or count < 0:
            raise _bad_kind_count(path, count)
        if count:
            mask |= bit
    return mask


def _session(obj: JsonObject, limit_us: int) -> SessionEvent:
    return SessionEvent._make(
        (
            _event_id(obj),
            _event_time(obj, limit_us),
            _uuid(obj, "user_id"),
            _str(obj, "username"),
            _opt_str(obj, "avatar_url"),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "agent_id"),
            _count(obj, "connection_count"),
            _kinds_mask(obj),
        )
    )


_ACCESS_METHODS = frozenset(("path", "subdomain", "terminal"))


def _access_method(obj: JsonObject) -> str:
    value = _str(obj, "access_method")
    if value in _ACCESS_METHODS:
        return value
    raise _Invalid(BAD_VALUE, "access_method", 'must be "path", "subdomain" or "terminal"')


def _app(obj: JsonObject) -> tuple[str | None, str | None]:
    """(display name, icon); (None, None) when ``app`` is absent or null."""
    app = obj.get("app")
    if app is None:
        return None, None
    if type(app) is not dict:
        raise _Invalid(BAD_TYPE, "app", f"expected an object or null, got {_json_type(app)}")
    try:
        return _opt_str(app, "display_name"), _opt_str(app, "icon")
    except _Invalid as exc:
        exc.field = f"app.{exc.field}"
        raise


# One report expands into one rollup operation per half-hour it spans, so an
# absurd span (started_at in 1970) would cost about a million operations.
# Real sessions are re-reported as they go on; a month bounds any single report.
MAX_APP_SESSION_US = 31 * US_PER_DAY


def _app_usage(obj: JsonObject, limit_us: int) -> AppUsageEvent:
    event_id = _event_id(obj)
    time_us = _event_time(obj, limit_us)
    started_us = _time(obj, "started_at")
    ended_us = _not_future("ended_at", _time(obj, "ended_at"), limit_us)
    if ended_us < started_us:
        raise _Invalid(BAD_VALUE, "ended_at", "before started_at")
    if ended_us - started_us > MAX_APP_SESSION_US:
        raise _Invalid(BAD_VALUE, "ended_at", "more than 31 days after started_at")
    display_name, icon = _app(obj)
    return AppUsageEvent._make(
        (
            event_id,
            time_us,
            _uuid(obj, "session_id"),
            _uuid(obj, "user_id"),
            _str(obj, "username"),
            _opt_str(obj, "avatar_url"),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "agent_id"),
            _access_method(obj),
            _str(obj, "slug_or_port"),
            display_name,
            icon,
            started_us,
            ended_us,
            _opt_count(obj, "requests"),
        )
    )


def _latency_ms(obj: JsonObject) -> float:
    value = obj.get("latency_ms")
    if type(value) is not float and type(value) is not int:
        raise _wrong(obj, "latency_ms", "a number")
    # The chained comparison is False for NaN, so non-finite values fall through too.
    if 0 < value <= MAX_LATENCY_MS:
        return float(value)
    raise _Invalid(BAD_VALUE, "latency_ms", f"must be a finite number > 0 and <= {MAX_LATENCY_MS}")


def _latency(obj: JsonObject, limit_us: int) -> LatencyEvent:
    return LatencyEvent._make(
        (
            _event_id(obj),
            _event_time(obj, limit_us),
            _uuid(obj, "user_id"),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "agent_id"),
            _latency_ms(obj),
        )
    )


def _build_number(obj: JsonObject) -> int:
    value = obj.get("build_number")
    if type(value) is not int:
        raise _wrong(obj, "build_number", "a positive integer")
    if value >= 1:
        return value
    raise _Invalid(BAD_VALUE, "build_number", "must be >= 1")


def _array_items(obj: JsonObject, key: str, required: bool) -> list[object]:
    value = obj.get(key)
    if type(value) is list:
        return value
    if value is None and not required:
        return []
    raise _wrong(obj, key, "an array")


def _each_object(
    items: list[object], path: str, decode: Callable[[JsonObject], _T]
) -> tuple[_T, ...]:
    """Decode every element of an array of objects, naming the element's path on failure."""
    out: list[_T] = []
    for i, item in enumerate(items):
        try:
            if type(item) is not dict:
                raise _Invalid(BAD_TYPE, None, f"expected an object, got {_json_type(item)}")
            out.append(decode(item))
        except _Invalid as exc:
            exc.field = f"{path}[{i}]" if exc.field is None else f"{path}[{i}].{exc.field}"
            raise
    return tuple(out)


def _option(obj: JsonObject) -> ParameterOption:
    return ParameterOption(
        _str(obj, "name"), _opt_str(obj, "description"), _str(obj, "value"), _opt_str(obj, "icon")
    )


def _parameter(obj: JsonObject) -> BuildParameter:
    return BuildParameter(
        _nonempty_str(obj, "name"),
        _str(obj, "type"),
        _opt_str(obj, "display_name"),
        _opt_str(obj, "description"),
        _each_object(_array_items(obj, "options", required=False), "options", _option),
        _str(obj, "value"),
    )


def _build(obj: JsonObject, limit_us: int) -> BuildEvent:
    return BuildEvent._make(
        (
            _event_id(obj),
            _event_time(obj, limit_us),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "user_id"),
            _build_number(obj),
            _each_object(_array_items(obj, "parameters", required=True), "parameters", _parameter),
        )
    )


_DECODERS: dict[str, _Decoder] = {
    "sessions": _session,
    "app_usage": _app_usage,
    "latency": _latency,
    "builds": _build,
}
assert tuple(_DECODERS) == TOPIC_KINDS


# --- messages ----------------------------------------------------------------------------

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
