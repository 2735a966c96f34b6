"""streams.decoding and streams.dead_letter: every rule of shared/spec/events.md, table-driven.

Expected times are computed with ``calendar.timegm`` (independent of the decoder's use of
``datetime.fromisoformat``).
"""

from __future__ import annotations

import base64
import calendar
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregators.model import (
    AppUsageEvent,
    BuildEvent,
    BuildParameter,
    Event,
    LatencyEvent,
    ParameterOption,
    SessionEvent,
)
from streams import decoding
from streams.dead_letter import dead_letter_record, key_text
from streams.decoding import (
    DEFAULT_MAX_FUTURE_US,
    MAX_BATCH_EVENTS,
    MAX_EVENT_BYTES,
    MAX_MESSAGE_BYTES,
    REASON_CODES,
    TOPIC_KINDS,
    Rejection,
    decode_message,
)


def us(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, micro: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000 + micro


NOW_US = us(2023, 8, 21, 12)
USER = "00000000-0000-0000-0000-000000000004"
TEMPLATE = "00000000-0000-0000-0000-000000000001"
WORKSPACE = "6b3b5d3e-5a57-4c4c-a0a4-1f0f7c3f1a01"
AGENT = "8d7f2c1e-0b6a-4d8e-9c43-2a1b0c9d8e7f"
SESSION_ID = "1d2e3f40-5a6b-4c7d-8e9f-0a1b2c3d4e5f"

GOOD: dict[str, dict[str, Any]] = {
    "sessions": {
        "id": "4f0c9a52-6f0e-4a53-9b0b-5f0d1d7c2d10",
        "time": "2023-08-15T00:00:30Z",
        "user_id": USER,
        "username": "user1",
        "avatar_url": "",
        "template_id": TEMPLATE,
        "workspace_id": WORKSPACE,
        "agent_id": AGENT,
        "connection_count": 1,
        "sessions": {"vscode": 1, "jetbrains": 0, "reconnecting_pty": 0, "ssh": 1, "sftp": 0},
    },
    "app_usage": {
        "id": "b0c1",
        "time": "2023-08-15T01:00:00Z",
        "session_id": SESSION_ID,
        "user_id": USER,
        "username": "user1",
        "avatar_url": "https://example.com/a.png",
        "template_id": TEMPLATE,
        "workspace_id": WORKSPACE,
        "agent_id": AGENT,
        "access_method": "path",
        "slug_or_port": "app1",
        "app": {"display_name": "app1", "icon": "/icon1.png"},
        "started_at": "2023-08-15T00:00:00Z",
        "ended_at": "2023-08-15T01:00:00Z",
        "requests": 1,
    },
    "latency": {
        "id": "lat-1",
        "time": "2023-08-15T00:00:30Z",
        "user_id": USER,
        "template_id": TEMPLATE,
        "workspace_id": WORKSPACE,
        "agent_id": AGENT,
        "latency_ms": 31.3,
    },
    "builds": {
        "id": "build-3",
        "time": "2023-08-21T10:00:00Z",
        "template_id": TEMPLATE,
        "workspace_id": WORKSPACE,
        "user_id": USER,
        "build_number": 3,
        "parameters": [
            {
                "name": "param4",
                "type": "string",
                "display_name": "param4",
                "description": "This is fourth parameter",
                "options": [
                    {"name": "option1", "description": "", "value": "option1", "icon": ""},
                    {"name": "option2", "description": "", "value": "option2", "icon": ""},
                ],
                "value": "option1",
            }
        ],
    },
}

OPTION1 = ParameterOption("option1", "", "option1", "")
OPTION2 = ParameterOption("option2", "", "option2", "")
PARAM4 = BuildParameter(
    "param4", "string", "param4", "This is fourth parameter", (OPTION1, OPTION2), "option1"
)
EXPECTED: dict[str, Event] = {
    "sessions": SessionEvent(
        id="4f0c9a52-6f0e-4a53-9b0b-5f0d1d7c2d10",
        time_us=us(2023, 8, 15, 0, 0, 30),
        user_id=USER,
        username="user1",
        avatar_url="",
        template_id=TEMPLATE,
        workspace_id=WORKSPACE,
        agent_id=AGENT,
        connection_count=1,
        kinds_mask=0b01001,  # vscode (bit 0) and ssh (bit 3)
    ),
    "app_usage": AppUsageEvent(
        id="b0c1",
        time_us=us(2023, 8, 15, 1),
        session_id=SESSION_ID,
        user_id=USER,
        username="user1",
        avatar_url="https://example.com/a.png",
        template_id=TEMPLATE,
        workspace_id=WORKSPACE,
        agent_id=AGENT,
        access_method="path",
        slug_or_port="app1",
        app_display_name="app1",
        app_icon="/icon1.png",
        started_us=us(2023, 8, 15),
        ended_us=us(2023, 8, 15, 1),
        requests=1,
    ),
    "latency": LatencyEvent(
        id="lat-1",
        time_us=us(2023, 8, 15, 0, 0, 30),
        user_id=USER,
        template_id=TEMPLATE,
        workspace_id=WORKSPACE,
        agent_id=AGENT,
        latency_ms=31.3,
    ),
    "builds": BuildEvent(
        id="build-3",
        time_us=us(2023, 8, 21, 10),
        template_id=TEMPLATE,
        workspace_id=WORKSPACE,
        user_id=USER,
        build_number=3,
        parameters=(PARAM4,),
    ),
}

DELETE = object()


def edit(kind: str, **changes: Any) -> dict[str, Any]:
    """The good event of ``kind`` with fields replaced (or removed with DELETE)."""
    event = dict(GOOD[kind])
    for key, value in changes.items():
        if value is DELETE:
            del event[key]
        else:
            event[key] = value
    return event


def param(**changes: Any) -> list[dict[str, Any]]:
    """``parameters`` of the good build with its one parameter edited."""
    parameter = dict(GOOD["builds"]["parameters"][0])
    for key, value in changes.items():
        if value is DELETE:
            del parameter[key]
        else:
            parameter[key] = value
    return [parameter]


def decode(doc: object, kind: str, **kw: Any) -> tuple[list[Event], list[Rejection]]:
    return decode_message(orjson.dumps(doc), kind, NOW_US, **kw)


def assert_one_line(reason: str) -> None:
    assert reason and "\n" not in reason and "\r" not in reason and reason == reason.strip()


# --- good events ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_good_event_decodes_to_exact_tuple(kind: str) -> None:
    assert decode(GOOD[kind], kind) == ([EXPECTED[kind]], [])


@pytest.mark.parametrize("kind", TOPIC_KINDS)
def test_good_batch_decodes_every_element(kind: str) -> None:
    assert decode([GOOD[kind]] * 3, kind) == ([EXPECTED[kind]] * 3, [])


UPPER_USER = "ABCDEF00-0000-4000-8000-0000000000AA"
VARIANTS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    # (case, kind, changes to the good event, changes to the expected tuple)
    ("uppercase uuid", "sessions", {"user_id": UPPER_USER}, {"user_id": UPPER_USER.lower()}),
    (
        "mixed-case uuid",
        "latency",
        {"agent_id": "8D7f2C1e-0B6a-4D8e-9C43-2A1b0C9d8E7f"},
        {"agent_id": AGENT},
    ),
    ("uppercase session id", "app_usage", {"session_id": SESSION_ID.upper()}, {}),
    ("uppercase workspace id", "builds", {"workspace_id": WORKSPACE.upper()}, {}),
    (
        "offset +05:45",
        "sessions",
        {"time": "2023-08-15T05:45:30+05:45"},
        {"time_us": us(2023, 8, 15, 0, 0, 30)},
    ),
    (
        "offset -09:30 crossing midnight",
        "latency",
        {"time": "2023-08-14T23:00:00-09:30"},
        {"time_us": us(2023, 8, 15, 8, 30)},
    ),
    ("offset -00:00", "sessions", {"time": "2023-08-15T00:00:30-00:00"}, {}),
    ("offset +00:00", "sessions", {"time": "2023-08-15T00:00:30+00:00"}, {}),
    ("lowercase t and z", "sessions", {"time": "2023-08-15t00:00:30z"}, {}),
    ("lowercase t, uppercase Z", "sessions", {"time": "2023-08-15t00:00:30Z"}, {}),
    (
        "fraction, 1 digit",
        "sessions",
        {"time": "2023-08-15T00:00:30.5Z"},
        {"time_us": us(2023, 8, 15, 0, 0, 30, 500_000)},
    ),
    (
        "fraction, 6 digits",
        "sessions",
        {"time": "2023-08-15T00:00:30.000001Z"},
        {"time_us": us(2023, 8, 15, 0, 0, 30, 1)},
    ),
    (
        "fraction, 9 digits truncated",
        "sessions",
        {"time": "2023-08-15T00:00:30.999999999Z"},
        {"time_us": us(2023, 8, 15, 0, 0, 30, 999_999)},
    ),
    (
        "fraction with offset",
        "sessions",
        {"time": "2023-08-15T02:00:30.25+02:00"},
        {"time_us": us(2023, 8, 15, 0, 0, 30, 250_000)},
    ),
    (
        "leap day",
        "latency",
        {"time": "2020-02-29T12:00:00Z"},
        {"time_us": us(2020, 2, 29, 12)},
    ),
    ("epoch", "latency", {"time": "1970-01-01T00:00:00Z"}, {"time_us": 0}),
    (
        "time exactly at the future limit",
        "latency",
        {"time": "2023-08-21T12:05:00Z"},
        {"time_us": NOW_US + DEFAULT_MAX_FUTURE_US},
    ),
    ("id of 128 chars", "latency", {"id": "x" * 128}, {"id": "x" * 128}),
    ("id of 1 char", "latency", {"id": "é"}, {"id": "é"}),
    ("unknown field ignored", "sessions", {"extra": {"anything": [1, None]}}, {}),
    ("avatar_url absent", "sessions", {"avatar_url": DELETE}, {"avatar_url": ""}),
    ("avatar_url null", "app_usage", {"avatar_url": None}, {"avatar_url": ""}),
    ("empty username", "sessions", {"username": ""}, {"username": ""}),
    ("connection_count 0", "sessions", {"connection_count": 0}, {"connection_count": 0}),
    ("huge connection_count", "sessions", {"connection_count": 2**63}, {"connection_count": 2**63}),
    ("sessions all missing", "sessions", {"sessions": {}}, {"kinds_mask": 0}),
    (
        "sessions: every kind",
        "sessions",
        {"sessions": {"vscode": 2, "jetbrains": 1, "reconnecting_pty": 3, "ssh": 1, "sftp": 9}},
        {"kinds_mask": 0b11111},
    ),
    (
        "sessions: unknown kinds ignored whatever their value",
        "sessions",
        {"sessions": {"jetbrains": 1, "cursor": -4, "zed": "x", "": None}},
        {"kinds_mask": 0b00010},
    ),
    ("sessions: sftp is bit 4", "sessions", {"sessions": {"sftp": 1}}, {"kinds_mask": 0b10000}),
    (
        "sessions: reconnecting_pty is bit 2",
        "sessions",
        {"sessions": {"reconnecting_pty": 1}},
        {"kinds_mask": 0b00100},
    ),
    ("requests absent", "app_usage", {"requests": DELETE}, {"requests": 0}),
    ("requests null", "app_usage", {"requests": None}, {"requests": 0}),
    ("app null", "app_usage", {"app": None}, {"app_display_name": None, "app_icon": None}),
    ("app absent", "app_usage", {"app": DELETE}, {"app_display_name": None, "app_icon": None}),
    ("app empty object", "app_usage", {"app": {}}, {"app_display_name": "", "app_icon": ""}),
    (
        "app with null members",
        "app_usage",
        {"app": {"display_name": None, "icon": None, "extra": 1}},
        {"app_display_name": "", "app_icon": ""},
    ),
    (
        "web terminal",
        "app_usage",
        {"access_method": "terminal", "slug_or_port": "", "app": None},
        {
            "access_method": "terminal",
            "slug_or_port": "",
            "app_display_name": None,
            "app_icon": None,
        },
    ),
    (
        "port forward by subdomain",
        "app_usage",
        {"access_method": "subdomain", "slug_or_port": "8080", "app": None},
        {
            "access_method": "subdomain",
            "slug_or_port": "8080",
            "app_display_name": None,
            "app_icon": None,
        },
    ),
    (
        "zero-length session",
        "app_usage",
        {"ended_at": "2023-08-15T00:00:00Z"},
        {"ended_us": us(2023, 8, 15)},
    ),
    (
        "started/ended with offsets",
        "app_usage",
        {"started_at": "2023-08-15T05:45:10.5+05:45", "ended_at": "2023-08-14T20:00:40-04:00"},
        {"started_us": us(2023, 8, 15, 0, 0, 10, 500_000), "ended_us": us(2023, 8, 15, 0, 0, 40)},
    ),
    ("latency as int", "latency", {"latency_ms": 31}, {"latency_ms": 31.0}),
    ("latency at max", "latency", {"latency_ms": 600000}, {"latency_ms": 600000.0}),
    ("latency tiny", "latency", {"latency_ms": 1e-9}, {"latency_ms": 1e-9}),
    ("build_number 1", "builds", {"build_number": 1}, {"build_number": 1}),
    ("no parameters", "builds", {"parameters": []}, {"parameters": ()}),
    (
        "lenient parameter: only name, type, value",
        "builds",
        {"parameters": [{"name": "region", "type": "string", "value": ""}]},
        {"parameters": (BuildParameter("region", "string", "", "", (), ""),)},
    ),
    (
        "lenient parameter: nulls",
        "builds",
        {"parameters": param(display_name=None, description=None, options=None)},
        {"parameters": (PARAM4._replace(display_name="", description="", options=()),)},
    ),
    (
        "lenient option: only name and value",
        "builds",
        {"parameters": param(options=[{"name": "eu", "value": "eu-west"}])},
        {"parameters": (PARAM4._replace(options=(ParameterOption("eu", "", "eu-west", ""),)),)},
    ),
]


