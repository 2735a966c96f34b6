"""Contract events written the way Coder records them, as rows of Coder's tables.

What a Coder deployment would hold after its agents reported the same things:

* a ``sessions`` event is one ``workspace_agent_stats`` row (its id, time, counts and
  ``connection_count``; the ``latency`` event of the same agent and instant, if any, is
  that row's ``connection_median_latency_ms``, else -1, Coder's "not measured"); Coder has
  no SFTP column, so SFTP sessions are not written;
* an ``app_usage`` event is Coder's upsert of its session's ``workspace_app_stats`` row
  (one row per user, agent and session; the latest end and request count win);
* a ``builds`` event is a provisioner job, a ``workspace_builds`` row and its
  ``workspace_build_parameters``; the first build of each template defines its template
  version's ``template_version_parameters``;
* users, templates (one version each), organizations, workspaces, and per workspace one
  resource with its agent and the template's apps, as ``Deployment`` names them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from streams.workloads import uuid_from

ORG_ID = uuid_from("coder-rows", "org")
ADMIN_ID = uuid_from("coder-rows", "admin")
FILE_ID = uuid_from("coder-rows", "file")
CREATED = datetime(2020, 1, 1, tzinfo=UTC)


@dataclass
class Deployment:
    users: dict[str, tuple[str, str]]  # id -> (username, avatar_url)
    templates: dict[
        str, tuple[str, list[tuple[str, str, str]]]
    ]  # id -> (name, [(slug, display, icon)])
    workspaces: dict[str, tuple[str, str, str, str]]  # id -> (owner, template, name, agent id)
    organization: str = "coder"


@dataclass
class Written:
    rows: dict[str, int] = field(default_factory=dict)


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


def _uuid(text: str, *scope: object) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return uuid_from("coder-rows", *scope, text)


def version_id(template_id: str) -> str:
    return uuid_from("coder-rows", "version", template_id)


def write_deployment(conn: psycopg.Connection[Any], dep: Deployment) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO organizations (id, name, description, created_at, updated_at,"
            " is_default, display_name) VALUES (%s, %s, '', %s, %s, true, 'Coder')",
            (ORG_ID, dep.organization, CREATED, CREATED),
        )
        users = [(ADMIN_ID, "admin", "")] + [(i, n, a) for i, (n, a) in dep.users.items()]
        cur.executemany(
            "INSERT INTO users (id, email, username, hashed_password, created_at, updated_at,"
            " status, login_type, avatar_url) VALUES (%s, %s || '@example.com', %s, '', %s, %s,"
            " 'active', 'password', %s)",
            [(i, n, n, CREATED, CREATED, a) for i, n, a in users],
        )
        for tid, (name, _apps) in dep.templates.items():
            job = uuid_from("coder-rows", "version-job", tid)
            _job(cur, job, "template_version_import")
            cur.execute(
                "INSERT INTO templates (id, created_at, updated_at, organization_id, name,"
                " provisioner, active_version_id, created_by, display_name) VALUES"
                " (%s, %s, %s, %s, %s, 'terraform', %s, %s, %s)",
                (tid, CREATED, CREATED, ORG_ID, name, version_id(tid), ADMIN_ID, name),
            )
            cur.execute(
                "INSERT INTO template_versions (id, template_id, organization_id, created_at,"
                " updated_at, name, readme, job_id, created_by) VALUES"
                " (%s, %s, %s, %s, %s, 'v1', '', %s, %s)",
                (version_id(tid), tid, ORG_ID, CREATED, CREATED, job, ADMIN_ID),
            )
        for wid, (owner, tid, name, agent) in dep.workspaces.items():
            cur.execute(
                "INSERT INTO workspaces (id, created_at, updated_at, owner_id, organization_id,"
                " template_id, name) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (wid, CREATED, CREATED, owner, ORG_ID, tid, name),
            )
            job = uuid_from("coder-rows", "resource-job", wid)
            resource = uuid_from("coder-rows", "resource", wid)
            _job(cur, job, "workspace_build")
            cur.execute(
                "INSERT INTO workspace_resources (id, created_at, job_id, transition, type, name)"
                " VALUES (%s, %s, %s, 'start', 'docker_container', 'dev')",
                (resource, CREATED, job),
            )
            cur.execute(
                "INSERT INTO workspace_agents (id, created_at, updated_at, name, resource_id,"
                " auth_token, architecture, operating_system) VALUES"
                " (%s, %s, %s, 'main', %s, %s, 'amd64', 'linux')",
                (agent, CREATED, CREATED, resource, uuid_from("coder-rows", "token", wid)),
            )
            cur.executemany(
                "INSERT INTO workspace_apps (id, created_at, agent_id, display_name, icon, slug)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (uuid_from("coder-rows", "app", agent, slug), CREATED, agent, d, icon, slug)
                    for slug, d, icon in dep.templates[tid][1]
                ],
            )


def _job(cur: psycopg.Cursor[Any], job: str, kind: str, at: datetime = CREATED) -> None:
    cur.execute(
        "INSERT INTO provisioner_jobs (id, created_at, updated_at, started_at, completed_at,"
        " organization_id, initiator_id, provisioner, storage_method, type, input, file_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, 'terraform', 'file', %s, '{}', %s)",
        (job, at, at, at, at, ORG_ID, ADMIN_ID, kind, FILE_ID),
    )


def write_events(
    conn: psycopg.Connection[Any], events: Mapping[str, Iterable[dict[str, Any]]]
) -> dict[str, int]:
    """Coder's rows for ``events`` (by topic kind); returns rows written per table."""
    latency = {(e["agent_id"], e["time"]): e["latency_ms"] for e in events.get("latency", [])}
    agent_rows = []
    for e in events.get("sessions", []):
        s = e["sessions"]
        ms = latency.get((e["agent_id"], e["time"]), -1)
        agent_rows.append(
            (
                _uuid(e["id"], "stat"),
                _ts(e["time"]),
                e["user_id"],
                e["agent_id"],
                e["workspace_id"],
                e["template_id"],
                e["connection_count"],
                ms,
                s.get("vscode", 0),
                s.get("jetbrains", 0),
                s.get("reconnecting_pty", 0),
                s.get("ssh", 0),
            )
        )
    apps: dict[tuple[str, str, str], list[Any]] = {}
    for e in events.get("app_usage", []):
        key = (e["user_id"], e["agent_id"], e["session_id"])
        started, ended = _ts(e["started_at"]), _ts(e["ended_at"])
        row = apps.get(key)
        if row is None:
            apps[key] = [
                e["user_id"],
                e["workspace_id"],
                e["agent_id"],
                e["access_method"],
                e["slug_or_port"],
                e["session_id"],
                started,
                ended,
                e.get("requests") or 0,
            ]
        else:  # Coder's upsert: the session goes on
            row[6] = min(row[6], started)
            row[7] = max(row[7], ended)
            row[8] = max(row[8], e.get("requests") or 0)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY workspace_agent_stats (id, created_at, user_id, agent_id, workspace_id,"
            " template_id, connection_count, connection_median_latency_ms, session_count_vscode,"
            " session_count_jetbrains, session_count_reconnecting_pty, session_count_ssh)"
            " FROM STDIN"
        ) as copy:
            for r in agent_rows:
                copy.write_row(r)
        with cur.copy(
            "COPY workspace_app_stats (user_id, workspace_id, agent_id, access_method,"
            " slug_or_port, session_id, session_started_at, session_ended_at, requests)"
            " FROM STDIN"
        ) as copy:
            for r in apps.values():
                copy.write_row(r)
        builds = list(events.get("builds", []))
        defined: set[str] = set()
        cur.execute("SELECT DISTINCT template_version_id FROM template_version_parameters")
        defined.update(str(r[0]) for r in cur.fetchall())
        for e in builds:
            write_build(cur, e, define=version_id(e["template_id"]) not in defined)
            defined.add(version_id(e["template_id"]))
    return {
        "workspace_agent_stats": len(agent_rows),
        "workspace_app_stats": len(apps),
        "workspace_builds": len(builds),
    }


