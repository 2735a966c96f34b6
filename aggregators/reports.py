"""Report structures of insights-api.md sections 5-8, built from a WindowAcc (pure).

Outputs are plain dicts in the field order of the API; times are rendered by
an injected ``render_time(epoch_ns) -> str`` so that the core knows no wire
format.  Lists are never ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from aggregators.sketch import quantiles
from aggregators.timebase import MS_PER_HALF_HOUR, count_runs
from aggregators.window import WindowAcc

NS_PER_MS = 1_000_000
NS_PER_HOUR = 3_600 * 1_000_000_000
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


def _user_templates(acc: WindowAcc, user: str) -> set[str]:
    return {t for t, mask in acc.active.get(user, {}).items() if mask}


def active_users(acc: WindowAcc) -> list[str]:
    return sorted(u for u, per in acc.active.items() if any(per.values()))


def active_templates(acc: WindowAcc) -> list[str]:
    return sorted({t for per in acc.active.values() for t, mask in per.items() if mask})


def apps_usage(acc: WindowAcc) -> list[Json]:
    out: list[Json] = []
    for i, (slug, name, icon) in enumerate(BUILTINS):
        minutes = acc.kind_minutes[i]
        out.append(
            {
                "template_ids": sorted(acc.kind_templates[i]) if minutes else [],
                "type": "builtin",
                "display_name": name,
                "slug": slug,
                "icon": icon,
                "seconds": minutes * SECONDS_PER_MINUTE,
                "times_used": 0,
            }
        )
    for (slug, name, icon), app in sorted(acc.apps.items()):
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
                "times_used": sum(count_runs(mask) for mask in app.runs.values()),
            }
        )
    return out


def interval_reports(
    acc: WindowAcc, start_ns: int, end_ns: int, days: int, render: RenderTime
) -> list[Json]:
    """Intervals of ``days`` x 24 h from the start (the last may be short), empty ones too."""
    step = days * 24 * NS_PER_HOUR
    hh_ns = MS_PER_HALF_HOUR * NS_PER_MS
    # Intervals past the last active half-hour are empty: a window of centuries
    # only pays for the stretch that holds data.
    data_stop = acc.first_hh + max(
        (m.bit_length() for per in acc.active.values() for m in per.values()), default=0
    )
    out: list[Json] = []
    lo_ns = start_ns
    while lo_ns < end_ns:
        hi_ns = min(lo_ns + step, end_ns)
        first = max(-(-lo_ns // hh_ns), acc.first_hh)
        stop = min(hi_ns // hh_ns, acc.stop_hh, data_stop)
        users, templates = 0, set()
        if stop > first:
            span = ((1 << (stop - first)) - 1) << (first - acc.first_hh)
            for per in acc.active.values():
                hit = [t for t, mask in per.items() if mask & span]
                if hit:
                    users += 1
                    templates.update(hit)
        out.append(
            {
                "start_time": render(lo_ns),
                "end_time": render(hi_ns),
                "template_ids": sorted(templates),
                "interval": "day" if days == 1 else "week",
                "active_users": users,
            }
        )
        lo_ns = hi_ns
    return out


def user_activity(acc: WindowAcc, profiles: Mapping[str, Profile]) -> tuple[list[str], list[Json]]:
    users: list[Json] = []
    union: set[str] = set()
    for user in active_users(acc):
        templates = _user_templates(acc, user)
        union |= templates
        prof = profiles.get(user, Profile())
        users.append(
            {
                "template_ids": sorted(templates),
                "user_id": user,
                "username": prof.username,
                "avatar_url": prof.avatar_url,
                "seconds": acc.minutes.get(user, 0) * SECONDS_PER_MINUTE,
            }
        )
    return sorted(union), users


def latency_users(acc: WindowAcc) -> list[str]:
    with_samples = {u for u, bins in acc.latency.items() if bins}
    return sorted(set(active_users(acc)) | with_samples)


def user_latency(
    acc: WindowAcc,
    profiles: Mapping[str, Profile],
    percentiles: Sequence[tuple[str, float]],
) -> tuple[list[str], list[Json]]:
    users: list[Json] = []
    union: set[str] = set()
    qs = [q for _, q in percentiles]
    for user in latency_users(acc):
        templates = _user_templates(acc, user)
        if acc.latency.get(user):
            templates |= acc.latency_templates.get(user, set())
        union |= templates
        prof = profiles.get(user, Profile())
        values = quantiles(acc.latency.get(user, {}), qs)
        users.append(
            {
                "template_ids": sorted(templates),
                "user_id": user,
                "username": prof.username,
                "avatar_url": prof.avatar_url,
                "latency_ms": {
                    name: _number(v) for (name, _), v in zip(percentiles, values, strict=True)
                },
            }
        )
    return sorted(union), users


def _number(value: float) -> float | int:
    """Integral values render without ``.0`` (``-1``, not ``-1.0``)."""
    return int(value) if value.is_integer() else value


def daily_active_users(
    masks_by_day: Mapping[int, Mapping[str, int]], first_local_day: int, days: int, offset_h: int
) -> list[tuple[int, int]]:
    """Distinct active users per local day ``[D 00:00, D+1 00:00)`` at ``offset_h`` east of UTC.

    ``masks_by_day`` maps UTC day -> user -> 48-bit active half-hour mask (all
    templates).  Returns ``(local epoch day, amount)`` for ``days`` local days.
    """
    shift = offset_h * 2  # half-hours to add to UTC to get local time
    seen: list[set[str]] = [set() for _ in range(days)]
    for utc_day, users in masks_by_day.items():
        local_day, phase = divmod(utc_day * 48 + shift, 48)
        split = 48 - phase  # bits [0, split) fall on local_day, the rest on the next one
        low_mask = (1 << split) - 1
        for part, mask_filter in ((local_day, low_mask), (local_day + 1, ~low_mask)):
            idx = part - first_local_day
            if not 0 <= idx < days:
                continue
            bucket = seen[idx]
            bucket.update(u for u, mask in users.items() if mask & mask_filter)
    return [(first_local_day + i, len(s)) for i, s in enumerate(seen)]


def utc_days_for_local(first_local_day: int, days: int, offset_h: int) -> Iterable[int]:
    """UTC days overlapping local days ``[first, first + days)`` at ``offset_h``."""
    lo = first_local_day - (1 if offset_h > 0 else 0)
    hi = first_local_day + days + (1 if offset_h < 0 else 0)
    return range(lo, hi)
