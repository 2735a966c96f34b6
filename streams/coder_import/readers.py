"""Coder's tables in keyset-paginated chunks (read-only; ``SELECT`` is all it needs).

Each followed table is read in the order of ``(time, primary key)``: ``created_at`` for
agent stats and builds, ``session_ended_at`` for app sessions (Coder updates a session's row
as it goes on, moving its end forward, so an updated row comes round again).  A chunk is
``WHERE (time, key) > (after) AND time <= until ORDER BY time, key LIMIT n``: constant cost
per chunk on ``idx_agent_stats_created_at``, however far into the table.  The names events
carry (user, avatar, template, organization, app) are joined in the same statement, so a
chunk is one round trip (two more for a chunk of builds: their parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from aggregators.timebase import US_PER_S
from streams.coder_import.mapping import (
    AGENT_STATS,
    APP_STATS,
    BUILDS,
    AgentStatsRow,
    AppStatsRow,
    BuildRow,
    Mapped,
    ParameterRow,
    agent_stats_events,
    app_stats_events,
    build_events,
)
from streams.coder_import.positions import Position
from streams.workloads import epoch_us

__all__ = ["READERS", "Chunk", "TableReader", "db_now_us", "to_datetime"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
_MIN_BIGINT: Final = str(-(2**63))


def to_datetime(time_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=time_us)


async def db_now_us(conn: Any) -> int:
    """The database's clock: the bound of "up to the start of the run", in Coder's time."""
    async with conn.cursor() as cur:
        await cur.execute("SELECT statement_timestamp()")
        row = await cur.fetchone()
    assert row is not None
    return epoch_us(row[0])


@dataclass
class Chunk:
    """One page of a table: its rows' events and keyset positions, in order."""

    rows: int
    events: list[Mapped]
    versions: list[tuple[str, int]]  # (version key, time_us) per row: the overlap's memory
    last: Position | None


_AGENT_STATS_SQL = f"""
SELECT s.id, s.created_at, s.user_id, s.agent_id, s.workspace_id, s.template_id,
    s.connection_count, s.connection_median_latency_ms, s.session_count_vscode,
    s.session_count_jetbrains, s.session_count_reconnecting_pty, s.session_count_ssh,
    u.username, u.avatar_url, t.name, o.name
FROM {AGENT_STATS} AS s
LEFT JOIN users AS u ON u.id = s.user_id
LEFT JOIN templates AS t ON t.id = s.template_id
LEFT JOIN organizations AS o ON o.id = t.organization_id
WHERE s.created_at >= %(t)s AND (s.created_at, s.id) > (%(t)s, %(k)s::uuid)
    AND s.created_at <= %(until)s
ORDER BY s.created_at, s.id
LIMIT %(n)s
"""

_APP_STATS_SQL = f"""
SELECT a.id, a.user_id, a.workspace_id, a.agent_id, a.access_method, a.slug_or_port,
    a.session_id, a.session_started_at, a.session_ended_at, a.requests,
    w.template_id, u.username, u.avatar_url, t.name, o.name, app.display_name, app.icon
FROM {APP_STATS} AS a
LEFT JOIN workspaces AS w ON w.id = a.workspace_id
LEFT JOIN users AS u ON u.id = a.user_id
LEFT JOIN templates AS t ON t.id = w.template_id
LEFT JOIN organizations AS o ON o.id = t.organization_id
LEFT JOIN workspace_apps AS app ON app.agent_id = a.agent_id AND app.slug = a.slug_or_port
WHERE a.session_ended_at >= %(t)s AND (a.session_ended_at, a.id) > (%(t)s, %(k)s::bigint)
    AND a.session_ended_at <= %(until)s
ORDER BY a.session_ended_at, a.id
LIMIT %(n)s
"""

_BUILDS_SQL = f"""
SELECT b.id, b.created_at, b.workspace_id, b.build_number, b.template_version_id,
    COALESCE(tv.template_id, w.template_id), w.owner_id, t.name, o.name
FROM {BUILDS} AS b
LEFT JOIN workspaces AS w ON w.id = b.workspace_id
LEFT JOIN template_versions AS tv ON tv.id = b.template_version_id
LEFT JOIN templates AS t ON t.id = COALESCE(tv.template_id, w.template_id)
LEFT JOIN organizations AS o ON o.id = t.organization_id
WHERE b.created_at >= %(t)s AND (b.created_at, b.id) > (%(t)s, %(k)s::uuid)
    AND b.created_at <= %(until)s
ORDER BY b.created_at, b.id
LIMIT %(n)s
"""

_VERSION_PARAMETERS_SQL = """
SELECT template_version_id, name, type, display_name, description, options, default_value
FROM template_version_parameters
WHERE template_version_id = ANY(%(versions)s)
ORDER BY template_version_id, display_order, name
"""

_BUILD_VALUES_SQL = """
SELECT workspace_build_id, name, value
FROM workspace_build_parameters
WHERE workspace_build_id = ANY(%(builds)s)
"""

