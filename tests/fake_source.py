"""An in-memory ``RollupSource`` for unit tests of the read path and the queries.

Days are described by the cells of session reports (connected, one builtin
kind each), and their aggregates are derived here the way the rollup script
derives them, for data in which no 30-minute cap binds (tests keep to one
report per (user, half-hour) across templates unless they want the cell path).
Every call is recorded, so tests can assert what was (not) read again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aggregators.frames import DayFrame, UserIndex
from aggregators.parameters import BuildField, StoredBuild
from aggregators.records import (
    Catalogue,
    DayAggregates,
    DayCells,
    HalfHourCell,
    LatencyCounts,
    ToolMinutes,
)
from aggregators.reports import Profile
from aggregators.source import DayData, DayRead, Snapshot


@dataclass(frozen=True)
class Report:
    template: str
    user: str
    hh: int  # half-hour of the day
    minutes: int  # 30-bit minute mask
    kind: int = 0  # builtin kind index (0 = vscode)


@dataclass
class FakeDay:
    reports: list[Report]
    version: int = 1
    latency: dict[tuple[str, str], list[tuple[int, str]]] = field(default_factory=dict)
    builds: dict[str, StoredBuild] = field(default_factory=dict)
    builds_version: int = 1

    def cells(
        self, templates: tuple[str, ...] | None, users: tuple[str, ...] | None = None
    ) -> DayCells:
        out = DayCells(0, {}, {})
        for r in self.reports:
            if (templates is None or r.template in templates) and (
                users is None or r.user in users
            ):
                cell = out.cells.setdefault((r.template, r.user), {}).setdefault(
                    r.hh, HalfHourCell(connected=True)
                )
                cell.agent |= r.minutes
                cell.kinds[r.kind] |= r.minutes
        for pair, samples in self.latency.items():
            if templates is None or pair[0] in templates:
                per_hh: dict[int, dict[str, int]] = {}
                for hh, b in samples:
                    bins = per_hh.setdefault(hh, {})
                    bins[b] = bins.get(b, 0) + 1
                out.latency[pair] = per_hh
        return out

    def aggregates(self, templates: Sequence[str] | None) -> list[DayAggregates]:
        if templates is None:
            return [self._scope(None)]
        present = {r.template for r in self.reports} | {t for t, _ in self.latency}
        return [self._scope(t) for t in sorted(templates) if t in present]

    def _scope(self, template: str | None) -> DayAggregates:
        agg = DayAggregates(0, ToolMinutes(), {}, LatencyCounts.empty(), {}, {}, {})
        for (t, hh), cell in sorted(self._cells_by_template_hh(template).items()):
            for user, (minutes, kinds) in cell.items():
                agg.active.setdefault(t, {})[user] = agg.active.get(t, {}).get(user, 0) | 1 << hh
                agg.minutes[user] = agg.minutes.get(user, 0) + minutes.bit_count()
                tools = agg.template_tools.setdefault(t, ToolMinutes())
                for kind, mask in kinds.items():
                    agg.tools.kinds[kind] = agg.tools.kinds.get(kind, 0) + mask.bit_count()
                    tools.kinds[kind] = tools.kinds.get(kind, 0) + mask.bit_count()
        per_user: dict[str, dict[str, int]] = {}
        for (t, user), samples in self.latency.items():
            if template is None or t == template:
                bins = per_user.setdefault(user, {})
                for _, b in samples:
                    bins[b] = bins.get(b, 0) + 1
                agg.latency_users.setdefault(t, []).append(user)
        agg.latency = LatencyCounts.from_bins(per_user)
        return agg

    def _cells_by_template_hh(
        self, template: str | None
    ) -> dict[tuple[str, int], dict[str, tuple[int, dict[int, int]]]]:
        out: dict[tuple[str, int], dict[str, tuple[int, dict[int, int]]]] = {}
        for r in self.reports:
            if template is not None and r.template != template:
                continue
            per_user = out.setdefault((r.template, r.hh), {})
            minutes, kinds = per_user.get(r.user, (0, {}))
            kinds[r.kind] = kinds.get(r.kind, 0) | r.minutes
            per_user[r.user] = (minutes | r.minutes, kinds)
        return out


@dataclass
class FakeSource:
    days: dict[int, FakeDay] = field(default_factory=dict)
    catalogue_entries: Catalogue = field(default_factory=dict)
    profile_entries: dict[str, Profile] = field(default_factory=dict)
    template_name_entries: dict[str, tuple[str, str]] = field(default_factory=dict)
    users_version: int = 1
    catalogue_version: int = 1
    calls: list[tuple[str, object]] = field(default_factory=list)
    frames: dict[tuple[int, str], tuple[tuple[object, ...], DayFrame]] = field(default_factory=dict)

    def reads(self) -> list[DayRead]:
        return [r for name, args in self.calls if name == "read_days" for r in args]  # type: ignore[attr-defined]

    async def snapshot(self, first_day: int, stop_day: int) -> Snapshot:
        self.calls.append(("snapshot", (first_day, stop_day)))
        days = tuple(sorted(d for d in self.days if first_day <= d < stop_day))
        return Snapshot(
            days,
            {d: str(self.days[d].version) for d in days},
            str(self.catalogue_version),
            str(self.users_version),
        )

    async def read_days(self, reads: Sequence[DayRead]) -> list[DayData]:
        self.calls.append(("read_days", list(reads)))
        out: list[DayData] = []
        for read in reads:
            day = self.days[read.day]
            if read.whole:
                aggs = day.aggregates(read.templates)
                span = 0
                for r in day.reports:
                    span |= 1 << r.hh
                for hh, _ in (s for samples in day.latency.values() for s in samples):
                    span |= 1 << hh
                for agg in aggs:
                    agg.day, agg.span = read.day, span
                out.append(aggs)
            else:
                cells = day.cells(read.templates, read.users)
                cells.day = read.day
                out.append(cells)
        return out

    async def catalogue(self) -> Catalogue:
        self.calls.append(("catalogue", None))
        return dict(self.catalogue_entries)

    async def profiles(self) -> dict[str, Profile]:
        self.calls.append(("profiles", None))
        return dict(self.profile_entries)

    async def template_names(self) -> dict[str, tuple[str, str]]:
        return dict(self.template_name_entries)

    async def shared_frames(
        self, wanted: Sequence[tuple[int, str]], index_of: UserIndex
    ) -> list[tuple[tuple[object, ...], DayFrame] | None]:
        self.calls.append(("shared_frames", list(wanted)))
        out: list[tuple[tuple[object, ...], DayFrame] | None] = []
        for w in wanted:
            hit = self.frames.get(w)
            if hit is None:
                out.append(None)
            else:  # users are interned per process, like the real store's decode does
                stamp, frame = hit
                out.append((stamp, dataclasses.replace(frame, user_ids=index_of.ids(frame.users))))
        return out

    async def share_frames(
        self, frames: Sequence[tuple[int, str, tuple[object, ...], DayFrame]]
    ) -> None:
        self.calls.append(("share_frames", [(d, s) for d, s, _, _ in frames]))
        for day, shape, stamp, frame in frames:
            self.frames[day, shape] = (stamp, frame)

    async def build_versions(self, days: Sequence[int]) -> list[str | None]:
        self.calls.append(("build_versions", list(days)))
        return [str(self.days[d].builds_version) for d in days]

    async def build_fields(self, days: Sequence[int]) -> list[list[BuildField]]:
        self.calls.append(("build_fields", list(days)))
        return [
            [(b.template_id, b.workspace_id, b.build_number, name)
             for name, b in self.days[d].builds.items()]
            for d in days
        ]  # fmt: skip

    async def builds(self, wanted: Mapping[int, Sequence[str]]) -> dict[str, StoredBuild]:
        self.calls.append(("builds", dict(wanted)))
        return {n: self.days[d].builds[n] for d, names in wanted.items() for n in names}
