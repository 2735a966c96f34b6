"""Logging, configured once by the entry point: structlog events and stdlib records alike
(aiohttp's access log, aiokafka, Faust) go through one handler on stderr.

``json`` (one object per line: ``timestamp``, ``level``, ``logger``, ``event`` and the
event's fields, including the ``request_id`` the API binds for each request) is what
production log pipelines read; ``console`` is for people at a terminal. ``auto`` picks
``console`` when the stream is a terminal, else ``json``.

Secrets stay out: fields named like a credential are replaced by ``[redacted]``, and
tracebacks are rendered as plain text, never with local variables.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]

HANDLER_NAME = "insights"
REDACTED = "[redacted]"
# Field names (lower case, "-" as "_") whose values are credentials.
SECRET_FIELDS = frozenset(
    {
        "authorization",
        "coder_session_token",
        "token",
        "api_tokens",
        "metrics_token",
        "password",
        "cookie",
        "set_cookie",
    }
)
_LEADING = ("timestamp", "level", "logger", "event")
# Faust, mode and aiokafka are chatty at INFO; their warnings stay.
_QUIET_LOGGERS = ("faust", "mode", "aiokafka")


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace the values of credential-named fields (a header map is redacted inside too)."""
    for key, value in event_dict.items():
        if _is_secret(key):
            event_dict[key] = REDACTED
        elif isinstance(value, Mapping):
            event_dict[key] = {k: REDACTED if _is_secret(k) else v for k, v in value.items()}
    return event_dict


def _essentials_first(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``timestamp``, ``level``, ``logger`` and ``event`` lead each JSON line."""
    lead = {k: event_dict.pop(k) for k in _LEADING if k in event_dict}
    return {**lead, **event_dict}


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in SECRET_FIELDS


def wants_json(fmt: LogFormat, stream: TextIO) -> bool:
    if fmt == "auto":
        isatty = getattr(stream, "isatty", None)
        return not (isatty is not None and isatty())
    return fmt == "json"


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", stream: TextIO | None = None
) -> None:
    """Route structlog and the stdlib's logging through one handler writing to ``stream``
    (stderr). Calling it again replaces the handler it installed before."""
    out = stream if stream is not None else sys.stderr
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    renderer: list[Processor]
    if wants_json(fmt, out):
        renderer = [
            structlog.processors.format_exc_info,
            _essentials_first,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        renderer = [
            structlog.dev.ConsoleRenderer(
                colors=bool(getattr(out, "isatty", lambda: False)()),
                exception_formatter=structlog.dev.plain_traceback,
            )
        ]
    structlog.reset_defaults()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, numeric_level))
