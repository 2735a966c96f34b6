"""Maintenance commands' shell: connections, confirmation and a rich progress display for
``insights rebuild`` and ``insights replay`` (the work itself is ``streams.rebuild``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from insights.redis_client import RedisClient, create_redis
from insights.settings import Settings
from streams import rebuild as jobs

EMBEDDED_BOOTSTRAP = "127.0.0.1:19092"  # what `insights up` listens on by default
EMBEDDED_REDIS = "redis://127.0.0.1:16379/0"
T = TypeVar("T")


def with_embedded_defaults(settings: Settings) -> Settings:
    """Unset addresses mean the embedded stack of `insights up` on its default ports."""
    if not settings.kafka_bootstrap:
        settings.kafka_bootstrap = EMBEDDED_BOOTSTRAP
    if not settings.redis_url:
        settings.redis_url = EMBEDDED_REDIS
    return settings


class _Display:
    def __init__(self, console: Console) -> None:
        self.bar = RichProgress(
            TextColumn("[bold]{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "messages  {task.fields[events]:>11,} events  {task.fields[rate]:>9,.0f} ev/s"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.task: TaskID | None = None

    def __call__(self, p: jobs.Progress) -> None:
        if self.task is None:
            self.task = self.bar.add_task(p.phase, events=p.events, rate=p.rate)
        self.bar.update(
            self.task,
            description=p.phase,
            completed=p.messages,
            total=max(p.target, p.messages) or None,
            events=p.events,
            rate=p.rate,
        )


async def _with_redis(settings: Settings, job: Callable[[RedisClient], Awaitable[T]]) -> T:
    redis = create_redis(settings, socket_timeout=30.0)
    try:
        return await job(redis)
    finally:
        await redis.aclose()


def run_rebuild(settings: Settings, console: Console) -> jobs.RebuildResult:
    display = _Display(console)
    with display.bar:
        return asyncio.run(_with_redis(settings, lambda r: jobs.rebuild(settings, r, display)))


def run_replay(settings: Settings, from_ms: int, console: Console) -> jobs.ReplayResult:
    display = _Display(console)
    with display.bar:
        return asyncio.run(
            _with_redis(settings, lambda r: jobs.replay(settings, r, from_ms, display))
        )
