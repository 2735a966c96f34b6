"""The ``tz`` extension: IANA time zones turned into UTC instants at the edge.

The core knows time only as integer UTC; a zone reaches it as the list of its local
midnights (epoch ms), which is what makes days DST-correct: a local day may be 23 or 25
hours.  Zones whose midnight falls inside a UTC half-hour (``Asia/Kathmandu``, +05:45)
give each half-hour to the local day in which it starts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from aggregators.timebase import MS_PER_DAY, MS_PER_HALF_HOUR, NS_PER_MS, ceil_div

_EPOCH_DATE = dt.date(1970, 1, 1)
_FIRST_DATE = dt.date(1, 1, 2)  # zone arithmetic around year 1 must not leave the calendar
_LAST_DATE = dt.date(9999, 12, 30)


def epoch_day(date: dt.date) -> int:
    return (date - _EPOCH_DATE).days


def date_of(epoch_day_: int) -> dt.date:
    return _EPOCH_DATE + dt.timedelta(days=epoch_day_)


def local_date(tz: dt.tzinfo, epoch_ms: int) -> dt.date:
    """The date in ``tz`` at the instant ``epoch_ms``."""
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=epoch_ms)
    try:
        return when.astimezone(tz).date()
    except OverflowError:  # within a day of year 1 or 9999: the UTC date is as good
        return when.date()


def midnight_ms(tz: dt.tzinfo, date: dt.date) -> int:
    """The first instant of ``date`` in ``tz``: its 00:00, or the first time after a DST gap
    that skips midnight (``fold=0`` resolves both the gap and a repeated midnight)."""
    date = min(max(date, _FIRST_DATE), _LAST_DATE)
    local = dt.datetime(date.year, date.month, date.day, tzinfo=tz)
    offset = local.utcoffset() or dt.timedelta()
    naive_ms = epoch_day(date) * MS_PER_DAY
    return naive_ms - int(offset.total_seconds() * 1000)


def local_midnights_ms(tz: dt.tzinfo, first: dt.date, days: int) -> list[int]:
    """UTC instants of the local midnights of ``first`` .. ``first + days``: local day ``i`` is
    ``[out[i], out[i + 1])``."""
    return [midnight_ms(tz, first + dt.timedelta(days=i)) for i in range(days + 1)]


def half_hour_bounds(midnights_ms: Sequence[int]) -> list[int]:
    """UTC half-hour indices where each local day starts (a half-hour belongs to the local
    day its start falls in)."""
    return [ceil_div(ms, MS_PER_HALF_HOUR) for ms in midnights_ms]


def offset_hours(tz: dt.tzinfo, now: dt.datetime) -> int:
    """The zone's offset at ``now`` in whole hours east of UTC, truncated toward zero (what
    ``tz_hour_offset`` echoes when a zone gave the days)."""
    offset = now.astimezone(tz).utcoffset() or dt.timedelta()
    return int(offset.total_seconds() / 3600)


class ZoneSteps:
    """Intervals of a report split at the zone's local midnights, every ``days`` local days
    from the local date of the window's start: ``[start, m1), [m1, m2), ..., [mk, end)``.

    Spans are computed when asked for: a day-interval report from year 1 has some 740,000
    of them and only the few near data, and those being encoded, are ever needed."""

    def __init__(self, tz: dt.tzinfo, start_ns: int, end_ns: int, days: int) -> None:
        self.tz = tz
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.days = days
        self.first = local_date(tz, start_ns // NS_PER_MS)
        last = local_date(tz, max(start_ns, end_ns - 1) // NS_PER_MS)
        self.count = (last - self.first).days // days + 1 if end_ns > start_ns else 0

    def _edge(self, i: int) -> int:
        if i <= 0:
            return self.start_ns
        if i >= self.count:
            return self.end_ns
        date = self.first + dt.timedelta(days=i * self.days)
        return min(max(midnight_ms(self.tz, date) * NS_PER_MS, self.start_ns), self.end_ns)

    def span(self, i: int) -> tuple[int, int]:
        return self._edge(i), self._edge(i + 1)

    def near(self, lo_ns: int, hi_ns: int) -> range:
        """Indices of the intervals that may meet ``[lo_ns, hi_ns)`` (one extra each side)."""
        lo = (local_date(self.tz, lo_ns // NS_PER_MS) - self.first).days // self.days - 1
        hi = (local_date(self.tz, max(lo_ns, hi_ns - 1) // NS_PER_MS) - self.first).days
        return range(max(lo, 0), min(hi // self.days + 1, self.count - 1) + 1)


def offset_s_at(tz: dt.tzinfo, epoch_ns: int) -> int:
    """The zone's UTC offset in seconds at an instant (for rendering it there)."""
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=epoch_ns // 1000)
    try:
        offset = when.astimezone(tz).utcoffset()
    except OverflowError:
        return 0
    return int(offset.total_seconds()) if offset is not None else 0
