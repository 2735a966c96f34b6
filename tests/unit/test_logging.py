"""One logging configuration for structlog and stdlib records: JSON or console, the bound
request id in every line, credential fields redacted, tracebacks without local variables."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import structlog

from insights.logging import LogFormat, configure_logging, redact_secrets, wants_json


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


Configure = Callable[..., io.StringIO]


@pytest.fixture
def configure() -> Iterator[Configure]:
    """configure_logging into a buffer; everything it changed is put back afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    quiet = {name: logging.getLogger(name).level for name in ("faust", "mode", "aiokafka")}

    def apply(
        fmt: LogFormat = "json", level: str = "info", stream: io.StringIO | None = None
    ) -> io.StringIO:
        out = stream if stream is not None else io.StringIO()
        configure_logging(level, fmt, out)
        structlog.configure(cache_logger_on_first_use=False)
        return out

    try:
        yield apply
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_structlog_events_are_json_lines_with_the_bound_context(configure: Configure) -> None:
    out = configure("json")
    with structlog.contextvars.bound_contextvars(request_id="r-1"):
        structlog.get_logger("insights.api").warning("store unavailable", path="/x")
    structlog.get_logger("insights.api").info("after")
    first, second = _lines(out)
    assert first["event"] == "store unavailable"
    assert first["request_id"] == "r-1"
    assert (first["level"], first["logger"], first["path"]) == ("warning", "insights.api", "/x")
    assert first["timestamp"].endswith("Z")
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert "request_id" not in second


def test_stdlib_records_are_json_too(configure: Configure) -> None:
    out = configure("json")
    with structlog.contextvars.bound_contextvars(request_id="r-2"):
        logging.getLogger("aiohttp.server").error("Error handling request from %s", "1.2.3.4")
    (line,) = _lines(out)
    assert line["event"] == "Error handling request from 1.2.3.4"
    assert (line["level"], line["logger"], line["request_id"]) == ("error", "aiohttp.server", "r-2")


def test_levels_filter_and_chatty_libraries_keep_warnings(configure: Configure) -> None:
    out = configure("json", level="warning")
    structlog.get_logger("insights").info("hidden")
    logging.getLogger("aiokafka").info("hidden too")
    logging.getLogger("aiokafka").warning("shown")
    assert [line["event"] for line in _lines(out)] == ["shown"]
    configure("json", level="info", stream=out)
    logging.getLogger("faust").info("still hidden")
    structlog.get_logger("insights").info("now shown")
    assert [line["event"] for line in _lines(out)] == ["shown", "now shown"]


def test_exceptions_are_rendered_without_local_variables(configure: Configure) -> None:
    out = configure("json")
    token = "local-secret-7d1f"
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        structlog.get_logger("insights.api").error("request failed", exc_info=exc)
    (line,) = _lines(out)
    assert "RuntimeError: boom" in line["exception"]
    assert token not in out.getvalue()


def test_console_format_has_no_local_variables_either(configure: Configure) -> None:
    out = configure("console")
    token = "local-secret-9c2e"
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        structlog.get_logger("insights.api").error("request failed", exc_info=exc)
    text = out.getvalue()
    assert "request failed" in text and "RuntimeError: boom" in text
    assert token not in text
    assert not text.lstrip().startswith("{")


def test_credential_fields_are_redacted(configure: Configure) -> None:
    out = configure("json")
    structlog.get_logger("insights").info(
        "oops",
        token="t0ken-a",
        Authorization="Bearer t0ken-b",
        coder_session_token="t0ken-c",
        headers={"Coder-Session-Token": "t0ken-d", "Accept": "*/*"},
        path="/x",
    )
    (line,) = _lines(out)
    assert "t0ken" not in out.getvalue()
    assert line["token"] == line["Authorization"] == line["coder_session_token"] == "[redacted]"
    assert line["headers"] == {"Coder-Session-Token": "[redacted]", "Accept": "*/*"}
    assert line["path"] == "/x"


def test_redaction_leaves_other_fields_alone() -> None:
    event = {"event": "x", "tokens_total": 3, "path": "/p"}
    assert redact_secrets(None, "info", dict(event)) == event


@pytest.mark.parametrize(
    ("fmt", "stream", "expected"),
    [
        ("auto", io.StringIO(), True),
        ("auto", Terminal(), False),
        ("json", Terminal(), True),
        ("console", io.StringIO(), False),
    ],
)
def test_auto_format_follows_the_terminal(
    fmt: LogFormat, stream: io.StringIO, expected: bool
) -> None:
    assert wants_json(fmt, stream) is expected


def test_configuring_twice_keeps_one_handler(configure: Configure) -> None:
    out = configure("json")
    configure("json", stream=out)
    structlog.get_logger("insights").info("once")
    assert [line["event"] for line in _lines(out)] == ["once"]
