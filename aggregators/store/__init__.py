"""The Redis adapter: the only code that knows keys, scripts and bytes.

``keys`` names every key, ``codec`` every field layout; ``writer`` applies
batch plans, ``redis_source`` serves the read path's ``RollupSource``,
``heartbeats`` the workers' liveness and ``retention`` drops old days;
``generations`` says which generation of keys they all use and how many buckets
split its days; ``client`` is the client type (one server or a Redis Cluster) and
the scripts. ``RollupStore`` bundles them over one client.
"""

from __future__ import annotations

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterDownError

from aggregators.ops import BatchPlan
from aggregators.store.client import RedisClient
from aggregators.store.generations import Generations, LayoutMismatch
from aggregators.store.heartbeats import Heartbeats, WorkerBeat
from aggregators.store.redis_source import RedisSource
from aggregators.store.retention import Retention
from aggregators.store.writer import DEDUPE_HORIZON_S, RollupWriter

__all__ = [
    "Generations",
    "Heartbeats",
    "LayoutMismatch",
    "RedisClient",
    "RedisSource",
    "Retention",
    "RollupStore",
    "RollupWriter",
    "WorkerBeat",
]


class RollupStore:
    """``generation`` pins the store to one generation of rollups (a rebuild's); by default
    it follows the live one. ``day_buckets`` is the layout a generation gets on its first
    write (``INSIGHTS_REDIS_DAY_BUCKETS``); one already written keeps its own."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        dedupe_horizon_s: int = DEDUPE_HORIZON_S,
        generation: int | None = None,
        day_buckets: int | None = None,
    ) -> None:
        self.redis = redis
        self.generations = Generations(redis, pinned=generation, buckets=day_buckets)
        self.writer = RollupWriter(redis, self.generations, dedupe_horizon_s=dedupe_horizon_s)
        self.source = RedisSource(redis, self.generations)
        self.heartbeats = Heartbeats(redis, self.generations)
        self.retention = Retention(redis, self.generations)

    async def apply(self, plan: BatchPlan) -> int:
        return await self.writer.apply(plan)

    async def ping(self) -> bool:
        """The server answers; a cluster also says its state is ok (else ClusterDownError:
        some slots have no master, and writes to them fail)."""
        if not await self.redis.ping():
            return False
        if isinstance(self.redis, RedisCluster):
            info = await self.redis.cluster_info()
            if str(info.get("cluster_state")) != "ok":
                raise ClusterDownError("cluster_state is not ok")
        return True
