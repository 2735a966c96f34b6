"""Typed application keys shared by the app factory and the views."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from aggregators.lru import Lru
from aggregators.reader import WindowReader
from aggregators.store import RollupStore
from api.auth import TokenRegistry
from api.live import LiveHub
from api.readiness import BrokerProbe
from insights.settings import Settings

# Some 13 years of day intervals (~0.6 MB of JSON, a few ms to encode): anything wider
# is encoded off the event loop.
WIDE_INTERVALS = 5_000


@dataclass
class WideReports:
    """Answers with more than ``intervals`` interval reports are encoded in a worker
    thread, one at a time: a day-interval report from year 1 is ~740,000 intervals and
    ~90 MB, so two at once would double the peak and each would stall every request."""

    intervals: int = WIDE_INTERVALS
    slot: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))


SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", RollupStore)
READER = web.AppKey("reader", WindowReader)
TOKENS = web.AppKey("tokens", TokenRegistry)
BROKER = web.AppKey("broker", BrokerProbe)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
WIDE = web.AppKey("wide", WideReports)
LIVE = web.AppKey("live", LiveHub)
# Encoded answers by the id of the memoised report they encode (the entry holds the report).
ENCODED: web.AppKey[Lru[int, tuple[object, bytes]]] = web.AppKey("encoded")
