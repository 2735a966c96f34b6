"""Coder's golden fixture through the real path: broker -> worker -> Redis -> HTTP API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.stack import Stack
from tests.golden_fixture import T1, T2, all_events

GOLDEN = Path(__file__).parent.parent / "golden"
WEEK = "start_time=2023-08-15T00:00:00Z&end_time=2023-08-22T00:00:00Z"
REQUESTS = {
    "week_deployment_wide": (WEEK, "day"),
    "weekly_aggregated_first_template": (f"{WEEK}&template_ids={T1}", "week"),
    "three_weeks_second_template": (
        f"start_time=2023-08-01T00:00:00Z&end_time=2023-08-22T00:00:00Z&template_ids={T2}",
        "week",
    ),
}


def _golden(kind: str, name: str) -> str:
    return (GOLDEN / kind / f"{name}.json").read_text()


def _as_golden(raw: str) -> str:
    """Re-encode as Coder's golden files are: two-space indent, trailing newline, same order."""
    return json.dumps(json.loads(raw), indent=2) + "\n"


@pytest.fixture(scope="module")
def loaded(stack: Stack) -> Stack:
    events = all_events()
    for kind, batch in events.items():
        stack.produce_events(kind, batch)
    stack.wait_for(f"/api/v2/insights/user-activity?{WEEK}", _week_complete)
    return stack


def _week_complete(body: dict[str, Any]) -> bool:
    seconds = [u["seconds"] for u in body["report"]["users"]]
    return seconds == [26820, 3600, 4200]


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_templates_golden(loaded: Stack, name: str) -> None:
    query, interval = REQUESTS[name]
    status, _, raw = loaded.get(f"/api/v2/insights/templates?{query}&interval={interval}")
    assert status == 200
    assert _as_golden(raw) == _golden("template", name)


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_user_activity_golden(loaded: Stack, name: str) -> None:
    query, _ = REQUESTS[name]
    status, _, raw = loaded.get(f"/api/v2/insights/user-activity?{query}")
    assert status == 200
    assert _as_golden(raw) == _golden("user-activity", name)


def test_user_latency_lists_active_users_without_samples(loaded: Stack) -> None:
    status, body, _ = loaded.get(f"/api/v2/insights/user-latency?{WEEK}&percentiles=99")
    assert status == 200
    users = body["report"]["users"]
    assert [u["username"] for u in users] == ["user1", "user2", "user3"]
    assert all(u["latency_ms"] == {"p50": -1, "p95": -1, "p99": -1} for u in users)


def test_replaying_everything_changes_nothing(loaded: Stack) -> None:
    before = {
        name: loaded.get(f"/api/v2/insights/templates?{q}&interval={i}")[2]
        for name, (q, i) in REQUESTS.items()
    }
    events = all_events()
    for kind, batch in events.items():
        loaded.produce_events(kind, batch, batch=7)  # another split, same ids
    # a marker event after the replay: once it counts, the replay was consumed too
    marker = dict(events["sessions"][0], id="marker", time="2023-08-25T00:00:00Z")
    loaded.produce("sessions", [orjson.dumps(marker)])
    loaded.wait_for(
        "/api/v2/insights/user-activity?start_time=2023-08-25T00:00:00Z"
        "&end_time=2023-08-26T00:00:00Z",
        lambda b: len(b["report"]["users"]) == 1,
    )
    after = {
        name: loaded.get(f"/api/v2/insights/templates?{q}&interval={i}")[2]
        for name, (q, i) in REQUESTS.items()
    }
    assert after == before
