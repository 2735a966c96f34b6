"""``insights simulate``: a simulated deployment through the real broker, worker and API.

Three days of ten users are sent with ``--no-live``; the command exits after its
``backfill done`` line, and the numbers show in every endpoint: daily active users on
weekdays, templates with parameters and app usage, users with latency quantiles.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.e2e.stack import Stack

BUDGET_S = 60.0


def _window(days: int) -> str:
    """From midnight UTC ``days`` days ago to the next full hour (the API's rules)."""
    now = datetime.now(UTC)
    start = (now - timedelta(days=days)).strftime("%Y-%m-%dT00:00:00Z")
    end = (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return f"start_time={start}&end_time={end}"


def _weekday_amounts(body: Any) -> list[int]:
    return [
        e["amount"] for e in body["entries"] if date.fromisoformat(e["date"][:10]).weekday() < 5
    ]


def test_simulate_feeds_every_endpoint(stack: Stack) -> None:
    started = time.monotonic()
    env = {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": stack.bootstrap,
        "INSIGHTS_TOPIC_PREFIX": stack.prefix,
        "INSIGHTS_TOPIC_PARTITIONS": "3",
        "INSIGHTS_LOG_FORMAT": "json",
    }
    args = ["simulate", "--days", "3", "--users", "10", "--no-live"]
    done = subprocess.run(
        [sys.executable, "-m", "insights", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUDGET_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = re.search(r"backfill done: ([\d,]+) events over 3 days in [\d.]+ s", done.stderr)
    assert line, done.stderr[-3000:]
    assert int(line[1].replace(",", "")) > 5_000  # agents report every 30 s

    left = lambda: max(1.0, BUDGET_S - (time.monotonic() - started))  # noqa: E731
    daus = stack.wait_for(
        "/api/v2/insights/daus?tz_offset=0",
        lambda b: any(_weekday_amounts(b)),
        timeout_s=left(),
    )
    assert all(0 <= e["amount"] <= 10 for e in daus["entries"])

    window = _window(4)
    templates = stack.wait_for(
        f"/api/v2/insights/templates?{window}&interval=day",
        lambda b: (
            b["report"]["parameters_usage"]
            and any(a["type"] == "app" and a["seconds"] > 0 for a in b["report"]["apps_usage"])
        ),
        timeout_s=left(),
    )["report"]
    assert templates["active_users"] > 0
    apps = [a for a in templates["apps_usage"] if a["type"] == "app" and a["seconds"] > 0]
    assert all(a["icon"].startswith("/icon/") for a in apps)
    params = {p["name"]: p for p in templates["parameters_usage"]}
    assert {"region", "cpu"} <= set(params)
    region = params["region"]
    assert region["options"] and all(o["icon"].startswith("/emojis/") for o in region["options"])
    assert sum(v["count"] for v in region["values"]) > 0

    # Latency samples are a topic of their own: wait until every active user has them.
    latency = stack.wait_for(
        f"/api/v2/insights/user-latency?{window}",
        lambda b: (
            bool(b["report"]["users"])
            and all(u["latency_ms"]["p50"] > 0 for u in b["report"]["users"])
        ),
        timeout_s=left(),
    )["report"]
    for user in latency["users"]:
        quantiles = user["latency_ms"]
        assert 0 < quantiles["p50"] <= quantiles["p95"]
    assert time.monotonic() - started < BUDGET_S