@pytest.mark.parametrize(
    ("kind", "changes", "expected_changes"),
    [pytest.param(kind, c, e, id=case) for case, kind, c, e in VARIANTS],
)
def test_accepted_variant(kind: str, changes: dict[str, Any], expected_changes: Any) -> None:
    expected = EXPECTED[kind]._replace(**expected_changes)
    assert decode(edit(kind, **changes), kind) == ([expected], [])


# --- refused events --------------------------------------------------------------------------

FUTURE = "2023-08-21T12:05:00.000001Z"  # one microsecond past NOW + 5 min
BAD_EVENTS: list[tuple[str, str, dict[str, Any], str, str]] = [
    # (case, kind, changes, expected code, field named in the reason)
    ("id missing", "sessions", {"id": DELETE}, "missing_field", "id"),
    ("id not a string", "sessions", {"id": 7}, "bad_type", "id"),
    ("id empty", "sessions", {"id": ""}, "bad_value", "id"),
    ("id too long", "latency", {"id": "x" * 129}, "bad_value", "id"),
    ("time missing", "sessions", {"time": DELETE}, "missing_field", "time"),
    ("time as epoch number", "sessions", {"time": 1692057630}, "bad_type", "time"),
    ("time null", "sessions", {"time": None}, "bad_type", "time"),
    ("time without offset", "sessions", {"time": "2023-08-15T00:00:30"}, "bad_time", "time"),
    ("time with space", "sessions", {"time": "2023-08-15 00:00:30Z"}, "bad_time", "time"),
    ("time without seconds", "sessions", {"time": "2023-08-15T00:00Z"}, "bad_time", "time"),
    ("date only", "sessions", {"time": "2023-08-15"}, "bad_time", "time"),
    ("basic format", "sessions", {"time": "20230815T000030Z"}, "bad_time", "time"),
    ("week date", "sessions", {"time": "2023-W33-2T00:00:30Z"}, "bad_time", "time"),
    ("offset hhmm", "sessions", {"time": "2023-08-15T00:00:30+0545"}, "bad_time", "time"),
    ("offset hh", "sessions", {"time": "2023-08-15T00:00:30+05"}, "bad_time", "time"),
    ("offset minute 60", "sessions", {"time": "2023-08-15T00:00:30+05:60"}, "bad_time", "time"),
    ("offset hour 24", "sessions", {"time": "2023-08-15T00:00:30+24:00"}, "bad_time", "time"),
    ("empty fraction", "sessions", {"time": "2023-08-15T00:00:30.Z"}, "bad_time", "time"),
    ("comma fraction", "sessions", {"time": "2023-08-15T00:00:30,5Z"}, "bad_time", "time"),
    ("Feb 29 on non-leap year", "sessions", {"time": "2023-02-29T00:00:00Z"}, "bad_time", "time"),
    ("Apr 31", "sessions", {"time": "2023-04-31T00:00:00Z"}, "bad_time", "time"),
    ("month 13", "sessions", {"time": "2023-13-01T00:00:00Z"}, "bad_time", "time"),
    ("hour 24", "sessions", {"time": "2023-08-15T24:00:00Z"}, "bad_time", "time"),
    ("leap second", "sessions", {"time": "2016-12-31T23:59:60Z"}, "bad_time", "time"),
    ("before 1970", "sessions", {"time": "1969-12-31T23:59:59Z"}, "bad_time", "time"),
    (
        "before 1970 through offset",
        "sessions",
        {"time": "1970-01-01T00:30:00+01:00"},
        "bad_time",
        "time",
    ),
    ("year 0", "sessions", {"time": "0000-01-01T00:00:00Z"}, "bad_time", "time"),
    ("trailing newline", "sessions", {"time": "2023-08-15T00:00:30Z\n"}, "bad_time", "time"),
    ("non-ASCII digits", "sessions", {"time": "\uff12023-08-15T00:00:30Z"}, "bad_time", "time"),
    ("time in the future", "sessions", {"time": FUTURE}, "future_time", "time"),
    ("user_id not a uuid", "sessions", {"user_id": "user1"}, "bad_uuid", "user_id"),
    ("uuid without dashes", "sessions", {"user_id": USER.replace("-", "")}, "bad_uuid", "user_id"),
    ("uuid in braces", "sessions", {"user_id": "{" + USER + "}"}, "bad_uuid", "user_id"),
    ("uuid urn", "sessions", {"user_id": "urn:uuid:" + USER}, "bad_uuid", "user_id"),
    ("uuid non-hex", "sessions", {"user_id": USER[:-1] + "g"}, "bad_uuid", "user_id"),
    ("uuid with newline", "sessions", {"user_id": USER + "\n"}, "bad_uuid", "user_id"),
    ("uuid as number", "sessions", {"user_id": 4}, "bad_type", "user_id"),
    ("user_id null", "sessions", {"user_id": None}, "bad_type", "user_id"),
    ("template_id missing", "sessions", {"template_id": DELETE}, "missing_field", "template_id"),
    ("workspace_id bad", "sessions", {"workspace_id": "ws"}, "bad_uuid", "workspace_id"),
    ("agent_id bad", "sessions", {"agent_id": ""}, "bad_uuid", "agent_id"),
    ("username missing", "sessions", {"username": DELETE}, "missing_field", "username"),
    ("username null", "sessions", {"username": None}, "bad_type", "username"),
    ("username number", "app_usage", {"username": 1}, "bad_type", "username"),
    ("avatar_url number", "sessions", {"avatar_url": 1}, "bad_type", "avatar_url"),
    ("connection_count negative", "sessions", {"connection_count": -1}, "bad_value", "conn"),
    ("connection_count bool", "sessions", {"connection_count": True}, "bad_type", "conn"),
    ("connection_count float", "sessions", {"connection_count": 1.0}, "bad_type", "conn"),
    ("connection_count string", "sessions", {"connection_count": "1"}, "bad_type", "conn"),
    ("connection_count missing", "sessions", {"connection_count": DELETE}, "missing_field", "conn"),
    ("sessions missing", "sessions", {"sessions": DELETE}, "missing_field", "sessions"),
    ("sessions array", "sessions", {"sessions": [1]}, "bad_type", "sessions"),
    ("sessions null", "sessions", {"sessions": None}, "bad_type", "sessions"),
    ("kind negative", "sessions", {"sessions": {"vscode": -1}}, "bad_value", "sessions.vscode"),
    ("kind bool", "sessions", {"sessions": {"ssh": True}}, "bad_type", "sessions.ssh"),
    ("kind null", "sessions", {"sessions": {"sftp": None}}, "bad_type", "sessions.sftp"),
    ("kind float", "sessions", {"sessions": {"jetbrains": 1.5}}, "bad_type", "sessions.jetbrains"),
    (
        "kind string",
        "sessions",
        {"sessions": {"reconnecting_pty": "1"}},
        "bad_type",
        "sessions.reconnecting_pty",
    ),
    ("session_id bad", "app_usage", {"session_id": "s1"}, "bad_uuid", "session_id"),
    ("access_method unknown", "app_usage", {"access_method": "ssh"}, "bad_value", "access"),
    ("access_method case", "app_usage", {"access_method": "Path"}, "bad_value", "access"),
    ("access_method number", "app_usage", {"access_method": 1}, "bad_type", "access"),
    ("access_method object", "app_usage", {"access_method": {}}, "bad_type", "access"),
    ("slug_or_port null", "app_usage", {"slug_or_port": None}, "bad_type", "slug_or_port"),
    ("slug_or_port number", "app_usage", {"slug_or_port": 8080}, "bad_type", "slug_or_port"),
    ("slug_or_port missing", "app_usage", {"slug_or_port": DELETE}, "missing_field", "slug"),
    ("app string", "app_usage", {"app": "app1"}, "bad_type", "app"),
    ("app array", "app_usage", {"app": []}, "bad_type", "app"),
    ("app display_name number", "app_usage", {"app": {"display_name": 1}}, "bad_type", "app.disp"),
    ("app icon object", "app_usage", {"app": {"icon": {}}}, "bad_type", "app.icon"),
    ("started_at missing", "app_usage", {"started_at": DELETE}, "missing_field", "started_at"),
    ("started_at bad", "app_usage", {"started_at": "yesterday"}, "bad_time", "started_at"),
    ("ended_at bad", "app_usage", {"ended_at": "2023-08-15T01:00:00"}, "bad_time", "ended_at"),
    (
        "ended_at before started_at",
        "app_usage",
        {"ended_at": "2023-08-14T23:59:59.999999Z"},
        "bad_value",
        "ended_at",
    ),
    (
        "session over 31 days",
        "app_usage",
        {"started_at": "1970-01-01T00:00:00Z"},
        "bad_value",
        "ended_at",
    ),
    ("ended_at in the future", "app_usage", {"ended_at": FUTURE}, "future_time", "ended_at"),
    ("app time in the future", "app_usage", {"time": FUTURE}, "future_time", "time"),
    ("requests negative", "app_usage", {"requests": -1}, "bad_value", "requests"),
    ("requests bool", "app_usage", {"requests": False}, "bad_type", "requests"),
    ("requests string", "app_usage", {"requests": "1"}, "bad_type", "requests"),
    ("latency zero", "latency", {"latency_ms": 0}, "bad_value", "latency_ms"),
    ("latency negative", "latency", {"latency_ms": -1.5}, "bad_value", "latency_ms"),
    ("latency over max", "latency", {"latency_ms": 600000.001}, "bad_value", "latency_ms"),
    ("latency huge", "latency", {"latency_ms": 1e308}, "bad_value", "latency_ms"),
    ("latency bool", "latency", {"latency_ms": True}, "bad_type", "latency_ms"),
    ("latency string", "latency", {"latency_ms": "31"}, "bad_type", "latency_ms"),
    ("latency null", "latency", {"latency_ms": None}, "bad_type", "latency_ms"),
    ("latency missing", "latency", {"latency_ms": DELETE}, "missing_field", "latency_ms"),
    ("latency time future", "latency", {"time": FUTURE}, "future_time", "time"),
    ("build_number 0", "builds", {"build_number": 0}, "bad_value", "build_number"),
    ("build_number negative", "builds", {"build_number": -3}, "bad_value", "build_number"),
    ("build_number bool", "builds", {"build_number": True}, "bad_type", "build_number"),
    ("build_number float", "builds", {"build_number": 3.0}, "bad_type", "build_number"),
    ("build user_id bad", "builds", {"user_id": "u"}, "bad_uuid", "user_id"),
    ("parameters missing", "builds", {"parameters": DELETE}, "missing_field", "parameters"),
    ("parameters null", "builds", {"parameters": None}, "bad_type", "parameters"),
    ("parameters object", "builds", {"parameters": {}}, "bad_type", "parameters"),
    ("parameter not object", "builds", {"parameters": [1]}, "bad_type", "parameters[0]"),
    ("parameter name empty", "builds", {"parameters": param(name="")}, "bad_value", "[0].name"),
    ("parameter name missing", "builds", {"parameters": param(name=DELETE)}, "missing", "[0].name"),
    ("parameter name number", "builds", {"parameters": param(name=1)}, "bad_type", "[0].name"),
    ("parameter type missing", "builds", {"parameters": param(type=DELETE)}, "missing", "[0].type"),
    ("parameter value missing", "builds", {"parameters": param(value=DELETE)}, "missing", "value"),
    ("parameter value null", "builds", {"parameters": param(value=None)}, "bad_type", "[0].value"),
    ("parameter value number", "builds", {"parameters": param(value=3)}, "bad_type", "[0].value"),
    ("parameter desc number", "builds", {"parameters": param(description=1)}, "bad_type", "desc"),
    ("options object", "builds", {"parameters": param(options={})}, "bad_type", "[0].options"),
    (
        "option not object",
        "builds",
        {"parameters": param(options=["eu"])},
        "bad_type",
        "parameters[0].options[0]",
    ),
    (
        "option value missing",
        "builds",
        {"parameters": param(options=[{"name": "eu"}])},
        "missing_field",
        "parameters[0].options[0].value",
    ),
    (
        "second option icon number",
        "builds",
        {
            "parameters": param(
                options=[{"name": "a", "value": "a"}, {"name": "b", "value": "b", "icon": 1}]
            )
        },
        "bad_type",
        "parameters[0].options[1].icon",
    ),
]


