"""Interval reports held compactly: the same list as one dict per interval, the same bytes."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregators.frames import UserIndex, WindowView, day_frame, interval_activity, merge_frames
from aggregators.reports import IntervalReports, UniformSteps, interval_reports
from aggregators.timebase import MS_PER_HALF_HOUR, NS_PER_DAY, NS_PER_HOUR, NS_PER_MS
from aggregators.window import WindowAcc
from api.views import encode_pieces, interval_count

DAY = 19_000
HH_NS = MS_PER_HALF_HOUR * NS_PER_MS


def _every_interval(
    view: WindowView, start_ns: int, end_ns: int, days: int, render: Any
) -> list[dict[str, object]]:
    """Every interval built as a dict, counted in one pass over all of them."""
    step = days * 24 * NS_PER_HOUR
    spans = list(pairwise([*range(start_ns, end_ns, step), end_ns]))
    bounds = [(-(-lo // HH_NS), hi // HH_NS) for lo, hi in spans]
    counted = interval_activity(view, bounds)
    return [
        {
            "start_time": render(lo),
            "end_time": render(hi),
            "template_ids": templates,
            "interval": "day" if days == 1 else "week",
            "active_users": users,
        }
        for (lo, hi), (users, templates) in zip(spans, counted, strict=True)
    ]


def _view(active: dict[int, list[tuple[str, str, int]]]) -> WindowView:
    users = UserIndex()
    frames = []
    for day, marks in sorted(active.items()):
        acc = WindowAcc(day * 48, day * 48 + 48)
        for user, template, mask in marks:
            acc.mark_active(user, template, mask)
        frames.append(day_frame(acc, day, users))
    return merge_frames(frames, users)


marks = st.lists(
    st.tuples(st.sampled_from("abc"), st.sampled_from(["t1", "t2"]), st.integers(1, (1 << 48) - 1)),
    min_size=1,
    max_size=3,
)


@settings(max_examples=150, deadline=None)
@given(
    active=st.dictionaries(st.integers(DAY - 3, DAY + 40), marks, max_size=6),
    start_hh=st.integers((DAY - 10) * 48, (DAY + 5) * 48),
    start_frac=st.sampled_from([0, 1, HH_NS // 2]),
    length_ns=st.integers(1, 60 * NS_PER_DAY),
    days=st.sampled_from([1, 7]),
)
def test_compact_interval_reports_equal_one_dict_per_interval(
    active: dict[int, list[tuple[str, str, int]]],
    start_hh: int,
    start_frac: int,
    length_ns: int,
    days: int,
) -> None:
    view = _view(active)
    start = start_hh * HH_NS + start_frac
    compact = interval_reports(view, UniformSteps(start, start + length_ns, days), days, str)
    expected = _every_interval(view, start, start + length_ns, days, str)
    assert list(compact) == expected
    assert compact == expected and len(compact) == len(expected)
    assert compact[-1] == expected[-1] and compact[1:3] == expected[1:3]
    body = {"report": {"active_users": 1}, "interval_reports": compact}
    plain = orjson.dumps({"report": {"active_users": 1}, "interval_reports": expected})
    assert b"".join(encode_pieces(body)) == plain


@pytest.mark.parametrize("count", [0, 1, 4095, 4096, 4097, 9000])
def test_pieces_are_orjson_bytes_at_chunk_edges(count: int) -> None:
    view = _view({DAY + 2: [("a", "t1", 1)]})
    start = DAY * NS_PER_DAY
    reports = interval_reports(view, UniformSteps(start, start + count * NS_PER_DAY, 1), 1, str)
    assert len(reports) == interval_count({"interval_reports": reports}) == count
    body = {"interval_reports": reports, "after": ["\x00", 1]}  # a NUL in data stays escaped
    expected = orjson.dumps({"interval_reports": list(reports), "after": ["\x00", 1]})
    assert b"".join(encode_pieces(body)) == expected
    assert isinstance(reports, IntervalReports)


def test_a_window_of_centuries_is_built_only_when_read() -> None:
    view = _view({DAY: [("a", "t1", 1 << 20)]})
    reports = interval_reports(view, UniformSteps(0, (DAY + 2) * NS_PER_DAY, 1), 1, str)
    assert len(reports) == DAY + 2
    assert reports[DAY]["active_users"] == 1 and reports[DAY - 1]["active_users"] == 0
    assert "1 active" in repr(reports)
