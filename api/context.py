"""Typed application keys shared by the app factory and the views."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from aggregators.reader import WindowReader
from aggregators.store import RollupStore
from api.auth import TokenRegistry
from api.readiness import BrokerProbe
from insights.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", RollupStore)
READER = web.AppKey("reader", WindowReader)
TOKENS = web.AppKey("tokens", TokenRegistry)
BROKER = web.AppKey("broker", BrokerProbe)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