def write_build(cur: psycopg.Cursor[Any], e: dict[str, Any], *, define: bool = False) -> str:
    build = _uuid(e["id"], "build")
    at = _ts(e["time"])
    job = uuid_from("coder-rows", "build-job", build)
    version = version_id(e["template_id"])
    _job(cur, job, "workspace_build", at)
    cur.execute(
        "INSERT INTO workspace_builds (id, created_at, updated_at, workspace_id,"
        " template_version_id, build_number, transition, initiator_id, job_id) VALUES"
        " (%s, %s, %s, %s, %s, %s, 'start', %s, %s)",
        (build, at, at, e["workspace_id"], version, e["build_number"], e["user_id"], job),
    )
    cur.executemany(
        "INSERT INTO workspace_build_parameters (workspace_build_id, name, value)"
        " VALUES (%s, %s, %s)",
        [(build, p["name"], p["value"]) for p in e["parameters"]],
    )
    if define:
        cur.executemany(
            "INSERT INTO template_version_parameters (template_version_id, name, description,"
            " type, mutable, default_value, icon, options, validation_regex, required,"
            " display_name, display_order) VALUES (%s, %s, %s, %s, true, %s, '', %s, '',"
            " false, %s, %s)",
            [
                (
                    version,
                    p["name"],
                    p.get("description") or "",
                    p["type"],
                    (p.get("options") or [{"value": ""}])[0]["value"],
                    Jsonb(p.get("options") or []),
                    p.get("display_name") or "",
                    order,
                )
                for order, p in enumerate(e["parameters"])
            ],
        )
    return build
