"""The dashboard page in a real browser: Debian's Chromium driven by Playwright, and the
site to open.

The API serves the page (``GET /`` and ``/static/``) and knows the ``tz`` parameter; an
API that does not yet is put behind a stand-in on 127.0.0.1 that serves ``api/static/``
itself and forwards everything else, rewriting ``tz`` into what such an API takes
(``tz_offset`` on /daus, nothing elsewhere). Both the browser test and
``bench/screenshot_dashboard.py`` open whichever of the two applies.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from yarl import URL

from insights import devstack

CHROMIUM = Path("/usr/bin/chromium")
INSTALLER = Path(__file__).with_name("install_chromium.sh")
NO_APT_ENV = "INSIGHTS_TEST_NO_APT"
# Debian's build, headless; nothing that reaches out to the network on its own.
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STATIC_DIR = Path(__file__).resolve().parents[2] / "api" / "static"
LIVE_PATH = "/api/v2/insights/live"
_FORWARDED_HEADERS = ("accept", "coder-session-token", "authorization", "cookie", "last-event-id")
_RETURNED_HEADERS = ("Content-Type", "Cache-Control", "WWW-Authenticate")


def _status(url: str, token: str | None = None) -> tuple[int, str]:
    """(status, Content-Type) of a GET, without reading a streaming body."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Coder-Session-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        err.close()
        return err.code, err.headers.get("Content-Type", "")


def serves_page(base_url: str) -> bool:
    status, kind = _status(base_url + "/")
    return status == 200 and kind.startswith("text/html")


def knows_tz(base_url: str, token: str) -> bool:
    return _status(base_url + "/api/v2/insights/daus?tz=UTC", token)[0] == 200


def has_live(base_url: str, token: str) -> bool:
    """Whether the API has the live stream (anything but a 404 there)."""
    return _status(base_url + LIVE_PATH, token)[0] != 404


def tz_offset_hours(zone: str, now: datetime | None = None) -> int:
    """What a browser in ``zone`` would send as ``tz_offset``: whole hours east of UTC,
    truncated (Coder's dashboard does the same for half-hour zones)."""
    offset = (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds() / 3600) if offset else 0


def rewrite_tz(path: str, query: list[tuple[str, str]]) -> list[tuple[str, str]]:
    zones = [v for k, v in query if k == "tz"]
    rest = [(k, v) for k, v in query if k != "tz"]
    if zones and path.endswith("/insights/daus"):
        rest.append(("tz_offset", str(tz_offset_hours(zones[0]))))
    return rest


class StandIn:
    """``api/static/`` at ``/`` and ``/static/``, everything else forwarded to ``upstream``
    (streamed, so the live stream passes through), on its own event loop thread."""

    def __init__(self, upstream: str, *, rewrite: bool) -> None:
        self.upstream = URL(upstream)
        self.rewrite = rewrite
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def __enter__(self) -> str:
        self._thread.start()
        url: str = self._call(self._start())
        return url

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self._stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=30)

    async def _start(self) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", STATIC_DIR)
        app.router.add_get("/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        port = devstack.free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        query = list(request.rel_url.query.items())
        if self.rewrite:
            query = rewrite_tz(request.path, query)
        url = self.upstream.with_path(request.path).with_query(query)
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with self._session.get(url, headers=headers, timeout=timeout) as upstream:
            response = web.StreamResponse(status=upstream.status)
            for name in _RETURNED_HEADERS:
                if name in upstream.headers:
                    response.headers[name] = upstream.headers[name]
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response


@contextmanager
def dashboard_site(base_url: str, token: str) -> Iterator[str]:
    """The URL of the dashboard page of the API at ``base_url``."""
    if serves_page(base_url) and knows_tz(base_url, token):
        yield base_url + "/"
        return
    with StandIn(base_url, rewrite=not knows_tz(base_url, token)) as url:
        yield url


@dataclass
class ConsoleLog:
    """The console errors and warnings of a page, and its uncaught exceptions."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))

    def _on_console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            where = message.location.get("url", "") if message.location else ""
            self.problems.append(f"{message.type}: {message.text} ({where})")
