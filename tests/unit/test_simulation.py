"""streams.simulation (the generated deployment and its events) and streams.demo (the
driver behind ``insights simulate`` and ``insights up --demo``).

The shape of the simulated world: weekdays busy and weekends quiet, work in local
business hours, people joining and leaving, agents reporting every 30 s, a stable
log-normal latency per user that depends on where the user and the workspace are, icons
Coder ships, builds with rich parameters; all of it decided by the seed, and every event
one the worker accepts.
"""

from __future__ import annotations

import asyncio
import functools
import io
import itertools
import math
import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import pytest
import structlog
from rich.console import Console

from aggregators.model import TOPIC_KINDS, Event
from aggregators.timebase import MIN_PER_DAY, US_PER_DAY, US_PER_MIN, US_PER_S
from insights.settings import Settings
from streams import demo, simulation
from streams.decoding import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES, decode_message
from streams.producer import KEY_FIELDS
from streams.simulation import DayPlan, Deployment, Simulation, User
from streams.workloads import WireEvent, epoch_us

FAR_FUTURE_US = epoch_us(datetime(2100, 1, 1, tzinfo=UTC))
FIRST_DAY = epoch_us(datetime(2024, 3, 4, tzinfo=UTC)) // US_PER_DAY  # a Monday
DAYS = 42
PERIOD = (FIRST_DAY, FIRST_DAY + DAYS - 1)
EMOJI = re.compile(r"/emojis/[0-9a-f]{2,5}(-[0-9a-f]{2,5})*\.png")
ICON = re.compile(r"/icon/[a-z0-9.-]+\.(svg|png)")


@functools.cache
def deployment() -> Deployment:
    return simulation.generate(150, 11, period=PERIOD)


@functools.cache
def all_plans() -> tuple[DayPlan, ...]:
    sim = Simulation(deployment())
    return tuple(sim.plan(u, d) for u in deployment().users for d in range(*_days()))


def _days() -> tuple[int, int]:
    return PERIOD[0], PERIOD[1] + 1


def _events(dep: Deployment, first_day: int, days: int) -> list[tuple[str, int, WireEvent]]:
    start = first_day * US_PER_DAY
    return list(Simulation(dep).events(start, start + days * US_PER_DAY))


def decode_all(kind: str, events: Sequence[WireEvent]) -> list[Event]:
    decoded: list[Event] = []
    for i in range(0, len(events), 500):
        got, rejected = decode_message(orjson.dumps(list(events[i : i + 500])), kind, FAR_FUTURE_US)
        assert rejected == [], rejected[:1]
        decoded += got
    return decoded


