"""A simulated deployment written as Coder's rows, imported by ``insights coder import``
while the importer is killed half-way and run again: our numbers equal Coder's own SQL
(``bench/coder_pg_queries.py``: GetTemplateInsights, GetTemplateParameterInsights and
GetUserActivityInsights over the ``template_usage_stats`` rollup Coder's
UpsertTemplateUsageStats builds) wherever the two semantics agree, and a full re-import
changes no number.  Where they do not agree (README: Differences from Coder) is not
compared: app minutes per access method, latency quantiles, local days."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from redis import Redis

from aggregators.store import keys
from aggregators.timebase import US_PER_DAY
from streams import demo
from streams.coder_import.importer import source_of
from streams.simulation import APPS, Simulation
from streams.workloads import epoch_us
from tests.coder_import.coder_rows import Deployment, write_deployment, write_events
from tests.coder_import.conftest import REPO_ROOT, importer_argv, importer_env, run_importer
from tests.coder_import.pg import PgServer, add_constraints, create_coder_database
from tests.e2e.stack import Stack

END = datetime(2024, 3, 11, tzinfo=UTC)  # a Monday, 00:00 UTC
DAYS = 8
USERS = 10
WINDOW = (END - timedelta(days=7), END)
BUILTINS = {
    "vscode": "usage_vscode_seconds",
    "jetbrains": "usage_jetbrains_seconds",
    "reconnecting-pty": "usage_reconnecting_pty_seconds",
    "ssh": "usage_ssh_seconds",
}


def _coder_queries() -> ModuleType:
    path = REPO_ROOT / "bench" / "coder_pg_queries.py"
    spec = importlib.util.spec_from_file_location("coder_pg_queries", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CQ = _coder_queries()


def _simulated() -> tuple[Deployment, dict[str, list[dict[str, Any]]]]:
    end_us = epoch_us(END)
    dep = demo.deployment(USERS, demo.DEFAULT_SEED, DAYS, now_us=end_us)
    events: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("sessions", "app_usage", "latency", "builds")
    }
    for kind, _, event in Simulation(dep).events(end_us - DAYS * US_PER_DAY, end_us):
        events[kind].append(event)
    rows = Deployment(
        users={u.user_id: (u.username, u.avatar_url) for u in dep.users},
        templates={
            t.template_id: (t.name, [(s, APPS[s].display_name, APPS[s].icon) for s in t.apps])
            for t in dep.templates
        },
        workspaces={
            ws.workspace_id: (u.user_id, ws.template.template_id, ws.template.name, ws.agent_id)
            for u in dep.users
            for ws in (u.main, u.second)
            if ws is not None
        },
    )
    return rows, events


@pytest.fixture(scope="module")
def coder_db(postgres: PgServer) -> str:
    url = create_coder_database(postgres, "coder_simulated")
    rows, events = _simulated()
    with psycopg.connect(url, autocommit=True) as conn:
        write_deployment(conn, rows)
        written = write_events(conn, events)
    add_constraints(url)
    assert written["workspace_agent_stats"] > 10_000
    return url


@pytest.fixture(scope="module")
def coder_numbers(coder_db: str) -> dict[str, Any]:
    """Coder's answers for the window, its rollup run once at END (in a rolled-back
    transaction: the importer must not see anything Coder's queries leave behind)."""
    params = {
        "start_time": WINDOW[0],
        "end_time": WINDOW[1],
        "template_ids": [],
        "interval_days": 1,
    }
    with psycopg.connect(coder_db) as conn, conn.transaction(force_rollback=True):
        conn.execute(CQ.CLOCK_SCHEMA)
        conn.execute(CQ.SET_CLOCK, {"now": END.isoformat()})
        conn.execute(CQ.UPSERT_TEMPLATE_USAGE_STATS)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(CQ.GET_TEMPLATE_INSIGHTS, params)
            template = cur.fetchone()
            cur.execute(CQ.GET_TEMPLATE_PARAMETER_INSIGHTS, params)
            parameters = cur.fetchall()
            cur.execute(CQ.GET_USER_ACTIVITY_INSIGHTS, params)
            users = cur.fetchall()
    counts: dict[tuple[str, str], int] = {}
    for r in parameters:
        counts[(r["name"], r["value"])] = counts.get((r["name"], r["value"]), 0) + int(r["count"])
    return {
        "active_users": int(template["active_users"]),
        "builtins": {slug: int(template[col]) for slug, col in BUILTINS.items()},
        "parameters": counts,
        "users": {str(r["user_id"]): int(r["usage_seconds"]) for r in users},
    }


