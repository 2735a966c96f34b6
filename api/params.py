"""Query validation for the four insights endpoints (spec §1-§3), framework-free.

Input is the decoded query string as ordered ``(key, value)`` pairs (aiohttp's
``request.rel_url.query.items()``; a literal ``+`` has already become a space)
and, where "future" and "today" matter, the current instant.

Two stages, as in Coder:

1. a query-string parser (Coder's ``httpapi.QueryParamParser``) that collects
   every problem, at most one per parameter in parse order, then one per
   unknown parameter (plural message);
2. value checks (times, ``interval``, ``sections``, ``tz_offset`` range) that
   stop at the first failure (singular message).

The ``tz`` extension (an IANA zone name, on every endpoint) is parsed with the rest and
checked after every check Coder makes, so a request Coder would refuse gets Coder's answer.

Parsed ``template_ids`` are lowercase canonical UUIDs in the order given with
duplicates removed (first occurrence kept): the spec accepts duplicates and
they change nothing, so dropping them here spares every consumer the work.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from aggregators.timebase import NS_PER_DAY, NS_PER_HOUR, NS_PER_S, NS_PER_US
from api.coder.gotime import (
    RFC3339_LAYOUT,
    GoTime,
    GoTimeError,
    go_quote,
    go_trim_space,
    parse_rfc3339,
)
from api.coder.uuids import UUIDError, parse_uuid

T = TypeVar("T")
QueryItems = Iterable[tuple[str, str]]

MSG_PARSER = "Query parameters have invalid values."
MSG_INVALID = "Query parameter has invalid value."
MSG_UNAUTHORIZED = "You must be logged in to access this resource."
MSG_FORBIDDEN = "Forbidden."
MSG_NOT_FOUND = "Resource not found or you do not have access to this resource"
MSG_STORE_UNAVAILABLE = "Insights store unavailable."
MSG_INTERNAL_TEMPLATES = "Internal error fetching template insights."
MSG_INTERNAL_PARAMETERS = "Internal error converting template parameter insights."
MSG_INTERNAL_USER_ACTIVITY = "Internal error fetching user activity."
MSG_INTERNAL_USER_LATENCY = "Internal error fetching user latency."
MSG_INTERNAL_DAUS = "Internal error fetching DAUs."
MSG_INTERNAL_TEMPLATE_NAMES = "Internal error fetching template names."

SECTION_INTERVAL_REPORTS = "interval_reports"
SECTION_REPORT = "report"
TZ_OFFSET_MIN, TZ_OFFSET_MAX = -12, 14
TZ_NAME_MAX_CHARS = 64  # the longest IANA name is ~32 characters

_WEEK_NS = 7 * NS_PER_DAY
_GO_MAX_DURATION = 2**63 - 1  # time.Duration saturates here (Time.Sub)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_PERCENTILE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class ValidationItem:
    field: str
    detail: str


class ApiError(Exception):
    """An HTTP error answer in Coder's ``codersdk.Response`` shape."""

    def __init__(
        self,
        status: int,
        message: str,
        detail: str = "",
        validations: Iterable[ValidationItem] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.validations = tuple(validations)

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"message": self.message}
        if self.detail:
            body["detail"] = self.detail
        if self.validations:
            body["validations"] = [{"field": v.field, "detail": v.detail} for v in self.validations]
        return body


def unauthorized() -> ApiError:
    return ApiError(401, MSG_UNAUTHORIZED)


def forbidden() -> ApiError:
    return ApiError(403, MSG_FORBIDDEN)


def not_found() -> ApiError:
    return ApiError(404, MSG_NOT_FOUND)


def store_unavailable(reason: str) -> ApiError:
    return ApiError(503, MSG_STORE_UNAVAILABLE, detail=reason)


def internal_error(message: str, detail: str) -> ApiError:
    return ApiError(500, message, detail=detail)


