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

The package: ``limits`` (limits, reason codes, ``Rejection``), ``fields`` (field
parsers), ``events`` (per-topic event decoders) and ``framing`` (single event or
batch, sizes, tombstones: ``decode_message``).
"""

from __future__ import annotations

from aggregators.model import TOPIC_KINDS
from streams.decoding.fields import JsonObject as JsonObject
from streams.decoding.fields import _known_uuids as _known_uuids
from streams.decoding.framing import _dumps_iterative as _dumps_iterative
from streams.decoding.framing import decode_message
from streams.decoding.limits import BAD_MESSAGE as BAD_MESSAGE
from streams.decoding.limits import BAD_TIME as BAD_TIME
from streams.decoding.limits import BAD_TYPE as BAD_TYPE
from streams.decoding.limits import BAD_UUID as BAD_UUID
from streams.decoding.limits import BAD_VALUE as BAD_VALUE
from streams.decoding.limits import BATCH_TOO_LONG as BATCH_TOO_LONG
from streams.decoding.limits import (
    DEFAULT_MAX_FUTURE_US,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    REASON_CODES,
    Rejection,
)
from streams.decoding.limits import EVENT_TOO_LARGE as EVENT_TOO_LARGE
from streams.decoding.limits import FUTURE_TIME as FUTURE_TIME
from streams.decoding.limits import INVALID_JSON as INVALID_JSON
from streams.decoding.limits import MAX_APP_SESSION_US as MAX_APP_SESSION_US
from streams.decoding.limits import MAX_ID_CHARS as MAX_ID_CHARS
from streams.decoding.limits import MAX_LATENCY_MS as MAX_LATENCY_MS
from streams.decoding.limits import MESSAGE_TOO_LARGE as MESSAGE_TOO_LARGE
from streams.decoding.limits import MISSING_FIELD as MISSING_FIELD
from streams.decoding.limits import NO_VALUE as NO_VALUE
from streams.decoding.limits import NOT_OBJECT as NOT_OBJECT
from streams.decoding.limits import NOT_UTF8 as NOT_UTF8

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

# The UUID memo's bound (memo: ``fields._known_uuids``).  ``fields._remember_uuid`` reads
# it from here at call time, so that setting it on the package takes effect.
_KNOWN_UUIDS_MAX = 1 << 16
