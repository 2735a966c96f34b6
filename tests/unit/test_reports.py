from __future__ import annotations

import pytest

from aggregators.frames import UserIndex, day_frame, merge_frames
from aggregators.reports import (
    UniformSteps,
    daily_active_users,
    interval_reports,
    offset_day_bounds,
)
from aggregators.window import WindowAcc

DAY = 19_000
USERS = UserIndex()


@pytest.mark.parametrize(
    ("offset_h", "expected"),
    [
        # bit 0 = 00:00Z, bit 47 = 23:30Z of DAY
        (-3, [(DAY - 1, 1), (DAY, 1), (DAY + 1, 0)]),  # 00:00Z is 21:00 the day before
        (0, [(DAY - 1, 0), (DAY, 2), (DAY + 1, 0)]),
        (9, [(DAY - 1, 0), (DAY, 1), (DAY + 1, 1)]),  # 23:30Z is 08:30 the next day
    ],
)
def test_daus_use_true_local_days(offset_h: int, expected: list[tuple[int, int]]) -> None:
    acc = WindowAcc(DAY * 48, DAY * 48 + 48)
    acc.mark_active("a", "t", 1 << 47)
    acc.mark_active("b", "t", 1)
    view = merge_frames([day_frame(acc, DAY, USERS)], USERS)
    assert daily_active_users(view, DAY - 1, offset_day_bounds(DAY - 1, 3, offset_h)) == expected


def test_interval_reports_list_empty_intervals_and_short_last() -> None:
    acc = WindowAcc(first_hh=(DAY + 1) * 48, stop_hh=(DAY + 2) * 48)
    acc.mark_active("u", "t", 1 << 2)  # day 2, 01:00
    view = merge_frames([day_frame(acc, DAY + 1, USERS)], USERS)
    day_ns = 86_400 * 10**9
    start = DAY * day_ns
    out = interval_reports(view, UniformSteps(start, start + 3 * day_ns - day_ns // 2, 1), 1, str)
    assert [r["active_users"] for r in out] == [0, 1, 0]
    assert out[-1]["end_time"] == str(start + 3 * day_ns - day_ns // 2)


@pytest.mark.parametrize(
    ("masks", "runs"),
    [
        ([0b1011], 2),
        ([0b111], 1),
        ([1 << 47, 1], 1),  # 23:30 to 00:30 across midnight is one run
        ([1 << 47, 0, 1], 2),  # a day without use between: two runs
        ([(1 << 48) - 1, (1 << 48) - 1, 1], 1),  # two whole days and a bit: one run
    ],
)
def test_times_used_counts_runs_across_days(masks: list[int], runs: int) -> None:
    frames = []
    for offset, mask in enumerate(masks):
        day = DAY + offset
        acc = WindowAcc(day * 48, day * 48 + 48)
        if mask:
            acc.mark_active("u", "t", mask)
            app = acc.app(("app1", "App", "/i.png"))
            app.minutes += 1
            app.templates.add("t")
            app.runs["u"] = mask
        frames.append(day_frame(acc, day, USERS))
    view = merge_frames(frames, USERS)
    assert view.apps[("app1", "App", "/i.png")].runs == runs


def test_daus_over_a_25_hour_local_day() -> None:
    """A zone's day may be 25 hours: its bounds say so, and each half-hour counts once."""
    acc = WindowAcc(DAY * 48, DAY * 48 + 48)
    acc.mark_active("a", "t", 1 << 0)  # 00:00Z
    acc.mark_active("b", "t", 1 << 47)  # 23:30Z
    view = merge_frames([day_frame(acc, DAY, USERS)], USERS)
    bounds = [DAY * 48 - 2, DAY * 48 + 48, DAY * 48 + 96]  # 25 h, then 24 h
    assert daily_active_users(view, DAY, bounds) == [(DAY, 2), (DAY + 1, 0)]
    late = [DAY * 48 - 2, DAY * 48 + 47, DAY * 48 + 96]  # the second day starts 23:30Z
    assert daily_active_users(view, DAY, late) == [(DAY, 1), (DAY + 1, 1)]


class _Steps:
    """Two uneven intervals (a 23-hour day, then a day and a half)."""

    def __init__(self, start: int) -> None:
        self.start, self.count = start, 2
        self.edges = [start, start + 23 * 3600 * 10**9, start + 59 * 3600 * 10**9]

    def span(self, i: int) -> tuple[int, int]:
        return self.edges[i], self.edges[i + 1]

    def near(self, lo_ns: int, hi_ns: int) -> range:
        return range(2)


def test_interval_reports_follow_uneven_steps() -> None:
    acc = WindowAcc(first_hh=(DAY + 1) * 48, stop_hh=(DAY + 2) * 48)
    acc.mark_active("u", "t", 1 << 0)  # day 2, 00:00Z: after the 23-hour first interval
    view = merge_frames([day_frame(acc, DAY + 1, USERS)], USERS)
    start = DAY * 86_400 * 10**9
    out = interval_reports(view, _Steps(start), 1, str)
    assert [r["active_users"] for r in out] == [0, 1]
    assert [r["start_time"] for r in out] == [str(start), str(start + 23 * 3600 * 10**9)]
