"""Writes: one batch plan = one pipeline, so a batch costs one round trip per slot.

A UTC day's rollups are split by user into ``Keyspace.buckets`` buckets, each under a hash
tag of its own (``keys``), so a Redis Cluster spreads even today's writes over its shards.
Each (day, bucket)'s operations go to ``rollup.lua`` in one atomic call, builds with
bucket 0; the index of days with data is updated, and the metadata updates go to
``meta.lua`` (``{meta}`` tag).

Every key a call may touch is declared in KEYS (``Keyspace.rollup_keys``: cluster routing
and key ACLs depend on it). That includes the user's cells in its other templates of the
day, which a half-hour's caps read: the writer remembers the templates it has seen per
(day, user) and declares their cells. A call that meets a template it was not told of
changes nothing and names it; the writer sends that call again with it, in a second round
trip (once per user, day and worker, and only for users in several templates).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from aggregators.ops import BatchPlan
from aggregators.store import codec
from aggregators.store.client import Pipeline, RedisClient, Script, execute, is_cluster
from aggregators.store.generations import Generations
from aggregators.store.keys import Keyspace
from aggregators.timebase import S_PER_DAY

ROLLUP = Script("rollup.lua")
META = Script("meta.lua")
SCRIPTS = (ROLLUP, META)

DEDUPE_HORIZON_S = 7 * S_PER_DAY
KNOWN_USER_DAYS = 100_000  # (day, user) -> templates entries the writer remembers
MISSING = "missing"  # first element of a rollup reply that names undeclared templates


@dataclass
class Call:
    """One script call: its script, KEYS and ARGV; for rollup calls, the (day, bucket) and
    each user's declared templates."""

    script: Script
    keys: list[str]
    args: list[str | bytes]
    day: int = 0
    bucket: int = 0
    users: dict[str, set[str]] = field(default_factory=dict)
    ops: list[Any] = field(default_factory=list)


