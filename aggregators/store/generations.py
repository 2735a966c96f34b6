"""Which generation of rollups is live, shared by one store's writer, reader and retention.

A rebuild fills generation N+1 while N serves, then moves the pointer
(``keys.generation_pointer``).  Long-running processes follow it: ``sync``
re-reads the pointer at most once per ``refresh_s``, so a worker writes and an
API reads the new generation within about a second of the switch.  A store
``pinned`` to a generation (the rebuild's own) never moves.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from aggregators.store import codec, keys


class Generations:
    def __init__(
        self,
        redis: Redis,
        *,
        pinned: int | None = None,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.pinned = pinned
        self.refresh_s = refresh_s
        self.clock = clock
        self.keys = keys.Keyspace(pinned or 0)
        self._checked_at: float | None = None

    @property
    def generation(self) -> int:
        return self.keys.generation

    async def live(self) -> int:
        """The pointer's generation, read now."""
        raw = await self.redis.get(keys.generation_pointer())
        return 0 if raw is None else int(codec.text(raw))

    async def sync(self) -> bool:
        """Follow the pointer (unless pinned, or checked within ``refresh_s``); True when the
        generation changed."""
        if self.pinned is not None:
            return False
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.refresh_s:
            return False
        live = await self.live()
        self._checked_at = now
        if live == self.keys.generation:
            return False
        self.keys = keys.Keyspace(live)
        return True

    async def switch(self, generation: int) -> None:
        """Make ``generation`` the live one (one SET: readers and writers follow)."""
        await self.redis.set(keys.generation_pointer(), str(generation))
