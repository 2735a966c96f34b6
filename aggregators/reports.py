"""Report structures of insights-api.md sections 5-8, built from a WindowView (pure).

Outputs are plain dicts in the field order of the API; times are rendered by
an injected ``render_time(epoch_ns) -> str`` so that the core knows no wire
format.  Lists are never ``None``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, overload

import numpy as np

from aggregators.frames import (
    Bool,
    WindowView,
    any_along,
    interval_activity,
    latency_quantiles,
    latency_sampled,
    latency_templates,
)
from aggregators.timebase import (
    HALF_HOURS_PER_DAY,
    MS_PER_HALF_HOUR,
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MS,
)

SECONDS_PER_MINUTE = 60

# (slug, display name, icon), in the order the API lists them; index = kind bit.
BUILTINS: tuple[tuple[str, str, str], ...] = (
    ("vscode", "Visual Studio Code", "/icon/code.svg"),
    ("jetbrains", "JetBrains", "/icon/intellij.svg"),
    ("reconnecting-pty", "Web Terminal", "/icon/terminal.svg"),
    ("ssh", "SSH", "/icon/terminal.svg"),
    ("sftp", "SFTP", "/icon/terminal.svg"),
)

RenderTime = Callable[[int], str]
Json = dict[str, object]


@dataclass(frozen=True)
class Profile:
    username: str = ""
    avatar_url: str = ""


def _templates_of(view: WindowView, column: Bool) -> list[str]:
    return [view.templates[i] for i in np.flatnonzero(column)]


def active_users(view: WindowView) -> list[str]:
    return [view.users[i] for i in np.flatnonzero(view.active_mask())]


def active_templates(view: WindowView) -> list[str]:
    return _templates_of(view, any_along(view.user_templates, 1))


def apps_usage(view: WindowView) -> list[Json]:
    out: list[Json] = []
    for i, (slug, name, icon) in enumerate(BUILTINS):
        minutes = view.kind_minutes[i]
        out.append(
            {
                "template_ids": sorted(view.kind_templates[i]) if minutes else [],
                "type": "builtin",
                "display_name": name,
                "slug": slug,
                "icon": icon,
                "seconds": minutes * SECONDS_PER_MINUTE,
                "times_used": 0,
            }
        )
    for (slug, name, icon), app in sorted(view.apps.items()):
        if app.minutes <= 0:
            continue
        out.append(
            {
                "template_ids": sorted(app.templates),
                "type": "app",
                "display_name": name,
                "slug": slug,
                "icon": icon,
                "seconds": app.minutes * SECONDS_PER_MINUTE,
                "times_used": app.runs,
            }
        )
    return out


class Steps(Protocol):
    """The intervals of a report: how many, each one's ``[lo, hi)`` in epoch ns, and which
    may meet a span of time (a superset is fine)."""

    @property
    def count(self) -> int: ...

    def span(self, i: int) -> tuple[int, int]: ...

    def near(self, lo_ns: int, hi_ns: int) -> range: ...


class UniformSteps:
    """Coder's intervals: ``days`` x 24 h from the start, the last one cut at the end."""

    __slots__ = ("count", "end_ns", "start_ns", "step")

    def __init__(self, start_ns: int, end_ns: int, days: int) -> None:
        self.start_ns, self.end_ns = start_ns, end_ns
        self.step = days * 24 * NS_PER_HOUR
        self.count = -(-(end_ns - start_ns) // self.step) if end_ns > start_ns else 0

    def span(self, i: int) -> tuple[int, int]:
        lo = self.start_ns + i * self.step
        return lo, min(lo + self.step, self.end_ns)

    def near(self, lo_ns: int, hi_ns: int) -> range:
        lo = (lo_ns - self.start_ns) // self.step - 1
        hi = (hi_ns - self.start_ns) // self.step + 1
        return range(max(lo, 0), min(hi, self.count - 1) + 1)


def interval_reports(
    view: WindowView, steps: Steps, days: int, render: RenderTime
) -> IntervalReports:
    """The window's intervals (the last may be short), empty ones too.

    An interval holds the half-hours starting at or after its start that end
    at or before its end.  Only intervals that meet a day of the view are
    counted; the rest are empty and built only when iterated.
    """
    hh_ns = MS_PER_HALF_HOUR * NS_PER_MS
    near: set[int] = set()
    for f, _, _ in view.frames:
        near.update(steps.near(f.day * NS_PER_DAY, (f.day + 1) * NS_PER_DAY))
    indices = sorted(near)
    spans = [steps.span(i) for i in indices]
    bounds = [(-(-lo // hh_ns), hi // hh_ns) for lo, hi in spans]
    counted = interval_activity(view, bounds)
    active = {i: hit for i, hit in zip(indices, counted, strict=True) if hit[0] or hit[1]}
    return IntervalReports(steps, "day" if days == 1 else "week", render, active)


class IntervalReports(Sequence[Json]):
    """The interval reports of a window, as they are listed, without holding them.

    A day interval from year 1 to now is some 740,000 intervals, nearly all empty:
    as dicts they took half a GiB, so only the active intervals are kept and each
    report is built when read (``chunks`` for encoding a few thousand at a time)."""

    __slots__ = ("_active", "_count", "_label", "_render", "_steps")

    def __init__(
        self,
        steps: Steps,
        label: str,
        render: RenderTime,
        active: dict[int, tuple[int, list[str]]],
    ) -> None:
        self._steps, self._count = steps, steps.count
        self._label, self._render, self._active = label, render, active

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Json: ...

    @overload
    def __getitem__(self, index: slice) -> list[Json]: ...

    def __getitem__(self, index: int | slice) -> Json | list[Json]:
        if isinstance(index, slice):
            return [self._report(i) for i in range(*index.indices(self._count))]
        i = index + self._count if index < 0 else index
        if not 0 <= i < self._count:
            raise IndexError(index)
        return self._report(i)

    def __iter__(self) -> Iterator[Json]:
        for chunk in self.chunks():
            yield from chunk

    def chunks(self, size: int = 4096) -> Iterator[list[Json]]:
        for first in range(0, self._count, size):
            yield [self._report(i) for i in range(first, min(first + size, self._count))]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IntervalReports | list | tuple):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, which are unhashable

    def __repr__(self) -> str:
        return f"IntervalReports({self._count} {self._label}s, {len(self._active)} active)"

    def _report(self, i: int) -> Json:
        lo, hi = self._steps.span(i)
        users, templates = self._active.get(i, (0, []))
        return {
            "start_time": self._render(lo),
            "end_time": self._render(hi),
            "template_ids": list(templates),
            "interval": self._label,
            "active_users": users,
        }


def _template_lists(view: WindowView, matrix: Bool, users: Iterable[int]) -> list[list[str]]:
    """Per listed user, the templates whose row is set (one pass, no per-user array ops)."""
    rows = matrix.T.tolist()
    return [[t for t, hit in zip(view.templates, rows[i], strict=True) if hit] for i in users]


def user_activity(
    view: WindowView, profiles: Mapping[str, Profile]
) -> tuple[list[str], list[Json]]:
    users: list[Json] = []
    listed = np.flatnonzero(view.active_mask()).tolist()
    per_user = _template_lists(view, view.user_templates, listed)
    minutes = view.minutes.tolist()
    for i, templates in zip(listed, per_user, strict=True):
        user = view.users[i]
        prof = profiles.get(user, Profile())
        users.append(
            {
                "template_ids": templates,
                "user_id": user,
                "username": prof.username,
                "avatar_url": prof.avatar_url,
                "seconds": minutes[i] * SECONDS_PER_MINUTE,
            }
        )
    return active_templates(view), users


def latency_users(view: WindowView) -> list[str]:
    return [view.users[i] for i in np.flatnonzero(latency_sampled(view) | view.active_mask())]


def user_latency(
    view: WindowView,
    profiles: Mapping[str, Profile],
    percentiles: Sequence[tuple[str, float]],
) -> tuple[list[str], list[Json]]:
    has, values = latency_quantiles(view, [q for _, q in percentiles])
    listed = has | view.active_mask()
    with_samples = latency_templates(view)
    templates = view.user_templates | (with_samples & has)
    users: list[Json] = []
    rows = np.flatnonzero(listed).tolist()
    per_user = _template_lists(view, templates, rows)
    table = values.tolist()
    for i, user_templates in zip(rows, per_user, strict=True):
        user = view.users[i]
        prof = profiles.get(user, Profile())
        row = table[i]
        users.append(
            {
                "template_ids": user_templates,
                "user_id": user,
                "username": prof.username,
                "avatar_url": prof.avatar_url,
                "latency_ms": {
                    name: _number(v) for (name, _), v in zip(percentiles, row, strict=True)
                },
            }
        )
    return _templates_of(view, any_along(templates & listed, 1)), users


def _number(value: float) -> float | int:
    """Integral values render without ``.0`` (``-1``, not ``-1.0``)."""
    return int(value) if value.is_integer() else value


def daily_active_users(
    view: WindowView, first_local_day: int, bounds_hh: Sequence[int]
) -> list[tuple[int, int]]:
    """Distinct active users per local day: local day ``first_local_day + i`` holds the UTC
    half-hours ``[bounds_hh[i], bounds_hh[i + 1])`` (24 h apart at a fixed offset; 23 or 25
    across a DST change).

    ``view`` holds whole UTC days (all templates); a UTC day's half-hours fall on
    two local days, split where local midnight falls.  Returns ``(local epoch day,
    amount)`` per local day.
    """
    days = len(bounds_hh) - 1
    seen = np.zeros((days, len(view.users)), dtype=np.bool_)
    for f, pos, _ in view.frames:
        if not len(f.templates):
            continue
        any_template = np.bitwise_or.reduce(f.active, axis=0)
        day_lo = f.day * HALF_HOURS_PER_DAY
        first = max(bisect.bisect_right(bounds_hh, day_lo) - 1, 0)
        for i in range(first, days):
            lo = max(bounds_hh[i], day_lo) - day_lo
            hi = min(bounds_hh[i + 1], day_lo + HALF_HOURS_PER_DAY) - day_lo
            if lo >= HALF_HOURS_PER_DAY:
                break
            if hi <= lo:
                continue
            mask = np.int64(((1 << (hi - lo)) - 1) << lo)
            hit = any_template & mask
            seen[i, pos[hit != 0]] = True
    return [(first_local_day + i, int(n)) for i, n in enumerate(seen.sum(axis=1))]


def offset_day_bounds(first_local_day: int, days: int, offset_h: int) -> list[int]:
    """``daily_active_users`` bounds of local days ``[first, first + days)`` at a fixed offset
    of ``offset_h`` hours east of UTC."""
    shift = offset_h * 2  # half-hours
    return [(first_local_day + i) * HALF_HOURS_PER_DAY - shift for i in range(days + 1)]


def utc_days_for_bounds(bounds_hh: Sequence[int]) -> range:
    """UTC days holding the half-hours ``[bounds_hh[0], bounds_hh[-1])``."""
    return range(bounds_hh[0] // HALF_HOURS_PER_DAY, -(-bounds_hh[-1] // HALF_HOURS_PER_DAY))
