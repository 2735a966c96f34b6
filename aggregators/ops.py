"""Batch fast path: fold a batch of validated events into per-day operations.

Pure.  Agents report every ~30 s, so a batch holds many events for the same
(template, user, half-hour); they collapse here into one OR-ed minute mask per
cell and part before anything reaches Redis.  The rollup scripts then apply
each day's operations in one call (see ``aggregators/store/rollup.lua`` for
the op formats; the store encodes builds and metadata updates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from aggregators.model import (
    TERMINAL_APP_KEY,
    AppUsageEvent,
    BuildEvent,
    Event,
    LatencyEvent,
    SessionEvent,
)
from aggregators.sketch import bin_of
from aggregators.timebase import (
    US_PER_DAY,
    half_hour_masks,
    minute_of_us,
    session_minute_range,
    split_minute,
)

# Cell operations, lists in the rollup script's argument format (they are
# serialised as they are, on the hot path): tag "s" session minutes, "p" app
# minutes, "l" one latency sample.
CellTag = Literal["s", "p", "l"]
Op = list[object]
_CellKey = tuple[int, str, str, int]  # (day, template, user, half-hour index)
_Newest = tuple[int, str, str, str]  # (time_us, id, name, icon/avatar)
_Owner = tuple[str, str]  # (user id, "") of a profile; (template id, app key) of an app


MetaKind = Literal["u", "a", "t"]


class MetaUpdate(NamedTuple):
    """Newest-wins update of a user's profile (``u``), an app's catalogue entry (``a``) or
    a template's names (``t``)."""

    kind: MetaKind
    owner: str  # user id, the app's template id, or the template id
    app_key: str  # "" for a profile and a template
    time_us: int
    event_id: str
    name: str  # username, app display name, or template name
    icon: str  # avatar URL of a profile, app icon, or organization name


@dataclass
class BatchPlan:
    """One batch's work: cell ops and builds per UTC day, plus metadata updates."""

    days: dict[int, list[Op]] = field(default_factory=dict)
    builds: dict[int, list[BuildEvent]] = field(default_factory=dict)
    meta: list[MetaUpdate] = field(default_factory=list)

    def op_count(self) -> int:
        cells = sum(len(ops) for ops in self.days.values())
        return cells + sum(len(b) for b in self.builds.values()) + len(self.meta)


@dataclass
class _Planner:
    sessions: dict[_CellKey, list[int]] = field(default_factory=dict)
    apps: dict[tuple[int, str, str, int, str], int] = field(default_factory=dict)
    latency_ops: dict[int, list[Op]] = field(default_factory=dict)
    builds: dict[int, list[BuildEvent]] = field(default_factory=dict)
    profiles: dict[_Owner, _Newest] = field(default_factory=dict)
    catalogue: dict[_Owner, _Newest] = field(default_factory=dict)
    template_names: dict[_Owner, _Newest] = field(default_factory=dict)

    def names(self, e: Event) -> None:
        """The newest event that names its template decides the template's names."""
        if e.template_name is not None or e.organization_name is not None:
            newest = (e.time_us, e.id, e.template_name or "", e.organization_name or "")
            _newest(self.template_names, (e.template_id, ""), newest)

    def session(self, e: SessionEvent) -> None:
        _newest(self.profiles, (e.user_id, ""), (e.time_us, e.id, e.username, e.avatar_url))
        if not e.kinds_mask:
            return  # a report with no open session contributes nothing, not even its connection
        day, hh, bit = split_minute(minute_of_us(e.time_us))
        key = (day, e.template_id, e.user_id, hh)
        acc = self.sessions.get(key)
        if acc is None:
            acc = self.sessions[key] = [0, 0, 0, 0, 0, 0, 0]
        minute = 1 << bit
        acc[0] |= minute
        if e.connection_count > 0:
            acc[1] = 1
        kinds = e.kinds_mask
        for i in range(5):
            if kinds >> i & 1:
                acc[2 + i] |= minute

    def app(self, e: AppUsageEvent) -> None:
        _newest(self.profiles, (e.user_id, ""), (e.time_us, e.id, e.username, e.avatar_url))
        if e.access_method == "terminal":
            key = TERMINAL_APP_KEY
        else:
            key = e.slug_or_port
            if e.app_display_name is not None:
                newest = (e.time_us, e.id, e.app_display_name, e.app_icon or "")
                _newest(self.catalogue, (e.template_id, key), newest)
        span = session_minute_range(e.started_us, e.ended_us)
        if span is None:
            return
        for day, hh, mask in half_hour_masks(*span):
            ck = (day, e.template_id, e.user_id, hh, key)
            self.apps[ck] = self.apps.get(ck, 0) | mask

    def latency(self, e: LatencyEvent) -> None:
        day, hh, _ = split_minute(minute_of_us(e.time_us))
        # A signed 64-bit integer (as text): the script's guard sets then stay intsets,
        # 8 bytes a sample.
        digest = str(
            int.from_bytes(
                hashlib.blake2b(e.id.encode(), digest_size=8).digest(), "little", signed=True
            )
        )
        op: Op = ["l", e.template_id, e.user_id, hh, digest, bin_of(e.latency_ms)]
        self.latency_ops.setdefault(day, []).append(op)

    def build(self, e: BuildEvent) -> None:
        self.builds.setdefault(e.time_us // US_PER_DAY, []).append(e)

    def plan(self) -> BatchPlan:
        out = BatchPlan()
        for (day, t, u, hh), acc in self.sessions.items():
            out.days.setdefault(day, []).append(["s", t, u, hh, *acc])
        for (day, t, u, hh, key), mask in self.apps.items():
            out.days.setdefault(day, []).append(["p", t, u, hh, key, mask])
        for day, ops in self.latency_ops.items():
            out.days.setdefault(day, []).extend(ops)
        out.builds = self.builds
        out.meta.extend(_meta_updates("u", self.profiles))
        out.meta.extend(_meta_updates("a", self.catalogue))
        out.meta.extend(_meta_updates("t", self.template_names))
        return out


def _newest(table: dict[_Owner, _Newest], key: _Owner, entry: _Newest) -> None:
    cur = table.get(key)
    if cur is None or (entry[0], entry[1]) > (cur[0], cur[1]):
        table[key] = entry


def _meta_updates(kind: MetaKind, table: dict[_Owner, _Newest]) -> Iterable[MetaUpdate]:
    for (owner, app_key), (time_us, id_, name, icon) in table.items():
        yield MetaUpdate(kind, owner, app_key, time_us, id_, name, icon)


def plan_batch(events: Iterable[Event]) -> BatchPlan:
    planner = _Planner()
    handlers = {
        SessionEvent: planner.session,
        AppUsageEvent: planner.app,
        LatencyEvent: planner.latency,
        BuildEvent: planner.build,
    }
    for event in events:
        handlers[type(event)](event)  # type: ignore[operator]
        if event.template_name is not None or event.organization_name is not None:
            planner.names(event)
    return planner.plan()
