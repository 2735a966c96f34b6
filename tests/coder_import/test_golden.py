"""Coder's golden fixture written as Coder's rows, imported by ``insights coder import``:
every golden file of Coder's insights tests comes out byte-identical; re-runs change
nothing; ``--follow`` shows a new stats report within 2 s."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import golden_fixture as g
from tests.coder_import.conftest import REPO_ROOT, importer_argv, importer_env, run_importer
from tests.coder_import.golden_rows import write_golden
from tests.coder_import.pg import PgServer, add_constraints, create_coder_database
from tests.e2e.stack import Stack

GOLDEN = Path(__file__).resolve().parents[3] / "shared" / "spec" / "golden"
if not GOLDEN.is_dir():  # the copy that ships with the tests
    GOLDEN = REPO_ROOT / "tests" / "golden"
WEEK = "start_time=2023-08-15T00:00:00Z&end_time=2023-08-22T00:00:00Z"
REQUESTS = {
    "week_deployment_wide": (WEEK, "day"),
    "weekly_aggregated_first_template": (f"{WEEK}&template_ids={g.T1}", "week"),
    "three_weeks_second_template": (
        f"start_time=2023-08-01T00:00:00Z&end_time=2023-08-22T00:00:00Z&template_ids={g.T2}",
        "week",
    ),
}
FOLLOW_BOUND_S = 2.0


def _as_golden(raw: str) -> str:
    return json.dumps(json.loads(raw), indent=2) + "\n"


def _reports(stack: Stack) -> dict[str, str]:
    out = {}
    for name, (query, interval) in REQUESTS.items():
        out[f"template/{name}"] = stack.get(
            f"/api/v2/insights/templates?{query}&interval={interval}"
        )[2]
        out[f"user-activity/{name}"] = stack.get(f"/api/v2/insights/user-activity?{query}")[2]
    return out


@pytest.fixture(scope="module")
def golden_db(postgres: PgServer) -> str:
    url = create_coder_database(postgres, "coder_golden")
    write_golden(url)
    add_constraints(url)
    return url


@pytest.fixture(scope="module")
def imported(coder_stack: Stack, golden_db: str) -> Stack:
    done = run_importer(coder_stack, golden_db)
    assert done.returncode == 0, done.stderr
    assert "imported" in done.stderr
    coder_stack.wait_for(f"/api/v2/insights/user-activity?{WEEK}", _week_complete)
    coder_stack.wait_for(
        "/api/v2/insights/templates?start_time=2025-12-31T00:00:00Z&end_time=2026-01-02T00:00:00Z",
        lambda b: len(b["report"]["parameters_usage"]) == 5,
    )
    return coder_stack


def _week_complete(body: dict[str, Any]) -> bool:
    return [u["seconds"] for u in body["report"]["users"]] == [26820, 3600, 4200]


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_templates_golden(imported: Stack, name: str) -> None:
    query, interval = REQUESTS[name]
    status, _, raw = imported.get(f"/api/v2/insights/templates?{query}&interval={interval}")
    assert status == 200
    assert _as_golden(raw) == (GOLDEN / "template" / f"{name}.json").read_text()


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_user_activity_golden(imported: Stack, name: str) -> None:
    query, _ = REQUESTS[name]
    status, _, raw = imported.get(f"/api/v2/insights/user-activity?{query}")
    assert status == 200
    assert _as_golden(raw) == (GOLDEN / "user-activity" / f"{name}.json").read_text()


def test_builds_carry_their_parameters(imported: Stack) -> None:
    _, body, _ = imported.get(
        "/api/v2/insights/templates?start_time=2025-12-31T00:00:00Z&end_time=2026-01-02T00:00:00Z"
    )
    counts = {
        (p["name"], v["value"]): v["count"]
        for p in body["report"]["parameters_usage"]
        for v in p["values"]
    }
    assert counts[("param1", "abc")] == 2
    assert counts[("param4", "option1")] == 2
    assert counts[("otherparam1", "xyz")] == 1


def test_rerun_and_full_reimport_change_nothing(imported: Stack, golden_db: str) -> None:
    before = _reports(imported)
    again = run_importer(imported, golden_db)
    assert again.returncode == 0, again.stderr
    full = run_importer(imported, golden_db, "--reset", "--chunk-rows", "37")
    assert full.returncode == 0, full.stderr
    # the full re-import went through: a marker row produced after it has been counted
    _insert_report(golden_db, datetime(2023, 8, 25, tzinfo=UTC))
    last = run_importer(imported, golden_db)
    assert last.returncode == 0, last.stderr
    imported.wait_for(
        "/api/v2/insights/user-activity?start_time=2023-08-25T00:00:00Z"
        "&end_time=2023-08-26T00:00:00Z",
        lambda b: len(b["report"]["users"]) == 1,
    )
    assert _reports(imported) == before


def _insert_report(url: str, at: datetime, workspace: str = "u1w1") -> None:
    user, _, template = g.WORKSPACES[workspace]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workspace_agent_stats (id, created_at, user_id, agent_id, workspace_id,"
            " template_id, connection_count, connection_median_latency_ms, session_count_ssh)"
            " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, 1, 12.5, 1)",
            (at, user, g._id("agent", workspace), g._id("ws", workspace), template),
        )


def test_follow_shows_a_new_report_within_2_s(imported: Stack, golden_db: str) -> None:
    proc = subprocess.Popen(
        importer_argv(golden_db, "--follow"),  # the default poll interval, 1 s
        env=importer_env(imported),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        now = datetime.now(UTC)
        day = now.replace(hour=0, minute=0, second=0, microsecond=0)
        hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        path = (
            f"/api/v2/insights/user-activity?start_time={day:%Y-%m-%dT%H:%M:%SZ}"
            f"&end_time={hour:%Y-%m-%dT%H:%M:%SZ}"
        )
        deadline = time.monotonic() + 30
        while "following" not in _stderr_so_far(proc):  # caught up, now tailing
            assert proc.poll() is None and time.monotonic() < deadline, "follow never started"
            time.sleep(0.05)
        assert imported.get(path)[1]["report"]["users"] == []
        delays = []
        for n, workspace in enumerate(("u1w1", "u2w1", "u3w1")):  # one more user each time
            if n:
                time.sleep(0.7)  # at another point of the poll cycle
            _insert_report(golden_db, datetime.now(UTC), workspace)
            t0 = time.monotonic()
            while True:
                if len(imported.get(path)[1]["report"]["users"]) == n + 1:
                    break
                assert time.monotonic() - t0 < 10, _stderr_so_far(proc)[-3000:]
                time.sleep(0.02)
            delays.append(time.monotonic() - t0)
        print(f"follow: insert -> visible in the API in {', '.join(f'{d:.2f}' for d in delays)} s")
        assert max(delays) < FOLLOW_BOUND_S
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert proc.returncode == 0


_STDERR: dict[int, str] = {}


def _stderr_so_far(proc: subprocess.Popen[str]) -> str:
    import os
    import select

    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        _STDERR[proc.pid] = _STDERR.get(proc.pid, "") + chunk.decode(errors="replace")
    return _STDERR.get(proc.pid, "")
