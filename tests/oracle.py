"""A deliberately naive implementation of insights-api.md sections 4-7, straight from events.

It keeps every minute as a Python set per cell and applies the definitions
word for word; the store and queries must agree with it on any data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from aggregators.model import (
    KINDS,
    TERMINAL_APP_KEY,
    AppUsageEvent,
    Event,
    LatencyEvent,
    SessionEvent,
)

NS_MIN = 60 * 10**9
NS_HH = 30 * NS_MIN
BUILTIN_SLUGS = ("vscode", "jetbrains", "reconnecting-pty", "ssh", "sftp")


@dataclass
class Cell:
    agent: set[int] = field(default_factory=set)
    kinds: list[set[int]] = field(default_factory=lambda: [set() for _ in KINDS])
    connected: bool = False
    apps: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    samples: list[float] = field(default_factory=list)

    def activity(self) -> set[int]:
        out: set[int] = set()
        for minutes in self.apps.values():
            out |= minutes
        if self.connected:
            out |= self.agent
        return out


class Oracle:
    def __init__(self, events: list[Event]) -> None:
        self.cells: dict[tuple[int, str, str], Cell] = defaultdict(Cell)
        self.catalogue: dict[tuple[str, str], tuple[int, str, str, str]] = {}
        self.names: dict[str, tuple[int, str, str, str]] = {}
        for e in events:
            if isinstance(e, SessionEvent):
                self._session(e)
            elif isinstance(e, AppUsageEvent):
                self._app(e)
            elif isinstance(e, LatencyEvent):
                self.cells[e.time_us // 60_000_000 // 30, e.template_id, e.user_id].samples.append(
                    e.latency_ms
                )

    def _name(self, user: str, time_us: int, id_: str, name: str, avatar: str) -> None:
        cur = self.names.get(user)
        if cur is None or (time_us, id_) > (cur[0], cur[1]):
            self.names[user] = (time_us, id_, name, avatar)

    def _session(self, e: SessionEvent) -> None:
        self._name(e.user_id, e.time_us, e.id, e.username, e.avatar_url)
        if not e.kinds_mask:
            return
        minute = e.time_us // 60_000_000
        cell = self.cells[minute // 30, e.template_id, e.user_id]
        cell.agent.add(minute)
        for i in range(len(KINDS)):
            if e.kinds_mask >> i & 1:
                cell.kinds[i].add(minute)
        cell.connected |= e.connection_count > 0

    def _app(self, e: AppUsageEvent) -> None:
        self._name(e.user_id, e.time_us, e.id, e.username, e.avatar_url)
        key = TERMINAL_APP_KEY if e.access_method == "terminal" else e.slug_or_port
        if e.access_method != "terminal" and e.app_display_name is not None:
            cur = self.catalogue.get((e.template_id, key))
            if cur is None or (e.time_us, e.id) > (cur[0], cur[1]):
                self.catalogue[e.template_id, key] = (
                    e.time_us,
                    e.id,
                    e.app_display_name,
                    e.app_icon or "",
                )
        first = e.started_us // 60_000_000
        last = (e.ended_us - 1) // 60_000_000
        for minute in range(first, last + 1):
            self.cells[minute // 30, e.template_id, e.user_id].apps[key].add(minute)

    def window(self, start_ns: int, end_ns: int, templates: set[str] | None):  # type: ignore[no-untyped-def]
        for (hh, t, u), cell in self.cells.items():
            inside = hh * NS_HH >= start_ns and (hh + 1) * NS_HH <= end_ns
            if inside and (templates is None or t in templates):
                yield hh, t, u, cell

    def intervals(
        self, start_ns: int, end_ns: int, step_ns: int, templates: set[str] | None
    ) -> list[tuple[int, list[str]]]:
        """(active users, templates) per interval of ``step_ns`` from the start."""
        out = []
        lo = start_ns
        while lo < end_ns:
            hi = min(lo + step_ns, end_ns)
            users, tpls = set(), set()
            for _, t, u, cell in self.window(lo, hi, templates):
                if cell.activity():
                    users.add(u)
                    tpls.add(t)
            out.append((len(users), sorted(tpls)))
            lo = hi
        return out

    def summary(self, start_ns: int, end_ns: int, templates: set[str] | None) -> dict[str, object]:
        users: set[str] = set()
        tpls: set[str] = set()
        user_tpls: dict[str, set[str]] = defaultdict(set)
        usage: dict[tuple[int, str], int] = defaultdict(int)
        kinds: dict[tuple[int, str, int], int] = defaultdict(int)
        kind_t: list[set[str]] = [set() for _ in KINDS]
        apps: dict[tuple[int, str, tuple[str, str, str]], int] = defaultdict(int)
        app_t: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        app_hh: dict[tuple[tuple[str, str, str], str], set[int]] = defaultdict(set)
        samples: dict[str, list[float]] = defaultdict(list)
        lat_t: dict[str, set[str]] = defaultdict(set)
        for hh, t, u, cell in self.window(start_ns, end_ns, templates):
            if cell.samples:
                samples[u].extend(cell.samples)
                lat_t[u].add(t)
            act = cell.activity()
            if not act:
                continue
            users.add(u)
            tpls.add(t)
            user_tpls[u].add(t)
            usage[hh, u] += len(act)
            for i in range(len(KINDS)):
                eff = len(cell.kinds[i]) if cell.connected else 0
                if eff:
                    kinds[hh, u, i] += eff
                    kind_t[i].add(t)
            for key, minutes in cell.apps.items():
                meta = self.catalogue.get((t, key))
                if meta is None or not minutes:
                    continue
                entry = (key, meta[2], meta[3])
                apps[hh, u, entry] += len(minutes)
                app_t[entry].add(t)
                app_hh[entry, u].add(hh)
        seconds: dict[str, int] = defaultdict(int)
        for (_, u), v in usage.items():
            seconds[u] += 60 * min(v, 30)
        builtin = [0] * len(KINDS)
        for (_, _, i), v in kinds.items():
            builtin[i] += 60 * min(v, 30)
        app_seconds: dict[tuple[str, str, str], int] = defaultdict(int)
        for (_, _, entry), v in apps.items():
            app_seconds[entry] += 60 * min(v, 30)
        runs: dict[tuple[str, str, str], int] = defaultdict(int)
        for (entry, _), hhs in app_hh.items():
            runs[entry] += sum(1 for h in hhs if h - 1 not in hhs)
        return {
            "users": sorted(users),
            "templates": sorted(tpls),
            "user_templates": {u: sorted(v) for u, v in user_tpls.items()},
            "seconds": dict(seconds),
            "builtins": [
                (BUILTIN_SLUGS[i], builtin[i], sorted(kind_t[i]) if builtin[i] else [])
                for i in range(len(KINDS))
            ],
            "apps": [
                (e[0], e[1], e[2], app_seconds[e], sorted(app_t[e]), runs[e])
                for e in sorted(app_seconds)
            ],
            "samples": {u: sorted(v) for u, v in samples.items()},
            "latency_templates": {u: sorted(v) for u, v in lat_t.items()},
        }
