"""Every endpoint against the oracle (``tests/oracle.py``) over the events a test produced.

``Expectation`` computes, once, what each request must answer; ``mismatches`` lists what a
running API answers differently; ``wait_until_exact`` polls until nothing differs. The
requests: ``/daus`` (its 61 local days at UTC), ``/templates`` over whole UTC days with
``interval=day`` and over whole weeks with ``interval=week``, ``/user-activity`` and
``/user-latency`` (p50, p95 and extra percentiles, each within the spec's 1 %).
Latency quantiles are the only inexact numbers; everything else must be equal.
No build events are produced, so ``parameters_usage`` must stay empty.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aggregators.model import Event
from tests.e2e.stack import Stack
from tests.oracle import Oracle

NS_DAY = 86_400 * 10**9
PERCENTILES = (
    ("p5", 0.05),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
)
_EPOCH_DAY = date(1970, 1, 1)


def _ns(day: date) -> int:
    return (day - _EPOCH_DAY).days * NS_DAY


def _text(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


@dataclass(frozen=True)
class Windows:
    """Whole UTC days: ``days`` from ``first`` (day intervals, user reports) and the whole
    weeks that end with them (week intervals)."""

    first: date
    days: int

    @property
    def end(self) -> date:
        return self.first + timedelta(days=self.days)

    @property
    def week_start(self) -> date:
        return self.end - timedelta(days=7 * math.ceil(self.days / 7))

    def paths(self) -> dict[str, str]:
        span = f"start_time={_text(self.first)}&end_time={_text(self.end)}"
        weeks = f"start_time={_text(self.week_start)}&end_time={_text(self.end)}"
        extra = ",".join(name[1:] for name, _ in PERCENTILES)
        return {
            "daus": "/api/v2/insights/daus?tz_offset=0",
            "templates-day": f"/api/v2/insights/templates?{span}&interval=day",
            "templates-week": f"/api/v2/insights/templates?{weeks}&interval=week",
            "user-activity": f"/api/v2/insights/user-activity?{span}",
            "user-latency": f"/api/v2/insights/user-latency?{span}&percentiles={extra}",
        }


class Expectation:
    """What every endpoint must answer for ``events`` (distinct events: each id once)."""

    def __init__(self, events: Sequence[Event], windows: Windows) -> None:
        self.oracle = Oracle(list(events))
        self.windows = windows
        self.events = len(events)
        start, end = _ns(windows.first), _ns(windows.end)
        self.summary = self.oracle.summary(start, end, None)
        self.day_intervals = self.oracle.intervals(start, end, NS_DAY, None)
        week_start = _ns(windows.week_start)
        self.week_summary = self.oracle.summary(week_start, end, None)
        self.week_intervals = self.oracle.intervals(week_start, end, 7 * NS_DAY, None)
        self.daily_users = self._daily_users()

    def _daily_users(self) -> dict[str, int]:
        """Distinct active users per UTC day with any activity (others are 0)."""
        users: dict[int, set[str]] = {}
        for hh, _, user, cell in self.oracle.window(0, 2**63, None):
            if cell.activity():
                users.setdefault(hh * 1800 * 10**9 // NS_DAY, set()).add(user)
        return {(_EPOCH_DAY + timedelta(days=d)).isoformat(): len(u) for d, u in users.items()}

    # --- one checker per request: a list of differences, empty when exact -----------------

    def daus(self, body: dict[str, Any]) -> list[str]:
        entries = body["entries"]
        out = []
        if len(entries) != 61 or body["tz_hour_offset"] != 0:
            out.append(f"daus: {len(entries)} entries, offset {body['tz_hour_offset']}")
        shown = {e["date"]: e["amount"] for e in entries}
        first, last = min(shown), max(shown)
        for day, amount in shown.items():
            want = self.daily_users.get(day, 0)
            if amount != want:
                out.append(f"daus {day}: {amount} != {want}")
        missing = [d for d in self.daily_users if first <= d <= last and d not in shown]
        if missing:
            out.append(f"daus: days with activity missing: {missing}")
        return out

    def templates(self, body: dict[str, Any], weekly: bool) -> list[str]:
        summary = self.week_summary if weekly else self.summary
        intervals = self.week_intervals if weekly else self.day_intervals
        name = "templates-week" if weekly else "templates-day"
        rep = body["report"]
        got: dict[str, Any] = {
            "template_ids": rep["template_ids"],
            "active_users": rep["active_users"],
            "builtins": [
                (a["slug"], a["seconds"], a["template_ids"]) for a in rep["apps_usage"][:5]
            ],
            "apps": [
                (
                    a["slug"],
                    a["display_name"],
                    a["icon"],
                    a["seconds"],
                    a["template_ids"],
                    a["times_used"],
                )
                for a in rep["apps_usage"][5:]
            ],
            "parameters_usage": rep["parameters_usage"],
            "intervals": [(i["active_users"], i["template_ids"]) for i in body["interval_reports"]],
        }
        want: dict[str, Any] = {
            "template_ids": summary["templates"],
            "active_users": len(summary["users"]),  # type: ignore[arg-type]
            "builtins": summary["builtins"],
            "apps": summary["apps"],
            "parameters_usage": [],
            "intervals": intervals,
        }
        return [f"{name} {k}: {got[k]} != {want[k]}" for k in want if got[k] != want[k]]

    def user_activity(self, body: dict[str, Any]) -> list[str]:
        seconds: dict[str, int] = self.summary["seconds"]  # type: ignore[assignment]
        templates: dict[str, list[str]] = self.summary["user_templates"]  # type: ignore[assignment]
        want = [
            (u, *self._profile(u), seconds[u], templates[u])
            for u in self.summary["users"]  # type: ignore[attr-defined]
        ]
        got = [
            (u["user_id"], u["username"], u["avatar_url"], u["seconds"], u["template_ids"])
            for u in body["report"]["users"]
        ]
        out = [f"user-activity users: {len(got)} != {len(want)}"] if len(got) != len(want) else []
        out += [f"user-activity {g} != {w}" for g, w in zip(got, want, strict=False) if g != w]
        union = sorted({t for ts in templates.values() for t in ts})
        if body["report"]["template_ids"] != union:
            out.append(f"user-activity template_ids: {body['report']['template_ids']} != {union}")
        return out

    def user_latency(self, body: dict[str, Any]) -> list[str]:
        samples: dict[str, list[float]] = self.summary["samples"]  # type: ignore[assignment]
        lat_templates: dict[str, list[str]] = self.summary["latency_templates"]  # type: ignore[assignment]
        act_templates: dict[str, list[str]] = self.summary["user_templates"]  # type: ignore[assignment]
        users = sorted(set(samples) | set(act_templates))
        want_templates = {
            u: sorted(set(lat_templates.get(u, [])) | set(act_templates.get(u, []))) for u in users
        }
        got_users = body["report"]["users"]
        out = []
        if [u["user_id"] for u in got_users] != users:
            out.append(f"user-latency users: {len(got_users)} != {len(users)}")
            return out
        for entry in got_users:
            u = entry["user_id"]
            profile = (entry["username"], entry["avatar_url"], entry["template_ids"])
            if profile != (*self._profile(u), want_templates[u]):
                out.append(f"user-latency {u}: {profile}")
            ordered = samples.get(u, [])
            for name, q in PERCENTILES:
                value = entry["latency_ms"][name]
                ref = ordered[math.floor(q * (len(ordered) - 1))] if ordered else -1
                if (ref == -1 and value != -1) or abs(value - ref) > 0.01 * abs(ref) + 1e-9:
                    out.append(f"user-latency {u} {name}: {value} vs {ref}")
        union = sorted({t for ts in want_templates.values() for t in ts})
        if body["report"]["template_ids"] != union:
            out.append("user-latency template_ids differ")
        return out

    def _profile(self, user: str) -> tuple[str, str]:
        named = self.oracle.names.get(user)
        return ("", "") if named is None else (named[2], named[3])

    # --- against a running API ------------------------------------------------------------

    def mismatches(self, get: Callable[[str], tuple[int, Any, str]]) -> list[str]:
        out: list[str] = []
        checks: dict[str, Callable[[Any], list[str]]] = {
            "daus": self.daus,
            "templates-day": lambda b: self.templates(b, weekly=False),
            "templates-week": lambda b: self.templates(b, weekly=True),
            "user-activity": self.user_activity,
            "user-latency": self.user_latency,
        }
        for name, path in self.windows.paths().items():
            status, body, raw = get(path)
            if status != 200:
                out.append(f"{name}: HTTP {status} {raw[:200]}")
                continue
            out += checks[name](body)
        return out


def wait_until_exact(
    stack: Stack, expected: Expectation, timeout_s: float, poll_s: float = 0.5
) -> float:
    """Poll every endpoint until all agree with the oracle; returns when (monotonic).
    Fails after ``timeout_s`` with the differences of the last poll."""
    deadline = time.monotonic() + timeout_s
    while True:
        diffs = expected.mismatches(stack.get)
        if not diffs:
            return time.monotonic()
        if time.monotonic() >= deadline:
            shown = "\n".join(diffs[:20])
            more = f"\n... and {len(diffs) - 20} more" if len(diffs) > 20 else ""
            raise AssertionError(
                f"not exact after {timeout_s:g} s ({expected.events} events):\n{shown}{more}"
                f"\n--- logs ---\n{stack.log_tail()}"
            )
        time.sleep(poll_s)


def today_utc() -> date:
    return datetime.now(UTC).date()
