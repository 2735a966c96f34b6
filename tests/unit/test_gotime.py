"""Go time.Parse(time.RFC3339) / RFC3339Nano emulation (api.coder.gotime)."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.coder.gotime import (
    GoTime,
    GoTimeError,
    format_rfc3339,
    go_quote,
    go_trim_space,
    parse_rfc3339,
    time_quote,
)

NS = 1_000_000_000
LAYOUT = "2006-01-02T15:04:05Z07:00"


def epoch_ns(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, off: int = 0) -> int:
    return (calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) - off) * NS


@pytest.mark.parametrize(
    ("value", "expected_epoch", "offset", "formatted"),
    [
        ("2023-07-10T00:00:00Z", epoch_ns(2023, 7, 10), 0, "2023-07-10T00:00:00Z"),
        (
            "2023-07-10T00:00:00+03:00",
            epoch_ns(2023, 7, 10, off=10800),
            10800,
            "2023-07-10T00:00:00+03:00",
        ),
        (
            "2023-08-15T00:00:00-03:00",
            epoch_ns(2023, 8, 15, off=-10800),
            -10800,
            "2023-08-15T00:00:00-03:00",
        ),
        ("2023-07-10T00:00:00+00:00", epoch_ns(2023, 7, 10), 0, "2023-07-10T00:00:00Z"),
        ("2023-07-10T00:00:00-00:00", epoch_ns(2023, 7, 10), 0, "2023-07-10T00:00:00Z"),
        # Go quirks: one-digit hour, comma or dot fraction of any length.
        ("2023-07-10T0:00:00Z", epoch_ns(2023, 7, 10), 0, "2023-07-10T00:00:00Z"),
        ("2023-07-10T9:30:00Z", epoch_ns(2023, 7, 10, 9, 30), 0, "2023-07-10T09:30:00Z"),
        ("2023-07-10T00:00:00.5Z", epoch_ns(2023, 7, 10) + NS // 2, 0, "2023-07-10T00:00:00.5Z"),
        ("2023-07-10T00:00:00,5Z", epoch_ns(2023, 7, 10) + NS // 2, 0, "2023-07-10T00:00:00.5Z"),
        ("2023-07-10T00:00:00.000Z", epoch_ns(2023, 7, 10), 0, "2023-07-10T00:00:00Z"),
        (
            "2023-07-10T00:00:00.123456789999Z",
            epoch_ns(2023, 7, 10) + 123_456_789,
            0,
            "2023-07-10T00:00:00.123456789Z",
        ),
        (
            "2023-07-10T00:00:00.120+05:30",
            epoch_ns(2023, 7, 10, off=19800) + 120_000_000,
            19800,
            "2023-07-10T00:00:00.12+05:30",
        ),
        # Offsets up to 24 h and 60 min pass Go's range checks (> rather than >=).
        (
            "2023-07-10T00:00:00+24:60",
            epoch_ns(2023, 7, 10, off=90000),
            90000,
            "2023-07-10T00:00:00+25:00",
        ),
        ("2024-02-29T00:00:00Z", epoch_ns(2024, 2, 29), 0, "2024-02-29T00:00:00Z"),
        ("2000-02-29T00:00:00Z", epoch_ns(2000, 2, 29), 0, "2000-02-29T00:00:00Z"),
        ("0000-01-01T00:00:00Z", -62_167_219_200 * NS, 0, "0000-01-01T00:00:00Z"),
        (
            "9999-12-31T23:59:59.999999999Z",
            epoch_ns(9999, 12, 31, 23, 59, 59) + 999_999_999,
            0,
            "9999-12-31T23:59:59.999999999Z",
        ),
    ],
)
def test_parse_valid(value: str, expected_epoch: int, offset: int, formatted: str) -> None:
    parsed = parse_rfc3339(value)
    assert parsed == GoTime(expected_epoch, offset, value)
    assert parsed.format() == formatted


def _cannot(value: str, rest: str, element: str) -> str:
    return f'parsing time "{value}" as "{LAYOUT}": cannot parse "{rest}" as "{element}"'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2023-07-10", _cannot("2023-07-10", "", "T")),
        ("", _cannot("", "", "2006")),
        ("23-07-10T00:00:00Z", _cannot("23-07-10T00:00:00Z", "23-07-10T00:00:00Z", "2006")),
        ("x023-07-10", _cannot("x023-07-10", "x023-07-10", "2006")),
        ("2023/07/10", _cannot("2023/07/10", "/07/10", "-")),
        ("2023-7-10T00:00:00Z", _cannot("2023-7-10T00:00:00Z", "7-10T00:00:00Z", "01")),
        ("2023-07-1T00:00:00Z", _cannot("2023-07-1T00:00:00Z", "1T00:00:00Z", "02")),
        ("2023-07-10 00:00:00Z", _cannot("2023-07-10 00:00:00Z", " 00:00:00Z", "T")),
        ("2023-07-10t00:00:00Z", _cannot("2023-07-10t00:00:00Z", "t00:00:00Z", "T")),
        ("2023-07-10TX:00:00Z", _cannot("2023-07-10TX:00:00Z", "X:00:00Z", "15")),
        ("2023-07-10T123:00:00Z", _cannot("2023-07-10T123:00:00Z", "3:00:00Z", ":")),
        ("2023-07-10T00:0:00Z", _cannot("2023-07-10T00:0:00Z", "0:00Z", "04")),
        ("2023-07-10T00:00Z", _cannot("2023-07-10T00:00Z", "Z", ":")),
        ("2023-07-10T00:00:0Z", _cannot("2023-07-10T00:00:0Z", "0Z", "05")),
        ("2023-07-10T00:00:00", _cannot("2023-07-10T00:00:00", "", "Z07:00")),
        ("2023-07-10T00:00:00z", _cannot("2023-07-10T00:00:00z", "z", "Z07:00")),
        ("2023-07-10T00:00:00+03", _cannot("2023-07-10T00:00:00+03", "+03", "Z07:00")),
        ("2023-07-10T00:00:00+0300", _cannot("2023-07-10T00:00:00+0300", "+0300", "Z07:00")),
        # What an unencoded "+" turns into after URL decoding.
        ("2023-07-10T00:00:00 03:00", _cannot("2023-07-10T00:00:00 03:00", " 03:00", "Z07:00")),
        ("2023-07-10T00:00:00-a3:00", _cannot("2023-07-10T00:00:00-a3:00", "-a3:00", "Z07:00")),
        ("2023-07-10T00:00:00*03:00", _cannot("2023-07-10T00:00:00*03:00", "*03:00", "Z07:00")),
        ("2023-07-10T00:00:00.Z", _cannot("2023-07-10T00:00:00.Z", ".Z", "Z07:00")),
        ("2023-00-10T00:00:00Z", 'parsing time "2023-00-10T00:00:00Z": month out of range'),
        ("2023-13-10T00:00:00Z", 'parsing time "2023-13-10T00:00:00Z": month out of range'),
        ("2023-07-10T24:00:00Z", 'parsing time "2023-07-10T24:00:00Z": hour out of range'),
        ("2023-07-10T00:60:00Z", 'parsing time "2023-07-10T00:60:00Z": minute out of range'),
        ("2023-07-10T00:00:60Z", 'parsing time "2023-07-10T00:00:60Z": second out of range'),
        ("2023-07-00T00:00:00Z", 'parsing time "2023-07-00T00:00:00Z": day out of range'),
        ("2023-04-31T00:00:00Z", 'parsing time "2023-04-31T00:00:00Z": day out of range'),
        ("2023-02-29T00:00:00Z", 'parsing time "2023-02-29T00:00:00Z": day out of range'),
        ("1900-02-29T00:00:00Z", 'parsing time "1900-02-29T00:00:00Z": day out of range'),
        (
            "2023-07-10T00:00:00+25:00",
            'parsing time "2023-07-10T00:00:00+25:00": time zone offset hour out of range',
        ),
        (
            "2023-07-10T00:00:00+25:61",
            'parsing time "2023-07-10T00:00:00+25:61": time zone offset minute out of range',
        ),
        (
            "2023-07-10T00:00:00+25:xx",
            'parsing time "2023-07-10T00:00:00+25:xx": time zone offset hour out of range',
        ),
        ("2023-07-10T00:00:00Zx", 'parsing time "2023-07-10T00:00:00Zx": extra text: "x"'),
        (
            "2023-07-10T00:00:00+03:00:00",
            'parsing time "2023-07-10T00:00:00+03:00:00": extra text: ":00"',
        ),
        # Extra text is reported before the day is checked against the month.
        ("2023-02-30T00:00:00Zx", 'parsing time "2023-02-30T00:00:00Zx": extra text: "x"'),
        # Go's time quote(): backslash-escaped quotes, hex-escaped controls and non-ASCII.
        (
            '2023-07-10T00:00:00"Z',
            _cannot('2023-07-10T00:00:00\\"Z', '\\"Z', "Z07:00"),
        ),
        ("2023-07-10T00:00:00Z\n", 'parsing time "2023-07-10T00:00:00Z\\x0a": extra text: "\\x0a"'),
        ("2023-07-1\u00e9", _cannot("2023-07-1\\xc3\\xa9", "1\\xc3\\xa9", "02")),
    ],
)
def test_parse_errors(value: str, message: str) -> None:
    with pytest.raises(GoTimeError) as excinfo:
        parse_rfc3339(value)
    assert str(excinfo.value) == message


def test_clock_and_date_are_read_in_the_written_offset() -> None:
    value = parse_rfc3339("2023-08-15T23:45:06.007-03:00")
    assert (value.hour, value.minute, value.second) == (23, 45, 6)
    assert value.nanosecond == 7_000_000
    assert value.ymd() == (2023, 8, 15)
    assert value.date() == dt.date(2023, 8, 15)
    utc = GoTime(value.epoch_ns, 0)
    assert (utc.ymd(), utc.hour) == ((2023, 8, 16), 2)


@pytest.mark.parametrize(
    ("epoch", "floor", "ceil"),
    [(0, 0, 0), (1_500_000, 1, 2), (-1_500_000, -2, -1), (2_000_000, 2, 2), (1, 0, 1)],
)
def test_epoch_ms_rounding(epoch: int, floor: int, ceil: int) -> None:
    assert (GoTime(epoch, 0).epoch_ms_floor(), GoTime(epoch, 0).epoch_ms_ceil()) == (floor, ceil)


@pytest.mark.parametrize(
    ("value", "zero"),
    [
        ("0001-01-01T00:00:00Z", True),
        # IsZero looks at the instant, not at the wall clock.
        ("0001-01-01T02:00:00+02:00", True),
        ("0001-01-01T00:00:00+02:00", False),
        ("0001-01-01T00:00:00.000000001Z", False),
    ],
)
def test_is_zero(value: str, zero: bool) -> None:
    assert parse_rfc3339(value).is_zero() is zero


@pytest.mark.parametrize(
    ("epoch", "offset", "text"),
    [
        (0, 0, "1970-01-01T00:00:00Z"),
        (0, -12600, "1969-12-31T20:30:00-03:30"),
        (1, 0, "1970-01-01T00:00:00.000000001Z"),
        (NS // 2, 3600, "1970-01-01T01:00:00.5+01:00"),
        (-1, 0, "1969-12-31T23:59:59.999999999Z"),
        # Go truncates seconds-level offsets toward zero and signs the minutes.
        (0, -30, "1969-12-31T23:59:30+00:00"),
        (0, -90, "1969-12-31T23:58:30-00:01"),
        (-62_198_755_200 * NS, 0, "-0001-01-01T00:00:00Z"),
        (253_402_300_800 * NS, 0, "10000-01-01T00:00:00Z"),
    ],
)
def test_format_rfc3339(epoch: int, offset: int, text: str) -> None:
    assert format_rfc3339(epoch, offset) == text


OFFSETS_MIN = st.integers(min_value=-(24 * 60 + 59), max_value=24 * 60 + 59)


@given(
    local=st.integers(min_value=-62_167_219_200 * NS, max_value=253_402_300_799 * NS + NS - 1),
    offset_min=OFFSETS_MIN,
)
def test_format_then_parse_round_trips(local: int, offset_min: int) -> None:
    offset = offset_min * 60
    epoch = local - offset * NS  # keeps the wall clock inside years 0..9999
    text = format_rfc3339(epoch, offset)
    parsed = parse_rfc3339(text)
    assert parsed == GoTime(epoch, offset, text)
    assert parsed.format() == text


@given(
    when=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    offset_min=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_parse_agrees_with_python_on_canonical_text(when: dt.datetime, offset_min: int) -> None:
    aware = when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_min)))
    text = aware.isoformat()
    expected = aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    parsed = parse_rfc3339(text)
    assert parsed.epoch_ns == expected // dt.timedelta(microseconds=1) * 1000
    assert parsed.offset_s == offset_min * 60
    assert (parsed.hour, parsed.minute, parsed.second) == (when.hour, when.minute, when.second)
    assert parsed.date() == when.date()


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("foo", '"foo"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("tab\there\n", '"tab\\there\\n"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
        ("\u00e9t\u00e9", '"\u00e9t\u00e9"'),
        ("nbsp\u00a0zw\u200b", '"nbsp\\u00a0zw\\u200b"'),
        ("\U0001f600", '"\U0001f600"'),
        ("\U000e0001", '"\\U000e0001"'),
        (b"urn:uuid\xc3", '"urn:uuid\\xc3"'),
        (b"\xff\xfe", '"\\xff\\xfe"'),
    ],
)
def test_go_quote(value: str | bytes, quoted: str) -> None:
    assert go_quote(value) == quoted


def test_time_quote_escapes_every_non_ascii_byte() -> None:
    assert time_quote('é"\\\x7f'.encode()) == '"\\xc3\\xa9\\"\\\\\x7f"'


@pytest.mark.parametrize(
    ("value", "trimmed"),
    [(" \t\n a b \r\v\f", "a b"), ("\u3000\u00a0\u2009x\u0085", "x"), ("\x1cx\x1f", "\x1cx\x1f")],
)
def test_go_trim_space(value: str, trimmed: str) -> None:
    assert go_trim_space(value) == trimmed