@pytest.mark.parametrize(
    ("kind", "changes", "code", "field"),
    [pytest.param(kind, ch, code, f, id=case) for case, kind, ch, code, f in BAD_EVENTS],
)
def test_refused_event(kind: str, changes: dict[str, Any], code: str, field: str) -> None:
    message = orjson.dumps(edit(kind, **changes))
    events, rejections = decode_message(message, kind, NOW_US)
    assert events == []
    [rej] = rejections
    code = "missing_field" if code == "missing" else code
    assert (rej.index, rej.code, rej.payload, rej.payload_encoding) == (
        None,
        code,
        message.decode(),
        "text",
    )
    assert rej.reason.startswith('field "') and field in rej.reason.split(":")[0]
    assert_one_line(rej.reason)


def test_reason_wording() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"user_id": "x"}, 'field "user_id": not a canonical UUID (8-4-4-4-12 hex digits)'),
        ({"user_id": DELETE}, 'field "user_id": required'),
        (
            {"connection_count": True},
            'field "connection_count": expected a non-negative integer, got boolean',
        ),
        ({"sessions": {"ssh": -2}}, 'field "sessions.ssh": must be >= 0'),
        ({"time": FUTURE}, 'field "time": too far in the future (over the limit by 0 s)'),
    ]
    for changes, reason in cases:
        _, [rej] = decode(edit("sessions", **changes), "sessions")
        assert rej.reason == reason


