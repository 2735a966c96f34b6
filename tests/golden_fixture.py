"""Coder's "multiple users and workspaces" insights fixture, as wire events.

Transcribed from insights-api.md section 12: sessions every 30 s, one
app-usage event per app session, one build per workspace.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aggregators.model import BuildParameter, ParameterOption
from aggregators.timebase import US_PER_S
from streams.workloads import (
    AccessMethod,
    AgentRef,
    App,
    WireEvent,
    app_usage_event,
    build_event,
    epoch_us,
    session_event,
    uuid_from,
)

T1 = "00000000-0000-0000-0000-000000000001"
T2 = "00000000-0000-0000-0000-000000000002"
T3 = "00000000-0000-0000-0000-000000000003"
USER1 = "00000000-0000-0000-0000-000000000004"
USER2 = "00000000-0000-0000-0000-000000000005"
USER3 = "00000000-0000-0000-0000-000000000006"
NAMES = {USER1: "user1", USER2: "user2", USER3: "user3"}
REPORT_EVERY_US = 30 * US_PER_S

Event = WireEvent


def _id(*parts: object) -> str:
    return uuid_from("fixture", *parts)


# (user, workspace name, template)
WORKSPACES = {
    "u1w1": (USER1, "workspace1", T1),
    "u1w2": (USER1, "workspace2", T2),
    "u1w3": (USER1, "otherworkspace3", T3),
    "u2w1": (USER2, "workspace1", T1),
    "u3w1": (USER3, "otherworkspace1", T3),
    "u3w2": (USER3, "workspace2", T1),
}


def _agent(key: str) -> AgentRef:
    user, _, template = WORKSPACES[key]
    return AgentRef(user, NAMES[user], template, _id("ws", key), _id("agent", key))


def _us(text: str) -> int:
    """Epoch microseconds of a UTC time written without offset, or of RFC 3339 text."""
    moment = datetime.fromisoformat(text)
    return epoch_us(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _iso(time_us: int) -> str:
    """``datetime.isoformat`` of an instant, as the session ids were first made."""
    return datetime.fromtimestamp(time_us // US_PER_S, UTC).isoformat()


SESSIONS = [  # (workspace, from, to, kinds)
    ("u1w1", "2023-08-15T00:00", "2023-08-15T01:00", ("vscode", "ssh")),
    ("u1w1", "2023-08-16T00:00", "2023-08-16T00:12", ("ssh",)),
    ("u1w1", "2023-08-17T00:04:30", "2023-08-17T00:06:00", ("jetbrains",)),
    ("u1w2", "2023-08-15T00:00", "2023-08-15T01:00", ("vscode", "ssh")),
    ("u1w2", "2023-08-03T00:00", "2023-08-03T01:00", ("ssh", "reconnecting_pty")),
    ("u1w2", "2023-08-05T00:00", "2023-08-05T01:00", ("ssh", "reconnecting_pty")),
    ("u2w1", "2023-08-14T23:00", "2023-08-15T00:00", ("vscode", "ssh")),
    ("u2w1", "2023-08-15T00:00", "2023-08-15T01:00", ("ssh",)),
    ("u2w1", "2023-08-22T00:00", "2023-08-22T01:00", ("vscode", "ssh")),
    ("u3w1", "2023-08-15T00:00", "2023-08-15T01:00", ("ssh", "reconnecting_pty")),
]

APPS: list[tuple[str, str, str, str, AccessMethod]] = [  # (workspace, key, start, end, method)
    ("u1w1", "app1", "2023-08-15T00:00:00", "2023-08-15T01:00:00", "path"),
    ("u1w1", "app1", "2023-08-15T02:00:10", "2023-08-15T02:00:40", "path"),
    ("u1w1", "app1", "2023-08-15T03:00:30", "2023-08-15T03:01:30", "path"),
    ("u1w1", "app3", "2023-08-21T00:00:00", "2023-08-21T00:12:00", "path"),
    ("u1w2", "app1", "2023-08-15T00:00:00", "2023-08-15T01:00:00", "path"),
    ("u1w2", "app1", "2023-08-17T00:00:00", "2023-08-17T06:00:00", "path"),
    ("u2w1", "app3", "2023-08-14T23:00:00", "2023-08-15T00:00:00", "path"),
    ("u2w1", "app3", "2023-08-22T00:00:00", "2023-08-22T01:00:00", "path"),
    ("u3w1", "otherapp1", "2023-08-17T00:00:00", "2023-08-17T00:05:00", "path"),
    ("u3w1", "", "2023-08-18T00:00:00", "2023-08-18T00:05:00", "terminal"),
]
ICONS = {
    "app1": "/icon1.png",
    "app2": "/icon2.png",
    "app3": "/icon2.png",
    "otherapp1": "/icon1.png",
}


def session_events() -> list[Event]:
    out: list[Event] = []
    for n, (ws, start, end, kinds) in enumerate(SESSIONS):
        for at in range(_us(start), _us(end), REPORT_EVERY_US):
            out.append(session_event(_agent(ws), _id("s", n, _iso(at)), at, kinds))
    return out


def app_events() -> list[Event]:
    out: list[Event] = []
    for n, (ws, key, start, end, method) in enumerate(APPS):
        app = None if method == "terminal" else App(key, ICONS[key])
        out.append(
            app_usage_event(
                _agent(ws),
                _id("a", n),
                _id("session", n),
                _us(start),
                _us(end),
                access_method=method,
                slug_or_port=key,
                app=app,
            )
        )
    return out


def _param(
    name: str, description: str, value: str, options: tuple[str, ...] = ()
) -> BuildParameter:
    choices = tuple(ParameterOption(o, "", o, "") for o in options)
    return BuildParameter(name, "string", name, description, choices, value)


def build_events(loaded_at: str = "2026-01-01T00:00:00Z") -> list[Event]:
    first = ("param1", "This is first parameter")
    second = ("param2", "This is second parameter")
    third = ("param3", "This is third parameter")
    fourth = ("param4", "This is fourth parameter")
    other = ("otherparam1", "This is another parameter")
    opts = ("option1", "option2")
    values: dict[str, list[BuildParameter]] = {
        "u1w1": [
            _param(*first, "abc"),
            _param(*second, "123"),
            _param(*third, "bbb"),
            _param(*fourth, "option1", opts),
        ],
        "u1w2": [_param(*first, "ABC"), _param(*second, "123"), _param(*third, "BBB")],
        "u1w3": [_param(*other, "")],
        "u2w1": [
            _param(*first, "abc"),
            _param(*second, "123"),
            _param(*third, "BBB"),
            _param(*fourth, "option1", opts),
        ],
        "u3w1": [_param(*other, "xyz")],
        "u3w2": [
            _param(*first, ""),
            _param(*second, ""),
            _param(*third, ""),
            _param(*fourth, "option2", opts),
        ],
    }
    loaded_us = _us(loaded_at)
    return [
        build_event(_agent(ws), _id("b", ws), loaded_us, 1, params) for ws, params in values.items()
    ]


def all_events() -> dict[str, list[Event]]:
    """Events by topic kind."""
    return {
        "sessions": session_events(),
        "app_usage": app_events(),
        "latency": [],
        "builds": build_events(),
    }
