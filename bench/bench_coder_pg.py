"""Coder's own PostgreSQL insights queries against this service, on the same generated data.

The baseline users would otherwise run: Coder computes its insights in PostgreSQL, from the
raw agent and app stats its agents report, through a ``template_usage_stats`` rollup that
``UpsertTemplateUsageStats`` refreshes every five minutes.  In one run, on one generated
deployment (``bench_api``'s generator: ``--users`` users in 5 templates across 8 time zones,
``--days`` days plus 2 days before the windows), the script

1. loads the events into a throw-away Redis (``insights.devstack.start_redis``) through
   ``RollupStore.apply(plan_batch(...))`` as bench_api does, and serves them with the real
   ``api.app.create_app`` in-process with a fixed clock;
2. starts its own PostgreSQL on 127.0.0.1 (the server binaries of the ``pgserver`` wheel, a
   dev dependency, else ``--pg-bin`` / ``pg_config`` / Debian's ``/usr/lib/postgresql``; as
   ``nobody`` when run as root, since PostgreSQL refuses root), creates Coder's schema for
   the tables the insights queries read (``coder_pg_schema``: coder/coder
   ``coderd/database/dump.sql`` at commit 94187117111b52f0c10a165d03c5db97f537b01a) and
   writes the same events the way Coder records them: one ``workspace_agent_stats`` row per
   session report (session_count_vscode/jetbrains/reconnecting_pty/ssh, connection_count,
   and connection_median_latency_ms where a latency sample fell in that minute, else -1,
   Coder's "not measured"), one ``workspace_app_stats`` row per app session, and per build
   its provisioner job, ``workspace_builds`` row, ``workspace_build_parameters``, resource,
   agent and template apps (so the joins of GetTemplateAppInsights cost what they cost);
   keys and indexes of dump.sql are built after the bulk COPY;
3. runs Coder's ``UpsertTemplateUsageStats`` once over the whole history (the first run of
   Coder's rollup on an empty table), then times one 5-minute step: the same statement at
   5 minutes into the busiest half-hour of the last weekday, in a transaction rolled back
   afterwards (rows after that half-hour deleted first, ``NOW()`` pinned by a shadowing
   function: ``coder_pg_queries.CLOCK_SCHEMA``);
4. times each endpoint both ways: ours over HTTP (keep-alive, as bench_api), Coder's as the
   sum of the queries its handler runs (``coder_pg_queries``: coder/coder
   ``coderd/database/queries/insights.sql``, the 2024-2025 template_usage_stats version with
   ``times_used``; the search index served it as stored file 1630782879 without a commit id,
   and named commit f3bc0673c68d72d062342d6d721090b155571dd6 for the path, an earlier 2024
   version: details in that module), through psycopg without server-side prepared statements
   (like lib/pq), results fetched.  Templates = GetTemplateInsights + GetTemplateAppInsights
   + GetTemplateParameterInsights + GetTemplateInsightsByInterval (interval=day);
   user-activity = GetUserActivityInsights; user-latency = GetUserLatencyInsights.  Coder
   issues the four templates queries concurrently; on 2 cores their sum is the database's
   CPU and the wall time lies between the slowest one and the sum;
5. prints the timings with the ratio PG / ours, the rollup's cost, and a cross-check of the
   two sides' numbers, naming the differences insights-api.md section 13 intends.

Each timing loop has a budget (``--case-budget-s``; at least 3 timed runs) and every SQL
statement a timeout (``--pg-statement-timeout``).  Both servers are stopped at the end.
Not compared: ``/daus`` (Coder answers it from other queries).  Coder's agents report
every 30 s; the generated data has one report per minute on both sides (the same minute
sets), which halves Coder's raw rows in its favour.

    .venv/bin/python bench/bench_coder_pg.py [--users 300] [--days 30] [--requests 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import aiohttp
import coder_pg_queries as cq
import coder_pg_schema
import orjson
from aiohttp import web
from bench_api import (
    CHUNK,
    CLOCK,
    END,
    END_DAY,
    KIND_NAMES,
    TOKEN,
    Case,
    Timing,
    fetch,
    make_batch,
    make_users,
    serve,
    time_calls,
)
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aggregators.model import AppUsageEvent, BuildEvent, Event, LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore
from aggregators.timebase import US_PER_DAY, US_PER_MIN, US_PER_S
from api.app import create_app, redis_client
from insights.devstack import ManagedProcess, free_port, start_redis
from insights.settings import Settings
from streams.simulation import APPS, TEMPLATES, User, Workspace, build_parameters
from streams.workloads import counter_uuid

try:
    import psycopg
    from psycopg.rows import dict_row
    from psycopg.types.json import Jsonb
except ImportError:  # pragma: no cover - a machine set up without the dev extra
    sys.exit(
        "bench_coder_pg needs psycopg: run `make install` (the dev extra of pyproject.toml "
        "installs psycopg[binary] and pgserver) or `.venv/bin/pip install 'psycopg[binary]'`"
    )

MARGIN_DAYS = 2  # data before the longest window, as in bench_api
PG_DB = "coder"
PG_USER = "postgres"
# PostgreSQL for this machine (2 cores, 24 GiB).  Durability is off: it only speeds the bulk
# load, never a read.  JIT off: pgserver's build has none, so every binary behaves alike.
PG_SETTINGS = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "effective_cache_size": "8GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "jit": "off",
    "timezone": "UTC",
    "log_min_messages": "warning",
}

# Fixed ids of what the generated events do not name (counter_uuid tags 0x100+ never clash
# with bench_api's tags 1-5).
ORG_ID = counter_uuid(0x100, 0, 1)
ADMIN_ID = counter_uuid(0x100, 0, 2)
FILE_ID = counter_uuid(0x100, 0, 3)
JOB_TAG, RESOURCE_TAG, AGENT_TAG, TOKEN_TAG, APP_TAG = 0x101, 0x102, 0x103, 0x104, 0x105
RENAMED_TAG = 0x106


def version_id(template_index: int) -> str:
    return counter_uuid(0x100, 1, template_index)


def version_job_id(template_index: int) -> str:
    return counter_uuid(0x100, 2, template_index)


# -- PostgreSQL, started and stopped here --------------------------------------------------------


def locate_pg_bin(explicit: str | None) -> tuple[Path, str]:
    """The directory of ``initdb`` and ``postgres``, and where it came from."""

    def ok(path: Path) -> bool:
        return (path / "initdb").is_file() and (path / "postgres").is_file()

    if explicit:
        path = Path(explicit)
        if not ok(path):
            sys.exit(f"--pg-bin {explicit}: no initdb and postgres there")
        return path, "--pg-bin"
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "pginstall" / "bin"
        if ok(path):
            return path, "pgserver wheel"
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        path = Path(out.stdout.strip())
        if out.returncode == 0 and ok(path):
            return path, "pg_config --bindir"
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if ok(Path(found)):
            return Path(found), "Debian postgresql package"
    sys.exit(
        "bench_coder_pg needs PostgreSQL server binaries (initdb, postgres) and found none.\n"
        "  `make install` installs the pgserver wheel (PostgreSQL 16, no root needed) from the\n"
        "  dev extra of pyproject.toml; or `apt-get install postgresql`; or pass --pg-bin DIR."
    )


class PgServer:
    """A throw-away PostgreSQL cluster on 127.0.0.1, stopped by :meth:`stop` (by PID)."""

    def __init__(self, bindir: Path, workdir: Path, port: int, proc: subprocess.Popen[bytes]):
        self.bindir = bindir
        self.workdir = workdir
        self.port = port
        self.proc = proc
        self.log_path = workdir / "postgres.log"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def conninfo(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={PG_USER} dbname={dbname}"

    def log_tail(self, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-size:]
        return "<no log>"

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster), SIGKILL after 30 s; remove the cluster."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGINT)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


def start_postgres(bindir: Path) -> PgServer:
    """initdb a cluster in a fresh temp dir and start ``postgres`` on a free 127.0.0.1 port."""
    as_user: str | None = None
    workdir = Path(tempfile.mkdtemp(prefix="insights-coder-pg-"))
    try:
        data = workdir / "data"
        data.mkdir()
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            as_user = "nobody"
            try:
                account = pwd.getpwnam(as_user)
            except KeyError:
                sys.exit("running as root, and there is no user 'nobody' to run PostgreSQL as")
            for path in (workdir, data):
                os.chown(path, account.pw_uid, account.pw_gid)
            workdir.chmod(0o755)
        initdb = [str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "-A", "trust"]
        initdb += ["-E", "UTF8", "--locale=C", "--no-sync"]
        init = subprocess.run(
            initdb,
            capture_output=True,
            text=True,
            cwd=workdir,
            user=as_user,
            timeout=120,
            check=False,
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
        for _attempt in range(3):  # free_port() can race with another process
            port = free_port()
            argv = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1"]
            argv += ["-p", str(port), "-k", ""]
            for key, value in PG_SETTINGS.items():
                argv += ["-c", f"{key}={value}"]
            with open(workdir / "postgres.log", "ab") as log_file:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=workdir,
                    user=as_user,
                    start_new_session=True,  # a Ctrl-C reaches the bench, which stops it
                )
            server = PgServer(bindir, workdir, port, proc)
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    psycopg.connect(server.conninfo("postgres"), connect_timeout=2).close()
                    return server
                except psycopg.OperationalError:
                    time.sleep(0.1)
            if proc.poll() is None:
                server.stop()
                raise RuntimeError(
                    f"postgres did not accept connections in 30 s:\n{server.log_tail()}"
                )
        raise RuntimeError(
            f"postgres exited at start-up:\n{(workdir / 'postgres.log').read_text()}"
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# -- Coder's rows for the generated events ------------------------------------------------------

_DAY_TEXT: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ts(time_us: int) -> str:
    """COPY text of a timestamptz (UTC), exact to the microsecond."""
    day, rest = divmod(time_us, US_PER_DAY)
    date = _DAY_TEXT.get(day)
    if date is None:
        date = _DAY_TEXT[day] = (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")
    seconds, micros = divmod(rest, US_PER_S)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    frac = f".{micros:06d}" if micros else ""
    return f"{date} {hours:02d}:{minutes:02d}:{seconds:02d}{frac}+00"


def esc(text: str) -> str:
    """Escape a string for COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


