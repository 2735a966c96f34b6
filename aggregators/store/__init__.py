"""The Redis adapter: the only code that knows keys, scripts and bytes.

``keys`` names every key, ``codec`` every field layout; ``writer`` applies
batch plans, ``redis_source`` serves the read path's ``RollupSource``,
``heartbeats`` the workers' liveness and ``retention`` drops old days.
``RollupStore`` bundles them over one client.
"""

from __future__ import annotations

from redis.asyncio import Redis

from aggregators.ops import BatchPlan
from aggregators.store.heartbeats import Heartbeats, WorkerBeat
from aggregators.store.redis_source import RedisSource
from aggregators.store.retention import Retention
from aggregators.store.writer import RollupWriter

__all__ = ["Heartbeats", "RedisSource", "Retention", "RollupStore", "RollupWriter", "WorkerBeat"]


class RollupStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.writer = RollupWriter(redis)
        self.source = RedisSource(redis)
        self.heartbeats = Heartbeats(redis)
        self.retention = Retention(redis)

    async def apply(self, plan: BatchPlan) -> int:
        return await self.writer.apply(plan)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
