"""Single flight: concurrent callers asking for the same thing share one computation.

A dashboard fleet sends the same request many times a second; without this
every request that finds a day's frame stale refolds it, so the work grows
with the request rate (a live day's version moves with every worker batch).
One task computes a group of keys; callers await the keys' futures through
``asyncio.shield``, so a caller that goes away does not cancel the work the
others wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: the callers that awaited it have it already."""
    if not future.cancelled():
        future.exception()


class Flights(Generic[K, V]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # strong references while running

    def running(self, key: K) -> asyncio.Future[V] | None:
        return self._running.get(key)

    def start(
        self, keys: Sequence[K], work: Callable[[], Awaitable[Sequence[V]]]
    ) -> list[asyncio.Future[V]]:
        """Run ``work`` once for ``keys``; its i-th value resolves the i-th key's future."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[V]] = [loop.create_future() for _ in keys]
        for key, future in zip(keys, futures, strict=True):
            self._running[key] = future
            future.add_done_callback(_retrieve)

        async def run() -> None:
            try:
                values = await work()
            except asyncio.CancelledError:
                for future in futures:
                    future.cancel()
            except Exception as exc:
                for future in futures:
                    future.set_exception(exc)
            else:
                for future, value in zip(futures, values, strict=True):
                    future.set_result(value)
            finally:
                for key, future in zip(keys, futures, strict=True):
                    if self._running.get(key) is future:
                        del self._running[key]

        task = loop.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return futures


async def shared(future: asyncio.Future[V]) -> V:
    return await asyncio.shield(future)