# Columns of the COPY files written while generating, in load order.
COPY_COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(columns.split())
    for table, columns in (
        (
            "workspace_agent_stats",
            "id created_at user_id agent_id workspace_id template_id connection_count"
            " connection_median_latency_ms session_count_vscode session_count_jetbrains"
            " session_count_reconnecting_pty session_count_ssh",
        ),
        (
            "workspace_app_stats",
            "user_id workspace_id agent_id access_method slug_or_port session_id"
            " session_started_at session_ended_at requests",
        ),
        (
            "provisioner_jobs",
            "id created_at updated_at started_at completed_at organization_id initiator_id"
            " provisioner storage_method type input file_id",
        ),
        (
            "workspace_builds",
            "id created_at updated_at workspace_id template_version_id build_number"
            " transition initiator_id job_id",
        ),
        ("workspace_build_parameters", "workspace_build_id name value"),
        ("workspace_resources", "id created_at job_id transition type name"),
        (
            "workspace_agents",
            "id created_at updated_at name resource_id auth_token architecture operating_system",
        ),
        ("workspace_apps", "id created_at agent_id display_name icon slug"),
    )
}


class CoderRows:
    """Writes generated events as COPY text of Coder's tables, one file per table."""

    def __init__(self, users: list[User], first_day: int, directory: Path) -> None:
        self.first_day = first_day
        self.workspaces: dict[str, tuple[User, Workspace]] = {}
        for u in users:
            for ws in (u.main, u.second):
                if ws is not None:
                    self.workspaces[ws.workspace_id] = (u, ws)
        self.built: set[str] = set()  # workspaces whose first build was written
        self.paths = {table: directory / f"{table}.copy" for table in COPY_COLUMNS}
        self.files: dict[str, IO[str]] = {t: open(p, "w") for t, p in self.paths.items()}  # noqa: SIM115
        self.rows: Counter[str] = Counter()

    def close(self) -> None:
        for f in self.files.values():
            f.close()

    def write(self, events: list[Event], local_day: int) -> None:
        # Latency samples land in the agent report of the same agent and minute (Coder's
        # connection_median_latency_ms); reports without one say -1, "not measured".
        latency = {
            (e.agent_id, e.time_us // US_PER_MIN): e.latency_ms
            for e in events
            if isinstance(e, LatencyEvent)
        }
        agent_rows: list[str] = []
        app_rows: list[str] = []
        for e in events:
            if isinstance(e, SessionEvent):
                ms = latency.get((e.agent_id, e.time_us // US_PER_MIN))
                m = e.kinds_mask  # bits: vscode, jetbrains, reconnecting_pty, ssh, sftp
                agent_rows.append(
                    f"{e.id}\t{ts(e.time_us)}\t{e.user_id}\t{e.agent_id}\t{e.workspace_id}\t"
                    f"{e.template_id}\t{e.connection_count}\t{-1 if ms is None else ms!r}\t"
                    f"{m & 1}\t{m >> 1 & 1}\t{m >> 2 & 1}\t{m >> 3 & 1}\n"
                )
            elif isinstance(e, AppUsageEvent):
                app_rows.append(
                    f"{e.user_id}\t{e.workspace_id}\t{e.agent_id}\t{e.access_method}\t"
                    f"{esc(e.slug_or_port)}\t{e.session_id}\t{ts(e.started_us)}\t"
                    f"{ts(e.ended_us)}\t{e.requests}\n"
                )
            elif isinstance(e, BuildEvent):
                self._build(e, local_day)
        self.files["workspace_agent_stats"].writelines(agent_rows)
        self.files["workspace_app_stats"].writelines(app_rows)
        self.rows["workspace_agent_stats"] += len(agent_rows)
        self.rows["workspace_app_stats"] += len(app_rows)

    def _build(self, e: BuildEvent, local_day: int) -> None:
        """A start build: its provisioner job, parameters, and the resource, agent and apps it
        creates.  The first build's agent has the id the events carry."""
        u, ws = self.workspaces[e.workspace_id]
        n = local_day * 8 + ws.template_index
        at = ts(e.time_us)
        done = ts(e.time_us + 45 * US_PER_S)
        job = counter_uuid(JOB_TAG, u.index, n)
        resource = counter_uuid(RESOURCE_TAG, u.index, n)
        agent = (
            ws.agent_id
            if ws.workspace_id not in self.built
            else counter_uuid(AGENT_TAG, u.index, n)
        )
        self.built.add(ws.workspace_id)
        f, rows = self.files, self.rows
        f["provisioner_jobs"].write(
            f"{job}\t{at}\t{done}\t{at}\t{done}\t{ORG_ID}\t{e.user_id}\tterraform\tfile\t"
            f"workspace_build\t{{}}\t{FILE_ID}\n"
        )
        f["workspace_builds"].write(
            f"{e.id}\t{at}\t{done}\t{e.workspace_id}\t{version_id(ws.template_index)}\t"
            f"{e.build_number}\tstart\t{e.user_id}\t{job}\n"
        )
        f["workspace_build_parameters"].writelines(
            f"{e.id}\t{esc(p.name)}\t{esc(p.value)}\n" for p in e.parameters
        )
        f["workspace_resources"].write(f"{resource}\t{at}\t{job}\tstart\tdocker_container\tdev\n")
        f["workspace_agents"].write(
            f"{agent}\t{at}\t{done}\tmain\t{resource}\t{counter_uuid(TOKEN_TAG, u.index, n)}\t"
            "amd64\tlinux\n"
        )
        for k, slug in enumerate(ws.template.apps):
            app = APPS[slug]
            f["workspace_apps"].write(
                f"{counter_uuid(APP_TAG, u.index, n * 16 + k)}\t{at}\t{agent}\t"
                f"{esc(app.display_name)}\t{esc(app.icon)}\t{esc(slug)}\n"
            )
        rows["provisioner_jobs"] += 1
        rows["workspace_builds"] += 1
        rows["workspace_build_parameters"] += len(e.parameters)
        rows["workspace_resources"] += 1
        rows["workspace_agents"] += 1
        rows["workspace_apps"] += len(ws.template.apps)


def create_schema(conn: psycopg.Connection[Any], users: list[User], created: datetime) -> None:
    """Coder's types and tables, the bench clock, and the rows no event names: the
    organization, users, templates with one version each and its parameters, workspaces."""
    conn.execute(coder_pg_schema.TYPES)
    conn.execute(coder_pg_schema.TABLES)
    conn.execute(cq.CLOCK_SCHEMA)
    at = {"at": created, "org": ORG_ID, "admin": ADMIN_ID, "file": FILE_ID}
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO organizations (id, name, description, created_at, updated_at,"
            " is_default, display_name) VALUES (%(org)s, 'coder', '', %(at)s, %(at)s, true,"
            " 'Coder')",
            at,
        )
        cur.executemany(
            "INSERT INTO users (id, email, username, hashed_password, created_at, updated_at,"
            " status, login_type, avatar_url) VALUES (%(id)s, %(name)s || '@example.com',"
            " %(name)s, '', %(at)s, %(at)s, 'active', 'password', %(avatar)s)",
            [at | {"id": ADMIN_ID, "name": "admin", "avatar": ""}]
            + [at | {"id": u.user_id, "name": u.username, "avatar": u.avatar_url} for u in users],
        )
        for i, t in enumerate(TEMPLATES):
            ids = at | {"tpl": t.template_id, "name": t.name}
            ids |= {"version": version_id(i), "job": version_job_id(i)}
            cur.execute(
                "INSERT INTO provisioner_jobs (id, created_at, updated_at, started_at,"
                " completed_at, organization_id, initiator_id, provisioner, storage_method,"
                " type, input, file_id) VALUES (%(job)s, %(at)s, %(at)s, %(at)s, %(at)s,"
                " %(org)s, %(admin)s, 'terraform', 'file', 'template_version_import', '{}',"
                " %(file)s)",
                ids,
            )
            cur.execute(
                "INSERT INTO templates (id, created_at, updated_at, organization_id, name,"
                " provisioner, active_version_id, created_by, display_name) VALUES (%(tpl)s,"
                " %(at)s, %(at)s, %(org)s, %(name)s, 'terraform', %(version)s, %(admin)s,"
                " %(name)s)",
                ids,
            )
            cur.execute(
                "INSERT INTO template_versions (id, template_id, organization_id, created_at,"
                " updated_at, name, readme, job_id, created_by) VALUES (%(version)s, %(tpl)s,"
                " %(org)s, %(at)s, %(at)s, 'v1', '', %(job)s, %(admin)s)",
                ids,
            )
            cur.executemany(
                "INSERT INTO template_version_parameters (template_version_id, name,"
                " description, type, mutable, default_value, icon, options, validation_regex,"
                " required, display_name, display_order) VALUES (%(version)s, %(name)s,"
                " %(description)s, %(type)s, true, %(default)s, '', %(options)s, '', false,"
                " %(display_name)s, %(order)s)",
                [
                    {
                        "version": version_id(i),
                        "name": p.name,
                        "description": p.description,
                        "type": p.type,
                        "default": p.options[0].value if p.options else "",
                        "options": Jsonb([o._asdict() for o in p.options]),
                        "display_name": p.display_name,
                        "order": order,
                    }
                    for order, p in enumerate(build_parameters(t, "", "", "", "", ""))
                ],
            )
        cur.executemany(
            "INSERT INTO workspaces (id, created_at, updated_at, owner_id, organization_id,"
            " template_id, name) VALUES (%(id)s, %(at)s, %(at)s, %(owner)s, %(org)s, %(tpl)s,"
            " %(name)s)",
            [
                at
                | {"id": ws.workspace_id, "owner": u.user_id}
                | {"tpl": ws.template.template_id, "name": ws.template.name}
                for u in users
                for ws in (u.main, u.second)
                if ws is not None
            ],
        )


# -- generation: the same events into Redis and into Coder's rows --------------------------------


@dataclass
class LoadStats:
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    seconds: float = 0.0
    generate_s: float = 0.0  # bench_api.make_batch
    plan_s: float = 0.0  # plan_batch
    apply_s: float = 0.0  # RollupStore.apply, summed over batches (overlaps the rest)
    coder_rows_s: float = 0.0  # COPY text of Coder's rows
    renamed_sessions: int = 0  # app sessions given fresh ids (see prepare)

    @property
    def events(self) -> int:
        return sum(self.counts)


async def load(
    users: list[User], first_day: int, redis_url: str, rows: CoderRows, args: argparse.Namespace
) -> LoadStats:
    """Generate each (local day, chunk of users) batch once; apply it to Redis while the next
    batch is generated, and append its Coder rows to the COPY files."""
    stats = LoadStats()
    chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
    specs = [(d, c) for d in range(first_day, END_DAY + 1) for c in range(len(chunks))]

    renamed = [0]

    def prepare(day: int, c: int) -> tuple[list[int], Any]:
        t0 = time.perf_counter()
        batch = make_batch(chunks[c], day, c, args.seed, args.latency_every)
        events = batch.events
        sessions: set[str] = set()
        for i, e in enumerate(events):
            if isinstance(e, BuildEvent):  # build numbers count from the first data day
                events[i] = e._replace(build_number=day - first_day + 1)
            elif isinstance(e, AppUsageEvent):
                if e.session_id in sessions:
                    # Two app sessions of a user starting in the same minute get the same ids
                    # from bench_api's counter_uuid; Coder's table keeps one row per
                    # (user, agent, session).  They are two sessions: give the later one its
                    # own ids, on both sides.
                    renamed[0] += 1
                    fresh = counter_uuid(RENAMED_TAG, 0, renamed[0])
                    events[i] = e = e._replace(id=fresh, session_id=fresh)
                sessions.add(e.session_id)
        t1 = time.perf_counter()
        plan = plan_batch(events)
        t2 = time.perf_counter()
        rows.write(events, day)
        t3 = time.perf_counter()
        stats.generate_s += t1 - t0
        stats.plan_s += t2 - t1
        stats.coder_rows_s += t3 - t2
        return batch.counts, plan

    redis = Redis.from_url(redis_url)
    store = RollupStore(redis)

    async def apply(plan: Any) -> None:
        t0 = time.perf_counter()
        await store.apply(plan)
        stats.apply_s += time.perf_counter() - t0

    columns = (
        TextColumn("[bold]generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[events]:>11,} events"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    pending: asyncio.Task[None] | None = None
    try:
        await redis.flushdb()
        with Progress(*columns) as progress:
            task = progress.add_task("load", total=len(specs), events=0)
            for day, c in specs:
                counts, plan = await asyncio.to_thread(prepare, day, c)
                if pending is not None:
                    await pending
                pending = asyncio.create_task(apply(plan))
                for i, n in enumerate(counts):
                    stats.counts[i] += n
                progress.update(task, advance=1, events=stats.events)
            if pending is not None:
                await pending
    finally:
        await redis.aclose()
    stats.seconds = time.perf_counter() - started
    stats.renamed_sessions = renamed[0]
    return stats


# -- PostgreSQL: bulk load, keys and indexes, the rollup ----------------------------------------


@dataclass
class PgLoad:
    copy_s: float
    ddl_s: float
    analyze_s: float
    rows: Counter[str]
    backfill_s: float = 0.0
    backfill_rows: int = 0
    step_at: datetime | None = None
    step: Timing = field(default_factory=lambda: Timing("step"))
    step_rows: int = 0
    tus_rows: int = 0
    db_bytes: int = 0


def copy_files(conn: psycopg.Connection[Any], rows: CoderRows) -> float:
    t0 = time.perf_counter()
    with conn.cursor() as cur:
        for table, path in rows.paths.items():
            cols = ", ".join(COPY_COLUMNS[table])
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy, open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
            path.unlink()
    return time.perf_counter() - t0


def upsert_usage_stats(
    conn: psycopg.Connection[Any], now: datetime, keep_after: datetime | None = None
) -> tuple[float, int]:
    """One run of Coder's UpsertTemplateUsageStats with NOW() = ``now``; (seconds, rows).

    With ``keep_after`` the run is a rehearsal: rows of later half-hours are deleted first
    (so MAX(start_time) is ``keep_after``, as in Coder's steady state) and the transaction
    is rolled back, leaving the table as it was."""
    with conn.transaction(force_rollback=keep_after is not None):
        if keep_after is not None:
            conn.execute(
                "DELETE FROM template_usage_stats WHERE start_time > %(t)s", {"t": keep_after}
            )
        conn.execute(cq.SET_CLOCK, {"now": now.isoformat()})
        t0 = time.perf_counter()
        cur = conn.execute(cq.UPSERT_TEMPLATE_USAGE_STATS)
        return time.perf_counter() - t0, cur.rowcount


def busiest_half_hour(conn: psycopg.Connection[Any], days: int) -> datetime:
    """The half-hour with most (template, user) rows on the last weekday of the data."""
    last_friday = END - timedelta(days=3)  # END is a Monday 00:00 UTC
    lo = last_friday if days >= 3 else END - timedelta(days=days)
    row = conn.execute(
        "SELECT start_time FROM template_usage_stats"
        " WHERE start_time >= %(lo)s AND start_time < %(hi)s"
        " GROUP BY start_time ORDER BY count(*) DESC, start_time LIMIT 1",
        {"lo": lo, "hi": lo + timedelta(days=1)},
    ).fetchone()
    if row is None:
        return END - timedelta(hours=12)
    start: datetime = row[0]
    return start


def load_postgres(
    conn: psycopg.Connection[Any], rows: CoderRows, args: argparse.Namespace, console: Console
) -> PgLoad:
    copy_s = copy_files(conn, rows)
    t0 = time.perf_counter()
    conn.execute(coder_pg_schema.CONSTRAINTS)
    ddl_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    conn.execute("VACUUM ANALYZE")
    result = PgLoad(copy_s, ddl_s, time.perf_counter() - t0, rows.rows)
    console.print(
        f"postgres: COPY of {sum(rows.rows.values()):,} raw rows in {copy_s:.1f} s, dump.sql's "
        f"keys, indexes and foreign keys in {ddl_s:.1f} s, VACUUM ANALYZE {result.analyze_s:.1f} s"
    )

    # Coder's rollup, first run on an empty template_usage_stats: the whole history.
    result.backfill_s, result.backfill_rows = upsert_usage_stats(conn, CLOCK)
    conn.execute("VACUUM ANALYZE template_usage_stats")
    count = conn.execute("SELECT count(*) FROM template_usage_stats").fetchone()
    result.tus_rows = int(count[0]) if count else 0

    # One 5-minute step in the steady state, 5 minutes into the busiest half-hour.
    half_hour = busiest_half_hour(conn, args.days)
    result.step_at = half_hour + timedelta(minutes=5)
    started = time.perf_counter()
    for i in range(args.step_repeats):
        if i >= 3 and time.perf_counter() - started > args.case_budget_s:
            break
        seconds, result.step_rows = upsert_usage_stats(conn, result.step_at, half_hour)
        result.step.seconds.append(seconds)
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    result.db_bytes = int(size[0]) if size else 0
    return result


# -- the requests, both ways -------------------------------------------------------------------

QUERIES: dict[str, str] = {
    "GetTemplateInsights": cq.GET_TEMPLATE_INSIGHTS,
    "GetTemplateAppInsights": cq.GET_TEMPLATE_APP_INSIGHTS,
    "GetTemplateParameterInsights": cq.GET_TEMPLATE_PARAMETER_INSIGHTS,
    "GetTemplateInsightsByInterval": cq.GET_TEMPLATE_INSIGHTS_BY_INTERVAL,
    "GetUserActivityInsights": cq.GET_USER_ACTIVITY_INSIGHTS,
    "GetUserLatencyInsights": cq.GET_USER_LATENCY_INSIGHTS,
}
TEMPLATES_QUERIES = tuple(list(QUERIES)[:4])


@dataclass(frozen=True)
class Window:
    label: str  # "30d all", "7d docker"
    start: datetime
    end: datetime
    template_ids: tuple[str, ...]

    def http(self) -> tuple[tuple[str, str], ...]:
        times: tuple[tuple[str, str], ...] = (
            ("start_time", self.start.strftime("%Y-%m-%dT%H:%M:%SZ")),
            ("end_time", self.end.strftime("%Y-%m-%dT%H:%M:%SZ")),
        )
        if self.template_ids:
            times += (("template_ids", ",".join(self.template_ids)),)
        return times

    def params(self) -> dict[str, Any]:
        return {
            "start_time": self.start,
            "end_time": self.end,
            "template_ids": [uuid.UUID(t) for t in self.template_ids],
            "interval_days": 1,
        }


@dataclass(frozen=True)
class Pair:
    """One request: ours over HTTP, Coder's as the queries its handler runs."""

    endpoint: str  # "templates", "user-activity", "user-latency"
    window: Window
    queries: tuple[str, ...]

    @property
    def name(self) -> str:
        interval = ", interval=day" if self.endpoint == "templates" else ""
        return f"{self.endpoint} {self.window.label}{interval}"

    def case(self) -> Case:
        query = self.window.http()
        if self.endpoint == "templates":
            query += (("interval", "day"),)
        return Case(self.name, f"/api/v2/insights/{self.endpoint}", query)


def windows(days: int) -> list[Window]:
    one = TEMPLATES[0]
    short = min(7, days)
    return [
        Window(f"{short}d {one.name}", END - timedelta(days=short), END, (one.template_id,)),
        Window(f"{days}d all", END - timedelta(days=days), END, ()),
    ]


def pairs(days: int) -> list[Pair]:
    out = []
    for endpoint, queries in (
        ("templates", TEMPLATES_QUERIES),
        ("user-activity", ("GetUserActivityInsights",)),
        ("user-latency", ("GetUserLatencyInsights",)),
    ):
        out += [Pair(endpoint, w, queries) for w in windows(days)]
    return out


@dataclass
class PgTiming:
    total: Timing
    per_query: dict[str, Timing]
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def time_pg(conn: psycopg.Connection[Any], pair: Pair, args: argparse.Namespace) -> PgTiming:
    """Like bench_api.time_calls for the queries of one request, run one after the other:
    warm-ups (fewer if they eat half the budget), then up to ``--requests`` timed runs,
    stopping after at least 3 once ``--case-budget-s`` is spent; an error ends the case."""
    timing = PgTiming(Timing(pair.name), {q: Timing(q) for q in pair.queries})
    params = pair.window.params()
    started = time.perf_counter()
    warmups = 0
    with conn.cursor(row_factory=dict_row) as cur:
        while True:
            spent = time.perf_counter() - started
            warm = warmups < args.warmup and (warmups == 0 or spent < args.case_budget_s / 2)
            timed = len(timing.total.seconds)
            if not warm and (timed >= args.requests or (timed >= 3 and spent > args.case_budget_s)):
                break
            total = 0.0
            try:
                for name in pair.queries:
                    t0 = time.perf_counter()
                    cur.execute(QUERIES[name], params)
                    result = cur.fetchall()
                    seconds = time.perf_counter() - t0
                    total += seconds
                    if not warm:
                        timing.per_query[name].seconds.append(seconds)
                    timing.results[name] = result
            except psycopg.Error as exc:
                timing.total.failure = f"{type(exc).__name__}: {str(exc).strip()[:120]}"
                break
            if warm:
                warmups += 1
            else:
                timing.total.seconds.append(total)
    return timing


def time_round_trip(conn: psycopg.Connection[Any], args: argparse.Namespace) -> Timing:
    timing = Timing("PostgreSQL SELECT 1 round trip")
    for i in range(args.warmup + args.requests):
        t0 = time.perf_counter()
        conn.execute("SELECT 1").fetchall()
        if i >= args.warmup:
            timing.seconds.append(time.perf_counter() - t0)
    return timing


@dataclass
class HttpResults:
    timings: dict[str, Timing]
    healthz: Timing
    redis_info: str


async def time_http(redis_url: str, todo: list[Pair], args: argparse.Namespace) -> HttpResults:
    settings = Settings(redis_url=redis_url, api_tokens=TOKEN)
    api_redis = redis_client(settings)
    runner: web.AppRunner | None = None
    try:
        info = await api_redis.info("memory")
        redis_info = f"{await api_redis.dbsize():,} keys, {info['used_memory_human']} used"
        runner, base = await serve(
            create_app(settings, store=RollupStore(api_redis), clock=lambda: CLOCK)
        )
        headers = {"Coder-Session-Token": TOKEN}
        connector = aiohttp.TCPConnector(limit=1)
        timings: dict[str, Timing] = {}
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            health = Case("GET /healthz (HTTP floor, no Redis)", "/healthz", ())
            healthz = await time_calls(health.name, lambda: fetch(session, base, health), args)
            for pair in todo:
                case = pair.case()
                call = functools.partial(fetch, session, base, case)
                timings[pair.name] = await time_calls(case.name, call, args)
        return HttpResults(timings, healthz, redis_info)
    finally:
        if runner is not None:
            await runner.cleanup()
        await api_redis.aclose()


# -- tables ----------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}" if seconds < 10 else f"{seconds * 1000:,.0f}"


def timings_table(
    todo: list[Pair],
    pg: dict[str, PgTiming],
    http: HttpResults,
    select1: Timing,
    title: str,
) -> Table:
    table = Table(title=title)
    for col in ("request", "Coder queries", "PG p50", "PG p95", "ours p50", "ours p95"):
        table.add_column(col, justify="left" if col in ("request", "Coder queries") else "right")
    table.add_column("PG/ours p50", justify="right")
    table.add_column("PG/ours p95", justify="right")
    short = {q: q.removeprefix("Get").removesuffix("Insights") or q for q in QUERIES}
    for pair in todo:
        p, o = pg[pair.name].total, http.timings[pair.name]
        queries = " + ".join(short[q] for q in pair.queries)
        cells = []
        for t in (p, o):
            if t.seconds:
                cells += [ms(t.p50), ms(t.quantile(0.95))]
            else:
                cells += ["-", "-"]
        if p.seconds and o.seconds:
            ratios = [f"{p.p50 / o.p50:.1f}x", f"{p.quantile(0.95) / o.quantile(0.95):.1f}x"]
        else:
            ratios = ["-", "-"]
        name = pair.name
        for t in (p, o):
            if t.failure:
                name += f"\n[red]{t.failure}[/]"
        table.add_row(name, queries, *cells, *ratios)
    table.add_section()
    table.add_row(
        "baselines (floors)",
        "SELECT 1 / GET /healthz",
        ms(select1.p50),
        ms(select1.quantile(0.95)),
        ms(http.healthz.p50),
        ms(http.healthz.quantile(0.95)),
        "-",
        "-",
    )
    return table


def queries_table(todo: list[Pair], pg: dict[str, PgTiming]) -> Table:
    table = Table(title="Coder's queries one by one (ms)")
    for col in ("query", "window", "n", "p50", "p95", "rows"):
        table.add_column(col, justify="left" if col in ("query", "window") else "right")
    seen: set[tuple[str, str]] = set()
    for pair in todo:
        for q in pair.queries:
            if (q, pair.window.label) in seen:
                continue
            seen.add((q, pair.window.label))
            t = pg[pair.name].per_query[q]
            rows = len(pg[pair.name].results.get(q, []))
            if t.seconds:
                stats = (str(len(t.seconds)), ms(t.p50), ms(t.quantile(0.95)), f"{rows:,}")
            else:
                stats = ("0", "-", "-", "-")
            table.add_row(q, pair.window.label, *stats)
    return table


def rollup_table(load: LoadStats, pgl: PgLoad, redis_info: str) -> Table:
    table = Table(title="Keeping the numbers current: Coder's rollup vs our write path")
    for col in ("step", "work", "seconds"):
        table.add_column(col, justify="left" if col != "seconds" else "right")
    raw = pgl.rows
    ours_s = load.plan_s + load.apply_s
    table.add_row(
        "ours: plan_batch + RollupStore.apply of every event (visible at once, no refresh)",
        f"{load.events:,} events ({load.events / ours_s:,.0f}/s); Redis {redis_info}",
        f"{ours_s:.1f}",
    )
    table.add_row(
        "Coder: bulk COPY of the raw rows (in Coder: the agents' reports, as they come)",
        f"{raw['workspace_agent_stats']:,} agent stats, {raw['workspace_app_stats']:,} app "
        f"stats, {raw['workspace_builds']:,} builds",
        f"{pgl.copy_s:.1f}",
    )
    table.add_row(
        "Coder: UpsertTemplateUsageStats, first run (empty table, whole history)",
        f"{pgl.backfill_rows:,} template_usage_stats rows written",
        f"{pgl.backfill_s:.1f}",
    )
    if pgl.step.seconds and pgl.step_at is not None:
        at = pgl.step_at.strftime("%a %Y-%m-%d %H:%M")
        table.add_row(
            f"Coder: UpsertTemplateUsageStats, one 5-minute step (NOW() = {at} UTC, busiest "
            "half-hour of the last weekday; p50 of n, rolled back)",
            f"{pgl.step_rows:,} rows upserted (n={len(pgl.step.seconds)}, "
            f"p95 {pgl.step.quantile(0.95):.2f} s)",
            f"{pgl.step.p50:.2f}",
        )
    per_day = pgl.step.p50 * 288 if pgl.step.seconds else 0.0
    table.add_row(
        "Coder: that step every 5 minutes, all day",
        "288 runs a day (busy-hour cost)",
        f"{per_day:,.0f}",
    )
    return table


# -- cross-check -------------------------------------------------------------------------------

BUILTINS = (
    ("vscode", "usage_vscode_seconds"),
    ("jetbrains", "usage_jetbrains_seconds"),
    ("reconnecting-pty", "usage_reconnecting_pty_seconds"),
    ("ssh", "usage_ssh_seconds"),
    ("sftp", "usage_sftp_seconds"),
)
YES, NO = "[green]yes[/]", "[red]NO[/]"


def _params_text(counts: dict[str, int]) -> str:
    """``value:count`` pairs; long values end-abbreviated (both sides alike)."""

    def short(value: str) -> str:
        return '""' if not value else value if len(value) <= 16 else "…" + value[-12:]

    return " ".join(f"{short(v)}:{n}" for v, n in sorted(counts.items())) or "-"


def cross_check(
    conn: psycopg.Connection[Any],
    todo: list[Pair],
    pg: dict[str, PgTiming],
    http: HttpResults,
) -> tuple[Table, list[str]]:
    """Both sides' numbers for the same windows; where they differ, whether section 13 of
    insights-api.md intends it.  Returns the table and the names of unexplained rows."""
    table = Table(title="Cross-check: Coder's queries vs ours, same data, same windows")
    for col in ("check", "window", "Coder (PG)", "ours", "agree"):
        table.add_column(col, justify="right" if col in ("Coder (PG)", "ours") else "left")
    unexplained: list[str] = []

    def body(pair: Pair) -> dict[str, Any]:
        raw = http.timings[pair.name].body
        report: dict[str, Any] = orjson.loads(raw)["report"] if raw else {}
        if raw and pair.endpoint == "templates":
            report["interval_reports"] = orjson.loads(raw).get("interval_reports", [])
        return report

    def row(
        check: str,
        w: str,
        coder: object,
        ours: object,
        intended: str = "",
        same: bool | None = None,
    ) -> None:
        same = coder == ours if same is None else same
        verdict = YES if same else (f"[yellow]intended[/]: {intended}" if intended else NO)
        if not same and not intended:
            unexplained.append(f"{check} ({w})")
        text = [f"{v:,}" if isinstance(v, int) else str(v) for v in (coder, ours)]
        table.add_row(check, w, *text, verdict)

    for pair in todo:
        w = pair.window.label
        res = pg[pair.name].results
        ours = body(pair)
        if not ours or not res:
            table.add_row(pair.name, w, "-", "-", "[red]missing result[/]")
            unexplained.append(f"{pair.name}: missing result")
            continue
        if pair.endpoint == "templates":
            ti = res["GetTemplateInsights"][0]
            row("active users", w, int(ti["active_users"]), ours["active_users"])
            apps = {a["slug"]: a for a in ours["apps_usage"] if a["type"] == "builtin"}
            for slug, column in BUILTINS:
                why = "Coder has no sftp column, always 0 (§13)" if slug == "sftp" else ""
                row(f"{slug} seconds", w, int(ti[column]), apps[slug]["seconds"], why)
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(cq.APP_SECONDS_WITH_UNION, pair.window.params())
                union = {r["slug"]: r for r in cur.fetchall()}
            coder_apps = {r["slug"]: r for r in res["GetTemplateAppInsights"]}
            our_apps = {a["slug"]: a for a in ours["apps_usage"] if a["type"] == "app"}
            for slug in sorted(set(coder_apps) | set(our_apps)):
                c, o, u = coder_apps.get(slug), our_apps.get(slug), union.get(slug)
                cv = (int(c["usage_seconds"]), int(c["times_used"])) if c else (0, 0)
                ov = (o["seconds"], o["times_used"]) if o else (0, 0)
                why = ""
                if u is not None and cv[1] == ov[1] and int(u["seconds"]) == ov[0]:
                    why = (
                        f"§13 path+subdomain merge ({int(u['both_cells']):,} half-hours); "
                        "recount of raw rows = ours"
                    )
                row(
                    f"app {slug}: seconds, uses",
                    w,
                    f"{cv[0]:,} s, {cv[1]:,}",
                    f"{ov[0]:,} s, {ov[1]:,}",
                    why,
                )
            coder_days = [
                int(r["active_users"])
                for r in sorted(res["GetTemplateInsightsByInterval"], key=lambda r: r["start_time"])
            ]
            our_days = [r["active_users"] for r in ours["interval_reports"]]
            differ = sum(a != b for a, b in zip(coder_days, our_days, strict=False))
            differ += abs(len(coder_days) - len(our_days))
            row(
                "interval=day active users",
                w,
                f"{len(coder_days)} days, max {max(coder_days, default=0):,}",
                f"{len(our_days)} days, max {max(our_days, default=0):,}"
                + (f", {differ} differ" if differ else ""),
            )
            coder_params: dict[str, dict[str, int]] = {}
            for r in res["GetTemplateParameterInsights"]:
                bucket = coder_params.setdefault(r["name"], {})
                bucket[r["value"]] = bucket.get(r["value"], 0) + int(r["count"])
            our_params: dict[str, dict[str, int]] = {}
            for p in ours["parameters_usage"]:
                bucket = our_params.setdefault(p["name"], {})
                for v in p["values"]:
                    bucket[v["value"]] = bucket.get(v["value"], 0) + v["count"]
            for name in sorted(set(coder_params) | set(our_params)):
                c_counts, o_counts = coder_params.get(name, {}), our_params.get(name, {})
                row(
                    f"parameter {name}",
                    w,
                    _params_text(c_counts),
                    _params_text(o_counts),
                    same=c_counts == o_counts,
                )
        elif pair.endpoint == "user-activity":
            coder_users = {
                str(r["user_id"]): int(r["usage_seconds"]) for r in res["GetUserActivityInsights"]
            }
            our_users = {u["user_id"]: u["seconds"] for u in ours["users"]}
            row("user-activity users", w, len(coder_users), len(our_users))
            row(
                "user-activity seconds (sum)",
                w,
                sum(coder_users.values()),
                sum(our_users.values()),
            )
            differ = sum(
                coder_users.get(u) != our_users.get(u) for u in set(coder_users) | set(our_users)
            )
            row("user-activity users with other seconds", w, 0, differ)
        else:
            lat = res["GetUserLatencyInsights"]
            row("user-latency users", w, len(lat), len(ours["users"]))
            for key, column in (("p50", "workspace_connection_latency_50"),):
                coder_median = statistics.median(float(r[column]) for r in lat) if lat else 0.0
                our_median = (
                    statistics.median(float(u["latency_ms"][key]) for u in ours["users"])
                    if ours["users"]
                    else 0.0
                )
                row(
                    f"user-latency median of users' {key} ms",
                    w,
                    f"{coder_median:.1f}",
                    f"{our_median:.1f}",
                    "Coder: p50 of half-hourly medians of reports; ours: of all samples (§13)",
                )
    return table, unexplained


# -- main --------------------------------------------------------------------------------------


def run(args: argparse.Namespace, redis: ManagedProcess, pg: PgServer, console: Console) -> None:
    users = make_users(args.users, args.seed)
    first_day = END_DAY - args.days - MARGIN_DAYS
    created = END - timedelta(days=args.days + MARGIN_DAYS + 7)
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {PG_DB}")
    timeout_ms = int(args.pg_statement_timeout * 1000)
    conn = psycopg.connect(
        pg.conninfo(PG_DB),
        autocommit=True,
        prepare_threshold=None,  # no server-side prepared statements, like lib/pq
        options=f"-c statement_timeout={timeout_ms}",
    )
    rows: CoderRows | None = None
    try:
        create_schema(conn, users, created)
        rows = CoderRows(users, first_day, pg.workdir)
        try:
            stats = asyncio.run(load(users, first_day, redis.address, rows, args))
        finally:
            rows.close()
        kinds = ", ".join(f"{n:,} {k}" for k, n in zip(KIND_NAMES, stats.counts, strict=True))
        console.print(
            f"generated {stats.events:,} events ({kinds}) for {len(users):,} users over "
            f"{END_DAY - first_day} days in {stats.seconds:.1f} s: generation "
            f"{stats.generate_s:.1f} s, plan_batch {stats.plan_s:.1f} s, RollupStore.apply "
            f"{stats.apply_s:.1f} s (overlapped), Coder's rows as COPY text "
            f"{stats.coder_rows_s:.1f} s; {stats.renamed_sessions} app sessions that shared "
            "another's id renamed"
        )
        pgl = load_postgres(conn, rows, args, console)
        console.print(
            f"postgres: template_usage_stats {pgl.tus_rows:,} rows; database "
            f"{pgl.db_bytes / 2**20:,.0f} MiB"
        )

        todo = pairs(args.days)
        console.print(
            f"timing {len(todo)} requests both ways: {args.warmup} warm-ups + up to "
            f"{args.requests} timed runs each, budget {args.case_budget_s:g} s per request and side"
        )
        pg_timings = {pair.name: time_pg(conn, pair, args) for pair in todo}
        select1 = time_round_trip(conn, args)
        http = asyncio.run(time_http(redis.address, todo, args))

        title = (
            f"Coder's PostgreSQL insights vs ours: {len(users):,} users, {args.days}-day data, "
            "ms (PG: sum of the queries Coder's handler runs)"
        )
        console.print(timings_table(todo, pg_timings, http, select1, title))
        console.print(queries_table(todo, pg_timings))
        console.print(rollup_table(stats, pgl, http.redis_info))
        check, unexplained = cross_check(conn, todo, pg_timings, http)
        console.print(check)
        if unexplained:
            console.print(f"[red]unexplained differences[/]: {', '.join(unexplained)}")
        agrees = "no" if unexplained else "yes"
        print(f"verdict: cross-check agrees apart from §13 differences: {agrees}")
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=30, help="days in the longest window")
    parser.add_argument("--requests", type=int, default=30, help="timed runs per request")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency-every", type=int, default=10, help="minutes between samples")
    parser.add_argument(
        "--case-budget-s", type=float, default=10.0, help="stop timing a request after this"
    )
    parser.add_argument(
        "--step-repeats", type=int, default=5, help="timed runs of the 5-minute rollup step"
    )
    parser.add_argument(
        "--pg-statement-timeout", type=float, default=900.0, help="seconds, any SQL statement"
    )
    parser.add_argument("--pg-bin", help="directory of initdb and postgres (default: search)")
    args = parser.parse_args()
    if args.days < 1 or args.users < 1:
        parser.error("--users and --days must be at least 1")
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    bindir, source = locate_pg_bin(args.pg_bin)
    started = time.perf_counter()
    redis: ManagedProcess | None = None
    pg: PgServer | None = None
    try:
        redis = start_redis()
        console.print(f"embedded Redis at {redis.address} (pid {redis.pid})")
        pg = start_postgres(bindir)
        version = subprocess.run(
            [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        console.print(
            f"{version} from {source} ({bindir}) at 127.0.0.1:{pg.port} (pid {pg.pid}"
            + (", as nobody)" if os.geteuid() == 0 else ")")
        )
        run(args, redis, pg, console)
    finally:
        if pg is not None:
            pg.stop()
        if redis is not None:
            redis.stop()
        console.print(f"total run time {time.perf_counter() - started:.0f} s; servers stopped")


if __name__ == "__main__":
    main()
