"""Report structures of insights-api.md sections 5-8, built from a WindowView (pure).

Outputs are plain dicts in the field order of the API; times are rendered by
an injected ``render_time(epoch_ns) -> str`` so that the core knows no wire
format.  Lists are never ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

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
from aggregators.timebase import MS_PER_HALF_HOUR, NS_PER_HOUR, NS_PER_MS

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


def interval_reports(
    view: WindowView, start_ns: int, end_ns: int, days: int, render: RenderTime
) -> list[Json]:
    """Intervals of ``days`` x 24 h from the start (the last may be short), empty ones too.

    An interval holds the half-hours starting at or after its start that end
    at or before its end.
    """
    step = days * 24 * NS_PER_HOUR
    hh_ns = MS_PER_HALF_HOUR * NS_PER_MS
    spans = list(pairwise([*range(start_ns, end_ns, step), end_ns]))
    bounds = [(-(-lo // hh_ns), hi // hh_ns) for lo, hi in spans]
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
    view: WindowView, first_local_day: int, days: int, offset_h: int
) -> list[tuple[int, int]]:
    """Distinct active users per local day ``[D 00:00, D+1 00:00)`` at ``offset_h`` east of UTC.

    ``view`` holds whole UTC days (all templates); a UTC day's half-hours fall on
    two local days, split where local midnight falls.  Returns ``(local epoch day,
    amount)`` for ``days`` local days.
    """
    shift = offset_h * 2  # half-hours to add to UTC to get local time
    seen = np.zeros((days, len(view.users)), dtype=np.bool_)
    for f, pos, _ in view.frames:
        if not len(f.templates):
            continue
        any_template = np.bitwise_or.reduce(f.active, axis=0)
        local_day, phase = divmod(f.day * 48 + shift, 48)
        low = np.int64((1 << (48 - phase)) - 1)  # bits before local midnight
        for part, hit in ((local_day, any_template & low), (local_day + 1, any_template & ~low)):
            idx = part - first_local_day
            if 0 <= idx < days:
                seen[idx, pos[hit != 0]] = True
    return [(first_local_day + i, int(n)) for i, n in enumerate(seen.sum(axis=1))]


def utc_days_for_local(first_local_day: int, days: int, offset_h: int) -> range:
    """UTC days overlapping local days ``[first, first + days)`` at ``offset_h``."""
    lo = first_local_day - (1 if offset_h > 0 else 0)
    hi = first_local_day + days + (1 if offset_h < 0 else 0)
    return range(lo, hi)
