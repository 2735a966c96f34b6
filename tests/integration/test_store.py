"""Store behaviours named by the spec, on the real Redis server."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from aggregators.model import AppUsageEvent, LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.queries import Window, user_activity_report
from aggregators.reader import WindowReader
from aggregators.records import HalfHourCell
from aggregators.store import RollupStore, codec
from aggregators.store.keys import ALL, Keyspace, layouts
from aggregators.store.writer import ROLLUP

KEYS = Keyspace()  # generation 0, the live one of a fresh store

pytestmark = pytest.mark.integration

T1 = "00000000-0000-0000-0000-000000000001"
T2 = "00000000-0000-0000-0000-000000000002"
U = "00000000-0000-0000-0000-000000000004"
DAY = 19_584
DAY_US = DAY * 86_400 * 10**6
MIN_US = 60 * 10**6
WHOLE_DAY = Window(DAY_US * 1000, (DAY_US + 86_400 * 10**6) * 1000, "s", "e", ())


def _report(minute: int, conn: int, template: str = T1, id_: str = "") -> SessionEvent:
    return SessionEvent(
        id_ or f"{template}{minute}{conn}",
        DAY_US + minute * MIN_US,
        U,
        "u",
        "",
        template,
        "w",
        "a",
        conn,
        0b1000,
    )


async def _seconds(store: RollupStore, window: Window = WHOLE_DAY) -> int:
    body = await user_activity_report(WindowReader(store.source), window)
    return sum(u["seconds"] for u in body["report"]["users"])  # type: ignore[index]


async def test_late_connected_report_makes_earlier_minutes_count(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    await store.apply(plan_batch([_report(m, conn=0) for m in range(5)]))
    assert await _seconds(store) == 0  # not connected yet: agent minutes do not count
    await store.apply(plan_batch([_report(20, conn=1)]))
    assert await _seconds(store) == 6 * 60  # same half-hour: all six minutes count now
    await store.apply(plan_batch([_report(35, conn=0)]))
    assert await _seconds(store) == 6 * 60  # next half-hour has no connected report


async def test_minutes_across_templates_are_summed_then_capped(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    events = [_report(m, 1, t) for t in (T1, T2) for m in range(10)]
    await store.apply(plan_batch(events))
    assert await _seconds(store) == 20 * 60  # min(10 + 10, 30), not 10
    events = [_report(m, 1, t) for t in (T1, T2) for m in range(10, 30)]
    await store.apply(plan_batch(events))
    assert await _seconds(store) == 30 * 60  # capped at the half-hour


async def test_day_usage_keeps_mask_and_minutes_of_a_user_in_one_integer(
    redis_client: Redis,
) -> None:
    store = RollupStore(redis_client)
    last = 47 * 30  # bit 47 of the mask: beyond what a double adds to 10^4 minutes exactly
    events = [_report(m, 1, t) for t in (T1, T2) for m in (*range(20), last, last + 1)]
    assert await store.apply(plan_batch(events[::2])) > 0
    assert await store.apply(plan_batch(events[1::2])) > 0

    async def usage() -> list[dict[str, str]]:
        return [
            codec.str_hash(await redis_client.hgetall(KEYS.day_agg(DAY, scope, part)))
            for scope, part in ((T1, "a"), (T2, "a"), (ALL, "m"))
        ]

    mask = 1 | 1 << 47
    stored = await usage()
    assert stored == [{U: codec.usage_value(mask, 22)}] * 2 + [{U: str(30 + 4)}]
    assert codec.usage(stored[0]) == ({U: mask}, {U: 22})
    assert await _seconds(store) == 34 * 60  # min(20 + 20, 30) + 4
    assert await store.apply(plan_batch(events)) == 0
    assert await usage() == stored


async def test_duplicate_ids_and_replays_change_nothing(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    latency = LatencyEvent("same-id", DAY_US, U, T1, "w", "a", 10.0)
    app = AppUsageEvent(
        id="a", time_us=DAY_US + 3 * MIN_US, session_id="s", user_id=U, username="u",
        avatar_url="", template_id=T1, workspace_id="w", agent_id="g", access_method="path",
        slug_or_port="app1", app_display_name="App", app_icon="/i.png", started_us=DAY_US,
        ended_us=DAY_US + 3 * MIN_US, requests=1,
    )  # fmt: skip
    first = await store.apply(plan_batch([latency, app, _report(7, 1)]))
    assert first > 0
    assert await store.apply(plan_batch([latency, app, _report(7, 1)])) == 0
    assert await store.apply(plan_batch([latency._replace(latency_ms=99.0)])) == 0


async def test_keys_written_by_the_scripts_are_the_ones_keys_py_names(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    await store.apply(plan_batch([_report(1, 1), LatencyEvent("l", DAY_US, U, T1, "w", "a", 5.0)]))
    expected = {
        KEYS.day_templates(DAY),
        KEYS.day_user_templates(DAY),
        KEYS.cell(DAY, T1, U),
        KEYS.latency_guards(DAY, T1, U, 0),
        KEYS.users(),
        KEYS.data_days(),
        layouts(),  # the generation's buckets per day, recorded by its first write
        KEYS.day_version(DAY),
        KEYS.users_version(),
        *(KEYS.day_agg(DAY, T1, part) for part in "axl"),
        # Masks and latency have no all-scope copy (never capped: readers combine templates').
        *(KEYS.day_agg(DAY, ALL, part) for part in "mx"),
    }
    actual = {k.decode() for k in await redis_client.keys("*")}
    assert actual == expected
    assert all(f"{{d{DAY}}}" in k for k in actual if "{meta}" not in k)


async def test_cached_frames_follow_catalogue_changes(redis_client: Redis) -> None:
    from aggregators.queries import templates_report

    store = RollupStore(redis_client)
    reader = WindowReader(store.source)

    def app(id_: str, time_us: int, name: str) -> AppUsageEvent:
        return AppUsageEvent(
            id=id_, time_us=time_us, session_id="s", user_id=U, username="u", avatar_url="",
            template_id=T1, workspace_id="w", agent_id="g", access_method="path",
            slug_or_port="app1", app_display_name=name, app_icon="/i.png", started_us=DAY_US,
            ended_us=DAY_US + 3 * MIN_US, requests=1,
        )  # fmt: skip

    async def names() -> list[str]:
        body = await templates_report(reader, WHOLE_DAY, None, frozenset({"report"}), str, str)
        return [a["display_name"] for a in body["report"]["apps_usage"][5:]]  # type: ignore[index]

    await store.apply(plan_batch([app("a1", DAY_US + 3 * MIN_US, "Old name")]))
    assert await names() == ["Old name"]
    # same minutes (the day does not change), newer catalogue entry: the cache must notice
    await store.apply(plan_batch([app("a2", DAY_US + 4 * MIN_US, "New name")]))
    assert await names() == ["New name"]


async def test_cached_profiles_follow_renames_only(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    reader = WindowReader(store.source)

    async def names() -> list[str]:
        body = await user_activity_report(reader, WHOLE_DAY)
        return [u["username"] for u in body["report"]["users"]]  # type: ignore[index]

    await store.apply(plan_batch([_report(1, 1)._replace(username="before")]))
    assert await names() == ["before"]
    version = await redis_client.get(KEYS.users_version())
    await store.apply(plan_batch([_report(2, 1)._replace(username="before")]))
    assert await redis_client.get(KEYS.users_version()) == version  # newer, same name
    await store.apply(plan_batch([_report(3, 1)._replace(username="after")]))
    assert await names() == ["after"]


async def test_a_restarted_reader_takes_shared_frames_from_redis(redis_client: Redis) -> None:
    from aggregators.queries import templates_report, user_latency_report

    store = RollupStore(redis_client)
    day_us = DAY_US + 86_400_000_000
    events = [_report(m, 1) for m in range(20)] + [
        LatencyEvent(f"l{i}", DAY_US + i * MIN_US, U, T1, "w", "a", 10.0 + i) for i in range(9)
    ]
    events.append(_report(3, 1)._replace(id="next-day", time_us=day_us + 3 * MIN_US))
    await store.apply(plan_batch(events))
    window = Window(DAY * 86_400 * 10**9, (DAY + 2) * 86_400 * 10**9, "s", "e", ())
    sections = frozenset({"report", "interval_reports"})

    async def answers(reader: WindowReader) -> tuple[object, ...]:
        return (
            await templates_report(reader, window, 1, sections, str, str),
            await user_activity_report(reader, window),
            await user_latency_report(reader, window, [("p50", 0.5), ("p99", 0.99)]),
        )

    before = await answers(WindowReader(store.source))
    folded: list[object] = []
    real_read_days = store.source.read_days

    async def counting(reads: Any) -> Any:
        folded.extend(reads)
        return await real_read_days(reads)

    store.source.read_days = counting  # type: ignore[method-assign]
    assert await answers(WindowReader(store.source)) == before
    assert folded == []  # both whole days came from the frames the first reader shared


async def test_cells_keep_a_half_hour_in_one_short_field(redis_client: Redis) -> None:
    """rollup.lua's cell text: masks and bins of a half-hour in field ``<hh>``, the bins in
    ``<hh>l`` only while both would not fit a listpack value, apps in ``<hh>|<key>``."""
    await ROLLUP.load(redis_client)
    prefix, cell = KEYS.day_prefix(DAY), KEYS.cell(DAY, T1, U)
    full = codec.FULL_MASK
    seq = iter(range(10**6))

    async def apply(*ops: list[object]) -> int:
        args = [prefix, orjson.dumps(list(ops)), "60"]
        guards = [(str(op[1]), str(op[2]), int(op[3])) for op in ops if op[0] == "l"]  # type: ignore[call-overload]
        keys = KEYS.rollup_keys(DAY, 0, [T1], [(T1, U)], guards, builds=False)
        return int(await redis_client.evalsha(ROLLUP.sha, len(keys), *keys, *args))

    def samples(bins: range) -> list[list[object]]:
        return [["l", T1, U, 3, str(next(seq)), b] for b in bins]

    async def fields() -> dict[str, str]:
        return codec.str_hash(await redis_client.hgetall(cell))

    session = ["s", T1, U, 3, full, 1, full, 0, 0, full, 0]
    assert await apply(session) == 1
    assert await fields() == {"3": "*=..="}
    assert await apply(["p", T1, U, 3, "app1", 0b1110]) == 1
    assert await fields() == {"3": "*=..=.Bd", "3|app1": "Bd"}

    sparse = range(100, 100 + 6 * 29, 6)  # gaps of 6: two characters an entry
    await apply(*samples(sparse))
    spilled = await fields()
    assert spilled["3"] == "*=..=.Bd" and len(spilled["3l"]) <= 64
    dense = range(103, 100 + 6 * 28, 6)  # now gaps of 3: two entries a character
    await apply(*samples(dense))
    back = await fields()
    assert "3l" not in back and back["3"].startswith("*=..=.Bd/")
    cells, latency = codec.cell(back)
    assert cells[3] == HalfHourCell(full, True, 0b1110, [full, 0, 0, full, 0], {"app1": 0b1110})
    assert latency == {3: {str(b): 1 for b in (*sparse, *dense)}}
    assert await redis_client.object("encoding", cell) == b"listpack"
    assert await apply(session, ["p", T1, U, 3, "app1", 0b110]) == 0  # nothing new
    assert await fields() == back