_COUNT_SQL = {
    AGENT_STATS: f"SELECT count(*) FROM {AGENT_STATS} WHERE created_at >= %(t)s"
    " AND created_at <= %(until)s",
    APP_STATS: f"SELECT count(*) FROM {APP_STATS} WHERE session_ended_at >= %(t)s"
    " AND session_ended_at <= %(until)s",
    BUILDS: f"SELECT count(*) FROM {BUILDS} WHERE created_at >= %(t)s AND created_at <= %(until)s",
}


class TableReader:
    """Reads one followed table; ``start`` is the keyset before any row."""

    table: str
    min_key: str

    def start(self, since_us: int) -> Position:
        # Timestamps are whole microseconds: every row at or after since_us is after this.
        return Position(since_us - 1, self.min_key)

    async def count(self, conn: Any, after: Position, until_us: int) -> int:
        async with conn.cursor() as cur:
            await cur.execute(
                _COUNT_SQL[self.table],
                {"t": to_datetime(after.time_us), "until": to_datetime(until_us)},
            )
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def chunk(self, conn: Any, after: Position, until_us: int, limit: int) -> Chunk:
        raise NotImplementedError

    @staticmethod
    def _params(after: Position, until_us: int, limit: int) -> dict[str, Any]:
        return {
            "t": to_datetime(after.time_us),
            "k": after.key,
            "until": to_datetime(until_us),
            "n": limit,
        }


class AgentStatsReader(TableReader):
    table = AGENT_STATS
    min_key = _NIL_UUID

    async def chunk(self, conn: Any, after: Position, until_us: int, limit: int) -> Chunk:
        async with conn.cursor() as cur:
            await cur.execute(_AGENT_STATS_SQL, self._params(after, until_us, limit))
            records = await cur.fetchall()
        events: list[Mapped] = []
        versions: list[tuple[str, int]] = []
        for record in records:
            row = AgentStatsRow(*record)
            events += agent_stats_events(row)
            versions.append((str(row.id), epoch_us(row.created_at)))
        return Chunk(len(records), events, versions, _last(versions))


class AppStatsReader(TableReader):
    table = APP_STATS
    min_key = _MIN_BIGINT

    async def chunk(self, conn: Any, after: Position, until_us: int, limit: int) -> Chunk:
        async with conn.cursor() as cur:
            await cur.execute(_APP_STATS_SQL, self._params(after, until_us, limit))
            records = await cur.fetchall()
        events: list[Mapped] = []
        versions: list[tuple[str, int]] = []
        last: Position | None = None
        for record in records:
            row = AppStatsRow(*record)
            events += app_stats_events(row)
            ended = epoch_us(row.session_ended_at)
            # A row read again with a later end is a new report; with the same end, it is not.
            versions.append((f"{row.id}@{ended}", ended))
            last = Position(ended, str(row.id))
        return Chunk(len(records), events, versions, last)


class BuildsReader(TableReader):
    table = BUILDS
    min_key = _NIL_UUID

    async def chunk(self, conn: Any, after: Position, until_us: int, limit: int) -> Chunk:
        async with conn.cursor() as cur:
            await cur.execute(_BUILDS_SQL, self._params(after, until_us, limit))
            rows = [BuildRow(*r) for r in await cur.fetchall()]
            parameters: dict[str, list[ParameterRow]] = {}
            values: dict[str, dict[str, str]] = {}
            if rows:
                versions_ids = list({r.template_version_id for r in rows})
                await cur.execute(_VERSION_PARAMETERS_SQL, {"versions": versions_ids})
                for version, *fields in await cur.fetchall():
                    parameters.setdefault(str(version), []).append(ParameterRow(*fields))
                await cur.execute(_BUILD_VALUES_SQL, {"builds": [r.id for r in rows]})
                for build, name, value in await cur.fetchall():
                    values.setdefault(str(build), {})[name] = value
        events: list[Mapped] = []
        versions: list[tuple[str, int]] = []
        for row in rows:
            params: Sequence[ParameterRow] = parameters.get(str(row.template_version_id), [])
            events += build_events(row, params, values.get(str(row.id), {}))
            versions.append((str(row.id), epoch_us(row.created_at)))
        return Chunk(len(rows), events, versions, _last(versions))


def _last(versions: list[tuple[str, int]]) -> Position | None:
    if not versions:
        return None
    key, time_us = versions[-1]
    return Position(time_us, key)


#: The followed tables, in the order a pass reads them (builds first: parameters are
#: known before the sessions of the workspaces they built).
READERS: Final[tuple[TableReader, ...]] = (
    BuildsReader(),
    AgentStatsReader(),
    AppStatsReader(),
)

#: Default overlap per table: how long after a row's time it may still be committed.
#: Coder's agent stats batcher flushes every second; app sessions are flushed every 30 s
#: with an end that may lag the flush by a rollup window; builds commit in one transaction.
DEFAULT_OVERLAP_US: Final[dict[str, int]] = {
    AGENT_STATS: 30 * US_PER_S,
    APP_STATS: 300 * US_PER_S,
    BUILDS: 60 * US_PER_S,
}