def _window() -> str:
    return f"start_time={WINDOW[0]:%Y-%m-%dT%H:%M:%SZ}&end_time={WINDOW[1]:%Y-%m-%dT%H:%M:%SZ}"


def _ours(stack: Stack) -> dict[str, Any]:
    _, body, _ = stack.get(f"/api/v2/insights/templates?{_window()}&interval=day")
    report = body["report"]
    builtins = {a["slug"]: a["seconds"] for a in report["apps_usage"] if a["type"] == "builtin"}
    counts = {
        (p["name"], v["value"]): v["count"] for p in report["parameters_usage"] for v in p["values"]
    }
    _, activity, _ = stack.get(f"/api/v2/insights/user-activity?{_window()}")
    return {
        "active_users": report["active_users"],
        "builtins": {slug: builtins[slug] for slug in BUILTINS},
        "parameters": counts,
        "users": {u["user_id"]: u["seconds"] for u in activity["report"]["users"]},
        "sftp": builtins["sftp"],
    }


def _raw(stack: Stack) -> list[str]:
    return [
        stack.get(f"/api/v2/insights/templates?{_window()}&interval=day")[2],
        stack.get(f"/api/v2/insights/user-activity?{_window()}")[2],
        stack.get(f"/api/v2/insights/user-latency?{_window()}")[2],
    ]


def _kill_half_way(stack: Stack, url: str) -> None:
    """Start an import, SIGKILL it once it has saved a position in the agent stats (and
    before it finished them)."""
    key = keys.coder_import_positions(source_of(url), stack.prefix)
    redis = Redis.from_url(stack.redis_url)
    proc = subprocess.Popen(
        importer_argv(url, "--chunk-rows", "400"),
        env=importer_env(stack),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while redis.hget(key, "workspace_agent_stats") is None:
            assert proc.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert redis.hget(key, "workspace_app_stats") is None  # killed half-way
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        redis.close()


@pytest.fixture(scope="module")
def imported(coder_stack: Stack, coder_db: str, coder_numbers: dict[str, Any]) -> Stack:
    _kill_half_way(coder_stack, coder_db)
    t0 = time.monotonic()
    done = run_importer(coder_stack, coder_db)
    assert done.returncode == 0, done.stderr
    print(f"resumed import: {time.monotonic() - t0:.1f} s; {done.stderr.strip().splitlines()[-1]}")
    expected = coder_numbers["users"]
    coder_stack.wait_for(
        f"/api/v2/insights/user-activity?{_window()}",
        lambda b: {u["user_id"]: u["seconds"] for u in b["report"]["users"]} == expected,
        timeout_s=60,
    )
    return coder_stack


def test_active_users_and_builtin_seconds_equal_coders(
    imported: Stack, coder_numbers: dict[str, Any]
) -> None:
    ours = _ours(imported)
    assert ours["active_users"] == coder_numbers["active_users"] > 0
    assert ours["builtins"] == coder_numbers["builtins"]
    assert ours["sftp"] == 0  # Coder has no SFTP column: nothing to import


def test_parameter_counts_equal_coders(imported: Stack, coder_numbers: dict[str, Any]) -> None:
    ours = _ours(imported)
    assert coder_numbers["parameters"]
    assert ours["parameters"] == coder_numbers["parameters"]


def test_user_activity_equals_coders(imported: Stack, coder_numbers: dict[str, Any]) -> None:
    ours = _ours(imported)
    assert len(coder_numbers["users"]) > 1
    assert ours["users"] == coder_numbers["users"]


def test_full_reimport_changes_nothing(imported: Stack, coder_db: str) -> None:
    before = _raw(imported)
    t0 = time.monotonic()
    again = run_importer(imported, coder_db, "--reset")
    assert again.returncode == 0, again.stderr
    seconds = time.monotonic() - t0
    print(f"full re-import: {seconds:.1f} s; {again.stderr.strip().splitlines()[-1]}")
    # A report after the window, imported last: once it counts, the re-import was consumed.
    with psycopg.connect(coder_db, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workspace_agent_stats (id, created_at, user_id, agent_id, workspace_id,"
            " template_id, connection_count, session_count_ssh)"
            " SELECT gen_random_uuid(), %s, user_id, agent_id, workspace_id, template_id, 1, 1"
            " FROM workspace_agent_stats LIMIT 1",
            (END + timedelta(hours=12),),
        )
    assert run_importer(imported, coder_db).returncode == 0
    after_end = (
        f"/api/v2/insights/user-activity?start_time={END:%Y-%m-%dT%H:%M:%SZ}"
        f"&end_time={END + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}"
    )
    imported.wait_for(after_end, lambda b: len(b["report"]["users"]) == 1)
    assert _raw(imported) == before
