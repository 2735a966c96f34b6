"""What the decoder refuses and how it reports a refusal: limits, reason codes, ``Rejection``."""

from __future__ import annotations

from typing import NamedTuple

from aggregators.timebase import US_PER_DAY

MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB per message
MAX_BATCH_EVENTS = 1000
MAX_EVENT_BYTES = 64 << 10  # 64 KiB per event
DEFAULT_MAX_FUTURE_US = 300_000_000  # 5 minutes
MAX_LATENCY_MS = 600_000
MAX_ID_CHARS = 128
MAX_NAME_CHARS = 256  # optional template_name / organization_name

# One report expands into one rollup operation per half-hour it spans, so an
# absurd span (started_at in 1970) would cost about a million operations.
# Real sessions are re-reported as they go on; a month bounds any single report.
MAX_APP_SESSION_US = 31 * US_PER_DAY

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
