"""The store + queries agree with the naive oracle on generated data, for any window shape.

Runs against the real Redis-protocol server of the test session.  Each example
also replays its events in a different batch split and checks nothing changes.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregators.model import AppUsageEvent, Event, LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.queries import Window, templates_report, user_activity_report, user_latency_report
from aggregators.reader import WindowReader
from aggregators.store import RollupStore
from insights.redis_client import create_redis
from insights.settings import Settings
from tests.oracle import NS_HH, Oracle

pytestmark = pytest.mark.integration

TEMPLATES = [f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2, 3)]
USERS = [f"00000000-0000-0000-0000-0000000000a{i}" for i in (1, 2, 3, 4)]
DAY0_US = 19_584 * 86_400 * 10**6  # 2023-08-15T00:00Z
SPAN_MIN = 3 * 1440
US_MIN = 60 * 10**6


def _session(i: int, minute: int, sec: int, t: int, u: int, kinds: int, conn: int) -> Event:
    return SessionEvent(
        f"s{i}",
        DAY0_US + minute * US_MIN + sec * 10**6,
        USERS[u],
        f"name{u}",
        "",
        TEMPLATES[t],
        "w",
        "a",
        conn,
        kinds,
    )


def _app(
    i: int, minute: int, sec: int, length_s: int, t: int, u: int, slug: int, method: int, cat: int
) -> Event:
    start = DAY0_US + minute * US_MIN + sec * 10**6
    access = ("path", "subdomain", "terminal")[method]
    key = f"app{slug}"
    display = (
        None
        if cat == 0 or access == "terminal"
        else f"App {slug}{'x' if cat == 2 and t == 1 else ''}"
    )
    return AppUsageEvent(
        f"a{i}",
        start + length_s * 10**6,
        f"sess{i}",
        USERS[u],
        f"name{u}",
        "",
        TEMPLATES[t],
        "w",
        "a",
        access,
        key,
        display,
        None if display is None else f"/i{slug}.png",
        start,
        start + length_s * 10**6,
        1,
    )


def _latency(i: int, minute: int, t: int, u: int, ms: float) -> Event:
    return LatencyEvent(f"l{i}", DAY0_US + minute * US_MIN, USERS[u], TEMPLATES[t], "w", "a", ms)


minute_st = st.integers(0, SPAN_MIN - 1)
t_st = st.integers(0, 2)
u_st = st.integers(0, 3)
event_st = st.one_of(
    st.tuples(
        st.just("s"),
        minute_st,
        st.integers(0, 59),
        t_st,
        u_st,
        st.integers(0, 31),
        st.sampled_from([0, 1, 1, 1]),
    ),
    st.tuples(
        st.just("a"),
        minute_st,
        st.integers(0, 59),
        st.integers(0, 7200),
        t_st,
        u_st,
        st.integers(0, 2),
        st.integers(0, 2),
        st.integers(0, 2),
    ),
    st.tuples(st.just("l"), minute_st, t_st, u_st, st.floats(0.5, 5000)),
)


def _events(raw: list[tuple[Any, ...]]) -> list[Event]:
    out: list[Event] = []
    for i, r in enumerate(raw):
        if r[0] == "s":
            out.append(_session(i, *r[1:]))
        elif r[0] == "a":
            out.append(_app(i, *r[1:]))
        else:
            out.append(_latency(i, *r[1:]))
    return out


WINDOWS = [  # (start offset from day 0 in minutes, length in minutes, fractional start ns)
    (0, 3 * 1440, 0),  # whole UTC days: day aggregates
    (180, 1440, 0),  # -03:00 local day: partial UTC days, cells
    (345, 2 * 1440, 0),  # +05:45 style: a half-hour edge dropped
    (0, 1440, 500_000_000),  # fractional-second start drops the first half-hour
    (600, 0, 0),  # empty window
]
FILTERS = [(), (TEMPLATES[0],), (TEMPLATES[0], TEMPLATES[1])]


def _check(
    report: dict[str, Any],
    activity: dict[str, Any],
    latency: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    rep = report["report"]
    assert rep["template_ids"] == expected["templates"]
    assert rep["active_users"] == len(expected["users"])
    builtins = [(a["slug"], a["seconds"], a["template_ids"]) for a in rep["apps_usage"][:5]]
    assert builtins == expected["builtins"]
    apps = [
        (a["slug"], a["display_name"], a["icon"], a["seconds"], a["template_ids"], a["times_used"])
        for a in rep["apps_usage"][5:]
    ]
    assert apps == expected["apps"]
    users = {u["user_id"]: (u["seconds"], u["template_ids"]) for u in activity["report"]["users"]}
    assert users == {
        u: (expected["seconds"][u], expected["user_templates"][u]) for u in expected["users"]
    }
    for entry in latency["report"]["users"]:
        samples = expected["samples"].get(entry["user_id"], [])
        for name, q in (("p50", 0.5), ("p95", 0.95)):
            if not samples:
                assert entry["latency_ms"][name] == -1
                continue
            ref = samples[math.floor(q * (len(samples) - 1))]
            assert abs(entry["latency_ms"][name] - ref) <= 0.01 * ref + 1e-9


def _windows() -> list[Window]:
    out = []
    for start_min, length, frac in WINDOWS:
        start_ns = (DAY0_US + start_min * US_MIN) * 1000 + frac
        end_ns = (DAY0_US + (start_min + length) * US_MIN) * 1000
        out.extend(Window(start_ns, end_ns, "s", "e", filt) for filt in FILTERS)
    return out


SECTIONS = frozenset({"report", "interval_reports"})
PERCENTILES = [("p50", 0.5), ("p95", 0.95)]
STALENESS_S = 0.02


async def _read_while(reader: WindowReader, writing: asyncio.Event) -> None:
    """Mid-stream answers are not checked: what matters is that nothing cached
    while the writes go on is served once they are over and the budget passed."""
    while writing.is_set():
        for w in _windows():
            await templates_report(reader, w, 1, SECTIONS, str, str)
            await user_activity_report(reader, w)
            await user_latency_report(reader, w, PERCENTILES)


async def _run(redis_url: str, events: list[Event], split: int, buckets: int = 1) -> None:
    """``redis_url`` may name a cluster (``redis+cluster://``); ``buckets`` split each day."""
    redis = create_redis(Settings(redis_url=redis_url))
    try:
        await redis.flushall()
        store = RollupStore(redis, day_buckets=buckets)
        reader = WindowReader(store.source, max_staleness_s=STALENESS_S)
        writing = asyncio.Event()
        writing.set()
        readers = [asyncio.create_task(_read_while(reader, writing)) for _ in range(3)]
        for i in range(0, len(events), split):
            await store.apply(plan_batch(events[i : i + split]))
            await asyncio.sleep(0)  # let the concurrent readers in between batches
        writing.clear()
        await asyncio.gather(*readers)
        await asyncio.sleep(STALENESS_S)
        oracle = Oracle(events)
        for replay in (False, True):
            if replay:  # at-least-once: everything again, in another split
                for i in range(0, len(events), 3):
                    await store.apply(plan_batch(events[i : i + 3]))
            for w in _windows():
                rep = await templates_report(reader, w, 1, SECTIONS, str, str)
                got = [(i["active_users"], i["template_ids"])
                       for i in rep.get("interval_reports", [])]  # fmt: skip
                step = 86_400 * 10**9
                chosen = set(w.templates) or None
                assert got == oracle.intervals(w.start_ns, w.end_ns, step, chosen)
                act = await user_activity_report(reader, w)
                lat = await user_latency_report(reader, w, PERCENTILES)
                _check(rep, act, lat, oracle.summary(w.start_ns, w.end_ns, chosen))
    finally:
        await redis.aclose()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=st.lists(event_st, min_size=1, max_size=60), split=st.integers(1, 25))
def test_store_matches_oracle(redis_url: str, raw: list[tuple[Any, ...]], split: int) -> None:
    asyncio.run(_run(redis_url, _events(raw), split))


def test_half_hour_constant() -> None:
    assert NS_HH == 1_800 * 10**9


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=st.lists(event_st, min_size=30, max_size=60), split=st.integers(1, 3))
def test_readers_during_many_small_writes_end_exact(
    redis_url: str, raw: list[tuple[Any, ...]], split: int
) -> None:
    """Many small batches, so the concurrent readers cache frames of every stage."""
    asyncio.run(_run(redis_url, _events(raw), split))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(raw=st.lists(event_st, min_size=1, max_size=60), split=st.integers(1, 25))
def test_store_with_day_buckets_matches_oracle(
    redis_url: str, raw: list[tuple[Any, ...]], split: int
) -> None:
    """Days split in 4 buckets (the 4 users in buckets 2, 0, 2, 1): the merged reads are exact."""
    asyncio.run(_run(redis_url, _events(raw), split, buckets=4))
