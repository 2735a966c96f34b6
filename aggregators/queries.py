"""The four insights queries: read through the store, compute with the pure core.

Inputs are core types (epoch nanoseconds, template id tuples); the HTTP layer
parses and validates, then renders what these return.  Times inside reports
are rendered by the injected ``render`` (the request's offset lives there).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aggregators.frames import WindowView
from aggregators.parameters import latest_builds, parameters_usage
from aggregators.reports import (
    Json,
    RenderTime,
    active_templates,
    active_users,
    apps_usage,
    daily_active_users,
    interval_reports,
    latency_users,
    user_activity,
    user_latency,
    utc_days_for_local,
)
from aggregators.store.redis_store import Parts, RollupStore
from aggregators.timebase import HALF_HOURS_PER_DAY, MS_PER_DAY, window_half_hours

NS_PER_MS = 1_000_000
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


async def _fold(store: RollupStore, window: Window, parts: Parts) -> WindowView:
    first, stop = window.half_hours
    return await store.window(first, stop, window.filter, parts)


async def templates_report(
    store: RollupStore,
    window: Window,
    interval_days: int | None,
    sections: frozenset[str],
    render: RenderTime,
    describe: Callable[[str], str],
) -> Json:
    acc = await _fold(store, window, frozenset({"a", "x"}))
    out: Json = {}
    if "report" in sections:
        selected = None if window.filter is None else frozenset(window.filter)
        builds = await store.builds(window.start_ns, window.end_ns, selected)
        latest = latest_builds(builds, window.start_ns, window.end_ns, selected)
        out["report"] = {
            "start_time": window.start_text,
            "end_time": window.end_text,
            "template_ids": active_templates(acc),
            "active_users": len(active_users(acc)),
            "apps_usage": apps_usage(acc),
            "parameters_usage": parameters_usage(latest, describe),
        }
    if "interval_reports" in sections and interval_days and window.start_ns < window.end_ns:
        out["interval_reports"] = interval_reports(
            acc, window.start_ns, window.end_ns, interval_days, render
        )
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


async def user_activity_report(store: RollupStore, window: Window) -> Json:
    acc = await _fold(store, window, frozenset({"a", "m"}))
    profiles = await store.profiles(active_users(acc))
    template_ids, users = user_activity(acc, profiles)
    return _report(window, template_ids, users)


async def user_latency_report(
    store: RollupStore, window: Window, percentiles: Sequence[tuple[str, float]]
) -> Json:
    acc = await _fold(store, window, frozenset({"a", "l"}))
    profiles = await store.profiles(latency_users(acc))
    template_ids, users = user_latency(acc, profiles, percentiles)
    return _report(window, template_ids, users)


async def daus_report(store: RollupStore, now_ms: int, offset_h: int) -> list[tuple[int, int]]:
    """``(local epoch day, amount)`` for the 60 local days before today and today."""
    today = (now_ms + offset_h * 3_600_000) // MS_PER_DAY
    first = today - (DAU_DAYS - 1)
    utc_days = utc_days_for_local(first, DAU_DAYS, offset_h)
    hh = HALF_HOURS_PER_DAY
    view = await store.window(utc_days.start * hh, utc_days.stop * hh, None, frozenset({"a"}))
    return daily_active_users(view, first, DAU_DAYS, offset_h)
