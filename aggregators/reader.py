"""The read path: one request in, one folded window out, re-reading only what changed.

A request takes one ``Snapshot`` of versions (days with data, each day's
rollup version, catalogue and users versions), then:

* each day's share of the window (``day_plans``) comes from the frame cache
  when its versions match, or are at most ``max_staleness_s`` old; else from
  the frames other API processes shared through the store; else it is folded
  (one ``read_days`` call for all stale days) and cached;
* the frames are merged into a view, once per set of frames;
* builds come from ``builds_cache``; profiles and the app catalogue are
  decoded once per their version;
* ``memo`` keeps each report per data identity, so a dashboard fleet asking the
  same questions costs one computation per change.

Concurrent requests share every load and fold (``flights``).  I/O goes through
the injected ``RollupSource``; this module knows no keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, cast

from aggregators.builds_cache import BuildsCache
from aggregators.day_plans import ALL_PARTS, DayPlan, fold_days, shape_of
from aggregators.flights import Flights, shared
from aggregators.frames import (
    DayFrame,
    LatencyBlock,
    UserIndex,
    WindowView,
    latency_block,
    merge_frames,
)
from aggregators.lru import MIB, Lru, approx_bytes
from aggregators.parameters import StoredBuild
from aggregators.records import Catalogue, Parts
from aggregators.reports import Profile
from aggregators.source import RollupSource, Snapshot, Version
from aggregators.timebase import HALF_HOURS_PER_DAY, NS_PER_DAY, ceil_div

Stamp = tuple[object, ...]
T = TypeVar("T")

DEFAULT_CACHE_BYTES = 64 * MIB


@dataclass(frozen=True)
class ReadRequest:
    """Half-hours ``[first_hh, stop_hh)`` of the selected templates (None = all)."""

    first_hh: int
    stop_hh: int
    templates: tuple[str, ...] | None
    parts: Parts
    builds_ns: tuple[int, int] | None = None  # creation window of the builds to choose from
    profiles: bool = False


@dataclass
class WindowData:
    view: WindowView
    builds: list[StoredBuild] = field(default_factory=list)  # candidates; queries choose
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    # Identity of everything above: equal tokens (within the reader's memo) mean equal data.
    token: Stamp = ()
    builds_token: Stamp = ()  # the builds alone (they change far less often than the view)


@dataclass(frozen=True)
class _Cached:
    stamp: Stamp  # versions the frame was built at
    frame: DayFrame
    read_at: float  # clock when its data was read


class WindowReader:
    """Folds windows from a ``RollupSource``, caching and sharing the work.

    ``max_staleness_s`` is the read path's freshness budget: a day whose
    version moved is refolded only when its cached frame's data is older than
    that, so a live day costs at most one fold per budget, per window shape,
    whatever the request rate (concurrent requests share that fold).  Zero
    means every change is seen at once.
    """

    def __init__(
        self,
        source: RollupSource,
        frame_cache_size: int = 512,
        *,
        max_staleness_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.source = source
        self.max_staleness_s = max_staleness_s
        self._clock = clock
        # Shares of ``cache_bytes``: frames save store reads and folds, so they get the most.
        self._frames: Lru[Stamp, _Cached] = Lru(
            frame_cache_size, cache_bytes // 2, lambda c: approx_bytes(c.frame)
        )
        self._frame_flights: Flights[Stamp, DayFrame] = Flights()
        self._loads: Flights[Stamp, object] = Flights()  # snapshots, profiles, catalogue
        # Entries hold the frames or view whose ids their keys use, keeping those ids unique.
        self._views: Lru[Stamp, tuple[list[DayFrame], WindowView]] = Lru(
            64, cache_bytes // 8, lambda e: _view_bytes(e[1])
        )
        self._reports: Lru[Stamp, tuple[WindowView | None, object]] = Lru(
            256, cache_bytes // 4, lambda e: approx_bytes(e[1])
        )
        self._users = UserIndex()
        self._blocks: Lru[Stamp, tuple[list[DayFrame], LatencyBlock]] = Lru(
            8, cache_bytes // 16, lambda e: approx_bytes(e[1])
        )
        self._catalogue: tuple[Version, Catalogue] | None = None
        self._profiles: tuple[Version, dict[str, Profile], float] | None = None
        self._builds = BuildsCache(source, max_staleness_s, clock, cache_bytes // 16)

    async def read(self, req: ReadRequest) -> WindowData:
        first_day = req.first_hh // HALF_HOURS_PER_DAY
        stop_day = ceil_div(req.stop_hh, HALF_HOURS_PER_DAY)
        if req.builds_ns is not None:
            first_day = min(first_day, req.builds_ns[0] // NS_PER_DAY)
            stop_day = max(stop_day, ceil_div(req.builds_ns[1], NS_PER_DAY))
        snap = await self._snapshot(first_day, stop_day)
        data = WindowData(await self._view(snap, req))
        token: list[object] = [id(data.view)]
        if req.builds_ns is not None:
            data.builds, data.builds_token = await self._builds.candidates(
                snap, *req.builds_ns, req.templates
            )
            token.append(data.builds_token)
        if req.profiles and data.view.users:
            version, data.profiles = await self._profiles_at(snap.users_version)
            token.append(version)
        data.token = tuple(token)
        return data

    def memo(self, key: Stamp, data: WindowData | None, compute: Callable[[], T]) -> T:
        """A report (or part) computed once per ``key`` and data (``data.token``; None when
        the key says it all): a dashboard fleet asks the same questions many times between
        two changes of the data."""
        full = key if data is None else (*key, *data.token)
        hit = self._reports.get(full)
        if hit is not None:
            return cast(T, hit[1])
        result = compute()
        self._reports.put(full, (None if data is None else data.view, result))
        return result

    # -- windows ----------------------------------------------------------------

    async def _snapshot(self, first_day: int, stop_day: int) -> Snapshot:
        """Concurrent requests for the same days share one snapshot round trip."""
        return await self._once(
            ("snapshot", first_day, stop_day), lambda: self.source.snapshot(first_day, stop_day)
        )

    async def _view(self, snap: Snapshot, req: ReadRequest) -> WindowView:
        plans = [
            DayPlan(day, lo, hi, ALL_PARTS if lo == 0 else req.parts)
            for day, lo, hi in _spans_of_days(req.first_hh, req.stop_hh, snap.days)
        ]
        now = self._clock()
        # Per day: a cached frame, a fold another request started, or one this request starts.
        slots: list[DayFrame | asyncio.Future[DayFrame] | None] = []
        stale: list[tuple[DayPlan, Stamp, Stamp]] = []
        mine: list[int] = []
        for plan in plans:
            key: Stamp = (plan.day, plan.lo, plan.hi, req.templates, plan.parts)
            cat_version = snap.catalogue_version if "x" in plan.parts else None
            stamp: Stamp = (snap.day_versions.get(plan.day), cat_version)
            cached = self._frames.get(key)
            if cached is not None and (
                cached.stamp == stamp
                or (cached.stamp[1] == cat_version and now - cached.read_at < self.max_staleness_s)
            ):
                slots.append(cached.frame)
                continue
            running = self._frame_flights.running(key + stamp)
            if running is None:
                mine.append(len(slots))
                stale.append((plan, key, stamp))
            slots.append(running)  # None: this request starts the fold, below
        if stale:
            started = self._frame_flights.start(
                [key + stamp for _, key, stamp in stale],
                lambda: self._build_frames(stale, req.templates, snap.catalogue_version),
            )
            for slot, future in zip(mine, started, strict=True):
                slots[slot] = future
        ready = [f if isinstance(f, DayFrame) else await shared(f) for f in slots if f is not None]
        return self._merged(req, ready)

    def _merged(self, req: ReadRequest, frames: list[DayFrame]) -> WindowView:
        """Requests over the same frames share one merge (dashboards repeat themselves)."""
        key: Stamp = (req.first_hh, req.stop_hh, req.templates, req.parts, *map(id, frames))
        hit = self._views.get(key)
        if hit is not None:
            return hit[1]
        view = merge_frames(frames, self._users)
        if "l" in req.parts:
            view.latency_block = self._latency_block(frames)
        self._views.put(key, (frames, view))
        return view

    async def _build_frames(
        self,
        stale: list[tuple[DayPlan, Stamp, Stamp]],
        templates: tuple[str, ...] | None,
        cat_version: Version,
    ) -> list[DayFrame]:
        """Settled days come from the frames other readers shared when their stamps match
        (an API process that starts, or scales out, does not refold what another did);
        the rest are folded here, and the settled ones among them shared in turn."""
        read_at = self._clock()
        shapes = {
            i: shape_of(plan, templates) for i, (plan, _, _) in enumerate(stale) if plan.settles
        }
        built: dict[int, DayFrame] = {}
        if shapes:
            wanted = [(stale[i][0].day, shape) for i, shape in shapes.items()]
            offered = await self.source.shared_frames(wanted, self._users)
            for i, hit in zip(shapes, offered, strict=True):
                if hit is not None and hit[0] == stale[i][2]:
                    built[i] = hit[1]
        missing = [i for i in range(len(stale)) if i not in built]
        if missing:
            plans = [stale[i][0] for i in missing]
            apps = any("x" in plan.parts for plan in plans)
            catalogue = await self._catalogue_at(cat_version) if apps else {}
            folded = await fold_days(self.source, plans, templates, catalogue, self._users)
            built.update(zip(missing, folded, strict=True))
            share = [
                (stale[i][0].day, shapes[i], stale[i][2], built[i]) for i in missing if i in shapes
            ]
            if share:
                with contextlib.suppress(Exception):  # sharing only saves others work
                    await self.source.share_frames(share)
        frames = [built[i] for i in range(len(stale))]
        for (_, key, stamp), frame in zip(stale, frames, strict=True):
            self._frames.put(key, _Cached(stamp, frame, read_at))
        return frames

    def _latency_block(self, frames: list[DayFrame]) -> LatencyBlock | None:
        """Samples of all but the two newest days, summed once per set of frames:
        live data lands on the newest days, so a dashboard re-sums only those."""
        if len(frames) <= 2:
            return None
        settled = sorted(frames, key=lambda f: f.day)[:-2]
        key = tuple(map(id, settled))
        hit = self._blocks.get(key)
        if hit is not None:
            return hit[1]
        block = latency_block(settled)
        self._blocks.put(key, (settled, block))
        return block

    # -- metadata -----------------------------------------------------------------

    async def _once(self, key: Stamp, load: Callable[[], Awaitable[T]]) -> T:
        """Concurrent requests that need the same thing loaded share one load."""
        future = self._loads.running(key)
        if future is None:

            async def run() -> list[object]:
                return [await load()]

            (future,) = self._loads.start([key], run)
        return cast(T, await shared(future))

    async def _catalogue_at(self, version: Version) -> Catalogue:
        if self._catalogue is None or self._catalogue[0] != version:
            catalogue = await self._once(("catalogue", version), self.source.catalogue)
            self._catalogue = (version, catalogue)
        return self._catalogue[1]

    async def _profiles_at(self, version: Version) -> tuple[Version, dict[str, Profile]]:
        """Decoded once per users version, and at most once per freshness budget (new
        users keep arriving on a live deployment)."""
        now = self._clock()
        cached = self._profiles
        if cached is None or (cached[0] != version and now - cached[2] >= self.max_staleness_s):
            profiles = await self._once(("profiles", version), self.source.profiles)
            self._profiles = cached = (version, profiles, now)
        return cached[0], cached[1]

    # -- builds -------------------------------------------------------------------


def _view_bytes(view: WindowView) -> int:
    """A view without its frames: the frame cache counts those."""
    own = sum(approx_bytes(v) for name, v in vars(view).items() if name != "frames")
    return own + sum(pos.nbytes + tpos.nbytes + 64 for _, pos, tpos in view.frames)


def _spans_of_days(first_hh: int, stop_hh: int, days: Iterable[int]) -> list[tuple[int, int, int]]:
    """``day_span`` of the half-hours, for the days with data only: a window from year 1
    spans 740,000 days, and walking them all held the event loop for half a second."""
    if first_hh >= stop_hh:
        return []
    first_day = first_hh // HALF_HOURS_PER_DAY
    return [
        (day, max(first_hh - base, 0), min(HALF_HOURS_PER_DAY, stop_hh - base))
        for day in sorted(set(days))
        if day >= first_day and (base := day * HALF_HOURS_PER_DAY) < stop_hh
    ]
