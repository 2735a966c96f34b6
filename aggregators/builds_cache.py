"""Which builds can win a window's parameter usage, cached per day and builds version.

A day's builds are listed once per builds version (the rollup script bumps it
only when one of the day's builds changed) and the day's rollup version, which
moves with every batch, is checked at most once per freshness budget.  Builds
are decoded only when they can win (``parameters.candidate_build_fields``), and
a window's candidates are kept per (window, filter, builds versions).  I/O goes
through the injected ``RollupSource``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aggregators.lru import Lru
from aggregators.parameters import (
    DayBuilds,
    StoredBuild,
    candidate_build_fields,
    index_day_builds,
)
from aggregators.source import RollupSource, Snapshot, Stamp, Version
from aggregators.timebase import NS_PER_DAY, ceil_div


@dataclass
class _DayEntry:
    """One day's builds: listed once per builds version, decoded on demand.  The day's
    version (which moves with every batch) is checked at most once per freshness budget."""

    version: Version  # the day's rollup version when last checked
    builds_version: Version
    indexed: DayBuilds
    read_at: float
    decoded: dict[str, StoredBuild] = field(default_factory=dict)


class BuildsCache:
    def __init__(
        self,
        source: RollupSource,
        max_staleness_s: float,
        clock: Callable[[], float],
        max_bytes: int | None = None,
    ) -> None:
        self.source = source
        self.max_staleness_s = max_staleness_s
        self._clock = clock
        self._days: dict[int, _DayEntry] = {}
        # (window, filter, builds versions) -> candidates: choosing them is array work per day
        # Lists of builds the day entries hold already: only the references are this cache's.
        self._chosen: Lru[Stamp, list[StoredBuild]] = Lru(
            64, max_bytes, lambda builds: sys.getsizeof(builds)
        )
        self._intern: dict[tuple[str, ...], int] = {}

    async def candidates(
        self, snap: Snapshot, start_ns: int, end_ns: int, templates: tuple[str, ...] | None
    ) -> tuple[list[StoredBuild], Stamp]:
        """Each workspace's top build of the days lying wholly inside the window, plus
        every build of the edge days (their exact times decide).  Only these are decoded,
        once per day version; ``parameters.latest_builds`` makes the final choice.  Also
        returns the versions the answer was built from (for the report memo)."""
        self._trim()
        first, stop = start_ns // NS_PER_DAY, ceil_div(end_ns, NS_PER_DAY)
        days = [d for d in snap.days if first <= d < stop]
        now = self._clock()
        stale = [d for d in days if not self._fresh(d, snap.day_versions.get(d), now)]
        if stale:
            await self._refresh(stale, snap, now)
        versions = tuple((d, self._days[d].builds_version) for d in days)
        key: Stamp = (start_ns, end_ns, templates, versions)
        hit = self._chosen.get(key)
        if hit is not None:
            return hit, versions
        interior = {d for d in days if start_ns <= d * NS_PER_DAY <= end_ns - NS_PER_DAY}
        selected = None
        if templates is not None:
            ids = [self._intern[(t,)] for t in templates if (t,) in self._intern]
            selected = np.array(ids, dtype=np.int64)
        indexed_days = {d: self._days[d].indexed for d in days}
        wanted = candidate_build_fields(indexed_days, interior, selected)
        missing = {
            d: [n for n in names if n not in self._days[d].decoded] for d, names in wanted.items()
        }
        if any(missing.values()):
            decoded = await self.source.builds(missing)
            for day, names in missing.items():
                self._days[day].decoded.update((n, decoded[n]) for n in names if n in decoded)
        builds = [
            self._days[d].decoded[n] for d, names in wanted.items() for n in names
            if n in self._days[d].decoded
        ]  # fmt: skip
        self._chosen.put(key, builds)
        return builds, versions

    async def _refresh(self, days: list[int], snap: Snapshot, now: float) -> None:
        """Re-list the builds of days whose builds version moved; the others keep theirs."""
        relist = []
        for day, builds_version in zip(days, await self.source.build_versions(days), strict=True):
            entry = self._days.get(day)
            if entry is not None and entry.builds_version == builds_version:
                entry.version, entry.read_at = snap.day_versions.get(day), now
            else:
                relist.append((day, builds_version))
        if not relist:
            return
        listed = await self.source.build_fields([d for d, _ in relist])
        for (day, builds_version), fields in zip(relist, listed, strict=True):
            indexed = index_day_builds(fields, self._intern)
            self._days[day] = _DayEntry(snap.day_versions.get(day), builds_version, indexed, now)

    def _fresh(self, day: int, version: Version, now: float) -> bool:
        entry = self._days.get(day)
        if entry is None:
            return False
        return entry.version == version or now - entry.read_at < self.max_staleness_s

    def _trim(self, keep_days: int = 400, max_ids: int = 2_000_000) -> None:
        if len(self._intern) > max_ids:  # ids and the arrays using them go together
            self._intern.clear()
            self._days.clear()
        while len(self._days) > keep_days:
            self._days.pop(next(iter(self._days)))