class RollupWriter:
    """``dedupe_horizon_s``: how long a latency sample's id guard outlives the last write
    to its guard hash (a redelivery within it changes nothing; see ``rollup.lua``)."""

    def __init__(
        self,
        redis: RedisClient,
        generations: Generations,
        *,
        dedupe_horizon_s: int = DEDUPE_HORIZON_S,
    ) -> None:
        if dedupe_horizon_s < 1:
            raise ValueError("dedupe_horizon_s must be at least 1")
        self.redis = redis
        self.generations = generations
        self._horizon_arg = str(dedupe_horizon_s)
        self._cluster = is_cluster(redis)
        self._known: OrderedDict[tuple[int, int, str], set[str]] = OrderedDict()

    async def apply(self, plan: BatchPlan) -> int:
        """Apply a batch plan atomically per (day, bucket), in one round trip (on a cluster,
        two when the batch brings names); returns changed ops."""
        days = sorted(plan.days.keys() | plan.builds.keys())
        if not days and not plan.meta:
            return 0
        await self.generations.sync()
        if not self.generations.recorded:
            await self.generations.claim()
        keys = self.generations.keys
        calls = [self._meta_call(keys, plan)] if plan.meta else []
        changed = 0
        # Names first: a reader that sees a batch's activity also sees the usernames and app
        # names it brought (never a user with no name yet). One server runs a pipeline in
        # order; a cluster runs each node's share at once, so there the names go ahead.
        if calls and self._cluster and days:
            changed += sum(int(r) for r in await self._send(keys, calls, []))
            calls = []
        calls += self.rollup_calls(keys, plan, days)
        index_days = days
        while calls:
            retry = []
            results = await self._send(keys, calls, index_days)
            index_days = []
            for call, result in zip(calls, results, strict=True):
                if isinstance(result, list):
                    retry.append(self._declare(keys, call, result))
                    continue
                changed += int(result)
                if call.script is ROLLUP:
                    self._remember(keys, call)
            calls = retry
        return changed

    async def _send(self, keys: Keyspace, calls: Sequence[Call], days: list[int]) -> list[Any]:
        def build(pipe: Pipeline) -> None:
            for call in calls:
                call.script.queue(pipe, call.keys, call.args)
            if days:
                # Idempotent index of days with data, so a query over decades reads only those.
                pipe.zadd(keys.data_days(), {str(day): day for day in days})

        results = await execute(self.redis, build, SCRIPTS)
        return results[: len(calls)]  # the ZADD's count is not a changed op

    def _meta_call(self, keys: Keyspace, plan: BatchPlan) -> Call:
        meta_keys = [
            keys.users(),
            keys.app_catalogue(),
            keys.catalogue_version(),
            keys.users_version(),
            keys.template_names(),
            keys.template_names_version(),
        ]
        return Call(META, meta_keys, [orjson.dumps([codec.meta_op(m) for m in plan.meta])])

    def rollup_calls(self, keys: Keyspace, plan: BatchPlan, days: Sequence[int]) -> list[Call]:
        """One call per (day, bucket) with operations; builds go with bucket 0."""
        calls = []
        for day in days:
            ops = plan.days.get(day, [])
            if keys.buckets == 1:
                by_bucket = {0: ops}
            else:
                by_bucket = {}
                for op in ops:
                    by_bucket.setdefault(keys.bucket(str(op[2])), []).append(op)
            if day in plan.builds:  # rare: don't copy a day's cell ops for nothing
                builds = [codec.build_op(b) for b in plan.builds[day]]
                by_bucket[0] = by_bucket.get(0, []) + builds
            for bucket, bucket_ops in sorted(by_bucket.items()):
                if bucket_ops:
                    calls.append(self._rollup_call(keys, day, bucket, bucket_ops))
        return calls

    def _rollup_call(self, keys: Keyspace, day: int, bucket: int, ops: list[Any]) -> Call:
        users: dict[str, set[str]] = {}
        guards: set[tuple[str, str, int]] = set()
        builds = False
        for op in ops:
            tag = op[0]
            if tag == "b":
                builds = True
                continue
            t, u = op[1], op[2]
            declared = users.get(u)
            if declared is None:
                known = self._known.get((keys.generation, day, u))
                users[u] = declared = set(known) if known else set()
            declared.add(t)
            if tag == "l":
                guards.add((t, u, op[3]))
        call = Call(ROLLUP, [], [], day, bucket, users, ops)
        call.keys = self._rollup_keys(keys, call, guards, builds)
        call.args = [keys.day_prefix(day, bucket), orjson.dumps(ops), self._horizon_arg]
        return call

    def _rollup_keys(
        self, keys: Keyspace, call: Call, guards: set[tuple[str, str, int]], builds: bool
    ) -> list[str]:
        templates = sorted({t for ts in call.users.values() for t in ts})
        cells = [(t, u) for u, ts in call.users.items() for t in sorted(ts)]
        return keys.rollup_keys(call.day, call.bucket, templates, cells, sorted(guards), builds)

    def _declare(self, keys: Keyspace, call: Call, reply: list[Any]) -> Call:
        """The call again, declaring the (user, template) pairs its reply named."""
        named = [codec.text(x) for x in reply]
        if not named or named[0] != MISSING:
            raise ValueError(f"unexpected rollup reply: {named[:3]}")
        for u, t in zip(named[1::2], named[2::2], strict=True):
            call.users.setdefault(u, set()).add(t)
        guards = {(op[1], op[2], op[3]) for op in call.ops if op[0] == "l"}
        builds = any(op[0] == "b" for op in call.ops)
        call.keys = self._rollup_keys(keys, call, guards, builds)
        return call

    def _remember(self, keys: Keyspace, call: Call) -> None:
        for u, templates in call.users.items():
            key = (keys.generation, call.day, u)
            self._known[key] = templates
            self._known.move_to_end(key)
        while len(self._known) > KNOWN_USER_DAYS:
            self._known.popitem(last=False)