def invalid_value(field: str, detail: str) -> ApiError:
    """A singular-message 400 naming one field (the stage-2 checks)."""
    return ApiError(400, MSG_INVALID, validations=[ValidationItem(field, detail)])


@dataclass(frozen=True)
class TemplatesQuery:
    start: GoTime
    end: GoTime
    template_ids: tuple[str, ...]
    interval: str  # "", "day" or "week"
    sections: frozenset[str]
    zone: zoneinfo.ZoneInfo | None = None  # ``tz``: intervals split at its midnights


@dataclass(frozen=True)
class WindowQuery:
    start: GoTime
    end: GoTime
    template_ids: tuple[str, ...]
    zone: zoneinfo.ZoneInfo | None = None


@dataclass(frozen=True)
class LatencyQuery:
    start: GoTime
    end: GoTime
    template_ids: tuple[str, ...]
    # (key, quantile in 0..1), ascending, always with p50 and p95.
    percentiles: tuple[tuple[str, float], ...]
    zone: zoneinfo.ZoneInfo | None = None


@dataclass(frozen=True)
class DausQuery:
    tz_offset: int
    zone: zoneinfo.ZoneInfo | None = None  # ``tz``: replaces ``tz_offset``


class _QueryParser:
    """Coder's ``QueryParamParser``: presence and emptiness judged on a key's first value."""

    def __init__(self, items: QueryItems) -> None:
        self._values: dict[str, list[str]] = {}  # keys in order of first appearance
        for key, value in items:
            self._values.setdefault(key, []).append(value)
        self._known: set[str] = set()
        self.errors: list[ValidationItem] = []

    def _fail(self, name: str, detail: str) -> None:
        self.errors.append(ValidationItem(name, detail))

    def _values_of(self, name: str, required: bool = False) -> list[str] | None:
        self._known.add(name)
        values = self._values.get(name)
        if values and values[0] != "":
            return values
        if required:
            self._fail(name, f'Query param "{name}" is required and cannot be empty')
        return None

    def _single(self, name: str, required: bool = False) -> str | None:
        values = self._values_of(name, required)
        if values is None:
            return None
        if len(values) > 1:
            self._fail(
                name,
                f'Query param "{name}" provided more than once, found {len(values)} times. '
                "Only provide 1 instance of this query param.",
            )
            return None
        return values[0]

    def given(self, name: str) -> bool:
        """Whether the first occurrence of ``name`` has a value (no error either way)."""
        return bool(self._values.get(name, [""])[0])

    def string(self, name: str, default: str = "", required: bool = False) -> str:
        value = self._single(name, required)
        return default if value is None else value

    def integer(self, name: str, default: int) -> int:
        value = self._single(name)
        if value is None:
            return default
        try:
            return go_atoi(value)
        except ValueError as err:
            self._fail(name, f'Query param "{name}" must be a valid integer: {err}')
            return default

    def csv(self, name: str, parse: Callable[[str], T]) -> list[T] | None:
        """CSV and/or repeated keys; element errors are joined like ``errors.Join``."""
        values = self._values_of(name)
        if values is None:
            return None
        parsed: list[T] = []
        problems: list[str] = []
        for element in (part for value in values for part in value.split(",")):
            try:
                parsed.append(parse(element))
            except ValueError as err:
                problems.append(str(err))
        if problems:
            self._fail(name, f'Query param "{name}" has invalid values: ' + "\n".join(problems))
            return None
        return parsed

    def finish(self) -> None:
        for key in self._values:
            if key not in self._known:
                self._fail(key, f"{go_quote(key)} is not a valid query param")
        if self.errors:
            raise ApiError(400, MSG_PARSER, validations=self.errors)


