"""The dashboard's routes: the page, its static files and the live event stream.

The page (``api/static/``) is public and asks for a token itself; the stream takes the
same tokens as the insights endpoints.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from api import live, params
from api.auth import presented_token
from api.coder.gotime import go_quote
from api.context import LIVE, TOKENS


async def live_view(request: web.Request) -> web.StreamResponse:
    """Server-sent events naming the days whose rollups changed (``api.live``)."""
    token = live_token(request)
    if not token or request.app[TOKENS].lookup(token) is None:
        raise params.unauthorized()
    hub = request.app[LIVE]
    if hub.full():
        raise params.ApiError(503, "Too many live streams; try again later.")
    return await live.stream(request, hub)


def live_token(request: web.Request) -> str:
    """The headers of the other endpoints, else the ``coder_session_token`` query parameter
    (the only one taken here) or cookie: an ``EventSource`` cannot send headers."""
    unknown = [k for k in request.rel_url.query if k != live.TOKEN_PARAM]
    if unknown:
        raise params.ApiError(
            400,
            params.MSG_PARSER,
            validations=[
                params.ValidationItem(k, f"{go_quote(k)} is not a valid query param")
                for k in dict.fromkeys(unknown)
            ],
        )
    return (
        presented_token(request.headers)
        or request.rel_url.query.get(live.TOKEN_PARAM, "")
        or request.cookies.get(live.TOKEN_PARAM, "")
    )


_STATIC = Path(__file__).resolve().parent / "static"
# The page loads only its own files; app icons may come from anywhere over http(s).
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https: http:; "
    "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def index_view(request: web.Request) -> web.StreamResponse:
    """The dashboard (``api/static/``): a static page that asks for a token itself."""
    return web.FileResponse(_STATIC / "index.html", headers=_PAGE_HEADERS)


def _static_files() -> dict[str, Path]:
    """The page's files by URL path, listed once: nothing outside the folder is reachable,
    whatever the request path says."""
    return {
        p.relative_to(_STATIC).as_posix(): p
        for p in sorted(_STATIC.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


_FILES = _static_files()


async def static_view(request: web.Request) -> web.StreamResponse:
    path = _FILES.get(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": "no-cache"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", index_view)
    app.router.add_get("/static/{path:.+}", static_view)
    app.router.add_get("/api/v2/insights/live", live_view)
