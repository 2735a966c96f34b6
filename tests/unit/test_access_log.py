"""Access log events never carry the session token (it may come as a query parameter or a
header) and always carry the request id."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import make_mocked_request
from aiohttp.web import Response
from structlog.testing import capture_logs
from yarl import URL

from api.access_log import EVENT, UNPARSED, AccessLogger, redacted
from api.request_id import REQUEST_ID


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/api/v2/insights/daus?tz_offset=0", "/api/v2/insights/daus?tz_offset=0"),
        (
            "/api/v2/insights/daus?coder_session_token=s3cret&tz_offset=-3",
            "/api/v2/insights/daus?coder_session_token=[redacted]&tz_offset=-3",
        ),
        ("/healthz", "/healthz"),
    ],
)
def test_secret_query_values_are_redacted(url: str, expected: str) -> None:
    assert redacted(URL(url)) == expected


def _logger() -> AccessLogger:
    return AccessLogger(logging.getLogger("test.access"), "")


def test_logged_event_has_no_token_and_carries_the_request_id() -> None:
    request = make_mocked_request(
        "GET",
        "/api/v2/insights/daus?coder_session_token=s3cret",
        headers={"Coder-Session-Token": "h3ader", "Authorization": "Bearer b3arer"},
    )
    request[REQUEST_ID] = "rid-1"
    with capture_logs() as events:
        _logger().log(request, Response(status=200), 0.0015)
    (event,) = events
    assert "s3cret" not in repr(event)
    assert "h3ader" not in repr(event) and "b3arer" not in repr(event)
    assert event == {
        "event": EVENT,
        "log_level": "info",
        "method": "GET",
        "path": "/api/v2/insights/daus?coder_session_token=[redacted]",
        "status": 200,
        "bytes": 0,  # nothing was sent
        "duration_ms": 1.5,
        "remote": None,
        "request_id": "rid-1",
    }


def test_requests_the_parser_refused_have_no_method_or_path() -> None:
    request = make_mocked_request("GET", "/")
    request[UNPARSED] = True
    with capture_logs() as events:
        _logger().log(request, Response(status=400), 0.0)
    assert (events[0]["method"], events[0]["path"], events[0]["status"]) == ("-", "-", 400)
    assert events[0]["request_id"] is None


def test_enabled_follows_the_logger_level() -> None:
    logger = logging.getLogger("test.access.level")
    logger.setLevel(logging.WARNING)
    try:
        assert not AccessLogger(logger, "").enabled
        logger.setLevel(logging.INFO)
        assert AccessLogger(logger, "").enabled
    finally:
        logger.setLevel(logging.NOTSET)
