"""Worker heartbeats: which workers are alive and hold partitions (readiness).

One hash (``keys.worker_heartbeat``) maps a worker id to its latest beat; a
beat older than the readiness age counts as a dead worker.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from aggregators.store import codec, keys
from aggregators.store.client import RedisClient
from aggregators.store.generations import Generations


@dataclass(frozen=True)
class WorkerBeat:
    worker_id: str
    at_ms: int
    partitions: tuple[str, ...]  # "topic:partition" assigned to the worker
    generation: int = 0  # of the rollups it writes (set by ``Heartbeats.beat``)

    def fresh(self, now_ms: int, max_age_ms: int) -> bool:
        return now_ms - self.at_ms <= max_age_ms


class Heartbeats:
    def __init__(self, redis: RedisClient, generations: Generations) -> None:
        self.redis = redis
        self.generations = generations

    async def beat(self, beat: WorkerBeat) -> None:
        """Record the beat with the generation the worker now writes (a rebuild waits for
        every live worker to report the new one)."""
        await self.generations.sync()
        entry = {
            "at_ms": beat.at_ms,
            "partitions": list(beat.partitions),
            "generation": self.generations.generation,
        }
        await self.redis.hset(keys.worker_heartbeat(), beat.worker_id, orjson.dumps(entry))

    async def remove(self, worker_id: str) -> None:
        await self.redis.hdel(keys.worker_heartbeat(), worker_id)

    async def prune(self, now_ms: int, dead_after_ms: int) -> int:
        """Remove the entries of workers silent for ``dead_after_ms`` (a crashed worker
        never removes its own); returns how many went."""
        dead = [b.worker_id for b in await self.read() if not b.fresh(now_ms, dead_after_ms)]
        if dead:
            await self.redis.hdel(keys.worker_heartbeat(), *dead)
        return len(dead)

    async def read(self) -> list[WorkerBeat]:
        raw = await self.redis.hgetall(keys.worker_heartbeat())
        out = []
        for worker_id, value in raw.items():
            entry = orjson.loads(value)
            out.append(
                WorkerBeat(
                    codec.text(worker_id),
                    entry["at_ms"],
                    tuple(entry["partitions"]),
                    int(entry.get("generation", 0)),
                )
            )
        return out
