"""Redis adapter: the only module that knows keys, scripts and bytes.

Writes: one batch plan = one pipeline (one rollup-script call per UTC day, the
day index, one meta-script call), so a batch costs one round trip.

Reads: a window is planned day by day over the days that hold data.  Each day
is folded (``aggregators.window``) and packed into a frame
(``aggregators.frames``) that is cached per day version, so a request reads
the versions in one round trip and fetches only the days that changed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis

from aggregators.frames import (
    DayFrame,
    LatencyBlock,
    UserIndex,
    WindowView,
    day_frame,
    latency_block,
    merge_frames,
)
from aggregators.ops import BatchPlan
from aggregators.parameters import (
    DayBuilds,
    StoredBuild,
    candidate_build_fields,
    index_day_builds,
    param_uses,
    parse_build_field,
)
from aggregators.reports import Profile
from aggregators.store import keys
from aggregators.store.keys import SEP
from aggregators.timebase import HALF_HOURS_PER_DAY, MS_PER_DAY, day_span
from aggregators.window import (
    Catalogue,
    DayAggregates,
    DayCells,
    WindowAcc,
    fold_aggregates,
    fold_day_cells,
)

_ROLLUP_LUA = resources.files("aggregators.store").joinpath("rollup.lua").read_text()
_META_LUA = resources.files("aggregators.store").joinpath("meta.lua").read_text()

NS_PER_DAY = MS_PER_DAY * 1_000_000

# Parts of the window a report needs: a (activity), m (minutes), x (apps), l (latency).
Parts = frozenset[str]


def _s(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _hash(raw: Any) -> dict[str, str]:
    """Decoded hash: clients made with ``decode_responses=True`` (the API's) skip the work."""
    if not raw or isinstance(next(iter(raw)), str):
        return dict(raw)
    return {k.decode(): v.decode() for k, v in raw.items()}


@dataclass(frozen=True)
class _DayPlan:
    day: int
    lo: int
    hi: int
    fast: bool


class _FrameCache:
    """Bounded LRU of day frames, each valid for the versions it was built at."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[object, ...], tuple[tuple[object, ...], DayFrame]] = (
            OrderedDict()
        )

    def get(self, key: tuple[object, ...], stamp: tuple[object, ...]) -> DayFrame | None:
        item = self._items.get(key)
        if item is None or item[0] != stamp:
            return None
        self._items.move_to_end(key)
        return item[1]

    def put(self, key: tuple[object, ...], stamp: tuple[object, ...], frame: DayFrame) -> None:
        self._items[key] = (stamp, frame)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class RollupStore:
    def __init__(self, redis: Redis, frame_cache_size: int = 512) -> None:
        self.redis = redis
        self._frames = _FrameCache(frame_cache_size)
        self._users = UserIndex()
        self._blocks: dict[tuple[object, ...], LatencyBlock] = {}
        self._profiles: tuple[object, dict[str, Profile]] | None = None
        # day -> (version, parsed build fields, decoded builds by field): builds of a day
        # are listed and decoded once per day version
        self._builds: dict[int, tuple[object, DayBuilds, dict[str, StoredBuild]]] = {}
        self._intern: dict[tuple[str, ...], int] = {}
        self._rollup = redis.register_script(_ROLLUP_LUA)
        self._meta = redis.register_script(_META_LUA)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # -- writes -------------------------------------------------------------

    async def apply(self, plan: BatchPlan) -> int:
        """Apply a batch plan atomically per day, in one round trip; returns changed ops."""
        if not plan.days and not plan.meta:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for day, ops in plan.days.items():
            args: list[str | bytes] = [keys.day_prefix(day), orjson.dumps(ops)]
            await self._rollup(keys=[keys.day_templates(day)], args=args, client=pipe)
        if plan.days:
            # Idempotent index of days with data, so a query over decades reads only those.
            pipe.zadd(keys.data_days(), {str(day): day for day in plan.days})
        if plan.meta:
            meta_keys = [
                keys.users(),
                keys.app_catalogue(),
                keys.catalogue_version(),
                keys.users_version(),
            ]
            await self._meta(keys=meta_keys, args=[orjson.dumps(plan.meta)], client=pipe)
        results = await pipe.execute()
        if plan.days:
            del results[len(plan.days)]  # the ZADD's count is not a changed op
        return sum(int(r) for r in results)

    async def data_days(self, first_day: int, stop_day: int) -> list[int]:
        """Days in ``[first_day, stop_day)`` that hold any data, ascending."""
        raw: list[Any] = await self.redis.zrangebyscore(keys.data_days(), first_day, stop_day - 1)
        return [int(d) for d in raw]

    # -- reads --------------------------------------------------------------

    async def catalogue(self) -> Catalogue:
        raw = await self.redis.hgetall(keys.app_catalogue())
        out: Catalogue = {}
        for fld, value in raw.items():
            template, _, key = _s(fld).partition(SEP)
            entry = orjson.loads(value)
            out[template, key] = (entry["n"], entry["c"])
        return out

    async def profiles(self, users: list[str]) -> dict[str, Profile]:
        """Profiles of ``users``; all profiles are decoded once per users version."""
        if not users:
            return {}
        version = await self.redis.get(keys.users_version())
        if self._profiles is None or self._profiles[0] != version:
            raw = await self.redis.hgetall(keys.users())
            decoded = {}
            for user, value in raw.items():
                entry = orjson.loads(value)
                decoded[_s(user)] = Profile(entry["n"], entry["c"])
            self._profiles = (version, decoded)
        known = self._profiles[1]
        return {u: known[u] for u in users if u in known}

    async def window(
        self, first_hh: int, stop_hh: int, templates: tuple[str, ...] | None, parts: Parts
    ) -> WindowView:
        """Half-hours ``[first_hh, stop_hh)`` of the selected templates (None = all).

        Each day with data becomes a frame; frames are cached by the day's rollup
        version (and the catalogue's), so only days that changed are read again.
        """
        if stop_hh <= first_hh:
            return merge_frames([], self._users)
        days = set(
            await self.data_days(first_hh // HALF_HOURS_PER_DAY, -(-stop_hh // HALF_HOURS_PER_DAY))
        )
        plans = [
            _DayPlan(day, lo, hi, lo == 0 and hi == HALF_HOURS_PER_DAY)
            for day, lo, hi in day_span(first_hh, stop_hh)
            if day in days
        ]
        if not plans:
            return merge_frames([], self._users)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.catalogue_version())
        for plan in plans:
            pipe.get(keys.day_version(plan.day))
        cat_version, *day_versions = await pipe.execute()
        frames: list[DayFrame] = []
        stamps: list[tuple[object, ...]] = []
        stale: list[tuple[_DayPlan, tuple[object, ...], tuple[object, ...]]] = []
        for plan, version in zip(plans, day_versions, strict=True):
            cache_key: tuple[object, ...] = (plan.day, plan.lo, plan.hi, templates, parts)
            stamp: tuple[object, ...] = (version, cat_version if "x" in parts else None)
            stamps.append(cache_key + stamp)
            frame = self._frames.get(cache_key, stamp)
            if frame is None:
                stale.append((plan, cache_key, stamp))
            else:
                frames.append(frame)
        if stale:
            built = await self._build_frames([p for p, _, _ in stale], templates, parts)
            for (_, key, built_stamp), frame in zip(stale, built, strict=True):
                self._frames.put(key, built_stamp, frame)
                frames.append(frame)
        view = merge_frames(frames, self._users)
        if "l" in parts:
            view.latency_block = self._latency_block(frames, stamps)
        return view

    def _latency_block(
        self, frames: list[DayFrame], stamps: list[tuple[object, ...]]
    ) -> LatencyBlock | None:
        """Samples of all but the two newest days, summed once per set of day versions:
        live data lands on the newest days, so a dashboard re-sums only those."""
        if len(frames) <= 2:
            return None
        settled = sorted(frames, key=lambda f: f.day)[:-2]
        days = {f.day for f in settled}
        key = tuple(s for s in sorted(stamps, key=lambda s: int(s[0])) if s[0] in days)  # type: ignore[call-overload]
        block = self._blocks.get(key)
        if block is None:
            block = latency_block(settled)
            self._blocks[key] = block
            while len(self._blocks) > 8:
                self._blocks.pop(next(iter(self._blocks)))
        return block

    async def _build_frames(
        self, plans: list[_DayPlan], templates: tuple[str, ...] | None, parts: Parts
    ) -> list[DayFrame]:
        catalogue = await self.catalogue() if "x" in parts else {}
        index = await self._day_indexes(plans, templates)
        pipe = self.redis.pipeline(transaction=False)
        readers = []
        for plan, members in zip(plans, index, strict=True):
            if plan.fast:
                readers.append(self._queue_aggregates(pipe, plan.day, members, templates, parts))
            else:
                readers.append(self._queue_cells(pipe, plan.day, members, templates, parts))
        results = iter(await pipe.execute())
        out: list[DayFrame] = []
        for plan, reader in zip(plans, readers, strict=True):
            acc = WindowAcc(plan.day * HALF_HOURS_PER_DAY, (plan.day + 1) * HALF_HOURS_PER_DAY)
            data = reader(results)
            if isinstance(data, DayCells):
                fold_day_cells(acc, data, plan.lo, plan.hi, catalogue)
            elif not fold_aggregates(acc, data, catalogue):
                cells = await self._cells_now(plan.day, templates, parts)
                fold_day_cells(acc, cells, plan.lo, plan.hi, catalogue)
            out.append(day_frame(acc, plan.day, self._users))
        return out

    async def _day_indexes(
        self, plans: list[_DayPlan], templates: tuple[str, ...] | None
    ) -> list[list[str]]:
        pipe = self.redis.pipeline(transaction=False)
        for plan in plans:
            if plan.fast:
                pipe.smembers(keys.day_templates(plan.day))
            else:
                pipe.smembers(keys.day_cells(plan.day))
        wanted = None if templates is None else set(templates)
        out: list[list[str]] = []
        for members in await pipe.execute():
            names = sorted(_s(m) for m in members)
            if wanted is not None:
                names = [n for n in names if n.partition(SEP)[0] in wanted]
            out.append(names)
        return out

    def _queue_aggregates(
        self, pipe: Any, day: int, tpls: list[str], templates: tuple[str, ...] | None, parts: Parts
    ) -> Callable[[Iterator[Any]], list[DayAggregates]]:
        """Queue a whole day's aggregates: the ``all`` scope, or each selected template's."""
        if templates is None:
            return self._queue_all_scope(pipe, day, tpls, parts)
        readers = [self._queue_template_scope(pipe, day, t, parts) for t in tpls]
        return lambda results: [read(results) for read in readers]

    def _queue_all_scope(
        self, pipe: Any, day: int, tpls: list[str], parts: Parts
    ) -> Callable[[Iterator[Any]], list[DayAggregates]]:
        scope_parts = [p for p in ("x", "m", "l") if p in parts]
        for part in scope_parts:
            pipe.hgetall(keys.day_agg(day, keys.ALL, part))
        for t in tpls:
            pipe.hgetall(keys.day_agg(day, t, "a"))
            if "x" in parts:
                pipe.hgetall(keys.day_agg(day, t, "x"))
            if "l" in parts:
                pipe.hkeys(keys.day_agg(day, t, "l"))

        def read(results: Iterator[Any]) -> list[DayAggregates]:
            scoped = {part: _hash(next(results)) for part in scope_parts}
            agg = DayAggregates(
                day, scoped.get("x", {}), scoped.get("m", {}), scoped.get("l", {}), {}, {}, {}
            )
            for t in tpls:
                agg.per_template_a[t] = _hash(next(results))
                if "x" in parts:
                    agg.per_template_x[t] = _hash(next(results))
                if "l" in parts:
                    agg.per_template_latency_users[t] = [_s(u) for u in next(results)]
            return [agg]

        return read

    def _queue_template_scope(
        self, pipe: Any, day: int, template: str, parts: Parts
    ) -> Callable[[Iterator[Any]], DayAggregates]:
        wanted = ["a", *(p for p in ("x", "m", "l") if p in parts)]
        for part in wanted:
            pipe.hgetall(keys.day_agg(day, template, part))

        def read(results: Iterator[Any]) -> DayAggregates:
            got = {part: _hash(next(results)) for part in wanted}
            x, latency = got.get("x", {}), got.get("l", {})
            return DayAggregates(
                day,
                x,
                got.get("m", {}),
                latency,
                {template: got["a"]},
                {template: x} if "x" in parts else {},
                {template: list(latency)} if "l" in parts else {},
            )

        return read

    def _queue_cells(
        self, pipe: Any, day: int, pairs: list[str], templates: tuple[str, ...] | None, parts: Parts
    ) -> Any:
        split = [tuple(p.split(SEP, 1)) for p in pairs]
        for t, u in split:
            pipe.hgetall(keys.cell(day, t, u))
            if "l" in parts:
                pipe.hgetall(keys.cell_latency(day, t, u))

        def read(results: Any) -> DayCells:
            cells = DayCells(day, {}, {})
            for t, u in split:
                cells.cells[t, u] = _hash(next(results))
                if "l" in parts:
                    cells.latency[t, u] = _hash(next(results))
            return cells

        return read

    async def _cells_now(
        self, day: int, templates: tuple[str, ...] | None, parts: Parts
    ) -> DayCells:
        plan = _DayPlan(day, 0, HALF_HOURS_PER_DAY, False)
        (pairs,) = await self._day_indexes([plan], templates)
        pipe = self.redis.pipeline(transaction=False)
        read = self._queue_cells(pipe, day, pairs, templates, parts)
        result: DayCells = read(iter(await pipe.execute()))
        return result

    async def builds(
        self, start_ns: int, end_ns: int, templates: frozenset[str] | None
    ) -> list[StoredBuild]:
        """Candidate builds of the window: each workspace's top build of the days lying wholly
        inside it, plus every build of the edge days (their exact times decide).  Only these
        are decoded, once per day version; ``parameters.latest_builds`` makes the final choice.
        """
        days = await self.data_days(start_ns // NS_PER_DAY, -(-end_ns // NS_PER_DAY))
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.get(keys.day_version(day))
        versions = dict(zip(days, await pipe.execute(), strict=True))
        stale = [d for d in days if d not in self._builds or self._builds[d][0] != versions[d]]
        pipe = self.redis.pipeline(transaction=False)
        for day in stale:
            pipe.hkeys(keys.day_builds(day))
        for day, raw in zip(stale, await pipe.execute(), strict=True):
            fields = [parse_build_field(_s(f)) for f in raw]
            self._builds[day] = (versions[day], index_day_builds(fields, self._intern), {})
        indexed = {d: self._builds[d][1] for d in days}
        interior = {d for d in days if start_ns <= d * NS_PER_DAY <= end_ns - NS_PER_DAY}
        selected = None
        if templates is not None:
            ids = [self._intern[(t,)] for t in templates if (t,) in self._intern]
            selected = np.array(ids, dtype=np.int64)
        wanted = candidate_build_fields(indexed, interior, selected)
        missing = {
            d: [n for n in names if n not in self._builds[d][2]] for d, names in wanted.items()
        }
        missing = {d: names for d, names in missing.items() if names}
        pipe = self.redis.pipeline(transaction=False)
        for day, names in missing.items():
            pipe.hmget(keys.day_builds(day), names)
        for (day, names), values in zip(missing.items(), await pipe.execute(), strict=True):
            decoded = self._builds[day][2]
            for name, value in zip(names, values, strict=True):
                if value is not None:
                    decoded[name] = _stored_build(name, value)
        self._trim_builds()
        return [
            self._builds[d][2][n] for d, names in wanted.items() for n in names
            if n in self._builds[d][2]
        ]  # fmt: skip

    def _trim_builds(self, keep_days: int = 400, max_ids: int = 2_000_000) -> None:
        if len(self._intern) > max_ids:  # ids and the arrays using them go together
            self._intern.clear()
            self._builds.clear()
        while len(self._builds) > keep_days:
            self._builds.pop(next(iter(self._builds)))


def _stored_build(name: str, value: Any) -> StoredBuild:
    template, workspace, _ = name.split(SEP)
    payload = orjson.loads(orjson.loads(value)["p"])
    return StoredBuild(
        template,
        workspace,
        int(payload["build_number"]),
        int(payload["time_us"]),
        param_uses(payload["parameters"]),
    )