def test_max_future_is_configurable() -> None:
    late = edit("latency", time="2023-08-21T13:00:00Z")  # NOW + 1 h
    assert decode(late, "latency")[1][0].code == "future_time"
    events, _ = decode(late, "latency", max_future_us=3_600_000_000)
    assert events[0].time_us == NOW_US + 3_600_000_000


def test_first_failing_field_is_reported() -> None:
    _, [rej] = decode(edit("sessions", id=1, user_id="x"), "sessions")
    assert rej.reason.startswith('field "id"')


# --- messages and batches ---------------------------------------------------------------------


def test_batch_with_bad_element_in_the_middle_keeps_neighbours() -> None:
    good = GOOD["sessions"]
    bad = edit("sessions", user_id="nope")
    events, rejections = decode([good, bad, "oops", good], "sessions")
    assert events == [EXPECTED["sessions"]] * 2
    assert [(r.index, r.code) for r in rejections] == [(1, "bad_uuid"), (2, "not_object")]
    assert orjson.loads(rejections[0].payload) == bad
    assert rejections[1].payload == '"oops"'
    assert rejections[1].reason == "batch element is string, expected an object"


@pytest.mark.parametrize(
    ("element", "name"),
    [(None, "null"), (1, "integer"), (1.5, "number"), (True, "boolean"), ([], "array")],
)
def test_batch_element_not_an_object(element: object, name: str) -> None:
    _, [rej] = decode([element], "latency")
    assert (rej.index, rej.code, rej.payload) == (0, "not_object", orjson.dumps(element).decode())
    assert name in rej.reason


