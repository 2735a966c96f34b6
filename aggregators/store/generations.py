"""Which generation of rollups is live, and its layout, shared by one store's writer, reader
and retention.

A rebuild fills generation N+1 while N serves, then moves the pointer
(``keys.generation_pointer``).  Long-running processes follow it: ``sync``
re-reads the pointer at most once per ``refresh_s``, so a worker writes and an
API reads the new generation within about a second of the switch.  A store
``pinned`` to a generation (the rebuild's own) never moves.

Each generation has a **layout**: how many buckets split a day (``keys.layouts``, recorded
by the first write to the generation, from ``INSIGHTS_REDIS_DAY_BUCKETS``). Readers and
writers follow what is recorded, never their own setting, so every process agrees on where
a user's data lives; ``claim`` refuses a setting that differs from the recorded value (a
worker at start), since only a rebuild into a new generation may change it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aggregators.store import codec, keys
from aggregators.store.client import RedisClient


class LayoutMismatch(RuntimeError):
    """The configured buckets per day differ from what the live generation was written with."""


class Generations:
    def __init__(
        self,
        redis: RedisClient,
        *,
        pinned: int | None = None,
        buckets: int | None = None,
        refresh_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if buckets is not None and not 1 <= buckets <= keys.MAX_BUCKETS:
            raise ValueError(f"buckets per day must be 1-{keys.MAX_BUCKETS}")
        self.redis = redis
        self.pinned = pinned
        self.wanted = buckets  # for a generation's first write; None: one bucket
        self.refresh_s = refresh_s
        self.clock = clock
        self.keys = keys.Keyspace(pinned or 0, buckets or 1)
        self.recorded = False  # whether self.keys.buckets is the generation's recorded layout
        self._checked_at: float | None = None

    @property
    def generation(self) -> int:
        return self.keys.generation

    async def live(self) -> int:
        """The pointer's generation, read now."""
        raw = await self.redis.get(keys.generation_pointer())
        return 0 if raw is None else int(codec.text(raw))

    async def sync(self) -> bool:
        """Follow the pointer and the layout (unless checked within ``refresh_s``); True
        when the generation or its layout changed. A pinned store only reads its layout."""
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.refresh_s:
            return False
        if self.pinned is not None and self.recorded:
            return False
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.generation_pointer())
        pipe.hgetall(keys.layouts())
        pointer, layouts = await pipe.execute()
        self._checked_at = now
        live = self.pinned
        if live is None:
            live = 0 if pointer is None else int(codec.text(pointer))
        return self._adopt(live, codec.str_hash(layouts).get(str(live)))

    def _adopt(self, generation: int, recorded: str | None) -> bool:
        buckets = int(recorded) if recorded is not None else (self.wanted or 1)
        self.recorded = recorded is not None
        if (generation, buckets) == (self.keys.generation, self.keys.buckets):
            return False
        self.keys = keys.Keyspace(generation, buckets)
        return True

    async def claim(self, *, strict: bool = False) -> None:
        """Record the wanted layout for the current generation unless one is; with
        ``strict``, raise LayoutMismatch when a different one is recorded."""
        await self.sync()
        generation = self.keys.generation
        wanted = self.wanted or 1
        await self.redis.hsetnx(keys.layouts(), str(generation), str(wanted))
        recorded = await self.redis.hget(keys.layouts(), str(generation))
        if recorded is None:  # dropped in between (a flushed store): written with ours next
            return
        got = int(codec.text(recorded))
        self._adopt(generation, str(got))
        if strict and self.wanted is not None and got != self.wanted:
            raise LayoutMismatch(
                f"INSIGHTS_REDIS_DAY_BUCKETS={self.wanted}, but generation {generation} was"
                f" written with {got} bucket(s) per day: set {got}, or change it with"
                " `insights rebuild`"
            )

    async def switch(self, generation: int) -> None:
        """Make ``generation`` the live one (one SET: readers and writers follow)."""
        await self.redis.set(keys.generation_pointer(), str(generation))
        self._checked_at = None
