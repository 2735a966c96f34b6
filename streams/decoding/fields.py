"""Field parsers: strings, counts, ids, UUIDs and RFC 3339 times of a parsed JSON object.

Each returns the normalised value or raises ``_Invalid`` naming the field; the event
decoders call them once per field, so they stay flat (no helper layers on the good path).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# The package, for the UUID memo's bound only (see ``_remember_uuid``).  This module is
# imported while the package initialises; the bound is read at call time, by then defined.
import streams.decoding as _package
from aggregators.timebase import US_PER_S
from streams.decoding.limits import (
    BAD_TIME,
    BAD_TYPE,
    BAD_UUID,
    BAD_VALUE,
    FUTURE_TIME,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MISSING_FIELD,
)

JsonObject = dict[str, object]


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


def _opt_name(obj: JsonObject, key: str) -> str | None:
    """An optional name of at most ``MAX_NAME_CHARS`` characters: absent or null is None."""
    value = obj.get(key)
    if value is None:
        return None
    if type(value) is not str:
        raise _Invalid(BAD_TYPE, key, f"expected a string or null, got {_json_type(value)}")
    if len(value) > MAX_NAME_CHARS:
        raise _Invalid(BAD_VALUE, key, f"must be at most {MAX_NAME_CHARS} characters")
    return value


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


# --- UUIDs ---------------------------------------------------------------------------------

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


def _remember_uuid(value: str) -> None:
    # The bound lives on the package so that lowering ``streams.decoding._KNOWN_UUIDS_MAX``
    # (the unit tests do) takes effect; the attribute read is paid on a memo miss only.
    if len(_known_uuids) >= _package._KNOWN_UUIDS_MAX:
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
