"""Retention: whole UTC days older than the horizon go, in one script call per day.

Keys are grouped by day (one hash tag), so a day is dropped without scanning.
Late events for a dropped day are still accepted by the worker; the next pass
drops them again.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio import Redis

from aggregators.store.generations import Generations

_DROP_LUA = resources.files("aggregators.store").joinpath("drop_day.lua").read_text()


class Retention:
    def __init__(self, redis: Redis, generations: Generations) -> None:
        self.redis = redis
        self.generations = generations
        self._drop = redis.register_script(_DROP_LUA)

    async def drop_days_before(self, first_kept_day: int) -> list[int]:
        """Drop every day with data before ``first_kept_day``; returns the days dropped."""
        await self.generations.sync()
        keys = self.generations.keys
        raw: list[Any] = await self.redis.zrangebyscore(
            keys.data_days(), "-inf", first_kept_day - 1
        )
        days = [int(d) for d in raw]
        for day in days:
            await self._drop(keys=[keys.day_templates(day)], args=[keys.day_prefix(day)])
            # After the day's keys: a reader that still sees the day finds it empty.
            await self.redis.zrem(keys.data_days(), str(day))
        return days
