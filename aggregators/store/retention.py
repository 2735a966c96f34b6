"""Retention: whole UTC days older than the horizon go, one script call per day bucket.

Keys are grouped by day and bucket (one hash tag each), so a day is dropped without
scanning: each bucket's template set and user templates name every key it holds. They are
read first and the drop script is told every key (scripts declare what they touch); a
bucket that gained a template or user in between is read again.  Late events for a dropped
day are still accepted by the worker; the next pass drops them again.
"""

from __future__ import annotations

from typing import Any

from aggregators.store import codec
from aggregators.store.client import RedisClient, Script, execute
from aggregators.store.generations import Generations
from aggregators.store.keys import Keyspace

DROP = Script("drop_day.lua")
ATTEMPTS = 20  # reads of a bucket that keeps gaining users while it is dropped


class Retention:
    def __init__(self, redis: RedisClient, generations: Generations) -> None:
        self.redis = redis
        self.generations = generations

    async def drop_days_before(self, first_kept_day: int) -> list[int]:
        """Drop every day with data before ``first_kept_day``; returns the days dropped."""
        await self.generations.sync()
        keys = self.generations.keys
        raw: list[Any] = await self.redis.zrangebyscore(
            keys.data_days(), "-inf", first_kept_day - 1
        )
        days = [int(d) for d in raw]
        for day in days:
            await self.drop_day(keys, day)
            # After the day's keys: a reader that still sees the day finds it empty.
            await self.redis.zrem(keys.data_days(), str(day))
        return days

    async def drop_day(self, keys: Keyspace, day: int) -> int:
        """Unlink every key of ``day``'s buckets; returns how many went."""
        removed = 0
        buckets = list(range(keys.buckets))
        for _ in range(ATTEMPTS):
            if not buckets:
                return removed
            pipe = self.redis.pipeline(transaction=False)
            for b in buckets:
                pipe.smembers(keys.day_templates(day, b))
                pipe.hgetall(keys.day_user_templates(day, b))
            got = iter(await pipe.execute())
            calls = []
            for b in buckets:
                templates = codec.members(next(got))
                users = {
                    user: codec.split_templates(value)
                    for user, value in codec.str_hash(next(got)).items()
                }
                calls.append(keys.bucket_keys(day, b, templates, users))

            def build(
                pipe: Any, calls: list[list[str]] = calls, buckets: list[int] = buckets
            ) -> None:
                for b, call_keys in zip(buckets, calls, strict=True):
                    DROP.queue(pipe, call_keys, [keys.day_prefix(day, b)])

            results = await execute(self.redis, build, [DROP])
            again = []
            for b, result in zip(buckets, results, strict=True):
                if int(result) < 0:
                    again.append(b)
                else:
                    removed += int(result)
            buckets = again
        raise RuntimeError(f"day {day} kept changing while it was dropped")
