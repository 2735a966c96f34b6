"""The fault suite's events: wire JSON for the broker and, built from the same draws, the
domain events the oracle reads (never the product's decoder).

A seeded deployment from ``streams.simulation`` (users, templates, tools, latencies) works
in blocks of minutes on the UTC days of a window: agents report their sessions every
30 s (some blocks never connected, some reports idle), app sessions (template apps by
path or subdomain, port forwards, the web terminal) are reported up to three times with
a growing end, and a latency sample goes out every 5 minutes. One app's display name
changes between reports, so the newest report must win. Every event has its own id.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from aggregators.model import KINDS, AppUsageEvent, Event, LatencyEvent, SessionEvent
from aggregators.timebase import US_PER_S
from streams import simulation
from streams.workloads import (
    AgentRef,
    App,
    app_usage_event,
    counter_uuid,
    epoch_us,
    latency_event,
    session_event,
)

US_MIN = 60 * US_PER_S
KINDS_SENT = ("sessions", "app_usage", "latency")
RENAMED = App("Grafana (beta)", "/icon/grafana-beta.svg")  # some reports of "grafana"


@dataclass
class Workload:
    """Events by topic kind (wire JSON) and the same events for the oracle."""

    wire: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {k: [] for k in KINDS_SENT}
    )
    events: list[Event] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.events)

    def extend(self, other: Workload) -> None:
        for kind, wire in other.wire.items():
            self.wire.setdefault(kind, []).extend(wire)
        self.events.extend(other.events)

    def session(
        self,
        agent: AgentRef,
        event_id: str,
        time_us: int,
        counts: dict[str, int],
        connections: int,
    ) -> None:
        self.wire["sessions"].append(session_event(agent, event_id, time_us, counts, connections))
        mask = sum(1 << i for i, kind in enumerate(KINDS) if counts.get(kind, 0) > 0)
        self.events.append(
            SessionEvent(
                event_id,
                time_us,
                agent.user_id,
                agent.username,
                agent.avatar_url,
                agent.template_id,
                agent.workspace_id,
                agent.agent_id,
                connections,
                mask,
            )
        )

    def app(
        self,
        agent: AgentRef,
        event_id: str,
        session_id: str,
        started_us: int,
        ended_us: int,
        method: str,
        slug: str,
        app: App | None,
    ) -> None:
        self.wire["app_usage"].append(
            app_usage_event(
                agent,
                event_id,
                session_id,
                started_us,
                ended_us,
                access_method=method,  # type: ignore[arg-type]
                slug_or_port=slug,
                app=app,
            )
        )
        self.events.append(
            AppUsageEvent(
                event_id,
                ended_us,
                session_id,
                agent.user_id,
                agent.username,
                agent.avatar_url,
                agent.template_id,
                agent.workspace_id,
                agent.agent_id,
                method,
                slug,
                None if app is None else app.display_name,
                None if app is None else app.icon,
                started_us,
                ended_us,
                1,
            )
        )

    def latency(self, agent: AgentRef, event_id: str, time_us: int, ms: float) -> None:
        self.wire["latency"].append(latency_event(agent, event_id, time_us, ms))
        self.events.append(
            LatencyEvent(
                event_id,
                time_us,
                agent.user_id,
                agent.template_id,
                agent.workspace_id,
                agent.agent_id,
                ms,
            )
        )

    def messages(self, rng: random.Random, low: int, high: int) -> list[tuple[str, bytes]]:
        """Every event once, shuffled within its topic, in batch messages of ``low`` to
        ``high`` events; the topics' messages interleaved at random."""
        out: list[tuple[str, bytes]] = []
        for kind, wire in self.wire.items():
            shuffled = wire[:]
            rng.shuffle(shuffled)
            i = 0
            while i < len(shuffled):
                n = rng.randint(low, high)
                out.append((kind, orjson.dumps(shuffled[i : i + n])))
                i += n
        rng.shuffle(out)
        return out


class _Ids:
    """Event ids ``<tag>-<letter><n>`` and app-session UUIDs, unique per tag."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.tag_number = zlib.crc32(tag.encode())
        self.n = 0

    def next(self, letter: str) -> str:
        self.n += 1
        return f"{self.tag}-{letter}{self.n}"

    def uuid(self) -> str:
        self.n += 1
        return counter_uuid(self.tag_number, 0, self.n)


def utc_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def generate(
    seed: int, *, users: int, first_day: date, days: int, tag: str, work_p: float = 0.8
) -> Workload:
    """Activity of ``users`` simulated users on ``days`` UTC days from ``first_day``.

    ``tag`` prefixes every id, so workloads of different tags never share an event."""
    rng = random.Random(seed)
    deployment = simulation.generate(users, seed, avatars=True)
    out = Workload()
    ids = _Ids(tag)
    for d in range(days):
        midnight_us = epoch_us(utc_midnight(first_day + timedelta(days=d)))
        for user in deployment.users:
            if rng.random() >= work_p:
                continue
            for _ in range(rng.randint(1, 3)):
                workspace = user.main
                if user.second is not None and rng.random() < 0.3:
                    workspace = user.second
                agent = user.agent(workspace)
                length = rng.randint(10, 200)
                start = rng.randrange(0, 1440 - length)
                start_us = midnight_us + start * US_MIN
                end_us = start_us + length * US_MIN
                connected = rng.random() >= 0.1
                kinds = {user.tool: 1}
                if rng.random() < user.ssh_p:
                    kinds["ssh"] = 1
                if rng.random() < 0.05:
                    kinds["sftp"] = 2
                for k in range(length * 2):
                    at = start_us + k * 30 * US_PER_S + rng.randrange(30 * US_PER_S)
                    idle = rng.random() < 0.05
                    out.session(
                        agent,
                        ids.next("s"),
                        at,
                        {} if idle else kinds,
                        int(connected) * rng.randint(1, 3),
                    )
                for k in range(0, length, 5):
                    ms = round(rng.lognormvariate(0, 0.4) * user.latency_ms, 3)
                    out.latency(agent, ids.next("l"), start_us + k * US_MIN, ms)
                for _ in range(rng.randint(0, 3)):
                    _app_session(rng, out, ids, agent, workspace, start_us, end_us)
    return out


def _app_session(
    rng: random.Random,
    out: Workload,
    ids: _Ids,
    agent: AgentRef,
    workspace: simulation.Workspace,
    start_us: int,
    end_us: int,
) -> None:
    roll = rng.random()
    if roll < 0.15:
        method, slug, app = "terminal", "", None
    elif roll < 0.25:
        method, slug, app = "path", str(rng.choice((3000, 8080, 8888))), None
    else:
        slug = rng.choice(workspace.template.apps)
        method, app = rng.choice(("path", "subdomain")), simulation.APPS[slug]
    started = start_us + rng.randrange(end_us - start_us)
    ended = started + rng.randrange(1, end_us - started + 1)
    session_id = ids.uuid()
    reports = sorted(rng.randrange(started, ended + 1) for _ in range(rng.randint(0, 2)))
    for until in [*reports, ended]:
        shown = RENAMED if slug == "grafana" and rng.random() < 0.5 else app
        out.app(agent, ids.next("a"), session_id, started, until, method, slug, shown)
