"""Reads: the ``RollupSource`` of the read path, over Redis.

Every method pipelines its commands, so it costs one round trip, or two when
the second depends on the first (a day's template or cell set, then its
hashes).  Replies are decoded into the core's records by ``codec``.

A day of a generation with several buckets (``keys``) is read from each: the
buckets' hashes are merged into one before decoding (users are disjoint across
buckets; totals add up, masks OR), so the records are those of one bucket.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from aggregators.frames import DayFrame, UserIndex
from aggregators.parameters import BuildField, StoredBuild
from aggregators.records import (
    Catalogue,
    DayAggregates,
    DayCells,
    LatencyCounts,
    Parts,
    UserMasks,
)
from aggregators.reports import Profile
from aggregators.source import DayData, DayRead, Snapshot, Version
from aggregators.store import codec, frame_codec
from aggregators.store.client import Pipeline, RedisClient
from aggregators.store.generations import Generations
from aggregators.store.keys import ALL, Keyspace

Reader = Callable[[Iterator[Any]], DayData]
Merge = Callable[[Sequence[codec.Hash]], codec.Hash]
Stamp = tuple[object, ...]
# Shared frames are a cache: a day nobody asked for in two days is folded again when asked.
FRAME_TTL_S = 2 * 86_400


def _digest(shape: str) -> str:
    return hashlib.blake2b(shape.encode(), digest_size=8).hexdigest()


class RedisSource:
    """Reads follow the live generation, checked when a snapshot is taken; versions carry
    the generation, so nothing cached from one is taken for the other."""

    def __init__(self, redis: RedisClient, generations: Generations) -> None:
        self.redis = redis
        self.generations = generations

    @property
    def keys(self) -> Keyspace:
        return self.generations.keys

    def _versions(self, raw: Mapping[int, Any]) -> dict[int, Version]:
        tag = f"g{self.keys.generation}:"
        return {day: None if v is None else tag + v for day, v in codec.versions(raw).items()}

    async def snapshot(self, first_day: int, stop_day: int) -> Snapshot:
        await self.generations.sync()
        keys = self.keys
        raw: list[Any] = await self.redis.zrangebyscore(keys.data_days(), first_day, stop_day - 1)
        days = tuple(int(d) for d in raw)
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.catalogue_version())
        pipe.get(keys.users_version())
        n = keys.buckets
        for day in days:
            for bucket in range(n):
                pipe.get(keys.day_version(day, bucket))
        cat_version, users_version, *raw_versions = await pipe.execute()
        versions = self._versions({-2: cat_version, -1: users_version})
        day_versions = {
            day: codec.bucket_version(raw_versions[i * n : (i + 1) * n])
            for i, day in enumerate(days)
        }
        return Snapshot(days, self._versions(day_versions), versions[-2], versions[-1])

    async def read_days(self, reads: Sequence[DayRead]) -> list[DayData]:
        if not reads:
            return []
        index = await self._day_indexes(reads)
        pipe = self.redis.pipeline(transaction=False)
        readers = [
            _queue_day(self.keys, pipe, read, members)
            for read, members in zip(reads, index, strict=True)
        ]
        results = iter(await pipe.execute())
        return [reader(results) for reader in readers]

    async def _day_indexes(self, reads: Sequence[DayRead]) -> list[list[str]]:
        """Templates of each whole day, ``template|user`` cell members of the others."""
        keys = self.keys
        pipe = self.redis.pipeline(transaction=False)
        asked: list[list[int]] = []
        for read in reads:
            buckets = list(range(keys.buckets))
            if read.users is not None and not read.whole and keys.buckets > 1:
                buckets = sorted({keys.bucket(u) for u in read.users})
            asked.append(buckets)
            for b in buckets:
                if read.whole:
                    pipe.smembers(keys.day_templates(read.day, b))
                else:
                    pipe.hgetall(keys.day_user_templates(read.day, b))
        results = iter(await pipe.execute())
        out: list[list[str]] = []
        for read, buckets in zip(reads, asked, strict=True):
            got = [next(results) for _ in buckets]
            if read.whole:
                names = codec.members({m for raw in got for m in raw})
            else:
                names = codec.cell_members(codec.merge_users([codec.str_hash(r) for r in got]))
            if read.templates is not None:
                wanted = set(read.templates)
                names = [n for n in names if codec.split_pair(n)[0] in wanted]
            if read.users is not None and not read.whole:
                users = set(read.users)
                names = [n for n in names if codec.split_pair(n)[1] in users]
            out.append(names)
        return out

    async def catalogue(self) -> Catalogue:
        return codec.catalogue(await self.redis.hgetall(self.keys.app_catalogue()))

    async def template_names(self) -> dict[str, tuple[str, str]]:
        """Template id -> (template name, organization name) of templates some event named."""
        return codec.template_names(await self.redis.hgetall(self.keys.template_names()))

    async def profiles(self) -> dict[str, Profile]:
        return codec.profiles(await self.redis.hgetall(self.keys.users()))

    async def build_fields(self, days: Sequence[int]) -> list[list[BuildField]]:
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hkeys(self.keys.day_builds(day))
        return [
            [codec.parse_build_field(codec.text(f)) for f in raw] for raw in await pipe.execute()
        ]

    async def shared_frames(
        self, wanted: Sequence[tuple[int, str]], index_of: UserIndex
    ) -> list[tuple[Stamp, DayFrame] | None]:
        pipe = self.redis.pipeline(transaction=False)
        for day, shape in wanted:
            pipe.get(self.keys.day_frame(day, _digest(shape)))
        return [
            None if raw is None else frame_codec.decode(base64.b64decode(raw), index_of)
            for raw in await pipe.execute()
        ]

    async def share_frames(self, frames: Sequence[tuple[int, str, Stamp, DayFrame]]) -> None:
        # Base64: the API's client decodes replies as text.
        pipe = self.redis.pipeline(transaction=False)
        for day, shape, stamp, frame in frames:
            blob = base64.b64encode(frame_codec.encode(stamp, frame))
            pipe.set(self.keys.day_frame(day, _digest(shape)), blob, ex=FRAME_TTL_S)
        await pipe.execute()

    async def build_versions(self, days: Sequence[int]) -> list[Version]:
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.get(self.keys.day_builds_version(day))
        return list(self._versions(dict(enumerate(await pipe.execute()))).values())

    async def builds(self, wanted: Mapping[int, Sequence[str]]) -> dict[str, StoredBuild]:
        asked = [(day, list(names)) for day, names in wanted.items() if names]
        pipe = self.redis.pipeline(transaction=False)
        for day, names in asked:
            pipe.hmget(self.keys.day_builds(day), names)
            pipe.hgetall(self.keys.day_param_defs(day))
        results = iter(await pipe.execute())
        out: dict[str, StoredBuild] = {}
        for _, names in asked:
            values, defs = next(results), codec.param_defs(next(results))
            for name, value in zip(names, values, strict=True):
                if value is not None:
                    out[name] = codec.stored_build(name, value, defs)
        return out


def _queue_hash(pipe: Pipeline, keys: Keyspace, day: int, scope: str, part: str) -> None:
    """HGETALL of one day aggregate in every bucket."""
    for b in range(keys.buckets):
        pipe.hgetall(keys.day_agg(day, scope, part, b))


def _take_hash(results: Iterator[Any], keys: Keyspace, merge: Merge) -> codec.Hash:
    return merge([codec.str_hash(next(results)) for _ in range(keys.buckets)])


def _merge_for(part: str) -> Merge:
    return codec.merge_tools if part == "x" else codec.merge_users


def _queue_day(keys: Keyspace, pipe: Any, read: DayRead, members: list[str]) -> Reader:
    if not read.whole:
        return _queue_cells(keys, pipe, read.day, members, read.parts)
    for b in range(keys.buckets):
        pipe.hget(keys.day_agg(read.day, ALL, "x", b), codec.SPAN_FIELD)
    if read.templates is None:
        readers = [_queue_all_scope(keys, pipe, read.day, members, read.parts)]
    else:
        readers = [_queue_template_scope(keys, pipe, read.day, t, read.parts) for t in members]

    def read_whole(results: Iterator[Any]) -> DayData:
        span = codec.span(codec.merge_spans([next(results) for _ in range(keys.buckets)]))
        aggs = [read_one(results) for read_one in readers]
        for agg in aggs:
            agg.span = span
        return aggs

    return read_whole


def _queue_all_scope(
    keys: Keyspace, pipe: Any, day: int, templates: list[str], parts: Parts
) -> Callable[[Iterator[Any]], DayAggregates]:
    """The ``all`` scope's caps-applied aggregates, plus what each template contributed.
    Latency, app runs and active half-hours are never capped, so they have no ``all`` copy:
    the templates' bins are summed and their masks OR-ed (by the fold, for active ones)."""
    scope_parts = [p for p in ("x", "m") if p in parts]
    for part in scope_parts:
        _queue_hash(pipe, keys, day, ALL, part)
    for t in templates:
        _queue_hash(pipe, keys, day, t, "a")
        if "x" in parts:
            _queue_hash(pipe, keys, day, t, "x")
        if "l" in parts:
            _queue_hash(pipe, keys, day, t, "l")

    def read(results: Iterator[Any]) -> DayAggregates:
        scoped = {part: _take_hash(results, keys, _merge_for(part)) for part in scope_parts}
        parts_of_day: list[LatencyCounts] = []
        agg = DayAggregates(
            day,
            codec.tool_minutes(scoped.get("x", {})),
            codec.int_hash(scoped.get("m", {})),
            LatencyCounts.empty(),
            {},
            {},
            {},
        )
        for t in templates:
            agg.active[t] = codec.usage(_take_hash(results, keys, codec.merge_users))[0]
            if "x" in parts:
                tools = codec.tool_minutes(_take_hash(results, keys, codec.merge_tools))
                agg.template_tools[t] = tools
                _or_runs(agg.tools.runs, tools.runs)
            if "l" in parts:
                latency = codec.latency_counts(_take_hash(results, keys, codec.merge_users))
                agg.latency_users[t] = list(latency.users)
                parts_of_day.append(latency)
        agg.latency = LatencyCounts.concat(parts_of_day)
        return agg

    return read