def go_atoi(text: str) -> int:
    """``strconv.Atoi`` on a 64-bit platform; ``str(ValueError)`` is Go's error text."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    value = 0
    for char in digits:
        if not "0" <= char <= "9":
            raise ValueError(_atoi_error(text, "invalid syntax"))
        value = value * 10 + ord(char) - 48
        # ParseUint reports overflow as soon as it happens, before later bad bytes.
        if value > _UINT64_MAX:
            raise ValueError(_atoi_error(text, "value out of range"))
    if not digits:
        raise ValueError(_atoi_error(text, "invalid syntax"))
    negative = text[:1] == "-"
    if value > (_INT64_MAX + 1 if negative else _INT64_MAX):
        raise ValueError(_atoi_error(text, "value out of range"))
    return -value if negative else value


def _atoi_error(text: str, reason: str) -> str:
    return f"strconv.Atoi: parsing {go_quote(text)}: {reason}"


def _template_id(element: str) -> str:
    try:
        return parse_uuid(go_trim_space(element))
    except UUIDError as err:
        raise ValueError(str(err)) from None


def _percentile(element: str) -> tuple[str, Decimal]:
    """A plain decimal strictly between 0 and 100, keyed ``p`` + canonical form."""
    text = go_trim_space(element)
    if _PERCENTILE.fullmatch(text):
        number = Decimal(text)
        if 0 < number < 100:
            whole, _, fraction = text.partition(".")
            key = "p" + (whole.lstrip("0") or "0")
            fraction = fraction.rstrip("0")
            return (key + "." + fraction if fraction else key), number
    raise ValueError(
        f"invalid percentile {go_quote(text)}: must be a number greater than 0 and less than 100"
    )


def _dedupe(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


def _epoch_ns(now: dt.datetime) -> int:
    delta = now - _UNIX_EPOCH  # TypeError for a naive datetime, on purpose
    return delta.days * NS_PER_DAY + delta.seconds * NS_PER_S + delta.microseconds * NS_PER_US


def _check_time(name: str, raw: str, now_ns: int) -> GoTime:
    """Coder's ``parseInsightsStartAndEndTime`` for one parameter (spec §3.2 #1-#4)."""
    prefix = f'Query param "{name}"'
    try:
        value = parse_rfc3339(raw)
    except GoTimeError as err:
        raise invalid_value(
            name, f"{prefix} must be a valid date format ({RFC3339_LAYOUT}): {err}"
        ) from None
    if value.is_zero():
        raise invalid_value(name, f"{prefix} must not be zero")
    # now.Truncate(time.Hour) works on absolute time, i.e. on UTC hours.
    if value.epoch_ns > now_ns // NS_PER_HOUR * NS_PER_HOUR + NS_PER_HOUR:
        raise invalid_value(name, f"{prefix} must not be in the future")
    hour, minute, second = value.hour, value.minute, value.second
    today = GoTime(now_ns, value.offset_s).ymd()
    midnight_only = name == "start_time" or value.ymd() != today
    if midnight_only and (hour or minute or second):
        raise invalid_value(name, f"{prefix} must have the clock set to 00:00:00, got {raw}")
    if minute or second:
        raise invalid_value(
            name, f"{prefix} must have the clock set to {hour:02d}:00:00, got {raw}"
        )
    return value


def _check_window(start_raw: str, end_raw: str, now: dt.datetime) -> tuple[GoTime, GoTime]:
    now_ns = _epoch_ns(now)
    start = _check_time("start_time", start_raw, now_ns)
    end = _check_time("end_time", end_raw, now_ns)
    if end.epoch_ns < start.epoch_ns:
        raise invalid_value("end_time", 'Query param "end_time" must be after than "start_time"')
    return start, end


def _check_interval(interval: str, start: GoTime, end: GoTime) -> None:
    if interval in ("", "day"):
        return
    if interval != "week":
        raise invalid_value("interval", "must be one of [day week]")
    elapsed = min(end.epoch_ns - start.epoch_ns, _GO_MAX_DURATION)
    remainder = elapsed % _WEEK_NS
    # Coder also accepts start+6 calendar days == end (a DST-shortened week);
    # with fixed offsets that is exactly 144 h, which the second test covers.
    if remainder != 0 and remainder < 6 * NS_PER_DAY:
        raise ApiError(400, MSG_INVALID, detail="Last report interval should have at least 6 days.")


