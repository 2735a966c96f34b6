"""Window and bucket math as pure functions of integer UTC time.

Units are in the names: ``*_us`` epoch microseconds, ``*_min`` epoch minutes,
``*_ms`` epoch milliseconds.  A *half-hour* is identified by its epoch
half-hour number (``minute // 30``); a *day* by its UTC epoch day number.
"""

from __future__ import annotations

from collections.abc import Iterator

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
US_PER_MS = 1_000
MS_PER_S = 1_000
US_PER_S = 1_000_000
NS_PER_S = 1_000_000_000
US_PER_MIN = 60_000_000
MS_PER_MIN = 60_000
MS_PER_HOUR = 3_600_000
NS_PER_MIN = 60 * NS_PER_S
NS_PER_HOUR = 3_600 * NS_PER_S
MIN_PER_HALF_HOUR = 30
HALF_HOURS_PER_DAY = 48
MIN_PER_DAY = 1440
MS_PER_HALF_HOUR = MIN_PER_HALF_HOUR * MS_PER_MIN
MS_PER_DAY = MIN_PER_DAY * MS_PER_MIN
S_PER_DAY = MS_PER_DAY // MS_PER_S
US_PER_DAY = MS_PER_DAY * US_PER_MS
NS_PER_DAY = MS_PER_DAY * NS_PER_MS


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def minute_of_us(time_us: int) -> int:
    return time_us // US_PER_MIN


def split_minute(minute: int) -> tuple[int, int, int]:
    """(day, half-hour index within the day 0..47, minute index within the half-hour 0..29)."""
    day, minute_of_day = divmod(minute, MIN_PER_DAY)
    hh, bit = divmod(minute_of_day, MIN_PER_HALF_HOUR)
    return day, hh, bit


def session_minute_range(started_us: int, ended_us: int) -> tuple[int, int] | None:
    """Inclusive minute range an app session covers: minute of start .. minute of end - 1 us.

    ``None`` when it covers no minute (zero length starting on a minute boundary).
    """
    first = started_us // US_PER_MIN
    last = (ended_us - 1) // US_PER_MIN
    if last < first:
        return None
    return first, last


def half_hour_masks(first_min: int, last_min: int) -> Iterator[tuple[int, int, int]]:
    """Yield (day, half-hour index, 30-bit minute mask) covering an inclusive minute range."""
    minute = first_min
    while minute <= last_min:
        day, hh, bit = split_minute(minute)
        end_bit = min(MIN_PER_HALF_HOUR - 1, bit + (last_min - minute))
        mask = ((1 << (end_bit + 1)) - 1) ^ ((1 << bit) - 1)
        yield day, hh, mask
        minute += end_bit - bit + 1


def first_half_hour_in(start_ms: int) -> int:
    """Epoch half-hour number of the first half-hour starting at or after ``start_ms``."""
    return -(-start_ms // MS_PER_HALF_HOUR)


def end_half_hour_in(end_ms: int) -> int:
    """Exclusive epoch half-hour number: half-hours ``< result`` end at or before ``end_ms``."""
    return end_ms // MS_PER_HALF_HOUR


def window_half_hours(start_ms: int, end_ms: int) -> tuple[int, int]:
    """Half-hours lying entirely inside ``[start_ms, end_ms)`` as ``[first, stop)`` numbers."""
    first = first_half_hour_in(start_ms)
    stop = max(first, end_half_hour_in(end_ms))
    return first, stop


def day_span(first_hh: int, stop_hh: int) -> Iterator[tuple[int, int, int]]:
    """Split half-hours ``[first_hh, stop_hh)`` by UTC day: (day, hh_lo, hh_hi) with hh in 0..48."""
    hh = first_hh
    while hh < stop_hh:
        day = hh // HALF_HOURS_PER_DAY
        lo = hh - day * HALF_HOURS_PER_DAY
        hi = min(HALF_HOURS_PER_DAY, stop_hh - day * HALF_HOURS_PER_DAY)
        yield day, lo, hi
        hh = (day + 1) * HALF_HOURS_PER_DAY
