"""Writes: one batch plan = one pipeline, so a batch costs one round trip.

Each UTC day's operations go to ``rollup.lua`` in one call (all keys of a day
share the ``{d<day>}`` hash tag, so the call stays in one cluster slot), the
index of days with data is updated, and the metadata updates go to
``meta.lua`` (``{meta}`` tag).
"""

from __future__ import annotations

from importlib import resources

import orjson
from redis.asyncio import Redis

from aggregators.ops import BatchPlan
from aggregators.store import codec
from aggregators.store.generations import Generations
from aggregators.timebase import S_PER_DAY

_ROLLUP_LUA = resources.files("aggregators.store").joinpath("rollup.lua").read_text()
_META_LUA = resources.files("aggregators.store").joinpath("meta.lua").read_text()


DEDUPE_HORIZON_S = 7 * S_PER_DAY


class RollupWriter:
    """``dedupe_horizon_s``: how long a latency sample's id guard outlives the last write
    to its guard hash (a redelivery within it changes nothing; see ``rollup.lua``)."""

    def __init__(
        self,
        redis: Redis,
        generations: Generations,
        *,
        dedupe_horizon_s: int = DEDUPE_HORIZON_S,
    ) -> None:
        if dedupe_horizon_s < 1:
            raise ValueError("dedupe_horizon_s must be at least 1")
        self.redis = redis
        self.generations = generations
        self._horizon_arg = str(dedupe_horizon_s)
        self._rollup = redis.register_script(_ROLLUP_LUA)
        self._meta = redis.register_script(_META_LUA)

    async def apply(self, plan: BatchPlan) -> int:
        """Apply a batch plan atomically per day, in one round trip; returns changed ops."""
        days = sorted(plan.days.keys() | plan.builds.keys())
        if not days and not plan.meta:
            return 0
        await self.generations.sync()
        keys = self.generations.keys
        pipe = self.redis.pipeline(transaction=False)
        # Names first: the pipeline runs in order, so a reader that sees a batch's activity
        # also sees the usernames and app names it brought (never a user with no name yet).
        if plan.meta:
            meta_keys = [
                keys.users(),
                keys.app_catalogue(),
                keys.catalogue_version(),
                keys.users_version(),
                keys.template_names(),
                keys.template_names_version(),
            ]
            ops_json = orjson.dumps([codec.meta_op(m) for m in plan.meta])
            await self._meta(keys=meta_keys, args=[ops_json], client=pipe)
        for day in days:
            ops = plan.days.get(day, [])
            if day in plan.builds:  # rare: don't copy a day's cell ops for nothing
                ops = ops + [codec.build_op(b) for b in plan.builds[day]]
            args: list[str | bytes] = [keys.day_prefix(day), orjson.dumps(ops), self._horizon_arg]
            await self._rollup(keys=[keys.day_templates(day)], args=args, client=pipe)
        if days:
            # Idempotent index of days with data, so a query over decades reads only those.
            pipe.zadd(keys.data_days(), {str(day): day for day in days})
        results = await pipe.execute()
        if days:
            results.pop()  # the ZADD's count is not a changed op
        return sum(int(r) for r in results)
