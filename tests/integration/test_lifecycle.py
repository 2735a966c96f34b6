"""State that lasts and stays small, on the real server: latency guards expire after the
dedupe horizon without changing any number, and stores follow the generation pointer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from aggregators.model import LatencyEvent, SessionEvent
from aggregators.ops import plan_batch
from aggregators.queries import Window, user_latency_report
from aggregators.reader import WindowReader
from aggregators.sketch import bin_of, bin_value
from aggregators.store import RollupStore, codec
from aggregators.store.keys import Keyspace, generation_pointer

pytestmark = pytest.mark.integration

T = "00000000-0000-0000-0000-000000000001"
U = "00000000-0000-0000-0000-000000000004"
DAY = 19_584
DAY_US = DAY * 86_400 * 10**6
MIN_US = 60 * 10**6
NS = 1000
WHOLE_DAY = Window(DAY_US * NS, (DAY_US + 86_400 * 10**6) * NS, "s", "e", ())
# From 01:00: the first two half-hours' samples are outside (the cells' half-hour bins).
FROM_ONE = Window((DAY_US + 60 * MIN_US) * NS, (DAY_US + 86_400 * 10**6) * NS, "s", "e", ())


def _session(minute: int) -> SessionEvent:
    return SessionEvent(f"s{minute}", DAY_US + minute * MIN_US, U, "u", "", T, "w", "a", 1, 1)


def _ms(i: int) -> float:
    """Fast in the first hour, slower after: windows with and without it differ."""
    return 10.0 + i % 7 if i < 120 else 50.0 + i % 11


def _samples(n: int, tag: str = "l") -> list[LatencyEvent]:
    return [
        LatencyEvent(f"{tag}{i}", DAY_US + i * 30 * 10**6, U, T, "w", "a", _ms(i)) for i in range(n)
    ]


async def _quantiles(store: RollupStore) -> list[Any]:
    out = []
    for window in (WHOLE_DAY, FROM_ONE):
        body: Any = await user_latency_report(WindowReader(store.source), window, [("p50", 0.5)])
        out.append([u["latency_ms"] for u in body["report"]["users"]])
    return out


async def _guard_keys(redis: Redis) -> list[Any]:
    return [k async for k in redis.scan_iter(match=Keyspace().latency_guards(DAY, "*", "*", "*"))]


async def test_guards_expire_after_the_horizon_and_no_number_moves(redis_client: Redis) -> None:
    store = RollupStore(redis_client, dedupe_horizon_s=1)
    events = [*_samples(240), *(_session(m) for m in range(120))]  # two hours, every 30 s
    assert await store.apply(plan_batch(events)) > 0
    before = await _quantiles(store)
    assert before[0] != before[1]  # the partial window excludes the first hour's samples
    guards = await _guard_keys(redis_client)
    assert len(guards) == 4  # one set per half-hour with samples
    assert all([0 < await redis_client.ttl(g) <= 1 for g in guards])
    assert await redis_client.object("encoding", guards[0]) == b"intset"
    assert await store.apply(plan_batch(_samples(240))) == 0  # within the horizon: nothing

    for _ in range(60):
        if not await _guard_keys(redis_client):
            break
        await asyncio.sleep(0.1)
    assert await _guard_keys(redis_client) == []
    assert await _quantiles(store) == before  # the bins stay; only the ids went
    prefix = Keyspace().day_prefix(DAY)
    kept = [k async for k in redis_client.scan_iter(match=prefix + "*")]
    rollups = [k for k in kept if not k.decode().startswith(prefix + "f:")]  # frames: a cache
    assert rollups and all([await redis_client.ttl(k) == -1 for k in rollups])

    # Past the horizon a redelivered sample counts again (re-reads that old go via rebuild).
    assert await store.apply(plan_batch(_samples(1))) == 1


async def test_guard_ttl_is_the_horizon_counted_from_the_last_write(redis_client: Redis) -> None:
    store = RollupStore(redis_client, dedupe_horizon_s=7 * 86_400)
    await store.apply(plan_batch(_samples(3)))
    (guards,) = await _guard_keys(redis_client)
    assert 7 * 86_400 - 5 <= await redis_client.ttl(guards) <= 7 * 86_400
    await redis_client.expire(guards, 100)
    await store.apply(plan_batch(_samples(4, tag="m")))  # a new sample refreshes the horizon
    assert await redis_client.ttl(guards) > 100


async def test_stores_follow_the_generation_pointer(redis_client: Redis) -> None:
    live = RollupStore(redis_client)
    rebuilt = RollupStore(redis_client, generation=1)
    await live.apply(plan_batch(_samples(4)))
    await rebuilt.apply(plan_batch(_samples(8)))

    def samples_seen(q: list[Any]) -> bool:
        return bool(q[0]) and q[0][0]["p50"] > 0

    old = await _quantiles(live)
    assert samples_seen(old) and old == await _quantiles(RollupStore(redis_client, generation=0))
    snapshot = await live.source.snapshot(DAY, DAY + 1)
    assert str(snapshot.day_versions[DAY]).startswith("g0:")

    await rebuilt.generations.switch(1)
    await asyncio.sleep(1.1)  # followers re-read the pointer about every second
    assert await _quantiles(live) == await _quantiles(rebuilt)
    assert await _quantiles(live) != old
    snapshot = await live.source.snapshot(DAY, DAY + 1)
    assert str(snapshot.day_versions[DAY]).startswith("g1:")  # no cache takes g0 frames
    assert await redis_client.get(generation_pointer()) == b"1"
    await live.apply(plan_batch(_samples(12, tag="n")))
    assert [k async for k in redis_client.scan_iter(match=Keyspace(1).latency_guards(DAY, T, U, 0))]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        # Counts of 64 and more: past every one-symbol entry of both packings.
        st.tuples(st.integers(-120, 900), st.one_of(st.integers(1, 40), st.integers(60, 70))),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 4),
)
# 65 samples of one bin then a common entry: the count must not pass for another gap's.
@example(samples=[(100, 1), (101, 65), (102, 1)], calls=1)
async def test_script_packs_bins_the_way_the_codec_reads_them(
    redis_client: Redis, samples: list[tuple[int, int]], calls: int
) -> None:
    """Bins written by rollup.lua over several calls, a cell's half-hour and the day's, decode
    to the counts."""
    await redis_client.flushdb()
    store = RollupStore(redis_client)
    expected: dict[str, int] = {}
    events = []
    for i, (b, n) in enumerate(samples):
        ms = bin_value(b)
        assert bin_of(ms) == b
        expected[str(b)] = expected.get(str(b), 0) + n
        events += [LatencyEvent(f"p{i}-{k}", DAY_US, U, T, "w", "a", ms) for k in range(n)]
    for part in range(calls):
        await store.apply(plan_batch(events[part::calls]))
    raw = codec.str_hash(await redis_client.hgetall(Keyspace().cell(DAY, T, U)))
    assert codec.cell(raw)[1] == {0: expected}
    if all(n <= 40 for _, n in samples):  # some 60 samples a half-hour at most, as agents send
        assert all(len(v) <= 64 for v in raw.values())  # the cell stays a listpack
    day = codec.str_hash(await redis_client.hgetall(Keyspace().day_agg(DAY, T, "l")))
    assert day == {U: codec.pack_bins({int(b): n for b, n in expected.items()})}
    assert codec.unpack_bins(day[U]) == expected
    counts = codec.latency_counts(day)
    assert counts.users == (U,) and dict(zip(counts.bins, counts.counts, strict=True)) == {
        int(b): n for b, n in expected.items()
    }


async def test_the_newest_event_naming_a_template_decides_its_names(redis_client: Redis) -> None:
    store = RollupStore(redis_client)
    named = _session(1)._replace(template_name="python-dev", organization_name="coder")
    older = _session(0)._replace(id="s-old", template_name="old-name", organization_name="")
    unnamed = _session(5)  # names nothing: changes nothing
    await store.apply(plan_batch([named, unnamed]))
    await store.apply(plan_batch([older]))  # older, applied later: loses
    assert await store.source.template_names() == {T: ("python-dev", "coder")}
    renamed = LatencyEvent("l-new", DAY_US + 9 * MIN_US, U, T, "w", "a", 5.0, "py", None)
    await store.apply(plan_batch([renamed]))
    assert await store.source.template_names() == {T: ("py", "")}
