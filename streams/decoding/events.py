"""Per-topic event decoders: a parsed JSON object -> one validated, normalised event.

``_DECODERS`` maps each topic kind to its decoder, in ``TOPIC_KINDS`` order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aggregators.model import (
    KINDS,
    TOPIC_KINDS,
    AppUsageEvent,
    BuildEvent,
    BuildParameter,
    Event,
    LatencyEvent,
    ParameterOption,
    SessionEvent,
)
from streams.decoding.fields import (
    JsonObject,
    _count,
    _event_id,
    _event_time,
    _Invalid,
    _json_type,
    _nonempty_str,
    _not_future,
    _opt_count,
    _opt_name,
    _opt_str,
    _str,
    _time,
    _uuid,
    _wrong,
)
from streams.decoding.limits import BAD_TYPE, BAD_VALUE, MAX_APP_SESSION_US, MAX_LATENCY_MS

_Decoder = Callable[[JsonObject, int], Event]
_T = TypeVar("_T")

# Events are built with ``_make``: it skips the generated keyword-handling ``__new__``
# (~240 ns of the ~4 us an event costs) yet still checks the field count.

# --- sessions ------------------------------------------------------------------------------

# (bit, kind, field path) for SessionEvent.kinds_mask, in model.KINDS order.
_SESSION_KINDS = tuple((1 << i, kind, f"sessions.{kind}") for i, kind in enumerate(KINDS))


def _bad_kind_count(path: str, count: object) -> _Invalid:
    if type(count) is int:
        return _Invalid(BAD_VALUE, path, "must be >= 0")
    return _Invalid(BAD_TYPE, path, f"expected a non-negative integer, got {_json_type(count)}")


def _kinds_mask(obj: JsonObject) -> int:
    sessions = obj.get("sessions")
    if type(sessions) is not dict:
        raise _wrong(obj, "sessions", "an object")
    mask = 0
    for bit, kind, path in _SESSION_KINDS:
        count = sessions.get(kind, 0)  # a missing kind is 0; unknown kinds are never read
        if type(count) is not int or count < 0:
            raise _bad_kind_count(path, count)
        if count:
            mask |= bit
    return mask


def _session(obj: JsonObject, limit_us: int) -> SessionEvent:
    return SessionEvent._make(
        (
            _event_id(obj),
            _event_time(obj, limit_us),
            _uuid(obj, "user_id"),
            _str(obj, "username"),
            _opt_str(obj, "avatar_url"),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "agent_id"),
            _count(obj, "connection_count"),
            _kinds_mask(obj),
            _opt_name(obj, "template_name"),
            _opt_name(obj, "organization_name"),
        )
    )


# --- app usage -----------------------------------------------------------------------------

_ACCESS_METHODS = frozenset(("path", "subdomain", "terminal"))


def _access_method(obj: JsonObject) -> str:
    value = _str(obj, "access_method")
    if value in _ACCESS_METHODS:
        return value
    raise _Invalid(BAD_VALUE, "access_method", 'must be "path", "subdomain" or "terminal"')


def _app(obj: JsonObject) -> tuple[str | None, str | None]:
    """(display name, icon); (None, None) when ``app`` is absent or null."""
    app = obj.get("app")
    if app is None:
        return None, None
    if type(app) is not dict:
        raise _Invalid(BAD_TYPE, "app", f"expected an object or null, got {_json_type(app)}")
    try:
        return _opt_str(app, "display_name"), _opt_str(app, "icon")
    except _Invalid as exc:
        exc.field = f"app.{exc.field}"
        raise


def _app_usage(obj: JsonObject, limit_us: int) -> AppUsageEvent:
    event_id = _event_id(obj)
    time_us = _event_time(obj, limit_us)
    started_us = _time(obj, "started_at")
    ended_us = _not_future("ended_at", _time(obj, "ended_at"), limit_us)
    if ended_us < started_us:
        raise _Invalid(BAD_VALUE, "ended_at", "before started_at")
    if ended_us - started_us > MAX_APP_SESSION_US:
        raise _Invalid(BAD_VALUE, "ended_at", "more than 31 days after started_at")
    display_name, icon = _app(obj)
    return AppUsageEvent._make(
        (
            event_id,
            time_us,
            _uuid(obj, "session_id"),
            _uuid(obj, "user_id"),
            _str(obj, "username"),
            _opt_str(obj, "avatar_url"),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "agent_id"),
            _access_method(obj),
            _str(obj, "slug_or_port"),
            display_name,
            icon,
            started_us,
            ended_us,
            _opt_count(obj, "requests"),
            _opt_name(obj, "template_name"),
            _opt_name(obj, "organization_name"),
        )
    )


# --- latency -------------------------------------------------------------------------------


def _latency_ms(obj: JsonObject) -> float:
    value = obj.get("latency_ms")
    if type(value) is not float and type(value) is not int:
        raise _wrong(obj, "latency_ms", "a number")
    # The chained comparison is False for NaN, so non-finite values fall through too.
    if 0 < value <= MAX_LATENCY_MS:
        return float(value)
    raise _Invalid(BAD_VALUE, "latency_ms", f"must be a finite number > 0 and <= {MAX_LATENCY_MS}")


def _latency(obj: JsonObject, limit_us: int) -> LatencyEvent:
    return LatencyEvent._make(
        (
            _event_id(obj),
            _event_time(obj, limit_us),
            _uuid(obj, "user_id"),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "agent_id"),
            _latency_ms(obj),
            _opt_name(obj, "template_name"),
            _opt_name(obj, "organization_name"),
        )
    )


# --- builds --------------------------------------------------------------------------------


def _build_number(obj: JsonObject) -> int:
    value = obj.get("build_number")
    if type(value) is not int:
        raise _wrong(obj, "build_number", "a positive integer")
    if value >= 1:
        return value
    raise _Invalid(BAD_VALUE, "build_number", "must be >= 1")


def _array_items(obj: JsonObject, key: str, required: bool) -> list[object]:
    value = obj.get(key)
    if type(value) is list:
        return value
    if value is None and not required:
        return []
    raise _wrong(obj, key, "an array")


def _each_object(
    items: list[object], path: str, decode: Callable[[JsonObject], _T]
) -> tuple[_T, ...]:
    """Decode every element of an array of objects, naming the element's path on failure."""
    out: list[_T] = []
    for i, item in enumerate(items):
        try:
            if type(item) is not dict:
                raise _Invalid(BAD_TYPE, None, f"expected an object, got {_json_type(item)}")
            out.append(decode(item))
        except _Invalid as exc:
            exc.field = f"{path}[{i}]" if exc.field is None else f"{path}[{i}].{exc.field}"
            raise
    return tuple(out)


