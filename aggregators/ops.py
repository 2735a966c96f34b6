"""Batch fast path: fold a batch of validated events into per-day operations.

Pure.  Agents report every ~30 s, so a batch holds many events for the same
(template, user, half-hour); they collapse here into one OR-ed minute mask per
cell and part before anything reaches Redis.  The rollup scripts then apply
each day's operations in one call (see ``rollup.lua`` for the op formats).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from aggregators.model import (
    TERMINAL_APP_KEY,
    AppUsageEvent,
    BuildEvent,
    BuildParameter,
    Event,
    LatencyEvent,
    SessionEvent,
)
from aggregators.sketch import bin_of
from aggregators.store.keys import SEP
from aggregators.timebase import (
    US_PER_DAY,
    half_hour_masks,
    minute_of_us,
    session_minute_range,
    split_minute,
)

Op = list[object]
_CellKey = tuple[int, str, str, int]  # (day, template, user, half-hour index)
_Newest = tuple[int, str, str, str]  # (time_us, id, name, icon/avatar)


@dataclass
class BatchPlan:
    """Operations of one batch: per UTC day for ``rollup.lua``, plus ``meta.lua`` ops."""

    days: dict[int, list[Op]] = field(default_factory=dict)
    meta: list[Op] = field(default_factory=list)

    def op_count(self) -> int:
        return sum(len(ops) for ops in self.days.values()) + len(self.meta)


@dataclass
class _Planner:
    sessions: dict[_CellKey, list[int]] = field(default_factory=dict)
    apps: dict[tuple[int, str, str, int, str], int] = field(default_factory=dict)
    other: dict[int, list[Op]] = field(default_factory=dict)
    profiles: dict[str, _Newest] = field(default_factory=dict)
    catalogue: dict[str, _Newest] = field(default_factory=dict)

    def session(self, e: SessionEvent) -> None:
        _newest(self.profiles, e.user_id, (e.time_us, e.id, e.username, e.avatar_url))
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
        _newest(self.profiles, e.user_id, (e.time_us, e.id, e.username, e.avatar_url))
        if e.access_method == "terminal":
            key = TERMINAL_APP_KEY
        else:
            key = e.slug_or_port
            if e.app_display_name is not None:
                newest = (e.time_us, e.id, e.app_display_name, e.app_icon or "")
                _newest(self.catalogue, e.template_id + SEP + key, newest)
        span = session_minute_range(e.started_us, e.ended_us)
        if span is None:
            return
        for day, hh, mask in half_hour_masks(*span):
            ck = (day, e.template_id, e.user_id, hh, key)
            self.apps[ck] = self.apps.get(ck, 0) | mask

    def latency(self, e: LatencyEvent) -> None:
        day, hh, _ = split_minute(minute_of_us(e.time_us))
        digest = hashlib.blake2b(e.id.encode(), digest_size=8).hexdigest()
        op: Op = ["l", e.template_id, e.user_id, hh, digest, bin_of(e.latency_ms)]
        self.other.setdefault(day, []).append(op)

    def build(self, e: BuildEvent) -> None:
        day = e.time_us // US_PER_DAY
        field_ = SEP.join((e.template_id, e.workspace_id, str(e.build_number)))
        payload = orjson.dumps(
            {
                "user_id": e.user_id,
                "build_number": e.build_number,
                "time_us": e.time_us,
                "parameters": [_parameter_json(p) for p in e.parameters],
            }
        ).decode()
        self.other.setdefault(day, []).append(["b", field_, str(e.time_us), e.id, payload])

    def plan(self) -> BatchPlan:
        out = BatchPlan()
        for (day, t, u, hh), acc in self.sessions.items():
            out.days.setdefault(day, []).append(["s", t, u, hh, *acc])
        for (day, t, u, hh, key), mask in self.apps.items():
            out.days.setdefault(day, []).append(["p", t, u, hh, key, mask])
        for day, ops in self.other.items():
            out.days.setdefault(day, []).extend(ops)
        out.meta.extend(_meta_ops("u", self.profiles))
        out.meta.extend(_meta_ops("a", self.catalogue))
        return out


def _parameter_json(p: BuildParameter) -> dict[str, object]:
    out = p._asdict()
    out["options"] = [o._asdict() for o in p.options]
    return out


def _newest(table: dict[str, _Newest], key: str, entry: _Newest) -> None:
    cur = table.get(key)
    if cur is None or (entry[0], entry[1]) > (cur[0], cur[1]):
        table[key] = entry


def _meta_ops(kind: str, table: dict[str, _Newest]) -> Iterable[Op]:
    for key, (time_us, id_, name, icon) in table.items():
        yield [kind, key, str(time_us), id_, name, icon]


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
    return planner.plan()
