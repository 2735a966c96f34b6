"""The four insights queries: one read through the ``WindowReader``, then the pure reports.

Inputs are core types (epoch nanoseconds, template id tuples); the HTTP layer
parses and validates, then renders what these return.  Times inside reports
are rendered by the injected ``render`` (the request's offset lives there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aggregators.parameters import latest_builds, parameters_usage
from aggregators.reader import ReadRequest, WindowData, WindowReader
from aggregators.records import Parts
from aggregators.reports import (
    Json,
    RenderTime,
    Steps,
    UniformSteps,
    active_templates,
    active_users,
    apps_usage,
    daily_active_users,
    interval_reports,
    user_activity,
    user_latency,
    utc_days_for_bounds,
)
from aggregators.timebase import (
    HALF_HOURS_PER_DAY,
    NS_PER_MS,
    window_half_hours,
)

DAU_DAYS = 61


@dataclass(frozen=True)
class Window:
    start_ns: int
    end_ns: int
    start_text: str  # as rendered in the response (request's own offset)
    end_text: str
    templates: tuple[str, ...]  # empty = all templates

    @property
    def half_hours(self) -> tuple[int, int]:
        """Half-hours lying wholly inside the window (a fractional start drops the first)."""
        return window_half_hours(-(-self.start_ns // NS_PER_MS), self.end_ns // NS_PER_MS)

    @property
    def filter(self) -> tuple[str, ...] | None:
        return tuple(sorted(set(self.templates))) or None


async def _read(
    reader: WindowReader, window: Window, parts: Parts, *, builds: bool, profiles: bool
) -> WindowData:
    first, stop = window.half_hours
    builds_ns = (window.start_ns, window.end_ns) if builds else None
    request = ReadRequest(first, stop, window.filter, parts, builds_ns, profiles)
    return await reader.read(request)


StepsOf = Callable[[int, int, int], Steps]  # (start ns, end ns, days) -> intervals


async def templates_report(
    reader: WindowReader,
    window: Window,
    interval_days: int | None,
    sections: frozenset[str],
    render: RenderTime,
    describe: Callable[[str], str],
    steps_of: StepsOf = UniformSteps,
    zone: str = "",
) -> Json:
    """``steps_of`` and ``render`` follow the request's zone (``zone`` names it: the memo key
    must tell a zone's answer from a fixed offset's)."""
    data = await _read(
        reader, window, frozenset({"a", "x"}), builds="report" in sections, profiles=False
    )
    key = ("templates", window, interval_days, sections, zone)
    return reader.memo(
        key,
        data,
        lambda: _templates(
            reader, data, window, interval_days, sections, render, describe, steps_of
        ),
    )


def _templates(
    reader: WindowReader,
    data: WindowData,
    window: Window,
    interval_days: int | None,
    sections: frozenset[str],
    render: RenderTime,
    describe: Callable[[str], str],
    steps_of: StepsOf,
) -> Json:
    acc = data.view
    out: Json = {}
    if "report" in sections:
        selected = None if window.filter is None else frozenset(window.filter)

        def parameters() -> list[Json]:
            latest = latest_builds(data.builds, window.start_ns, window.end_ns, selected)
            return parameters_usage(latest, describe)

        out["report"] = {
            "start_time": window.start_text,
            "end_time": window.end_text,
            "template_ids": active_templates(acc),
            "active_users": len(active_users(acc)),
            "apps_usage": apps_usage(acc),
            # Builds change far less often than activity: keyed by the builds alone.
            "parameters_usage": reader.memo(
                ("parameters", window, selected, describe, *data.builds_token),
                None,
                parameters,
            ),
        }
    if "interval_reports" in sections and interval_days and window.start_ns < window.end_ns:
        steps = steps_of(window.start_ns, window.end_ns, interval_days)
        out["interval_reports"] = interval_reports(acc, steps, interval_days, render)
    return out


def _report(window: Window, template_ids: list[str], users: list[Json]) -> Json:
    return {
        "report": {
            "start_time": window.start_text,
            "end_time": window.end_text,
            "template_ids": template_ids,
            "users": users,
        }
    }


async def user_activity_report(reader: WindowReader, window: Window) -> Json:
    data = await _read(reader, window, frozenset({"a", "m"}), builds=False, profiles=True)

    def compute() -> Json:
        return _report(window, *user_activity(data.view, data.profiles))

    return reader.memo(("user-activity", window), data, compute)


async def user_latency_report(
    reader: WindowReader, window: Window, percentiles: Sequence[tuple[str, float]]
) -> Json:
    data = await _read(reader, window, frozenset({"a", "l"}), builds=False, profiles=True)

    def compute() -> Json:
        return _report(window, *user_latency(data.view, data.profiles, percentiles))

    return reader.memo(("user-latency", window, tuple(percentiles)), data, compute)


async def daus_report(
    reader: WindowReader,
    first_local_day: int,
    bounds_hh: Sequence[int],
    offset_h: int,
    render_day: Callable[[int], str],
    zone: str = "",
) -> Json:
    """DAUs of the local days from ``first_local_day`` (the 60 before today, then today), day
    ``i`` being the UTC half-hours ``[bounds_hh[i], bounds_hh[i + 1])``; ``render_day`` names
    an epoch day, ``offset_h`` is echoed, ``zone`` names the zone that gave the bounds."""
    utc_days = utc_days_for_bounds(bounds_hh)
    hh = HALF_HOURS_PER_DAY
    request = ReadRequest(utc_days.start * hh, utc_days.stop * hh, None, frozenset({"a"}))
    data = await reader.read(request)

    def compute() -> Json:
        rows = daily_active_users(data.view, first_local_day, bounds_hh)
        entries = [{"date": render_day(day), "amount": amount} for day, amount in rows]
        return {"entries": entries, "tz_hour_offset": offset_h}

    key = ("daus", first_local_day, offset_h, zone, bounds_hh[0], bounds_hh[-1])
    return reader.memo(key, data, compute)
