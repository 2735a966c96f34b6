"""Serving the app: answers to requests the HTTP parser refuses are JSON too.

aiohttp refuses a request line or a header over its limits (8190 bytes each), too many
headers or a malformed request line in its HTTP parser, before any middleware runs, and
answers with a plain-text 400 carrying the parser's message, which it also logs with a
traceback. That message quotes the offending bytes: a header's value, so possibly a token.

Connections served by :class:`ApiRunner` answer these in Coder's shape instead
(``{"message", "detail"}``, JSON, with an ``X-Request-Id``), with a fixed detail per kind of
fault, and log the kind only. aiohttp has no option for this: the connection handler's
``handle_error`` (the one place these answers are made) is overridden, and the runner hands
out that handler. A test over a raw socket pins the behaviour (tests/integration).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadStatusLine, HttpProcessingError, LineTooLong

from api.access_log import UNPARSED, AccessLogger
from api.request_id import HEADER, REQUEST_ID, new_request_id, request_id_of
from api.views import MSG_INTERNAL, json_response

log = structlog.get_logger("insights.api")

MSG_TOO_LONG = "Request line or header too long."
MSG_TOO_MANY_HEADERS = "Too many request headers."
MSG_MALFORMED = "Malformed HTTP request."


class _JsonErrorHandler(web.RequestHandler):
    """aiohttp's connection handler, with JSON error answers that quote no client bytes."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: the connection is beyond repair
            raise ConnectionError("response already started, cannot send an error answer")
        rid = request_id_of(request) or new_request_id()
        request[REQUEST_ID] = rid
        if isinstance(exc, HttpProcessingError):
            request[UNPARSED] = True
            body = self._parser_fault(exc)
            log.info(
                "request refused by the HTTP parser",
                fault=body["message"],
                remote=request.remote,
                request_id=rid,
            )
        elif status >= 500 and exc is not None:
            body = {"message": MSG_INTERNAL, "detail": type(exc).__name__}
            log.error("request failed", path=request.path, request_id=rid, exc_info=exc)
        else:
            body = {"message": _phrase(status)}
        response = json_response(body, status)
        response.headers[HEADER] = rid
        response.force_close()
        return response

    def _parser_fault(self, exc: HttpProcessingError) -> dict[str, Any]:
        if isinstance(exc, LineTooLong):
            detail = (
                f"The request line may be at most {self.max_line_size} bytes long "
                f"and each header at most {self.max_field_size} bytes."
            )
            return {"message": MSG_TOO_LONG, "detail": detail}
        if exc.message.startswith("Too many headers"):
            detail = f"A request may carry at most {self.max_headers} headers."
            return {"message": MSG_TOO_MANY_HEADERS, "detail": detail}
        if isinstance(exc, BadStatusLine):
            return {"message": MSG_MALFORMED, "detail": "The request line is not valid HTTP."}
        return {"message": MSG_MALFORMED, "detail": "The request is not valid HTTP/1.1."}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase + "."
    except ValueError:
        return "Error."


class _Server(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """``web.AppRunner`` for the API: the secret-free access log and JSON parser errors."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log_class", AccessLogger)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state; only the connection handler differs
        return server