def _or_runs(into: dict[str, UserMasks], runs: dict[str, UserMasks]) -> None:
    for key, per_user in runs.items():
        target = into.setdefault(key, {})
        for user, mask in per_user.items():
            target[user] = target.get(user, 0) | mask


def _queue_template_scope(
    keys: Keyspace, pipe: Any, day: int, template: str, parts: Parts
) -> Callable[[Iterator[Any]], DayAggregates]:
    # Part "a" holds the template's usage minutes too: "m" costs no command of its own.
    wanted = ["a", *(p for p in ("x", "l") if p in parts)]
    for part in wanted:
        _queue_hash(pipe, keys, day, template, part)

    def read(results: Iterator[Any]) -> DayAggregates:
        got = {part: _take_hash(results, keys, _merge_for(part)) for part in wanted}
        tools = codec.tool_minutes(got.get("x", {}))
        latency = codec.latency_counts(got.get("l", {}))
        active, minutes = codec.usage(got["a"])
        return DayAggregates(
            day,
            tools,
            minutes if "m" in parts else {},
            latency,
            {template: active},
            {template: tools} if "x" in parts else {},
            {template: list(latency.users)} if "l" in parts else {},
        )

    return read


def _queue_cells(keys: Keyspace, pipe: Any, day: int, members: list[str], parts: Parts) -> Reader:
    pairs = [codec.split_pair(m) for m in members]
    for t, u in pairs:
        pipe.hgetall(keys.cell(day, t, u))

    def read(results: Iterator[Any]) -> DayData:
        cells = DayCells(day, {}, {})
        for pair in pairs:
            half_hours, latency = codec.cell(codec.str_hash(next(results)))
            cells.cells[pair] = half_hours
            if "l" in parts and latency:
                cells.latency[pair] = latency
        return cells

    return read
