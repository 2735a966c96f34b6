"""streams.workloads, streams.simulation and the generators built on them.

The demo producer, the benches and the golden fixture all make their events with these
modules: the same seed must give the same events, and every wire event they make must
pass the worker's own decoder (``streams.decoding.decode_message``) for its topic.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import re
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregators.model import (
    KINDS,
    TOPIC_KINDS,
    AppUsageEvent,
    BuildEvent,
    BuildParameter,
    Event,
    LatencyEvent,
    ParameterOption,
    SessionEvent,
)
from aggregators.timebase import (
    HALF_HOURS_PER_DAY,
    MIN_PER_DAY,
    MIN_PER_HALF_HOUR,
    US_PER_DAY,
    US_PER_MIN,
    US_PER_S,
)
from streams import demo, simulation
from streams.decoding import decode_message
from streams.workloads import (
    AgentRef,
    App,
    WireEvent,
    app_usage_event,
    build_event,
    counter_uuid,
    epoch_us,
    latency_event,
    random_uuid,
    rfc3339,
    session_counts,
    session_event,
    uuid_from,
)
from tests import golden_fixture

ROOT = Path(__file__).resolve().parents[2]
FAR_FUTURE_US = epoch_us(datetime(2100, 1, 1, tzinfo=UTC))  # no event is "in the future"
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DAY = epoch_us(datetime(2024, 3, 5, tzinfo=UTC)) // US_PER_DAY  # a Tuesday
AGENT = AgentRef(
    "00000000-0000-0000-0000-000000000004",
    "user1",
    "00000000-0000-0000-0000-000000000001",
    "6b3b5d3e-5a57-4c4c-a0a4-1f0f7c3f1a01",
    "8d7f2c1e-0b6a-4d8e-9c43-2a1b0c9d8e7f",
    "https://example.com/a.png",
)


def decode_all(kind: str, events: Sequence[WireEvent], batch: int = 200) -> list[Event]:
    """Decode ``events`` in batch messages; fail on any rejection."""
    assert kind in TOPIC_KINDS
    decoded: list[Event] = []
    for i in range(0, len(events), batch):
        value = orjson.dumps(list(events[i : i + batch]))
        got, rejections = decode_message(value, kind, FAR_FUTURE_US)
        assert rejections == [], rejections[:1]
        decoded.extend(got)
    assert len(decoded) == len(events)
    return decoded


def decode_one(kind: str, event: WireEvent) -> Event:
    got, rejections = decode_message(orjson.dumps(event), kind, FAR_FUTURE_US)
    assert rejections == [], rejections
    return got[0]


def by_kind(pairs: Sequence[tuple[str, WireEvent]]) -> dict[str, list[WireEvent]]:
    out: dict[str, list[WireEvent]] = {}
    for kind, event in pairs:
        out.setdefault(kind, []).append(event)
    return out


@functools.cache
def bench(name: str) -> ModuleType:
    """A bench script loaded as a module (``bench/`` is not a package)."""
    path = ROOT / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- times and ids ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time_us", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_692_057_630 * US_PER_S, "2023-08-15T00:00:30Z"),
        (1_692_057_630 * US_PER_S + 123, "2023-08-15T00:00:30.000123Z"),
        (1_692_057_630 * US_PER_S + 999_999, "2023-08-15T00:00:30.999999Z"),
    ],
)
def test_rfc3339_is_exact_utc_text(time_us: int, text: str) -> None:
    assert rfc3339(time_us) == text


@given(st.integers(min_value=0, max_value=epoch_us(datetime(9999, 12, 31, tzinfo=UTC))))
def test_rfc3339_round_trips_through_the_decoder(time_us: int) -> None:
    event = latency_event(AGENT, "x", time_us, 1.0)
    got, rejections = decode_message(orjson.dumps(event), "latency", time_us)
    assert rejections == []
    assert got[0].time_us == time_us


def test_epoch_us_is_exact_for_any_offset() -> None:
    moment = datetime(2023, 8, 15, 0, 0, 30, 123_456, tzinfo=UTC)
    assert epoch_us(moment) == 1_692_057_630 * US_PER_S + 123_456
    east = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert epoch_us(east) == epoch_us(moment)


def test_uuid_from_is_uuid5_of_the_joined_parts() -> None:
    assert uuid_from("demo", "user", 3) == str(uuid.uuid5(uuid.NAMESPACE_URL, "demo/user/3"))
    assert uuid_from("a", 1) == uuid_from("a", 1) != uuid_from("a", 2)
    assert CANONICAL_UUID.fullmatch(uuid_from("x"))


def test_random_uuid_follows_the_seed() -> None:
    first = [random_uuid(random.Random(9)) for _ in range(2)]
    assert first[0] == first[1]
    rng = random.Random(9)
    ids = [random_uuid(rng) for _ in range(100)]
    assert len(set(ids)) == 100
    assert all(CANONICAL_UUID.fullmatch(i) and uuid.UUID(i).version == 4 for i in ids)


def test_counter_uuid_is_canonical_and_distinct() -> None:
    ids = {
        counter_uuid(tag, group, n)
        for tag in (1, 5)
        for group in (0, 1, 0xFFFF, 0x10000, 0xFFF_FFFF)
        for n in (0, 1, 2**48 - 1)
    }
    assert len(ids) == 2 * 5 * 3
    assert all(CANONICAL_UUID.fullmatch(i) for i in ids)
    assert counter_uuid(3, 7, 9) == counter_uuid(3, 7, 9)


# --- builders --------------------------------------------------------------------------------


def test_session_counts_cover_every_kind() -> None:
    assert session_counts({"ssh": 2}) == {
        "vscode": 0,
        "jetbrains": 0,
        "reconnecting_pty": 0,
        "ssh": 2,
        "sftp": 0,
    }
    assert session_counts(("vscode", "sftp")) == dict.fromkeys(KINDS, 0) | {"vscode": 1, "sftp": 1}
    assert list(session_counts(())) == list(KINDS)


def test_session_event_decodes() -> None:
    event = session_event(AGENT, "s1", 1_692_057_630 * US_PER_S, {"vscode": 1, "ssh": 2}, 3)
    got = decode_one("sessions", event)
    assert got == SessionEvent(
        "s1",
        1_692_057_630 * US_PER_S,
        AGENT.user_id,
        "user1",
        AGENT.avatar_url,
        AGENT.template_id,
        AGENT.workspace_id,
        AGENT.agent_id,
        3,
        0b1001,
    )


def test_app_usage_event_decodes_with_and_without_app() -> None:
    start = 1_692_057_600 * US_PER_S
    app = app_usage_event(
        AGENT, "a1", AGENT.agent_id, start, start + 90 * US_PER_S, slug_or_port="code-server",
        app=App("VS Code", "/icon/code.svg"), requests=4,
    )  # fmt: skip
    got = decode_one("app_usage", app)
    assert isinstance(got, AppUsageEvent)
    assert (got.time_us, got.started_us, got.ended_us) == (
        start + 90 * US_PER_S,
        start,
        got.time_us,
    )
    assert (got.access_method, got.slug_or_port, got.requests) == ("path", "code-server", 4)
    assert (got.app_display_name, got.app_icon) == ("VS Code", "/icon/code.svg")

    terminal = app_usage_event(
        AGENT, "a2", AGENT.agent_id, start, start, access_method="terminal", time_us=start + 5
    )
    got = decode_one("app_usage", terminal)
    assert isinstance(got, AppUsageEvent)
    assert terminal["app"] is None and got.app_display_name is None
    assert (got.time_us, got.access_method, got.slug_or_port) == (start + 5, "terminal", "")


def test_latency_event_decodes_without_profile() -> None:
    event = latency_event(AGENT, "l1", 1_692_057_630 * US_PER_S, 31.3)
    assert "username" not in event and "avatar_url" not in event
    assert decode_one("latency", event) == LatencyEvent(
        "l1",
        1_692_057_630 * US_PER_S,
        AGENT.user_id,
        AGENT.template_id,
        AGENT.workspace_id,
        AGENT.agent_id,
        31.3,
    )


def test_build_event_carries_the_parameters() -> None:
    params = (
        BuildParameter(
            "region",
            "string",
            "Region",
            "Where",
            (ParameterOption("EU", "", "eu", "/e.png"),),
            "eu",
        ),
        BuildParameter("disk", "number", "Disk", "", (), "50"),
    )
    got = decode_one("builds", build_event(AGENT, "b1", 1_692_057_630 * US_PER_S, 2, params))
    assert got == BuildEvent(
        "b1",
        1_692_057_630 * US_PER_S,
        AGENT.template_id,
        AGENT.workspace_id,
        AGENT.user_id,
        2,
        params,
    )


# --- the generated deployment ----------------------------------------------------------------


def test_deployment_follows_the_seed() -> None:
    one, again, other = (
        simulation.generate(60, 3),
        simulation.generate(60, 3),
        simulation.generate(60, 4),
    )
    assert one == again
    assert [u.user_id for u in one.users] != [u.user_id for u in other.users]
    zones = {tz for tz, _ in simulation.TIME_ZONES}
    tools = {tool for tool, _ in simulation.TOOLS}
    for u in one.users:
        assert u.tz_min in zones and u.tool in tools and u.avatar_url == ""
        assert 7 * 60 <= u.start_min <= 10 * 60
        assert u.main.template is one.templates[u.main.template_index]
        assert u.second is None or u.second.template != u.main.template
        assert all(slug in simulation.APPS for slug in u.main.template.apps)
        assert all(
            CANONICAL_UUID.fullmatch(i) for i in (u.user_id, u.main.workspace_id, u.main.agent_id)
        )
    assert any(u.second is not None for u in one.users)
    assert simulation.generate(3, 3, avatars=True).users[2].avatar_url.endswith("/u/2")


def test_work_blocks_follow_the_rng_and_stay_in_the_local_day() -> None:
    users = simulation.generate(200, 5).users
    for u in users:
        blocks = simulation.work_blocks(random.Random(u.index), u, DAY)
        assert blocks == simulation.work_blocks(random.Random(u.index), u, DAY)
        midnight = DAY * MIN_PER_DAY - u.tz_min
        assert all(midnight <= a < b <= midnight + MIN_PER_DAY for a, b in blocks)
        cut = simulation.work_blocks(random.Random(u.index), u, DAY, until_min=midnight + 12 * 60)
        assert all(b <= midnight + 12 * 60 for _, b in cut)
    assert sum(bool(simulation.work_blocks(random.Random(u.index), u, DAY)) for u in users) > 100


# --- the demo producer -----------------------------------------------------------------------


def _demo_day(users: list[simulation.User]) -> list[tuple[str, WireEvent]]:
    first = DAY * US_PER_DAY
    half = MIN_PER_HALF_HOUR * US_PER_MIN
    pairs: list[tuple[str, WireEvent]] = []
    for hh in range(first, first + HALF_HOURS_PER_DAY * half, half):
        pairs += demo.events_for_half_hour(users, hh)
    return pairs


def test_demo_events_follow_the_seed_and_decode() -> None:
    users = demo.make_users(8)
    assert users == demo.make_users(8) != demo.make_users(8, seed=8)
    pairs = _demo_day(users)
    assert pairs == _demo_day(demo.make_users(8))
    events = by_kind(pairs + list(demo.build_events(users, DAY * US_PER_DAY)))
    assert set(events) == set(TOPIC_KINDS)
    for kind, batch in events.items():
        decode_all(kind, batch)
    assert {e["template_id"] for e in events["builds"]} <= {t.template_id for t in demo.TEMPLATES}


def test_demo_live_cut_keeps_the_events_up_to_now() -> None:
    users = demo.make_users(20)
    hh = DAY * US_PER_DAY + 20 * MIN_PER_HALF_HOUR * US_PER_MIN  # 10:00 UTC
    until = hh + 10 * US_PER_MIN
    full = list(demo.events_for_half_hour(users, hh))
    cut = list(demo.events_for_half_hour(users, hh, until_us=until))
    assert 0 < len(cut) < len(full)
    assert all(pair in full for pair in cut)
    assert (
        max(e.time_us for kind, batch in by_kind(cut).items() for e in decode_all(kind, batch))
        <= until
    )


# --- the benches -----------------------------------------------------------------------------


def test_bench_decoding_messages_follow_the_seed_and_decode() -> None:
    mod = bench("bench_decoding")
    messages = mod.build_messages(0)
    assert messages == mod.build_messages(0) != mod.build_messages(1)
    assert len(messages) == mod.MESSAGES
    for message in messages:
        events, rejections = decode_message(message, "sessions", mod.NOW_US)
        assert len(events) == mod.EVENTS_PER_MESSAGE and not rejections


@pytest.mark.parametrize(
    ("kind", "builder", "total"),
    [
        ("sessions", "sessions_workload", 3000),
        ("latency", "latency_workload", 1000),
        ("app_usage", "app_usage_workload", 1000),
    ],
)
def test_bench_worker_workloads_follow_the_seed_and_decode(
    kind: str, builder: str, total: int
) -> None:
    mod = bench("bench_worker")
    agents = mod.make_agents(40, 4, 1)
    assert agents == mod.make_agents(40, 4, 1)
    build = getattr(mod, builder)
    messages, expected = build(agents, total, 100, random.Random(1))
    again, expected_again = build(agents, total, 100, random.Random(1))
    assert messages == again and expected == expected_again
    assert {partition for partition, _, _ in messages} == {0, 1, 2, 3}
    events: list[Any] = []
    for _, _, value in messages:
        events += orjson.loads(value)
    decoded = decode_all(kind, events)
    assert len(decoded) == total
    assert expected.active_users > 0


def test_bench_api_batches_follow_the_seed() -> None:
    mod = bench("bench_api")
    users = mod.make_users(60, 1)
    assert users == mod.make_users(60, 1)
    one = mod.make_batch(users, DAY, 0, 1, 10)
    two = mod.make_batch(mod.make_users(60, 1), DAY, 0, 1, 10)
    assert one.events == two.events and one.counts == two.counts
    assert all(one.counts)
    # (App sessions of one user starting in the same minute share an id: rare, and kept.)
    others = [e.id for e in one.events if not isinstance(e, AppUsageEvent)]
    assert len(set(others)) == len(others)


# --- the golden fixture ----------------------------------------------------------------------


def test_golden_fixture_decodes() -> None:
    for kind, events in golden_fixture.all_events().items():
        decode_all(kind, events)
