"""Coder rows -> contract events (pure): every field, the skips, the deterministic ids, and
every event accepted by the worker's own decoder."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.coder_import.coder_schema import KNOWN_COLUMNS
from streams.coder_import.mapping import (
    AgentStatsRow,
    AppStatsRow,
    BuildRow,
    ParameterRow,
    agent_stats_events,
    app_stats_events,
    build_events,
)
from streams.coder_import.schema_check import schema_problem
from streams.decoding import decode_message

T = datetime(2024, 3, 4, 9, 15, 30, 250000, tzinfo=UTC)
U = "0b9c4f6e-3a5d-4e7f-8a1b-2c3d4e5f6a7b"
TPL = "c7e1d2f3-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
WS = "3f2e1d0c-9b8a-4765-8432-10fedcba9876"
AG = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
NOW_US = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)


def _valid(kind: str, event: dict[str, object]) -> None:
    decoded, rejected = decode_message(orjson.dumps(event), kind, NOW_US, 300_000_000)
    assert not rejected, rejected[0].reason
    assert len(decoded) == 1


def _stats(**changes: object) -> AgentStatsRow:
    row = AgentStatsRow(
        "5b1f0e3c-2d4a-4c1e-9f6b-7a8d9e0f1a2b", T, U, AG, WS, TPL, 2, 31.5,
        1, 0, 0, 1, "alice", "https://a/alice.png", "python-dev", "coder",
    )  # fmt: skip
    return row._replace(**changes)


def test_agent_stats_report_is_a_sessions_event_and_a_latency_sample() -> None:
    (k1, sessions), (k2, latency) = agent_stats_events(_stats())
    assert (k1, k2) == ("sessions", "latency")
    assert sessions == {
        "id": "coder:workspace_agent_stats:5b1f0e3c-2d4a-4c1e-9f6b-7a8d9e0f1a2b",
        "time": "2024-03-04T09:15:30.250000Z",
        "user_id": U,
        "template_id": TPL,
        "workspace_id": WS,
        "agent_id": AG,
        "username": "alice",
        "avatar_url": "https://a/alice.png",
        "template_name": "python-dev",
        "organization_name": "coder",
        "connection_count": 2,
        # Coder has no SFTP column: the importer never claims an SFTP count
        "sessions": {"vscode": 1, "jetbrains": 0, "reconnecting_pty": 0, "ssh": 1},
    }
    assert latency["id"] == sessions["id"] + ":latency"
    assert latency["latency_ms"] == 31.5
    assert "username" not in latency
    _valid("sessions", sessions)
    _valid("latency", latency)


@pytest.mark.parametrize("ms", [-1.0, 0.0, float("nan"), 600_001.0])
def test_unmeasured_or_impossible_latency_is_skipped(ms: float) -> None:
    assert [k for k, _ in agent_stats_events(_stats(connection_median_latency_ms=ms))] == [
        "sessions"
    ]


def test_a_report_with_no_session_open_sends_only_its_latency() -> None:
    row = _stats(session_count_vscode=0, session_count_ssh=0, connection_count=3)
    assert [k for k, _ in agent_stats_events(row)] == ["latency"]


def test_missing_user_and_template_names() -> None:
    row = _stats(username=None, avatar_url=None, template_name=None, organization_name=None)
    _, event = agent_stats_events(row)[0]
    assert event["username"] == "" and event["avatar_url"] == ""
    assert "template_name" not in event and "organization_name" not in event


def _app(**changes: object) -> AppStatsRow:
    row = AppStatsRow(
        17, U, WS, AG, "path", "code-server", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
        T - timedelta(hours=1), T, 412, TPL, "alice", "", "python-dev", "coder",
        "code-server", "/icon/code.svg",
    )  # fmt: skip
    return row._replace(**changes)


def test_app_session_row_is_an_app_usage_report() -> None:
    [(kind, event)] = app_stats_events(_app())
    assert kind == "app_usage"
    assert event["id"] == f"coder:workspace_app_stats:17:{int(T.timestamp() * 1e6)}"
    assert event["session_id"] == "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    assert (event["started_at"], event["ended_at"], event["time"]) == (
        "2024-03-04T08:15:30.250000Z",
        "2024-03-04T09:15:30.250000Z",
        "2024-03-04T09:15:30.250000Z",
    )
    assert event["app"] == {"display_name": "code-server", "icon": "/icon/code.svg"}
    assert event["requests"] == 412
    _valid("app_usage", event)
    # Coder moved the session's end: another report, another id, the same session
    [(_, later)] = app_stats_events(_app(session_ended_at=T + timedelta(minutes=1)))
    assert later["id"] != event["id"] and later["session_id"] == event["session_id"]


def test_terminal_and_port_forwards_carry_no_app() -> None:
    [(_, terminal)] = app_stats_events(_app(access_method="terminal", slug_or_port=""))
    assert terminal["app"] is None and terminal["slug_or_port"] == ""
    port = _app(slug_or_port="8080", app_display_name=None, app_icon=None)
    [(_, forward)] = app_stats_events(port)
    assert forward["app"] is None and forward["slug_or_port"] == "8080"
    _valid("app_usage", terminal)
    _valid("app_usage", forward)


def test_rows_that_cannot_be_events_are_skipped() -> None:
    assert app_stats_events(_app(template_id=None)) == []
    assert app_stats_events(_app(access_method="ssh")) == []
    assert app_stats_events(_app(session_started_at=T + timedelta(seconds=1))) == []


def test_a_session_longer_than_31_days_is_sent_in_pieces() -> None:
    started = T - timedelta(days=70)
    pieces = app_stats_events(_app(session_started_at=started))
    assert len(pieces) == 3
    spans = sorted((e["started_at"], e["ended_at"]) for _, e in pieces)
    assert spans[0][0] == "2023-12-25T09:15:30.250000Z" and spans[-1][1] == pieces[0][1]["time"]
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # no gap
    assert len({e["id"] for _, e in pieces}) == 3
    for _, event in pieces:
        _valid("app_usage", event)


def test_build_with_its_version_parameters_and_recorded_values() -> None:
    build = BuildRow(
        "6efd8564-1111-4222-8333-444455556666", T, WS, 7, "v", TPL, U, "python-dev", "coder"
    )
    options = [{"name": "Europe", "description": "", "value": "eu", "icon": "/e.png"}]
    params = [
        ParameterRow("region", "string", "Region", "Where", options, "eu"),
        ParameterRow("cpu", "number", "CPU", "", [], "2"),
    ]
    [(kind, event)] = build_events(build, params, {"region": "us"})
    assert kind == "builds"
    assert event["id"] == "coder:workspace_builds:6efd8564-1111-4222-8333-444455556666"
    assert (event["user_id"], event["build_number"]) == (U, 7)
    assert [(p["name"], p["value"]) for p in event["parameters"]] == [
        ("region", "us"),
        ("cpu", "2"),  # not recorded: its default
    ]
    assert event["parameters"][0]["options"] == options
    _valid("builds", event)
    assert build_events(build._replace(template_id=None), params, {}) == []


def test_schema_problem_names_the_first_difference() -> None:
    found = {t: dict(c) for t, c in KNOWN_COLUMNS.items()}
    readable = dict.fromkeys(KNOWN_COLUMNS, True)
    assert schema_problem(found, readable, "r") is None
    found["workspace_app_stats"]["requests"] = "bigint"
    problem = schema_problem(found, readable, "r")
    assert problem is not None and "workspace_app_stats.requests is bigint" in problem
    assert "\n" not in problem
    readable["users"] = False
    assert "may not SELECT users" in (schema_problem(found, readable, "r") or "")