def _check_sections(sections: Iterable[str]) -> frozenset[str]:
    allowed = (SECTION_INTERVAL_REPORTS, SECTION_REPORT)
    result = frozenset(sections)
    if not result <= frozenset(allowed):
        raise invalid_value("sections", f"must be one of [{' '.join(allowed)}]")
    return result


def _window_params(parser: _QueryParser) -> tuple[str, str]:
    start = parser.string("start_time", required=True)
    end = parser.string("end_time", required=True)
    return start, end


def parse_templates_query(items: QueryItems, now: dt.datetime) -> TemplatesQuery:
    parser = _QueryParser(items)
    start_raw, end_raw = _window_params(parser)
    interval = parser.string("interval")
    template_ids = parser.csv("template_ids", _template_id) or []
    sections = parser.csv("sections", str) or [SECTION_INTERVAL_REPORTS, SECTION_REPORT]
    tz = parser.string("tz")
    parser.finish()
    start, end = _check_window(start_raw, end_raw, now)
    _check_interval(interval, start, end)
    checked = _check_sections(sections)
    return TemplatesQuery(start, end, _dedupe(template_ids), interval, checked, check_zone(tz))


def parse_user_activity_query(items: QueryItems, now: dt.datetime) -> WindowQuery:
    parser = _QueryParser(items)
    start_raw, end_raw = _window_params(parser)
    template_ids = parser.csv("template_ids", _template_id) or []
    tz = parser.string("tz")
    parser.finish()
    start, end = _check_window(start_raw, end_raw, now)
    return WindowQuery(start, end, _dedupe(template_ids), check_zone(tz))


def parse_user_latency_query(items: QueryItems, now: dt.datetime) -> LatencyQuery:
    parser = _QueryParser(items)
    start_raw, end_raw = _window_params(parser)
    template_ids = parser.csv("template_ids", _template_id) or []
    requested = parser.csv("percentiles", _percentile) or []
    tz = parser.string("tz")
    parser.finish()
    start, end = _check_window(start_raw, end_raw, now)
    percentiles = dict([*requested, ("p50", Decimal(50)), ("p95", Decimal(95))])
    ordered = sorted(percentiles.items(), key=lambda item: item[1])
    quantiles = tuple((key, float(number / 100)) for key, number in ordered)
    return LatencyQuery(start, end, _dedupe(template_ids), quantiles, check_zone(tz))


def parse_daus_query(items: QueryItems) -> DausQuery:
    parser = _QueryParser(items)
    tz_offset = parser.integer("tz_offset", 0)
    offset_given = parser.given("tz_offset")
    tz = parser.string("tz")
    parser.finish()
    if not TZ_OFFSET_MIN <= tz_offset <= TZ_OFFSET_MAX:
        raise invalid_value("tz_offset", f"must be between {TZ_OFFSET_MIN} and {TZ_OFFSET_MAX}")
    if tz and offset_given:
        raise invalid_value("tz", 'cannot be combined with "tz_offset"')
    return DausQuery(tz_offset, check_zone(tz))


def parse_no_query(items: QueryItems) -> None:
    """An endpoint without parameters: any parameter is an unknown one."""
    _QueryParser(items).finish()


def unknown_zone(name: str) -> ApiError:
    return invalid_value("tz", f"unknown time zone {go_quote(name[:TZ_NAME_MAX_CHARS])}")


def check_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone of a ``tz`` value ("" is no zone); a 400 on ``tz`` for anything else."""
    if not name:
        return None
    if len(name) > TZ_NAME_MAX_CHARS or name != name.strip() or name.startswith("/"):
        raise unknown_zone(name)
    try:
        return zoneinfo.ZoneInfo(name)  # cached by the module; a miss reads one small file
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise unknown_zone(name) from exc