def _local_minute(user: User, time_us: int) -> int:
    return (time_us // US_PER_MIN + user.tz_min) % MIN_PER_DAY


# --- the seed decides ---------------------------------------------------------------------------


def test_the_seed_decides_the_deployment_and_every_event() -> None:
    one, again, other = (simulation.generate(30, seed, period=PERIOD) for seed in (5, 5, 6))
    assert one == again
    assert {u.user_id for u in one.users}.isdisjoint(u.user_id for u in other.users)
    events = _events(one, FIRST_DAY + 1, 2)
    assert events == _events(again, FIRST_DAY + 1, 2)
    ids = {e["id"] for _, _, e in events}
    assert len(ids) == len(events)  # every event has an id of its own
    assert ids.isdisjoint(e["id"] for _, _, e in _events(other, FIRST_DAY + 1, 2))


def test_any_slicing_gives_the_same_history() -> None:
    dep = simulation.generate(25, 3, period=PERIOD)
    start = (FIRST_DAY + 8) * US_PER_DAY
    end = start + US_PER_DAY + 5 * 3600 * US_PER_S
    whole = list(Simulation(dep).events(start, end))
    sim = Simulation(dep, cache_days=1)  # evicting plans on the way changes nothing
    cuts = [*range(start, end, 7 * US_PER_MIN + 13 * US_PER_S + 1), end]
    pieces = [e for a, b in itertools.pairwise(cuts) for e in sim.events(a, b)]
    key = lambda e: (e[1], e[2]["id"])  # noqa: E731
    assert sorted(pieces, key=key) == sorted(whole, key=key)
    assert all(start <= t < end for _, t, _ in whole)
    assert Simulation(dep).count(start, end) == len(whole) > 1000


# --- when people work ---------------------------------------------------------------------------


def test_weekdays_are_busy_and_weekends_quiet() -> None:
    active: dict[int, int] = Counter(p.local_day for p in all_plans() if p.active)
    weekdays = [active[d] for d in range(*_days()) if simulation.is_weekday(d)]
    weekends = [active[d] for d in range(*_days()) if not simulation.is_weekday(d)]
    users = len(deployment().users)
    assert min(weekdays) > 0.45 * users  # holidays and newcomers not yet there included
    assert statistics.mean(weekdays) > 0.6 * users
    ratio = statistics.mean(weekends) / statistics.mean(weekdays)
    assert 0.02 < ratio < 0.15, ratio


def test_work_happens_in_local_business_hours() -> None:
    hours: Counter[int] = Counter()
    for plan in all_plans():
        if not simulation.is_weekday(plan.local_day):
            continue
        midnight = plan.local_day * MIN_PER_DAY - plan.user.tz_min
        for s in plan.stretches:
            first = s.start_us // US_PER_MIN - midnight
            last = (s.end_us - 1) // US_PER_MIN - midnight
            assert 5 * 60 <= first <= last < 23 * 60, (plan.user.username, plan.local_day)
            for minute in range(first, last + 1):
                hours[minute // 60] += 1
    total = sum(hours.values())
    office = sum(n for h, n in hours.items() if 8 <= h < 17)
    assert office / total > 0.85
    assert sum(n for h, n in hours.items() if 12 <= h < 17) / total > 0.3  # afternoons too
    # Local hours, not UTC ones: users of every time zone work in the same local hours.
    by_zone: dict[int, list[int]] = defaultdict(list)
    for plan in all_plans():
        if plan.stretches:
            by_zone[plan.user.tz_min].append(_local_minute(plan.user, plan.stretches[0].start_us))
    assert len(by_zone) == len(simulation.TIME_ZONES)
    assert all(7 * 60 <= statistics.median(starts) <= 10 * 60 for starts in by_zone.values())


def test_users_join_and_leave_during_the_period() -> None:
    users = deployment().users
    joined = [u for u in users if u.joined_day is not None]
    left = [u for u in users if u.left_day is not None]
    away = [u for u in users if u.holiday is not None]
    assert len(joined) >= 8 and len(left) >= 4 and len(away) >= 10
    assert all(PERIOD[0] < u.joined_day <= PERIOD[1] for u in joined if u.joined_day)
    assert all(not simulation.is_weekday(u.joined_day - 1) for u in joined if u.joined_day)
    assert all(PERIOD[0] < u.left_day <= PERIOD[1] for u in left if u.left_day)
    for plan in all_plans():
        if plan.active:
            assert plan.user.employed(plan.local_day)
            assert plan.user.at_work(plan.local_day)
    active_days = defaultdict(list)
    for plan in all_plans():
        if plan.active:
            active_days[plan.user.index].append(plan.local_day)
    # Newcomers work from their first Monday on; leavers worked before they left.
    assert sum(bool(active_days[u.index]) for u in joined) >= len(joined) - 2
    assert all(active_days[u.index] for u in left)
    # Without a period, everybody is always there (the benches' deployments).
    plain = simulation.generate(150, 11).users
    assert all(u.joined_day is None and u.left_day is None and u.holiday is None for u in plain)
    assert [u.user_id for u in plain] == [u.user_id for u in users]


# --- what agents report -----------------------------------------------------------------------


def test_agents_report_sessions_and_latency_every_30_s() -> None:
    events = _events(simulation.generate(30, 2, period=PERIOD), FIRST_DAY + 1, 2)
    sessions: dict[str, list[int]] = defaultdict(list)
    latency: dict[str, set[int]] = defaultdict(set)
    for kind, t, e in events:
        if kind == "sessions":
            sessions[e["agent_id"]].append(t)
            assert e["connection_count"] == sum(e["sessions"].values()) > 0
        elif kind == "latency":
            latency[e["agent_id"]].add(t)
    assert len(sessions) >= 20
    gaps: Counter[int] = Counter()
    for agent, times in sessions.items():
        times.sort()
        assert len({t % (30 * US_PER_S) for t in times}) == 1  # one phase per agent
        assert latency[agent] == set(times)  # a latency sample with each report
        gaps.update(b - a for a, b in itertools.pairwise(times))
    assert all(g % (30 * US_PER_S) == 0 for g in gaps)
    assert gaps.most_common(1)[0][0] == 30 * US_PER_S
    assert gaps[30 * US_PER_S] / gaps.total() > 0.98


def test_latency_is_a_stable_log_normal_per_user_that_depends_on_distance() -> None:
    medians: dict[int, list[float]] = defaultdict(list)
    logs: dict[int, list[float]] = defaultdict(list)
    for plan in all_plans():
        if plan.user.index >= 60:
            continue
        main = [s for s in plan.stretches if s.workspace is plan.user.main]
        samples = [ms for s in main for ms in s.latency(plan.user)]
        if len(samples) >= 200:  # a working day in the main workspace
            medians[plan.user.index].append(statistics.median(samples))
            logs[plan.user.index] += [math.log(ms) for ms in samples]
    users = deployment().users
    assert len(medians) > 55
    for index, days in medians.items():
        u = users[index]
        assert all(abs(m / u.latency_ms - 1) < 0.12 for m in days), (u.username, days)
        q1, q3 = statistics.quantiles(logs[index], n=4)[0::2]
        assert abs((q3 - q1) / 1.349 - u.latency_sigma) < 0.06  # the spread of a log-normal
    # Far from the workspace, slower: a round trip across an ocean is several times longer.
    near = [u.latency_ms for u in users if u.main.region == u.home.region]
    far = [u.latency_ms for u in users if simulation.round_trip_ms(u.home, u.main.region) > 100]
    assert near and far
    assert statistics.median(far) > 3 * statistics.median(near)
    assert 12 < statistics.median(near) < 45
    # The slow tail: a few samples far above the user's median.
    slow = total = 0
    for plan in all_plans()[:1500]:
        for s in plan.stretches:
            for ms in s.latency(plan.user):
                total += 1
                slow += ms > 3 * s.workspace.latency_ms
    assert 0.002 < slow / total < 0.03


# --- apps, icons, builds and parameters ---------------------------------------------------------


def test_icons_are_ones_coder_ships() -> None:
    assert all(ICON.fullmatch(icon) for icon in simulation.CODER_ICONS)
    icons = {app.icon for app in simulation.APPS.values()}
    for t in simulation.TEMPLATES:
        for p in simulation.build_parameters(t, "", "", "", "", ""):
            icons |= {o.icon for o in p.options if o.icon}
    events = _events(simulation.generate(60, 11, period=PERIOD), FIRST_DAY + 2, 1)
    sent = {e["app"]["icon"] for k, _, e in events if k == "app_usage" and e["app"]}
    sent |= {
        o["icon"]
        for k, _, e in events
        if k == "builds"
        for p in e["parameters"]
        for o in p["options"]
    }
    assert sent - {""} <= icons
    assert {a.icon for a in simulation.APPS.values()} <= simulation.CODER_ICONS
    for icon in icons:
        assert icon in simulation.CODER_ICONS or EMOJI.fullmatch(icon), icon
    assert "/icon/code.svg" in icons and "/icon/jupyter.svg" in icons
    assert any(EMOJI.fullmatch(i) for i in icons)


def test_templates_apps_and_builds_with_rich_parameters() -> None:
    dep = simulation.generate(50, 11, period=PERIOD)
    assert len(dep.templates) >= 5 and len({t.organization for t in dep.templates}) == 2
    events = _events(dep, FIRST_DAY, 10)
    builds = [e for k, _, e in events if k == "builds"]
    for build in builds:
        params = {p["name"]: p for p in build["parameters"]}
        assert {"region", "cpu", "disk_size", "dotfiles_uri"} <= set(params)
        template = next(t for t in dep.templates if t.template_id == build["template_id"])
        assert {p.name for p in template.parameters} <= set(params)
        with_icons = [
            p for p in params.values() if p["options"] and all(o["icon"] for o in p["options"])
        ]
        assert len(with_icons) >= 2
        for p in params.values():
            assert not p["options"] or p["value"] in {o["value"] for o in p["options"]}
    by_workspace: dict[str, list[WireEvent]] = defaultdict(list)
    for build in builds:
        by_workspace[build["workspace_id"]].append(build)
    changed = 0
    for ws_builds in by_workspace.values():
        ws_builds.sort(key=lambda b: b["time"])
        numbers = [b["build_number"] for b in ws_builds]
        assert numbers == sorted(set(numbers)) and numbers[0] >= 1
        changed += len({orjson.dumps(b["parameters"]) for b in ws_builds}) > 1
    assert changed > 0.3 * len(by_workspace)  # parameters change now and then
    # A morning build on most working weekdays.
    worked = [p for p in all_plans() if p.active and simulation.is_weekday(p.local_day)]

    built = sum(any(b.workspace is p.user.main for b in p.builds) for p in worked)
    assert 0.75 < built / len(worked) < 0.95
    # Apps: the templates' apps, the web terminal and port forwards, reported each minute.
    apps = [e for k, _, e in events if k == "app_usage"]
    assert {e["access_method"] for e in apps} == {"path", "subdomain", "terminal"}
    slugs = {e["slug_or_port"] for e in apps if e["app"]}
    assert slugs <= set(simulation.APPS) and len(slugs) >= 8
    assert any(e["app"] is None and e["slug_or_port"].isdigit() for e in apps)
    reports: dict[str, list[WireEvent]] = defaultdict(list)
    for e in apps:
        reports[e["session_id"]].append(e)
    assert statistics.median(len(r) for r in reports.values()) > 10
    for session in reports.values():
        assert len({e["started_at"] for e in session}) == 1
        ends = sorted(e["ended_at"] for e in session)
        assert len(set(ends)) == len(ends)


def test_every_event_decodes_and_names_its_template() -> None:
    dep = simulation.generate(40, 8, period=PERIOD)
    events = _events(dep, FIRST_DAY + 3, 2)
    by_kind: dict[str, list[WireEvent]] = defaultdict(list)
    for kind, _, e in events:
        by_kind[kind].append(e)
    assert set(by_kind) == set(TOPIC_KINDS)
    names = {t.template_id: (t.name, t.organization) for t in dep.templates}
    for kind, batch in by_kind.items():
        decoded = decode_all(kind, batch)
        assert len(decoded) == len(batch)
        for e in batch:
            assert (e["template_name"], e["organization_name"]) == names[e["template_id"]]
    assert len({e["template_id"] for e in by_kind["sessions"]}) == len(dep.templates)
    second = {u.user_id for u in dep.users if u.second is not None}
    two = defaultdict(set)
    for e in by_kind["sessions"]:
        two[e["user_id"]].add(e["template_id"])
    assert any(len(two[u]) == 2 for u in second)  # some work in their second template


def test_extra_events_top_up_the_live_rate() -> None:
    dep = simulation.generate(20, 4, period=PERIOD)
    sim = Simulation(dep)
    start = (FIRST_DAY + 8) * US_PER_DAY + 14 * 3600 * US_PER_S  # a Tuesday afternoon UTC
    extra = sim.extra_events(random.Random(1), start, start + US_PER_S, 300)
    assert len(extra) == 300
    assert all(start <= t < start + US_PER_S for _, t, _ in extra)
    assert len({e["id"] for _, _, e in extra}) == 300
    at_work = {p.user.user_id for p in sim.plans(start, start + US_PER_S) if p.stretches}
    assert {e["user_id"] for _, _, e in extra} <= at_work
    kinds = Counter(k for k, _, _ in extra)
    assert kinds["sessions"] > 100 and kinds["latency"] > 100
    for kind in kinds:
        decode_all(kind, [e for k, _, e in extra if k == kind])


# --- the driver ---------------------------------------------------------------------------------


class _FakeKafka:
    """Records what a DemoProducer sends instead of talking to a broker."""

    sent: ClassVar[list[tuple[str, bytes, bytes | None]]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None
    ) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _settings() -> Settings:
    return Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0")


def _messages(sent: list[tuple[str, bytes, bytes | None]]) -> list[tuple[str, list[WireEvent]]]:
    out = []
    for topic, value, key in sent:
        assert len(value) <= MAX_MESSAGE_BYTES
        events = orjson.loads(value)
        kind = topic.removeprefix("insights.")
        assert 1 <= len(events) <= min(demo.BATCH, MAX_BATCH_EVENTS)
        assert key is not None and {e[KEY_FIELDS[kind]] for e in events} == {key.decode()}
        out.append((kind, events))
    return out


async def test_backfill_sends_the_history_in_keyed_batches_and_says_when_done(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(demo, "AIOKafkaProducer", _FakeKafka)
    monkeypatch.setattr(_FakeKafka, "sent", [])
    now = (FIRST_DAY + 10) * US_PER_DAY + 15 * 3600 * US_PER_S + 123
    producer = demo.DemoProducer(
        _settings(), users=12, clock_us=lambda: now, console=Console(file=io.StringIO())
    )
    with structlog.testing.capture_logs() as logs:
        await producer.run(3, asyncio.Event(), live=False)
    messages = _messages(_FakeKafka.sent)
    events = [e for _, batch in messages for e in batch]
    expected = Simulation(demo.deployment(12, demo.DEFAULT_SEED, 3, now_us=now))
    assert len(events) == producer.sent.backfill_events == expected.count(now - 3 * US_PER_DAY, now)
    assert len({e["id"] for e in events}) == len(events)
    times = [datetime.fromisoformat(e["time"]).timestamp() * US_PER_S for e in events]
    assert now - 3 * US_PER_DAY <= min(times) and max(times) < now
    assert {e["template_id"] for e in events} <= {t.template_id for t in demo.TEMPLATES}
    done = [entry["event"] for entry in logs if entry["event"].startswith("backfill done")]
    assert len(done) == 1 and re.fullmatch(
        rf"backfill done: {len(events):,} events over 3 days in \d+\.\d s", done[0]
    )
    # Newest day first: the dashboards of the last days fill first.
    first_day = datetime.fromisoformat(messages[0][1][0]["time"]).timestamp() * US_PER_S
    assert first_day >= now - US_PER_DAY


async def test_live_follows_the_clock_at_the_chosen_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "AIOKafkaProducer", _FakeKafka)
    monkeypatch.setattr(_FakeKafka, "sent", [])
    monkeypatch.setattr(demo, "LIVE_TICK_S", 0.001)
    stop = asyncio.Event()
    start = (FIRST_DAY + 9) * US_PER_DAY + 13 * 3600 * US_PER_S  # Wednesday 13:00 UTC
    ticks = iter(range(1000))

    def clock() -> int:
        tick = next(ticks)
        if tick == 20:
            stop.set()
        return start + tick * 10 * US_PER_S  # ten seconds a tick

    producer = demo.DemoProducer(
        _settings(), users=30, clock_us=clock, rate=40.0, console=Console(file=io.StringIO())
    )
    with structlog.testing.capture_logs() as logs:
        await producer.run(0, stop)
    events = [e for _, batch in _messages(_FakeKafka.sent) for e in batch]
    assert producer.sent.backfill_events == 0 and producer.sent.live_events == len(events)
    assert 40 * 200 * 0.95 <= len(events) <= 40 * 200 * 1.05  # 200 s at 40 events/s
    times = [datetime.fromisoformat(e["time"]).timestamp() * US_PER_S for e in events]
    assert start <= min(times) and max(times) < start + 200 * US_PER_S
    natural = Simulation(demo.deployment(30, demo.DEFAULT_SEED, 0, now_us=start))
    own = {e["id"] for _, _, e in natural.events(start, start + 200 * US_PER_S)}
    assert own and own <= {e["id"] for e in events}  # the deployment's reports, topped up
    assert any(entry["event"].startswith("live done") for entry in logs)