MESSAGES: list[tuple[str, bytes | None, str, str, str]] = [
    # (case, value, code, payload encoding, reason prefix)
    ("tombstone", None, "no_value", "text", "message has no value"),
    ("empty", b"", "invalid_json", "text", "message is not valid JSON: "),
    ("garbage", b"hello", "invalid_json", "text", "message is not valid JSON: "),
    ("truncated", b'{"id": "a"', "invalid_json", "text", "message is not valid JSON: "),
    ("NaN literal", b'{"latency_ms": NaN}', "invalid_json", "text", "message is not valid JSON"),
    ("BOM", b'\xef\xbb\xbf{"id": "a"}', "invalid_json", "text", "message is not valid JSON"),
    ("not UTF-8", b'{"id": "\xff\xfe"}', "not_utf8", "base64", "message is not valid UTF-8"),
    ("latin-1", b'{"username": "Jos\xe9"}', "not_utf8", "base64", "message is not valid UTF-8"),
    ("number", b"42", "bad_message", "text", "message is a JSON integer, expected an object"),
    ("string", b'"x"', "bad_message", "text", "message is a JSON string"),
    ("null", b"null", "bad_message", "text", "message is a JSON null"),
    ("bool", b" true ", "bad_message", "text", "message is a JSON boolean"),
]


