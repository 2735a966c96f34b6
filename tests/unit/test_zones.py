"""api.zones: IANA zones as local midnights in UTC, DST-correct, and report intervals."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregators.timebase import MS_PER_HOUR, NS_PER_MS
from api.coder.gotime import go_quote
from api.params import (
    ApiError,
    parse_daus_query,
    parse_templates_query,
    parse_user_activity_query,
    parse_user_latency_query,
)
from api.params import check_zone as zone
from api.zones import (
    ZoneSteps,
    half_hour_bounds,
    local_date,
    local_midnights_ms,
    midnight_ms,
    offset_hours,
)

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
SAO_PAULO = zoneinfo.ZoneInfo("America/Sao_Paulo")
KATHMANDU = zoneinfo.ZoneInfo("Asia/Kathmandu")
ZONES = [BERLIN, SAO_PAULO, KATHMANDU, zoneinfo.ZoneInfo("UTC"), zoneinfo.ZoneInfo("Pacific/Apia")]


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/Sao_Paulo", "UTC", "Asia/Kolkata"])
def test_known_zones(name: str) -> None:
    assert zone(name).key == name


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", " UTC", "x" * 500, "\x00"]
)
def test_unknown_zones_are_a_400_on_tz(name: str) -> None:
    with pytest.raises(ApiError) as info:
        zone(name)
    body = info.value.body()
    assert info.value.status == 400
    detail = body["validations"][0]["detail"]  # type: ignore[index]
    assert body["validations"] == [{"field": "tz", "detail": detail}]
    assert detail == "unknown time zone " + go_quote(name[:64])


def test_dst_days_are_23_and_25_hours() -> None:
    spring = local_midnights_ms(BERLIN, dt.date(2026, 3, 28), 3)
    assert [b - a for a, b in itertools.pairwise(spring)] == [
        24 * MS_PER_HOUR,
        23 * MS_PER_HOUR,
        24 * MS_PER_HOUR,
    ]
    autumn = local_midnights_ms(BERLIN, dt.date(2026, 10, 25), 1)
    assert autumn[1] - autumn[0] == 25 * MS_PER_HOUR
    assert autumn[0] == ms("2026-10-24T22:00:00+00:00")


def test_a_dst_gap_at_midnight_starts_the_day_at_one() -> None:
    # Brazil's DST began at 00:00 on 2018-11-04: that midnight never happened.
    assert midnight_ms(SAO_PAULO, dt.date(2018, 11, 4)) == ms("2018-11-04T01:00:00-02:00")


def test_a_half_hour_belongs_to_the_local_day_it_starts_in() -> None:
    # Kathmandu is +05:45: local midnight is 18:15 UTC, inside the 18:00 half-hour.
    (start,) = half_hour_bounds([midnight_ms(KATHMANDU, dt.date(2026, 12, 1))])
    assert start * 30 * 60 * 1000 == ms("2026-11-30T18:30:00+00:00")


def test_offset_hours_truncate_toward_zero() -> None:
    winter = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)
    summer = dt.datetime(2026, 7, 15, tzinfo=dt.UTC)
    assert offset_hours(BERLIN, winter) == 1
    assert offset_hours(BERLIN, summer) == 2
    assert offset_hours(SAO_PAULO, winter) == -3
    assert offset_hours(KATHMANDU, winter) == 5
    assert offset_hours(zoneinfo.ZoneInfo("America/St_Johns"), winter) == -3


def test_local_date_at_the_ends_of_the_calendar() -> None:
    assert local_date(SAO_PAULO, ms("0001-01-01T01:00:00+00:00")) == dt.date(1, 1, 1)
    assert local_date(BERLIN, ms("9999-12-31T23:30:00+00:00")) == dt.date(9999, 12, 31)


def test_week_steps_across_a_dst_change() -> None:
    start = ms("2026-03-23T00:00:00+01:00") * NS_PER_MS
    end = ms("2026-04-06T00:00:00+02:00") * NS_PER_MS
    steps = ZoneSteps(BERLIN, start, end, 7)
    assert steps.count == 2
    assert steps.span(0) == (start, ms("2026-03-30T00:00:00+02:00") * NS_PER_MS)
    assert steps.span(1) == (ms("2026-03-30T00:00:00+02:00") * NS_PER_MS, end)


def test_a_short_last_interval() -> None:
    start = ms("2026-11-28T00:00:00+01:00") * NS_PER_MS
    end = ms("2026-12-01T14:00:00+01:00") * NS_PER_MS
    steps = ZoneSteps(BERLIN, start, end, 1)
    assert steps.count == 4
    assert steps.span(3) == (ms("2026-12-01T00:00:00+01:00") * NS_PER_MS, end)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ZONES),
    st.dates(dt.date(1990, 1, 1), dt.date(2040, 1, 1)),
    st.integers(0, 60),
    st.sampled_from([1, 7]),
    st.integers(0, 23),
    st.integers(-2_000, 80 * 24),
    st.integers(1, 72),
)
def test_steps_tile_the_window_and_near_finds_every_overlap(
    tz: dt.tzinfo, first: dt.date, n_days: int, days: int, end_hour: int, lo_h: int, len_h: int
) -> None:
    start = midnight_ms(tz, first) * NS_PER_MS
    end = (midnight_ms(tz, first + dt.timedelta(days=n_days)) + end_hour * MS_PER_HOUR) * NS_PER_MS
    steps = ZoneSteps(tz, start, end, days)
    spans = [steps.span(i) for i in range(steps.count)]
    if end <= start:
        assert steps.count == 0
        return
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert all(lo < hi for lo, hi in spans)
    for lo, _ in spans[1:]:  # every inner edge is a local midnight
        assert dt.datetime.fromtimestamp(lo / 1e9, tz).time() <= dt.time(1, 0)
    lo_ns = start + lo_h * MS_PER_HOUR * NS_PER_MS
    hi_ns = lo_ns + len_h * MS_PER_HOUR * NS_PER_MS
    meeting = {i for i, (a, b) in enumerate(spans) if a < hi_ns and lo_ns < b}
    assert meeting <= set(steps.near(lo_ns, hi_ns))


NOW = dt.datetime(2026, 12, 1, 13, 20, tzinfo=dt.UTC)
WINDOW = [("start_time", "2026-11-24T00:00:00+01:00"), ("end_time", "2026-12-01T00:00:00+01:00")]


def test_tz_on_every_endpoint() -> None:
    items = [*WINDOW, ("tz", "Europe/Berlin")]
    assert parse_templates_query(items, NOW).zone == BERLIN
    assert parse_user_activity_query(items, NOW).zone == BERLIN
    assert parse_user_latency_query(items, NOW).zone == BERLIN
    assert parse_daus_query([("tz", "Europe/Berlin")]).zone == BERLIN
    assert parse_templates_query(WINDOW, NOW).zone is None
    assert parse_daus_query([("tz", "")]).zone is None  # empty first value: the default


def test_daus_takes_tz_or_tz_offset_not_both() -> None:
    with pytest.raises(ApiError) as info:
        parse_daus_query([("tz_offset", "1"), ("tz", "Europe/Berlin")])
    assert info.value.body() == {
        "message": "Query parameter has invalid value.",
        "validations": [{"field": "tz", "detail": 'cannot be combined with "tz_offset"'}],
    }


def test_coder_checks_come_before_the_zone() -> None:
    items = [("start_time", "2026-11-24T01:00:00Z"), ("end_time", WINDOW[1][1]), ("tz", "Nowhere")]
    with pytest.raises(ApiError) as info:
        parse_user_activity_query(items, NOW)
    assert info.value.body()["validations"][0]["field"] == "start_time"  # type: ignore[index]


def test_tz_twice_is_a_parser_error() -> None:
    with pytest.raises(ApiError) as info:
        parse_daus_query([("tz", "UTC"), ("tz", "UTC")])
    assert info.value.body()["message"] == "Query parameters have invalid values."
