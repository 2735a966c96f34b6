"""One id per request: echoed in ``X-Request-Id`` and bound to the log context.

An incoming ``X-Request-Id`` (a load balancer's or a client's) is kept when it is a sane
token (1-128 characters of ``[A-Za-z0-9._-]``), so one id follows a request across
services; anything else is replaced by a fresh id, never logged as it came.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(incoming: str | None) -> str:
    """``incoming`` when it is a sane token, else a fresh id."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def request_id_of(request: web.BaseRequest) -> str | None:
    return request.get(REQUEST_ID)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: every log line of the request carries ``request_id``, every answer the
    header (the access log reads the id from the request)."""
    rid = accepted_request_id(request.headers.get(HEADER))
    request[REQUEST_ID] = rid
    with structlog.contextvars.bound_contextvars(request_id=rid):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers[HEADER] = rid
            raise
    response.headers[HEADER] = rid
    return response
