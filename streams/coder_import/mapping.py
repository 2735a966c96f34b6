"""Coder's rows as contract events: pure functions, no I/O.

One function per table the importer follows.  Each takes a row as the readers return it
(Coder's columns plus the names joined in) and gives the events of ``docs/events.md`` it
stands for, as ``(topic kind, event)`` pairs.  The field rules, and why:

* **Ids are a function of the table and the row's primary key** (and, for an app session
  that Coder updates in place, of the version read), so reading a row twice, after an
  overlap, a restart or a crash, re-sends the same event: a redelivery that changes no
  number.
* ``workspace_agent_stats`` -> one ``sessions`` event per report whose session counts are
  not all 0 (a report with none open contributes nothing, in Coder's rollup as in ours):
  the builtin kinds from ``session_count_vscode``, ``_jetbrains``,
  ``_reconnecting_pty`` and ``_ssh``, the connection rule from ``connection_count``.  Coder
  has **no SFTP column** (its rollup writes ``sftp_mins`` 0), so imported reports never
  carry ``sftp``.  Plus one ``latency`` event when ``connection_median_latency_ms`` is > 0
  (Coder writes -1, or 0, for "not measured"; its own rollup skips ``<= 0`` too).
* ``workspace_app_stats`` -> one ``app_usage`` event per version of the row (Coder upserts
  a session's row as it goes on, moving ``session_ended_at``); ``app`` carries the display
  name and icon of the agent's ``workspace_apps`` row of that slug, ``null`` for the web
  terminal and for port forwards (slugs no app has), which is how Coder's app report, too,
  leaves them out.  Sessions longer than the contract's 31 days are sent as several
  reports of the same session, which cover the union of their minutes.
* ``workspace_builds`` -> one ``builds`` event with every parameter of the build's template
  version (``template_version_parameters``) and the value the build recorded
  (``workspace_build_parameters``), the parameter's default when it recorded none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, NamedTuple

from aggregators.model import TopicKind
from aggregators.timebase import US_PER_S
from streams.decoding.limits import MAX_APP_SESSION_US, MAX_LATENCY_MS, MAX_NAME_CHARS
from streams.workloads import WireEvent, epoch_us, rfc3339

__all__ = [
    "AGENT_STATS",
    "APP_STATS",
    "BUILDS",
    "AgentStatsRow",
    "AppStatsRow",
    "BuildRow",
    "Mapped",
    "ParameterRow",
    "agent_stats_events",
    "app_stats_events",
    "build_events",
    "event_id",
]

AGENT_STATS: Final = "workspace_agent_stats"
APP_STATS: Final = "workspace_app_stats"
BUILDS: Final = "workspace_builds"

# Ids stay short and readable in dead letters: "coder:<table>:<primary key>[:<part>]".
_ID_PREFIX = "coder"

Mapped = tuple[TopicKind, WireEvent]
"""One event and its topic kind (``sessions``, ``app_usage``, ``latency``, ``builds``)."""


def event_id(table: str, key: object, part: str = "") -> str:
    """The deterministic id of the event ``part`` of row ``key`` of ``table``."""
    text = f"{_ID_PREFIX}:{table}:{key}"
    return f"{text}:{part}" if part else text


def _name(value: str | None) -> str | None:
    return None if value is None else value[:MAX_NAME_CHARS]


def _names(template_name: str | None, organization_name: str | None) -> dict[str, Any]:
    named: dict[str, Any] = {}
    if template_name is not None:
        named["template_name"] = _name(template_name)
    if organization_name is not None:
        named["organization_name"] = _name(organization_name)
    return named


def _count(value: int | None) -> int:
    return max(0, int(value or 0))


# --- workspace_agent_stats ---------------------------------------------------------------


class AgentStatsRow(NamedTuple):
    id: str
    created_at: datetime
    user_id: str
    agent_id: str
    workspace_id: str
    template_id: str
    connection_count: int
    connection_median_latency_ms: float
    session_count_vscode: int
    session_count_jetbrains: int
    session_count_reconnecting_pty: int
    session_count_ssh: int
    username: str | None
    avatar_url: str | None
    template_name: str | None
    organization_name: str | None


def agent_stats_events(row: AgentStatsRow) -> list[Mapped]:
    """The ``sessions`` and ``latency`` events of one agent stats report."""
    out: list[Mapped] = []
    stamp = rfc3339(epoch_us(row.created_at))
    ids = {
        "user_id": str(row.user_id),
        "template_id": str(row.template_id),
        "workspace_id": str(row.workspace_id),
        "agent_id": str(row.agent_id),
    }
    sessions = {
        "vscode": _count(row.session_count_vscode),
        "jetbrains": _count(row.session_count_jetbrains),
        "reconnecting_pty": _count(row.session_count_reconnecting_pty),
        "ssh": _count(row.session_count_ssh),
    }
    if any(sessions.values()):
        event: WireEvent = {
            "id": event_id(AGENT_STATS, row.id),
            "time": stamp,
            **ids,
            "username": row.username or "",
            "avatar_url": row.avatar_url or "",
            **_names(row.template_name, row.organization_name),
            "connection_count": _count(row.connection_count),
            "sessions": sessions,
        }
        out.append(("sessions", event))
    latency = float(row.connection_median_latency_ms)
    # NaN fails both comparisons and is skipped with the rest of what the contract refuses.
    if 0 < latency <= MAX_LATENCY_MS:
        sample: WireEvent = {
            "id": event_id(AGENT_STATS, row.id, "latency"),
            "time": stamp,
            **ids,
            "latency_ms": latency,
        }
        out.append(("latency", sample))
    return out


# --- workspace_app_stats -----------------------------------------------------------------


class AppStatsRow(NamedTuple):
    id: int
    user_id: str
    workspace_id: str
    agent_id: str
    access_method: str
    slug_or_port: str
    session_id: str
    session_started_at: datetime
    session_ended_at: datetime
    requests: int
    template_id: str | None
    username: str | None
    avatar_url: str | None
    template_name: str | None
    organization_name: str | None
    app_display_name: str | None  # the agent's workspace_apps row of this slug, if any
    app_icon: str | None


_ACCESS_METHODS = frozenset({"path", "subdomain", "terminal"})


def app_stats_events(row: AppStatsRow) -> list[Mapped]:
    """The ``app_usage`` report(s) of one version of an app stats row: none when the row
    cannot be one (no template, an access method the contract does not know, or an end
    before the start)."""
    if row.template_id is None or row.access_method not in _ACCESS_METHODS:
        return []
    started = epoch_us(row.session_started_at)
    ended = epoch_us(row.session_ended_at)
    if ended < started:
        return []
    app: dict[str, str] | None = None
    if row.access_method != "terminal" and row.app_display_name is not None:
        app = {"display_name": row.app_display_name, "icon": row.app_icon or ""}
    version = ended  # the row's key plus its end: each update is a report of its own
    base: WireEvent = {
        "session_id": str(row.session_id),
        "user_id": str(row.user_id),
        "username": row.username or "",
        "avatar_url": row.avatar_url or "",
        "template_id": str(row.template_id),
        **_names(row.template_name, row.organization_name),
        "workspace_id": str(row.workspace_id),
        "agent_id": str(row.agent_id),
        "access_method": row.access_method,
        "slug_or_port": "" if row.access_method == "terminal" else row.slug_or_port,
        "app": app,
        "requests": _count(row.requests),
    }
    out: list[Mapped] = []
    for n, (a, b) in enumerate(_pieces(started, ended)):
        part = f"{version}" if n == 0 else f"{version}.{n}"
        event = {
            "id": event_id(APP_STATS, row.id, part),
            "time": rfc3339(b),
            **base,
            "started_at": rfc3339(a),
            "ended_at": rfc3339(b),
        }
        out.append(("app_usage", event))
    return out


def _pieces(started: int, ended: int) -> Iterator[tuple[int, int]]:
    """[started, ended] in spans the contract accepts (at most 31 days each), newest first
    so that the first piece is the one a short session has anyway.  Whole minutes, so the
    pieces' minutes are exactly the session's."""
    step = MAX_APP_SESSION_US - 60 * US_PER_S
    b = ended
    while True:
        if b - started <= MAX_APP_SESSION_US:
            yield started, b
            return
        a = b - step
        a -= a % (60 * US_PER_S)
        yield a, b
        b = a


# --- workspace_builds --------------------------------------------------------------------


class ParameterRow(NamedTuple):
    """One ``template_version_parameters`` row."""

    name: str
    type: str
    display_name: str
    description: str
    options: Any  # the jsonb array, decoded
    default_value: str


class BuildRow(NamedTuple):
    id: str
    created_at: datetime
    workspace_id: str
    build_number: int
    template_version_id: str
    template_id: str | None
    owner_id: str | None
    template_name: str | None
    organization_name: str | None


def _option(option: Any) -> dict[str, str] | None:
    if not isinstance(option, Mapping):
        return None
    name, value = option.get("name"), option.get("value")
    if not isinstance(name, str) or not isinstance(value, str):
        return None
    description, icon = option.get("description"), option.get("icon")
    return {
        "name": name,
        "description": description if isinstance(description, str) else "",
        "value": value,
        "icon": icon if isinstance(icon, str) else "",
    }


def build_events(
    row: BuildRow, parameters: Sequence[ParameterRow], values: Mapping[str, str]
) -> list[Mapped]:
    """The ``builds`` event of one build: ``parameters`` are its template version's, in
    Coder's display order; ``values`` what the build recorded, by parameter name."""
    if row.template_id is None or row.owner_id is None or row.build_number < 1:
        return []
    params = []
    for p in parameters:
        if not p.name:
            continue
        raw_options = p.options if isinstance(p.options, list) else []
        options = [o for o in (_option(x) for x in raw_options) if o is not None]
        params.append(
            {
                "name": p.name,
                "type": p.type,
                "display_name": p.display_name,
                "description": p.description,
                "options": options,
                "value": values.get(p.name, p.default_value),
            }
        )
    event: WireEvent = {
        "id": event_id(BUILDS, row.id),
        "time": rfc3339(epoch_us(row.created_at)),
        "template_id": str(row.template_id),
        **_names(row.template_name, row.organization_name),
        "workspace_id": str(row.workspace_id),
        "user_id": str(row.owner_id),
        "build_number": int(row.build_number),
        "parameters": params,
    }
    return [("builds", event)]
