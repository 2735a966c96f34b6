"""The event contract as data: every input topic's fields in one table, and the JSON Schemas.

``FIELDS`` declares, per topic kind, each top-level field of an event: its rule (a JSON
Schema fragment built from the decoder's own limits in ``streams.decoding.limits``, its
session kinds and access methods), whether it is required, and what it means.  Nested
objects (``sessions``, ``app``, build parameters and their options) are declared the same
way.  ``topic_schema`` turns the table into the draft 2020-12 JSON Schema of one topic's
message: one event object, or a batch array of at most ``MAX_BATCH_EVENTS`` of them.

The files under ``docs/schemas/`` are this module's output (``make schemas``, or
``insights schema --write docs/schemas``); ``tests/unit/test_schemas.py`` checks that they
are current and that the schemas accept and refuse what ``decode_message`` does, on the
decoder's own test table, with the exceptions ``UNEXPRESSED`` lists.

The schemas keep to what every validator implements alike: the regular expressions use
only classes, groups, alternation and counted repeats (ECMA-262, RE2 and Python ``re``
read them the same way; no look-around, no ``\\d``), and ``format`` is an annotation
(draft 2020-12 does not assert it), so the patterns carry the rules.  Python's ``re``
lets ``$`` match before a final newline; fixed-length strings say their length and
times refuse any newline, so even such validators refuse ``"...Z\\n"``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from aggregators.model import KINDS, TOPIC_KINDS
from streams.decoding.events import _ACCESS_METHODS
from streams.decoding.limits import (
    DEFAULT_MAX_FUTURE_US,
    MAX_APP_SESSION_US,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_LATENCY_MS,
    MAX_MESSAGE_BYTES,
    MAX_NAME_CHARS,
)

__all__ = [
    "FIELDS",
    "JSON_SCHEMA_DIALECT",
    "MAX_JSON_INT",
    "MAX_NAME_CHARS",
    "RFC3339_PATTERN",
    "UNEXPRESSED",
    "UUID_PATTERN",
    "Field",
    "Unexpressed",
    "all_schemas",
    "schema_text",
    "topic_schema",
    "write_schemas",
]

Json = dict[str, Any]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# The largest integer the worker's JSON parser (orjson) reads as an integer: beyond it a
# number becomes a float, which every integer field refuses (``bad_type``).
MAX_JSON_INT = 2**64 - 1


_MAX_FUTURE_S = DEFAULT_MAX_FUTURE_US // 1_000_000
_MAX_SESSION_DAYS = MAX_APP_SESSION_US // (86_400 * 1_000_000)

# --- the patterns ----------------------------------------------------------------------------

_HEX = "[0-9a-fA-F]"
UUID_PATTERN = f"^{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}$"
"""A UUID in 8-4-4-4-12 hex digits, any case (the worker lowercases it)."""

# RFC 3339 date-time as the decoder reads it (``fields._RFC3339`` + ``fromisoformat`` +
# the 1970 floor), calendar included: days 29-31 only in months that have them, Feb 29
# only in leap years, years 1970-9999 (leap: divisible by 4, centuries by 400).
_YEAR = "(?:19[7-9][0-9]|[2-9][0-9]{3})"
_LEAP_YEAR = (
    "(?:19(?:7[26]|8[048]|9[26])"
    "|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])"
    "|(?:[2468][048]|[3579][26])00)"
)
_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
RFC3339_PATTERN = f"^{_DATE}[Tt]{_CLOCK}:[0-5][0-9](?:[.][0-9]+)?(?:[Zz]|[+-]{_CLOCK})$"
"""``YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)``: seconds required, any number of fraction
digits, ``T``/``Z`` in either case, no leap second, a real calendar date from 1970 on."""

# --- rules: JSON Schema fragments ------------------------------------------------------------

_ID: Json = {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS}
_UUID: Json = {"$ref": "#/$defs/uuid"}
_TIME: Json = {"$ref": "#/$defs/time"}
_TEXT: Json = {"type": "string"}
_NONEMPTY_TEXT: Json = {"type": "string", "minLength": 1}
_OPTIONAL_TEXT: Json = {"type": ["string", "null"]}
_NAME: Json = {"type": ["string", "null"], "maxLength": MAX_NAME_CHARS}
_COUNT: Json = {"type": "integer", "minimum": 0, "maximum": MAX_JSON_INT}
_OPTIONAL_COUNT: Json = {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_JSON_INT}
_BUILD_NUMBER: Json = {"type": "integer", "minimum": 1, "maximum": MAX_JSON_INT}
_LATENCY_MS: Json = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LATENCY_MS}
_ACCESS_METHOD: Json = {"enum": sorted(_ACCESS_METHODS)}

_DEFS: Json = {
    "uuid": {
        "description": "A UUID: 8-4-4-4-12 hex digits, any case (the service lowercases it).",
        "type": "string",
        "format": "uuid",
        "minLength": 36,
        "maxLength": 36,
        "pattern": UUID_PATTERN,
    },
    "time": {
        "description": (
            "An RFC 3339 date-time with seconds and an offset (Z or ±hh:mm), any number "
            "of fraction digits (truncated to microseconds), T and Z in either case; a "
            "real calendar date from 1970 on, no leap second. The worker also refuses "
            "instants before 1970-01-01T00:00:00Z and times too far in the future."
        ),
        "type": "string",
        "format": "date-time",
        "pattern": RFC3339_PATTERN,
        "not": {"pattern": "\n"},
    },
}


class Field(NamedTuple):
    """One field of an event (or of an object inside one)."""

    name: str
    rule: Json  # a JSON Schema fragment
    required: bool
    description: str


def _object(fields: tuple[Field, ...], description: str = "", nullable: bool = False) -> Json:
    """The schema of an object with ``fields``; other members are allowed and ignored."""
    schema: Json = {"description": description} if description else {}
    schema["type"] = ["object", "null"] if nullable else "object"
    schema["properties"] = {f.name: {"description": f.description, **f.rule} for f in fields}
    required = [f.name for f in fields if f.required]
    if required:
        schema["required"] = required
    return schema


# --- the table -------------------------------------------------------------------------------

_ID_FIELD = Field(
    "id",
    _ID,
    True,
    f"Unique id of this event, 1 to {MAX_ID_CHARS} characters. Sending the same event "
    "again (same id, same content) changes nothing.",
)
_TIME_FIELD = Field(
    "time",
    _TIME,
    True,
    "When it happened (event time, not send time); rollups bucket by its UTC minute. "
    f"Refused when more than {_MAX_FUTURE_S} s (INSIGHTS_MAX_FUTURE_S) ahead of the "
    "worker's clock.",
)
_NAME_FIELDS = (
    Field(
        "template_name",
        _NAME,
        False,
        "Optional name of the template (the newest event by time that names it "
        "decides); labels the coderd_insights_* gauges, which show the id without it.",
    ),
    Field(
        "organization_name",
        _NAME,
        False,
        "Optional name of the template's organization, decided like template_name.",
    ),
)


def _agent_fields(profile: bool) -> tuple[Field, ...]:
    who: tuple[Field, ...] = (Field("user_id", _UUID, True, "The user."),)
    if profile:
        who += (
            Field(
                "username",
                _TEXT,
                True,
                "The user's username (may be empty); the newest event by time that names "
                "the user decides it.",
            ),
            Field(
                "avatar_url",
                _OPTIONAL_TEXT,
                False,
                'The user\'s avatar URL; absent or null is "". Decided like username.',
            ),
        )
    return (
        *who,
        Field("template_id", _UUID, True, "The template of the workspace."),
        Field("workspace_id", _UUID, True, "The workspace."),
        Field("agent_id", _UUID, True, "The workspace agent that reports."),
    )


_SESSION_COUNTS = _object(
    tuple(Field(kind, _COUNT, False, f"Open {kind} sessions; absent is 0.") for kind in KINDS),
)
_SESSION_COUNTS_MEANING = (
    "Sessions open at `time`, by kind. A count > 0 marks the UTC minute of `time` as "
    "active for the kind and, with any count > 0, for the agent. Unknown kinds are "
    "ignored whatever their value."
)

_APP = _object(
    (
        Field("display_name", _OPTIONAL_TEXT, False, 'Name shown in reports; null is "".'),
        Field("icon", _OPTIONAL_TEXT, False, 'Icon path or URL; null is "".'),
    ),
    nullable=True,
)
_APP_MEANING = (
    "The template app; null or absent for port forwards and the web terminal. Only "
    "events with an app list it in the templates report."
)

_OPTION = _object(
    (
        Field("name", _TEXT, True, "Option name."),
        Field("description", _OPTIONAL_TEXT, False, 'Option description; null is "".'),
        Field("value", _TEXT, True, "Option value."),
        Field("icon", _OPTIONAL_TEXT, False, 'Option icon; null is "".'),
    ),
    "One option of the parameter.",
)

_PARAMETER = _object(
    (
        Field("name", _NONEMPTY_TEXT, True, "Parameter name (not empty)."),
        Field("type", _TEXT, True, "Parameter type, e.g. string, number, bool, list(string)."),
        Field("display_name", _OPTIONAL_TEXT, False, 'Display name; null is "".'),
        Field("description", _OPTIONAL_TEXT, False, 'Description (markdown); null is "".'),
        Field(
            "options",
            {"type": ["array", "null"], "items": _OPTION},
            False,
            "The parameter's options; null or absent is none.",
        ),
        Field(
            "value",
            _TEXT,
            True,
            'The value this build used: its default when unset, "" if none.',
        ),
    ),
    "One rich parameter of the build's template version: its definition and value.",
)

FIELDS: dict[str, tuple[Field, ...]] = {
    "sessions": (
        _ID_FIELD,
        _TIME_FIELD,
        *_agent_fields(profile=True),
        Field(
            "connection_count",
            _COUNT,
            True,
            "Connections open at `time`: a half-hour's session minutes count only if one "
            "of its reports has connection_count > 0.",
        ),
        Field("sessions", _SESSION_COUNTS, True, _SESSION_COUNTS_MEANING),
        *_NAME_FIELDS,
    ),
    "app_usage": (
        _ID_FIELD,
        _TIME_FIELD,
        Field(
            "session_id",
            _UUID,
            True,
            "The app session; every report of one session carries the same id.",
        ),
        *_agent_fields(profile=True),
        Field(
            "access_method",
            _ACCESS_METHOD,
            True,
            "path or subdomain (an app or a port forward), terminal (the web terminal).",
        ),
        Field(
            "slug_or_port",
            _TEXT,
            True,
            'The app slug or the forwarded port; "" for the web terminal.',
        ),
        Field("app", _APP, False, _APP_MEANING),
        Field("started_at", _TIME, True, "Start of the session."),
        Field(
            "ended_at",
            _TIME,
            True,
            "End of the session so far: at or after started_at and at most "
            f"{_MAX_SESSION_DAYS} days after it, and, like time, not in the future. The "
            "session covers the UTC minutes from started_at's to that of ended_at - 1 µs.",
        ),
        Field("requests", _OPTIONAL_COUNT, False, "Requests served; absent or null is 0."),
        *_NAME_FIELDS,
    ),
    "latency": (
        _ID_FIELD,
        _TIME_FIELD,
        *_agent_fields(profile=False),
        Field(
            "latency_ms",
            _LATENCY_MS,
            True,
            f"One connection-latency sample in milliseconds, > 0 and <= {MAX_LATENCY_MS}.",
        ),
        *_NAME_FIELDS,
    ),
    "builds": (
        _ID_FIELD,
        Field("time", _TIME, True, "The build's creation time; " + _TIME_FIELD.description),
        Field("template_id", _UUID, True, "The template of the workspace."),
        Field("workspace_id", _UUID, True, "The workspace."),
        Field("user_id", _UUID, True, "The user who owns the workspace."),
        Field(
            "build_number",
            _BUILD_NUMBER,
            True,
            "The build's number in its workspace (from 1); a build is an upsert by "
            "(workspace_id, build_number).",
        ),
        Field(
            "parameters",
            {"type": "array", "items": _PARAMETER},
            True,
            "Every rich parameter of the build's template version (may be empty).",
        ),
        *_NAME_FIELDS,
    ),
}
assert tuple(FIELDS) == TOPIC_KINDS


class _Topic(NamedTuple):
    key: str  # the event field whose value keys (partitions) the message
    description: str


_TOPICS: dict[str, _Topic] = {
    "sessions": _Topic(
        "user_id", "An agent's periodic report (about every 30 s) of the sessions open at `time`."
    ),
    "app_usage": _Topic(
        "user_id",
        "One report of an app session (app, port forward or web terminal); a session is "
        "reported again, with a growing ended_at, as it goes on.",
    ),
    "latency": _Topic("user_id", "One connection-latency sample of an agent."),
    "builds": _Topic("workspace_id", "One workspace build with its rich parameters."),
}
assert tuple(_TOPICS) == TOPIC_KINDS


# Rules of the contract that no JSON Schema keyword can state (a time relative to now, a
# comparison of two fields, sizes in bytes, the bytes before parsing): the worker checks
# them, the schemas cannot.  docs/events.md lists them for producers.
class Unexpressed(NamedTuple):
    """A rule of the contract the schemas leave to the worker, and the topics it concerns."""

    rule: str
    kinds: tuple[str, ...] = TOPIC_KINDS


UNEXPRESSED: dict[str, Unexpressed] = {
    "future": Unexpressed(
        f"time (and app_usage's ended_at) at most INSIGHTS_MAX_FUTURE_S (default "
        f"{_MAX_FUTURE_S} s) ahead of the worker's clock"
    ),
    "ended_order": Unexpressed("ended_at at or after started_at", ("app_usage",)),
    "session_span": Unexpressed(
        f"ended_at at most {_MAX_SESSION_DAYS} days after started_at", ("app_usage",)
    ),
    "epoch_offset": Unexpressed(
        "the instant at or after 1970-01-01T00:00:00Z (the pattern checks the written "
        "date, which a positive offset can put a few hours later than the instant)"
    ),
    "integer_text": Unexpressed(
        "integers written without a fraction or an exponent (1, not 1.0 or 1e0)"
    ),
    "event_bytes": Unexpressed(f"at most {MAX_EVENT_BYTES} bytes of JSON text per event"),
    "message_bytes": Unexpressed(f"at most {MAX_MESSAGE_BYTES} bytes per message"),
    "bytes": Unexpressed(
        "a message value present, UTF-8 and JSON (no NaN, no byte order mark, no "
        "unpaired surrogate escape)"
    ),
}


def _unexpressed(kind: str) -> str:
    return "; ".join(u.rule for u in UNEXPRESSED.values() if kind in u.kinds)


def topic_schema(kind: str) -> Json:
    """The JSON Schema (draft 2020-12) of one message of topic ``insights.<kind>``."""
    topic = _TOPICS.get(kind)
    if topic is None:
        raise ValueError(f"unknown topic kind {kind!r}; expected one of {TOPIC_KINDS}")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"insights.{kind} message",
        "description": (
            f"A message of the topic insights.{kind} (the prefix is configurable; key: the "
            f"event's {topic.key}): one event object, or a batch array of at most "
            f"{MAX_BATCH_EVENTS} of them, each validated on its own. The worker also checks "
            f"what JSON Schema cannot state: {_unexpressed(kind)}."
        ),
        "$comment": "Generated from streams/decoding/schema.py by `make schemas`; do not edit.",
        "anyOf": [
            {"$ref": "#/$defs/event"},
            {"type": "array", "maxItems": MAX_BATCH_EVENTS, "items": {"$ref": "#/$defs/event"}},
        ],
        "$defs": {
            "event": _object(FIELDS[kind], topic.description + " Unknown fields are ignored."),
            **_DEFS,
        },
    }


def all_schemas() -> dict[str, Json]:
    """Every input topic's schema, by topic kind."""
    return {kind: topic_schema(kind) for kind in TOPIC_KINDS}


def schema_text(schema: Json) -> str:
    """The text of a schema file: 2-space indented JSON, UTF-8, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(directory: Path, kinds: tuple[str, ...] = TOPIC_KINDS) -> list[Path]:
    """Write ``<kind>.json`` for each of ``kinds`` into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in kinds:
        path = directory / f"{kind}.json"
        path.write_text(schema_text(topic_schema(kind)), encoding="utf-8")
        paths.append(path)
    return paths
