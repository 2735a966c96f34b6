"""Access log events without secrets.

Coder accepts the session token as a ``coder_session_token`` query parameter, so the
request line must not be logged as it came; headers (``Coder-Session-Token``,
``Authorization``) are never logged. Each event carries the request's id.
"""

from __future__ import annotations

import logging

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

from api.request_id import request_id_of

SECRET_PARAMS = frozenset({"coder_session_token"})
REDACTED = "[redacted]"
EVENT = "http request"
# Set on requests the HTTP parser refused: their method and path are placeholders.
UNPARSED = web.RequestKey("unparsed", bool)


def redacted(url: URL) -> str:
    """Path and query of ``url`` with the values of secret parameters replaced."""
    if not SECRET_PARAMS.intersection(url.query):
        return url.path_qs
    query = [(k, REDACTED if k in SECRET_PARAMS else v) for k, v in url.query.items()]
    return url.with_query(query).path_qs


class AccessLogger(AbstractAccessLogger):
    """One structured event per answered request (``log_format`` is not used)."""

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._events = structlog.wrap_logger(logger)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        unparsed = request.get(UNPARSED, False)
        self._events.info(
            EVENT,
            method="-" if unparsed else request.method,
            path="-" if unparsed else redacted(request.rel_url),
            status=response.status,
            bytes=response.body_length,
            duration_ms=round(time * 1000, 3),
            remote=request.remote,
            request_id=request_id_of(request),
        )
