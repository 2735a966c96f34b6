from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregators.timebase import (
    day_span,
    half_hour_masks,
    session_minute_range,
    split_minute,
    window_half_hours,
)

US = 1_000_000


@pytest.mark.parametrize(
    ("start_s", "end_s", "minutes"),
    [
        (10, 40, 1),  # 10:00:10-10:00:40 is one minute
        (30, 90, 2),  # 10:00:30-10:01:30 is two
        (0, 3600, 60),  # 10:00-11:00 is sixty
        (0, 0, 0),  # zero length on a boundary covers none
        (10, 10, 1),  # zero length inside a minute: the minute of start
        (0, 60, 1),
        (59, 61, 2),
    ],
)
def test_session_minutes(start_s: int, end_s: int, minutes: int) -> None:
    span = session_minute_range(start_s * US, end_s * US)
    got = 0 if span is None else span[1] - span[0] + 1
    assert got == minutes


@given(st.integers(0, 10**7), st.integers(0, 5000))
def test_half_hour_masks_cover_range_exactly(first: int, length: int) -> None:
    last = first + length
    covered: set[int] = set()
    for day, hh, mask in half_hour_masks(first, last):
        base = day * 1440 + hh * 30
        covered.update(base + b for b in range(30) if mask >> b & 1)
    assert covered == set(range(first, last + 1))


def test_split_minute() -> None:
    assert split_minute(1440 + 31) == (1, 1, 1)


def test_window_half_hours_drop_partial_edges() -> None:
    hh_ms = 1_800_000
    assert window_half_hours(0, 2 * hh_ms) == (0, 2)
    assert window_half_hours(1, 2 * hh_ms) == (1, 2)  # fractional start drops the first
    assert window_half_hours(0, 2 * hh_ms - 1) == (0, 1)
    assert window_half_hours(5 * hh_ms, 5 * hh_ms) == (5, 5)


@given(st.integers(0, 10**6), st.integers(0, 500))
def test_day_span_partitions_half_hours(first: int, length: int) -> None:
    stop = first + length
    got = [d * 48 + h for d, lo, hi in day_span(first, stop) for h in range(lo, hi)]
    assert got == list(range(first, stop))
