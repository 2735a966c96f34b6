"""Query validation of the insights endpoints (spec §1-§3, api.params)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from yarl import URL

from api.params import (
    ApiError,
    LatencyQuery,
    QueryItems,
    TemplatesQuery,
    WindowQuery,
    forbidden,
    internal_error,
    not_found,
    parse_daus_query,
    parse_templates_query,
    parse_user_activity_query,
    parse_user_latency_query,
    store_unavailable,
    unauthorized,
)

NOW = dt.datetime(2023, 8, 20, 14, 30, tzinfo=dt.UTC)  # a Sunday afternoon
T1 = "1d6d2a3e-8c4b-4f5a-9e7d-0a1b2c3d4e5f"
T2 = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
T3 = "00000000-0000-0000-0000-000000000003"
WEEK = "start_time=2023-08-13T00:00:00Z&end_time=2023-08-20T00:00:00Z"
LAYOUT = "2006-01-02T15:04:05Z07:00"
PLURAL = "Query parameters have invalid values."
SINGULAR = "Query parameter has invalid value."

Window = TemplatesQuery | WindowQuery | LatencyQuery
WINDOW_PARSERS: dict[str, Callable[[QueryItems, dt.datetime], Window]] = {
    "templates": parse_templates_query,
    "user-activity": parse_user_activity_query,
    "user-latency": parse_user_latency_query,
}


def items(query: str) -> list[tuple[str, str]]:
    """Decode a raw query string the way aiohttp does (yarl: "+" becomes a space)."""
    return list(URL("/x?" + query).query.items())


def failure(call: Callable[[], object]) -> ApiError:
    with pytest.raises(ApiError) as excinfo:
        call()
    assert excinfo.value.status == 400
    return excinfo.value


def invalid(field: str, detail: str) -> dict[str, object]:
    return {"message": SINGULAR, "validations": [{"field": field, "detail": detail}]}


def parser_errors(*pairs: tuple[str, str]) -> dict[str, object]:
    return {"message": PLURAL, "validations": [{"field": f, "detail": d} for f, d in pairs]}


def required(name: str) -> tuple[str, str]:
    return name, f'Query param "{name}" is required and cannot be empty'


def more_than_once(name: str, times: int) -> tuple[str, str]:
    return (
        name,
        f'Query param "{name}" provided more than once, found {times} times. '
        "Only provide 1 instance of this query param.",
    )


def unknown(name: str) -> tuple[str, str]:
    return name, f'"{name}" is not a valid query param'


# --- §3.2 start_time / end_time ------------------------------------------------------------


@pytest.mark.parametrize("endpoint", sorted(WINDOW_PARSERS))
@pytest.mark.parametrize(
    ("query", "now", "start", "end"),
    [
        pytest.param(
            "start_time=2023-08-14T00:00:00Z&end_time=2023-08-14T00:00:00Z",
            NOW,
            "2023-08-14T00:00:00Z",
            "2023-08-14T00:00:00Z",
            id="empty-window",
        ),
        pytest.param(WEEK, NOW, "2023-08-13T00:00:00Z", "2023-08-20T00:00:00Z", id="week"),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-20T14:00:00Z",
            NOW,
            "2023-08-20T00:00:00Z",
            "2023-08-20T14:00:00Z",
            id="today-to-current-hour",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-20T15:00:00Z",
            NOW,
            "2023-08-20T00:00:00Z",
            "2023-08-20T15:00:00Z",
            id="today-to-next-hour",
        ),
        pytest.param(
            "start_time=2023-08-13T00:00:00%2B03:00&end_time=2023-08-20T00:00:00%2B03:00",
            NOW,
            "2023-08-13T00:00:00+03:00",
            "2023-08-20T00:00:00+03:00",
            id="week-in-plus-three",
        ),
        pytest.param(
            "start_time=2023-03-26T00:00:00%2B02:00&end_time=2023-03-27T00:00:00%2B03:00",
            NOW,
            "2023-03-26T00:00:00+02:00",
            "2023-03-27T00:00:00+03:00",
            id="different-offsets",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00.5Z&end_time=2023-08-20T14:00:00.25Z",
            NOW,
            "2023-08-14T00:00:00.5Z",
            "2023-08-20T14:00:00.25Z",
            id="fractions-slip-through-and-are-echoed",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00%2B00:00&end_time=2023-08-20T11:00:00-03:00",
            NOW,
            "2023-08-14T00:00:00Z",
            "2023-08-20T11:00:00-03:00",
            id="today-in-a-western-offset",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-21T00:00:00Z",
            dt.datetime(2023, 8, 20, 23, 30, tzinfo=dt.UTC),
            "2023-08-20T00:00:00Z",
            "2023-08-21T00:00:00Z",
            id="tomorrow-midnight-in-the-last-hour-of-today",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-21T01:00:00%2B03:00",
            dt.datetime(2023, 8, 20, 22, 30, tzinfo=dt.UTC),
            "2023-08-20T00:00:00Z",
            "2023-08-21T01:00:00+03:00",
            id="today-is-judged-in-the-end-time-offset",
        ),
    ],
)
def test_valid_windows(endpoint: str, query: str, now: dt.datetime, start: str, end: str) -> None:
    parsed = WINDOW_PARSERS[endpoint](items(query), now)
    assert (parsed.start.format(), parsed.end.format()) == (start, end)
    assert parsed.start.raw == items(query)[0][1]


def _date_error(name: str, go_error: str) -> tuple[str, str]:
    return name, f'Query param "{name}" must be a valid date format ({LAYOUT}): {go_error}'


@pytest.mark.parametrize("endpoint", sorted(WINDOW_PARSERS))
@pytest.mark.parametrize(
    ("query", "now", "field", "detail"),
    [
        pytest.param(
            "start_time=2023-07-10&end_time=2023-08-20T00:00:00Z",
            NOW,
            *_date_error(
                "start_time",
                f'parsing time "2023-07-10" as "{LAYOUT}": cannot parse "" as "T"',
            ),
            id="date-only",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00+03:00&end_time=2023-08-20T00:00:00Z",
            NOW,
            *_date_error(
                "start_time",
                'parsing time "2023-08-14T00:00:00 03:00" as '
                f'"{LAYOUT}": cannot parse " 03:00" as "Z07:00"',
            ),
            id="unencoded-plus",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00Z&end_time=2023-08-32T00:00:00Z",
            NOW,
            *_date_error("end_time", 'parsing time "2023-08-32T00:00:00Z": day out of range'),
            id="end-day-out-of-range",
        ),
        pytest.param(
            "start_time=0001-01-01T00:00:00Z&end_time=2023-08-20T00:00:00Z",
            NOW,
            "start_time",
            'Query param "start_time" must not be zero',
            id="zero-start",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00Z&end_time=0001-01-01T01:00:00%2B01:00",
            NOW,
            "end_time",
            'Query param "end_time" must not be zero',
            id="zero-instant-in-another-offset",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-21T00:00:00Z",
            NOW,
            "end_time",
            'Query param "end_time" must not be in the future',
            id="tomorrow-midnight",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-20T16:00:00Z",
            NOW,
            "end_time",
            'Query param "end_time" must not be in the future',
            id="two-hours-ahead",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-20T15:00:00.5Z",
            NOW,
            "end_time",
            'Query param "end_time" must not be in the future',
            id="just-past-the-limit",
        ),
        pytest.param(
            "start_time=2023-08-21T00:00:00Z&end_time=bogus",
            NOW,
            "start_time",
            'Query param "start_time" must not be in the future',
            id="start-is-checked-fully-before-end",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-20T14:30:00Z",
            NOW,
            "end_time",
            'Query param "end_time" must have the clock set to 14:00:00, got 2023-08-20T14:30:00Z',
            id="today-with-minutes",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-20T09:00:05%2B00:00",
            NOW,
            "end_time",
            'Query param "end_time" must have the clock set to 09:00:00, '
            "got 2023-08-20T09:00:05+00:00",
            id="today-with-seconds",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00Z&end_time=2023-08-19T23:00:00Z",
            NOW,
            "end_time",
            'Query param "end_time" must have the clock set to 00:00:00, got 2023-08-19T23:00:00Z',
            id="yesterday-23h",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00Z&end_time=2023-08-19T00:00:01.5Z",
            NOW,
            "end_time",
            'Query param "end_time" must have the clock set to 00:00:00, '
            "got 2023-08-19T00:00:01.5Z",
            id="raw-value-echoed",
        ),
        pytest.param(
            "start_time=2023-08-20T10:00:00Z&end_time=2023-08-20T14:00:00Z",
            NOW,
            "start_time",
            'Query param "start_time" must have the clock set to 00:00:00, '
            "got 2023-08-20T10:00:00Z",
            id="start-never-gets-the-hour-allowance",
        ),
        pytest.param(
            "start_time=2023-08-13T23:00:00-01:00&end_time=2023-08-20T00:00:00Z",
            NOW,
            "start_time",
            'Query param "start_time" must have the clock set to 00:00:00, '
            "got 2023-08-13T23:00:00-01:00",
            id="utc-midnight-is-not-local-midnight",
        ),
        pytest.param(
            "start_time=2023-08-20T00:00:00Z&end_time=2023-08-19T00:00:00Z",
            NOW,
            "end_time",
            'Query param "end_time" must be after than "start_time"',
            id="end-before-start",
        ),
        pytest.param(
            "start_time=2023-08-14T00:00:00%2B02:00&end_time=2023-08-14T00:00:00%2B03:00",
            NOW,
            "end_time",
            'Query param "end_time" must be after than "start_time"',
            id="same-wall-clock-earlier-instant",
        ),
    ],
)
def test_time_errors(endpoint: str, query: str, now: dt.datetime, field: str, detail: str) -> None:
    error = failure(lambda: WINDOW_PARSERS[endpoint](items(query), now))
    assert error.body() == invalid(field, detail)


# --- §3.3 interval and sections ------------------------------------------------------------


def _days_before_today(days: int, hours: int = 0) -> str:
    start = dt.datetime(2023, 8, 20, tzinfo=dt.UTC) - dt.timedelta(days=days)
    end = dt.datetime(2023, 8, 20, hours, tzinfo=dt.UTC)
    return f"start_time={start:%Y-%m-%dT%H:%M:%SZ}&end_time={end:%Y-%m-%dT%H:%M:%SZ}"


@pytest.mark.parametrize(
    ("window", "accepted"),
    [
        (_days_before_today(0), True),
        (_days_before_today(5), False),
        (_days_before_today(6), True),
        (_days_before_today(7), True),
        (_days_before_today(9), False),
        (_days_before_today(13), True),
        (_days_before_today(14), True),
        (_days_before_today(20), True),
        (_days_before_today(21), True),
        (_days_before_today(5, hours=14), False),
        (_days_before_today(6, hours=14), True),
        # 5 d 23 h across the spring DST change with fixed offsets.
        ("start_time=2023-03-22T00:00:00%2B01:00&end_time=2023-03-28T00:00:00%2B02:00", False),
        # time.Duration saturates after ~292 years; whole weeks then stop being whole.
        (_days_before_today(7 * 20_000), False),
    ],
)
def test_week_interval_rule(window: str, accepted: bool) -> None:
    query = items(window + "&interval=week")
    if accepted:
        assert parse_templates_query(query, NOW).interval == "week"
        return
    error = failure(lambda: parse_templates_query(query, NOW))
    assert error.body() == {
        "message": SINGULAR,
        "detail": "Last report interval should have at least 6 days.",
    }


@pytest.mark.parametrize(
    ("extra", "interval"),
    [("", ""), ("&interval=", ""), ("&interval=day", "day"), ("&interval=&interval=x", "")],
)
def test_interval_values(extra: str, interval: str) -> None:
    query = items(_days_before_today(5) + extra)
    assert parse_templates_query(query, NOW).interval == interval


@pytest.mark.parametrize("value", ["invalid", "Week", "month", "%20day"])
def test_interval_must_be_day_or_week(value: str) -> None:
    error = failure(lambda: parse_templates_query(items(f"{WEEK}&interval={value}"), NOW))
    assert error.body() == invalid("interval", "must be one of [day week]")


@pytest.mark.parametrize(
    ("extra", "sections"),
    [
        ("", {"interval_reports", "report"}),
        ("&sections=", {"interval_reports", "report"}),
        ("&sections=report", {"report"}),
        ("&sections=interval_reports", {"interval_reports"}),
        ("&sections=report,interval_reports", {"interval_reports", "report"}),
        ("&sections=report&sections=interval_reports", {"interval_reports", "report"}),
        ("&sections=report&sections=report", {"report"}),
    ],
)
def test_sections(extra: str, sections: set[str]) -> None:
    assert parse_templates_query(items(WEEK + extra), NOW).sections == sections


@pytest.mark.parametrize(
    "value", ["invalid", "report,", "report,%20interval_reports", "Report", "report&sections=x"]
)
def test_sections_must_be_known(value: str) -> None:
    error = failure(lambda: parse_templates_query(items(f"{WEEK}&sections={value}"), NOW))
    assert error.body() == invalid("sections", "must be one of [interval_reports report]")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start_time=2023-08-20T10:00:00Z&end_time=2023-08-20T00:00:00Z&interval=x", "start_time"),
        (f"{WEEK}&interval=x&sections=x", "interval"),
        (f"{_days_before_today(5)}&interval=week&sections=x", None),
    ],
)
def test_check_order_times_interval_sections(query: str, field: str | None) -> None:
    body = failure(lambda: parse_templates_query(items(query), NOW)).body()
    validations = body.get("validations")
    assert (validations[0]["field"] if isinstance(validations, list) else None) == field


# --- §3.1.1 query-string parser ------------------------------------------------------------


def _bad_percentile(element: str) -> str:
    return f'invalid percentile "{element}": must be a number greater than 0 and less than 100'


@pytest.mark.parametrize(
    ("endpoint", "query", "expected"),
    [
        ("templates", "", [required("start_time"), required("end_time")]),
        ("user-activity", "start_time=&end_time=", [required("start_time"), required("end_time")]),
        (
            "user-latency",
            "start_time=&start_time=2023-08-14T00:00:00Z&end_time=2023-08-20T00:00:00Z",
            [required("start_time")],
        ),
        (
            "templates",
            "start_time=a&start_time=b&end_time=c&end_time=d&end_time=",
            [more_than_once("start_time", 2), more_than_once("end_time", 3)],
        ),
        ("templates", f"{WEEK}&interval=day&interval=day", [more_than_once("interval", 2)]),
        (
            "templates",
            f"foo=1&{WEEK}&bar=&foo=2&Foo=3",
            [unknown("foo"), unknown("bar"), unknown("Foo")],
        ),
        (
            "user-activity",
            f"{WEEK}&sections=report&interval=day&percentiles=90",
            [unknown("sections"), unknown("interval"), unknown("percentiles")],
        ),
        ("templates", f"{WEEK}&percentiles=90", [unknown("percentiles")]),
        (
            "user-latency",
            f"{WEEK}&we%22ird=1",
            [('we"ird', '"we\\"ird" is not a valid query param')],
        ),
        (
            "templates",
            "foo=1&template_ids=bad&interval=day&interval=week&sections=x",
            [
                required("start_time"),
                required("end_time"),
                more_than_once("interval", 2),
                (
                    "template_ids",
                    'Query param "template_ids" has invalid values: invalid UUID length: 3',
                ),
                unknown("foo"),
            ],
        ),
        (
            "user-latency",
            "percentiles=0&template_ids=x&foo=1",
            [
                required("start_time"),
                required("end_time"),
                (
                    "template_ids",
                    'Query param "template_ids" has invalid values: invalid UUID length: 1',
                ),
                (
                    "percentiles",
                    'Query param "percentiles" has invalid values: ' + _bad_percentile("0"),
                ),
                unknown("foo"),
            ],
        ),
        # Only presence is checked at this stage: bad times wait for stage 2.
        ("user-activity", "start_time=bad&end_time=worse&x=1", [unknown("x")]),
    ],
)
def test_parser_errors(endpoint: str, query: str, expected: list[tuple[str, str]]) -> None:
    error = failure(lambda: WINDOW_PARSERS[endpoint](items(query), NOW))
    assert error.body() == parser_errors(*expected)


@pytest.mark.parametrize(
    ("value", "element_errors"),
    [
        ("abc", "invalid UUID length: 3"),
        (f"{T1},", "invalid UUID length: 0"),
        (
            f"abc,{T1},%20,{T1[:-1]}g",
            "invalid UUID length: 3\ninvalid UUID length: 0\ninvalid UUID format",
        ),
        (f"{T1}&template_ids=nope", "invalid UUID length: 4"),
        ("urn:uuid-" + T1, 'invalid urn prefix: "urn:uuid-"'),
        ("%E2%80%8B" + T1, "invalid UUID length: 39"),
    ],
)
@pytest.mark.parametrize("endpoint", sorted(WINDOW_PARSERS))
def test_bad_template_ids(endpoint: str, value: str, element_errors: str) -> None:
    query = items(f"{WEEK}&template_ids={value}")
    detail = 'Query param "template_ids" has invalid values: ' + element_errors
    error = failure(lambda: WINDOW_PARSERS[endpoint](query, NOW))
    assert error.body() == parser_errors(("template_ids", detail))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", ()),
        ("&template_ids=", ()),
        ("&template_ids=&template_ids=bad", ()),
        (f"&template_ids={T1}", (T1,)),
        (f"&template_ids={T1.upper()},{T2}&template_ids={T3}", (T1, T2, T3)),
        (f"&template_ids=%20{T2}%09,{{{T1}}}", (T2, T1)),
        (f"&template_ids=urn:uuid:{T1}&template_ids={T1.replace('-', '')}", (T1,)),
        (f"&template_ids={T2},{T1},{T2}", (T2, T1)),
        (f"&template_ids=%C2%A0{T3}%E3%80%80", (T3,)),
    ],
)
def test_template_ids(extra: str, expected: tuple[str, ...]) -> None:
    for parse in WINDOW_PARSERS.values():
        assert parse(items(WEEK + extra), NOW).template_ids == expected


# --- §3.5 percentiles --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", [("p50", 0.5), ("p95", 0.95)]),
        ("&percentiles=", [("p50", 0.5), ("p95", 0.95)]),
        ("&percentiles=99,90", [("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)]),
        ("&percentiles=99.90", [("p50", 0.5), ("p95", 0.95), ("p99.9", 0.999)]),
        ("&percentiles=0.5", [("p0.5", 0.005), ("p50", 0.5), ("p95", 0.95)]),
        ("&percentiles=050,50.0,95.000", [("p50", 0.5), ("p95", 0.95)]),
        (
            "&percentiles=%2099%20&percentiles=1,99.0",
            [("p1", 0.01), ("p50", 0.5), ("p95", 0.95), ("p99", 0.99)],
        ),
        (
            "&percentiles=99.99&percentiles=0.001",
            [("p0.001", 0.00001), ("p50", 0.5), ("p95", 0.95), ("p99.99", 0.9999)],
        ),
    ],
)
def test_percentiles(extra: str, expected: list[tuple[str, float]]) -> None:
    parsed = parse_user_latency_query(items(WEEK + extra), NOW)
    assert parsed.percentiles == tuple(expected)


@pytest.mark.parametrize(
    ("value", "bad"),
    [
        ("0", ["0"]),
        ("0.0", ["0.0"]),
        ("100", ["100"]),
        ("100.0", ["100.0"]),
        ("%2D1", ["-1"]),
        ("%2B5", ["+5"]),
        ("1e1", ["1e1"]),
        (".5", [".5"]),
        ("5.", ["5."]),
        ("abc,90,", ["abc", ""]),
        ("90&percentiles=p99", ["p99"]),
        ("%D9%A3", ["\u0663"]),
    ],
)
def test_bad_percentiles(value: str, bad: list[str]) -> None:
    error = failure(lambda: parse_user_latency_query(items(f"{WEEK}&percentiles={value}"), NOW))
    detail = 'Query param "percentiles" has invalid values: ' + "\n".join(map(_bad_percentile, bad))
    assert error.body() == parser_errors(("percentiles", detail))


# --- §3.4 tz_offset (daus) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "offset"),
    [
        ("", 0),
        ("tz_offset=", 0),
        ("tz_offset=&tz_offset=5", 0),
        ("tz_offset=-3", -3),
        ("tz_offset=%2B5", 5),
        ("tz_offset=-12", -12),
        ("tz_offset=14", 14),
        ("tz_offset=0", 0),
        ("tz_offset=-0", 0),
        ("tz_offset=007", 7),
    ],
)
def test_tz_offset(query: str, offset: int) -> None:
    assert parse_daus_query(items(query)).tz_offset == offset


def _atoi(value: str, reason: str = "invalid syntax") -> tuple[str, str]:
    detail = (
        f'Query param "tz_offset" must be a valid integer: strconv.Atoi: parsing {value}: {reason}'
    )
    return "tz_offset", detail


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tz_offset=5.5", [_atoi('"5.5"')]),
        ("tz_offset=3.0", [_atoi('"3.0"')]),
        ("tz_offset=0x3", [_atoi('"0x3"')]),
        ("tz_offset=+3", [_atoi('" 3"')]),
        ("tz_offset=-", [_atoi('"-"')]),
        ("tz_offset=1_0", [_atoi('"1_0"')]),
        ("tz_offset=%D9%A3", [_atoi('"\u0663"')]),
        ("tz_offset=%09", [_atoi('"\\t"')]),
        ("tz_offset=99999999999999999999", [_atoi('"99999999999999999999"', "value out of range")]),
        ("tz_offset=9223372036854775808", [_atoi('"9223372036854775808"', "value out of range")]),
        ("tz_offset=-9223372036854775809", [_atoi('"-9223372036854775809"', "value out of range")]),
        # ParseUint stops at the overflow, before it sees the bad byte.
        (
            "tz_offset=99999999999999999999x",
            [_atoi('"99999999999999999999x"', "value out of range")],
        ),
        ("tz_offset=1&tz_offset=2", [more_than_once("tz_offset", 2)]),
        ("tz_offset=abc&days=1", [_atoi('"abc"'), unknown("days")]),
        ("start_time=2023-08-14T00:00:00Z", [unknown("start_time")]),
    ],
)
def test_tz_offset_parser_errors(query: str, expected: list[tuple[str, str]]) -> None:
    error = failure(lambda: parse_daus_query(items(query)))
    assert error.body() == parser_errors(*expected)


@pytest.mark.parametrize(
    "value", ["15", "-13", "100", "9223372036854775807", "-9223372036854775808"]
)
def test_tz_offset_range(value: str) -> None:
    error = failure(lambda: parse_daus_query(items(f"tz_offset={value}")))
    assert error.body() == invalid("tz_offset", "must be between -12 and 14")


# --- error bodies and helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (unauthorized(), 401, {"message": "You must be logged in to access this resource."}),
        (forbidden(), 403, {"message": "Forbidden."}),
        (
            not_found(),
            404,
            {"message": "Resource not found or you do not have access to this resource"},
        ),
        (
            store_unavailable("timeout after 2s"),
            503,
            {"message": "Insights store unavailable.", "detail": "timeout after 2s"},
        ),
        (
            internal_error("Internal error fetching DAUs.", "boom"),
            500,
            {"message": "Internal error fetching DAUs.", "detail": "boom"},
        ),
    ],
)
def test_error_helpers(error: ApiError, status: int, body: dict[str, object]) -> None:
    assert (error.status, error.body()) == (status, body)


def test_body_field_order() -> None:
    error = ApiError(400, "m", "d", [])
    assert list(error.body()) == ["message", "detail"]
    body = failure(lambda: parse_templates_query(items("x=1"), NOW)).body()
    assert list(body) == ["message", "validations"]
    validations = body["validations"]
    assert isinstance(validations, list)
    assert all(list(v) == ["field", "detail"] for v in validations)


def test_now_must_be_aware() -> None:
    with pytest.raises(TypeError):
        parse_user_activity_query(items(WEEK), dt.datetime(2023, 8, 20, 14, 30))