@pytest.mark.parametrize(
    ("value", "code", "encoding", "prefix"),
    [pytest.param(v, c, e, p, id=case) for case, v, c, e, p in MESSAGES],
)
def test_refused_message(value: bytes | None, code: str, encoding: str, prefix: str) -> None:
    events, [rej] = decode_message(value, "sessions", NOW_US)
    assert events == []
    assert (rej.index, rej.code, rej.payload_encoding) == (None, code, encoding)
    assert rej.reason.startswith(prefix)
    assert_one_line(rej.reason)
    raw = value or b""
    if encoding == "base64":
        assert base64.b64decode(rej.payload) == raw
    else:
        assert rej.payload == raw.decode()


def test_single_event_payload_is_the_producers_text() -> None:
    message = b'  {"id": "a",\n "time": 1}\n'
    _, [rej] = decode_message(message, "latency", NOW_US)
    assert rej.payload == message.decode()


def test_batch_limit_is_1000_events() -> None:
    events, rejections = decode([GOOD["latency"]] * MAX_BATCH_EVENTS, "latency")
    assert (len(events), rejections) == (MAX_BATCH_EVENTS, [])
    message = orjson.dumps([GOOD["latency"]] * (MAX_BATCH_EVENTS + 1))
    events, [rej] = decode_message(message, "latency", NOW_US)
    assert events == []
    assert (rej.index, rej.code, rej.reason) == (
        None,
        "batch_too_long",
        "batch has 1001 events (limit 1000)",
    )
    assert rej.payload == message.decode()