def _option(obj: JsonObject) -> ParameterOption:
    return ParameterOption(
        _str(obj, "name"), _opt_str(obj, "description"), _str(obj, "value"), _opt_str(obj, "icon")
    )


def _parameter(obj: JsonObject) -> BuildParameter:
    return BuildParameter(
        _nonempty_str(obj, "name"),
        _str(obj, "type"),
        _opt_str(obj, "display_name"),
        _opt_str(obj, "description"),
        _each_object(_array_items(obj, "options", required=False), "options", _option),
        _str(obj, "value"),
    )


def _build(obj: JsonObject, limit_us: int) -> BuildEvent:
    return BuildEvent._make(
        (
            _event_id(obj),
            _event_time(obj, limit_us),
            _uuid(obj, "template_id"),
            _uuid(obj, "workspace_id"),
            _uuid(obj, "user_id"),
            _build_number(obj),
            _each_object(_array_items(obj, "parameters", required=True), "parameters", _parameter),
            _opt_name(obj, "template_name"),
            _opt_name(obj, "organization_name"),
        )
    )


_DECODERS: dict[str, _Decoder] = {
    "sessions": _session,
    "app_usage": _app_usage,
    "latency": _latency,
    "builds": _build,
}
assert tuple(_DECODERS) == TOPIC_KINDS
