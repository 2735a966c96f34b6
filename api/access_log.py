"""Access log lines without secrets.

Coder accepts the session token as a ``coder_session_token`` query parameter,
so the request line must not be logged as it came; headers are never logged.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from yarl import URL

SECRET_PARAMS = frozenset({"coder_session_token"})
REDACTED = "[redacted]"


def redacted(url: URL) -> str:
    """Path and query of ``url`` with the values of secret parameters replaced."""
    if not SECRET_PARAMS.intersection(url.query):
        return url.path_qs
    query = [(k, REDACTED if k in SECRET_PARAMS else v) for k, v in url.query.items()]
    return url.with_query(query).path_qs


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.6fs',
            request.remote,
            request.method,
            redacted(request.rel_url),
            response.status,
            response.body_length,
            time,
        )
