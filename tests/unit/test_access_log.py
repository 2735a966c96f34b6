"""Access log lines never carry the session token (it may come as a query parameter)."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import make_mocked_request
from aiohttp.web import Response
from yarl import URL

from api.access_log import AccessLogger, redacted


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


def test_logged_line_has_no_token(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.access")
    request = make_mocked_request("GET", "/api/v2/insights/daus?coder_session_token=s3cret")
    with caplog.at_level(logging.INFO, logger="test.access"):
        AccessLogger(logger, "").log(request, Response(status=200), 0.001)
    assert "s3cret" not in caplog.text
    assert "GET /api/v2/insights/daus?coder_session_token=" in caplog.text
