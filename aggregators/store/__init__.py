"""The Redis adapter: the only code that knows keys, scripts and bytes.

``keys`` names every key, ``codec`` every field layout; ``writer`` applies
batch plans, ``redis_source`` serves the read path's ``RollupSource``,
``heartbeats`` the workers' liveness and ``retention`` drops old days;
``generations`` says which generation of keys they all use.
``RollupStore`` bundles them over one client.
"""

from __future__ import annotations

from redis.asyncio import Redis

from aggregators.ops import BatchPlan
from aggregators.store.generations import Generations
from aggregators.store.heartbeats import Heartbeats, WorkerBeat
from aggregators.store.redis_source import RedisSource
from aggregators.store.retention import Retention
from aggregators.store.writer import DEDUPE_HORIZON_S, RollupWriter

__all__ = [
    "Generations",
    "Heartbeats",
    "RedisSource",
    "Retention",
    "RollupStore",
    "RollupWriter",
    "WorkerBeat",
]


class RollupStore:
    """``generation`` pins the store to one generation of rollups (a rebuild's); by default
    it follows the live one."""

    def __init__(
        self,
        redis: Redis,
        *,
        dedupe_horizon_s: int = DEDUPE_HORIZON_S,
        generation: int | None = None,
    ) -> None:
        self.redis = redis
        self.generations = Generations(redis, pinned=generation)
        self.writer = RollupWriter(redis, self.generations, dedupe_horizon_s=dedupe_horizon_s)
        self.source = RedisSource(redis, self.generations)
        self.heartbeats = Heartbeats(redis, self.generations)
        self.retention = Retention(redis, self.generations)

    async def apply(self, plan: BatchPlan) -> int:
        return await self.writer.apply(plan)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())