def test_message_limit_is_1_mib() -> None:
    event = orjson.dumps(GOOD["latency"])
    padded = b"[" + event + b" " * (MAX_MESSAGE_BYTES - len(event) - 2) + b"]"
    assert len(padded) == MAX_MESSAGE_BYTES
    assert decode_message(padded, "latency", NOW_US) == ([EXPECTED["latency"]], [])
    too_big = padded[:-1] + b" ]"
    events, [rej] = decode_message(too_big, "latency", NOW_US)
    assert (events, rej.index, rej.code) == ([], None, "message_too_large")
    assert rej.reason == (
        f"message is {MAX_MESSAGE_BYTES + 1} bytes (limit {MAX_MESSAGE_BYTES})"
        f" (payload cut to its first {MAX_EVENT_BYTES} bytes)"
    )
    assert rej.payload == too_big[:MAX_EVENT_BYTES].decode()


def test_oversized_non_utf8_message_payload_is_cut_base64() -> None:
    value = b"\xff" * (MAX_MESSAGE_BYTES + 1)
    _, [rej] = decode_message(value, "latency", NOW_US)
    assert (rej.code, rej.payload_encoding) == ("message_too_large", "base64")
    assert base64.b64decode(rej.payload) == value[:MAX_EVENT_BYTES]


def test_single_event_over_64_kib_is_refused() -> None:
    big = edit("sessions", avatar_url="a" * MAX_EVENT_BYTES)
    events, [rej] = decode(big, "sessions")
    assert (events, rej.index, rej.code) == ([], None, "event_too_large")
    assert len(rej.payload.encode()) == MAX_EVENT_BYTES
    assert rej.reason.startswith(f"event is {len(orjson.dumps(big))} bytes (limit 65536)")


def test_batch_element_over_64_kib_is_refused_alone() -> None:
    # Cut a multi-byte character at the 64 KiB boundary: the payload stays valid text.
    big = edit("sessions", avatar_url="é" * MAX_EVENT_BYTES)
    events, [rej] = decode([GOOD["sessions"], big, GOOD["sessions"]], "sessions")
    assert events == [EXPECTED["sessions"]] * 2
    assert (rej.index, rej.code, rej.payload_encoding) == (1, "event_too_large", "text")
    assert len(rej.payload.encode()) <= MAX_EVENT_BYTES
    assert orjson.dumps(big).decode().startswith(rej.payload)


def test_event_of_exactly_64_kib_passes_in_a_big_batch() -> None:
    base = len(orjson.dumps(edit("sessions", avatar_url="")))
    exact = edit("sessions", avatar_url="a" * (MAX_EVENT_BYTES - base))
    assert len(orjson.dumps(exact)) == MAX_EVENT_BYTES
    events, rejections = decode([exact, exact], "sessions")
    assert (len(events), rejections) == (2, [])
    one_more = edit("sessions", avatar_url="a" * (MAX_EVENT_BYTES - base + 1))
    _, [rej] = decode([exact, one_more], "sessions")
    assert (rej.index, rej.code) == (1, "event_too_large")


def test_empty_batch_yields_nothing() -> None:
    assert decode([], "builds") == ([], [])


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown topic kind"):
        decode_message(b"{}", "insights.sessions", NOW_US)


def with_raw_field(kind: str, raw: bytes, **changes: Any) -> bytes:
    """JSON text of an edited good event with an extra field of raw JSON text (orjson
    cannot serialise what is nested deeper than 254 levels)."""
    return orjson.dumps(edit(kind, **changes))[:-1] + b',"extra":' + raw + b"}"


def test_deeply_nested_element_is_dead_lettered_faithfully() -> None:
    # orjson parses 1023 levels but serialises only 254: the payload needs the fallback.
    deep = b"[" * 600 + b"]" * 600
    bad = with_raw_field("sessions", deep, id=1)
    message = b"[" + b",".join([bad, deep, with_raw_field("sessions", deep)]) + b"]"
    assert len(message) < MAX_EVENT_BYTES
    events, rejections = decode_message(message, "sessions", NOW_US)
    assert events == [EXPECTED["sessions"]]
    assert [(r.index, r.code) for r in rejections] == [(0, "bad_type"), (1, "not_object")]
    assert rejections[0].payload.encode() == bad
    assert rejections[1].payload.encode() == deep


def test_deep_elements_in_a_big_batch_are_measured() -> None:
    deep = b'{"k":' * 400 + b'"v"' + b"}" * 400
    filler = orjson.dumps(edit("sessions", avatar_url="a" * MAX_EVENT_BYTES))
    message = b"[" + with_raw_field("sessions", deep) + b"," + filler + b"]"
    events, rejections = decode_message(message, "sessions", NOW_US)
    assert events == [EXPECTED["sessions"]]
    assert [(r.index, r.code) for r in rejections] == [(1, "event_too_large")]


