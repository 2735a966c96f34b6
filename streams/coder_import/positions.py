"""Where the import of each table stands, kept in Redis so that a restart resumes.

A position is the keyset of the last row produced and acknowledged: ``(time_us, key)``,
``time_us`` the row's ordering time (``created_at``, or ``session_ended_at`` for app
sessions) and ``key`` its primary key as text.  It is written only after the broker
acknowledged every event up to that row, so a crash loses no row: the next run reads again
from there (minus the overlap window), and what it sends twice are redeliveries.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from aggregators.store import keys
from aggregators.store.client import RedisClient


class Position(NamedTuple):
    time_us: int
    key: str


class PositionStore:
    def __init__(self, redis: RedisClient, source: str, topic_prefix: str) -> None:
        self._redis = redis
        self.key = keys.coder_import_positions(source, topic_prefix)

    async def load(self) -> dict[str, Position]:
        raw: dict[Any, Any] = await self._redis.hgetall(self.key)
        out: dict[str, Position] = {}
        for table, value in raw.items():
            name = table.decode() if isinstance(table, bytes) else str(table)
            data = orjson.loads(value)
            out[name] = Position(int(data["time_us"]), str(data["key"]))
        return out

    async def save(self, table: str, position: Position) -> None:
        value = orjson.dumps({"time_us": position.time_us, "key": position.key})
        await self._redis.hset(self.key, table, value)

    async def clear(self) -> None:
        await self._redis.delete(self.key)