def test_uuid_memo_is_bounded_and_never_changes_results(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decoding, "_KNOWN_UUIDS_MAX", 3)
    decoding._known_uuids.clear()
    batch = [edit("latency", user_id=f"00000000-0000-0000-0000-{i:012x}") for i in range(20)]
    for _ in range(2):
        events, rejections = decode(batch, "latency")
        assert [e.user_id for e in events] == [b["user_id"] for b in batch]
        assert rejections == []
        assert len(decoding._known_uuids) <= 3
    decoding._known_uuids.clear()


# --- properties -----------------------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # no lone surrogates
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
)
_FIELD_NAMES = sorted({k for event in GOOD.values() for k in event} | {"vscode", "name", "value"})
JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_FIELD_NAMES) | _TEXT, children, max_size=6)
    ),
    max_leaves=25,
)


@st.composite
def mutated_events(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    """A good event with a few fields replaced by arbitrary JSON or removed."""
    event = dict(GOOD[kind])
    for key in draw(st.lists(st.sampled_from(sorted(event)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del event[key]
        else:
            event[key] = draw(JSON)
    return event


def assert_accounts_for_everything(doc: object, kind: str) -> None:
    events, rejections = decode(doc, kind)
    for rej in rejections:
        assert rej.code in REASON_CODES
        assert rej.payload_encoding == "text"
        assert_one_line(rej.reason)
    if isinstance(doc, list):
        assert len(events) + len(rejections) == len(doc)
        indexes = [r.index for r in rejections if r.index is not None]
        assert len(indexes) == len(rejections)
        assert indexes == sorted(set(indexes)) and all(0 <= i < len(doc) for i in indexes)
        for i, rej in zip(indexes, rejections, strict=True):
            assert rej.payload == orjson.dumps(doc[i]).decode()
    else:
        assert len(events) + len(rejections) == 1
        assert all(r.index is None for r in rejections)


@settings(max_examples=300)
@given(doc=JSON, kind=st.sampled_from(TOPIC_KINDS))
def test_any_json_value_is_accounted_for(doc: object, kind: str) -> None:
    assert_accounts_for_everything(doc, kind)


@settings(max_examples=300)
@given(data=st.data(), kind=st.sampled_from(TOPIC_KINDS))
def test_mutated_events_are_accounted_for(data: st.DataObject, kind: str) -> None:
    batch = data.draw(st.lists(mutated_events(kind) | JSON, max_size=8))
    assert_accounts_for_everything(batch, kind)
    assert_accounts_for_everything(batch[0] if batch else GOOD[kind], kind)


@settings(max_examples=300)
@given(value=st.binary(max_size=64), kind=st.sampled_from(TOPIC_KINDS))
def test_any_bytes_never_raise(value: bytes, kind: str) -> None:
    events, rejections = decode_message(value, kind, NOW_US)
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        doc = None
    expected = len(doc) if isinstance(doc, list) else 1
    assert len(events) + len(rejections) == expected


_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=300)
@given(
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2023, 8, 1), timezones=_OFFSETS
    ),
    extra_digits=st.text("0123456789", max_size=5),
    lower=st.booleans(),
)
def test_rfc3339_times_convert_to_epoch_microseconds(
    moment: datetime, extra_digits: str, lower: bool
) -> None:
    offset = moment.isoformat()[-6:]  # "+hh:mm"
    offset = "Z" if offset == "+00:00" else offset
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + extra_digits + offset
    text = text.lower() if lower else text
    # Recomputed by hand rather than with datetime arithmetic, which the decoder uses.
    utc = moment.astimezone(UTC)
    expected = us(utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)
    events, rejections = decode(edit("latency", time=text), "latency")
    assert rejections == []
    assert events[0].time_us == expected


@settings(max_examples=200)
@given(doc=JSON)
def test_iterative_dump_matches_orjson(doc: object) -> None:
    assert decoding._dumps_iterative(doc) == orjson.dumps(doc).decode()


# --- dead-letter records ----------------------------------------------------------------------

REJ = Rejection(2, 'field "user_id": not a canonical UUID', '{"user_id":"x"}', "text", "bad_uuid")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, None),
        (USER.encode(), USER),
        (b"", ""),
        (b"\xff\x00", base64.b64encode(b"\xff\x00").decode()),
    ],
)
def test_dead_letter_key(key: bytes | None, expected: str | None) -> None:
    assert key_text(key) == expected
    record = orjson.loads(dead_letter_record("insights.sessions", 3, 42, key, REJ))
    assert record["key"] == expected


def test_dead_letter_record_fields() -> None:
    record = orjson.loads(dead_letter_record("insights.sessions", 3, 42, b"k", REJ))
    assert record == {
        "topic": "insights.sessions",
        "partition": 3,
        "offset": 42,
        "index": 2,
        "key": "k",
        "reason": 'field "user_id": not a canonical UUID',
        "payload": '{"user_id":"x"}',
    }


def test_dead_letter_record_of_a_whole_message() -> None:
    _, [rej] = decode_message(b"\x80not json", "builds", NOW_US)
    record = orjson.loads(dead_letter_record("insights.builds", 0, 7, None, rej))
    assert (record["index"], record["key"]) == (None, None)
    assert base64.b64decode(record["payload"]) == b"\x80not json"
