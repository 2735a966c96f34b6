"""Rebuild and replay through the real path: rollups wiped, then rebuilt from the topics
while the API answers; a rebuild that dies half-way resumes; a replay changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis import Redis

from aggregators.store import keys
from aggregators.timebase import US_PER_DAY, US_PER_MIN
from insights.settings import Settings
from streams import demo
from streams import rebuild as jobs
from tests.e2e.stack import Stack
from tests.golden_fixture import all_events

GOLDEN_WEEK = "start_time=2023-08-15T00:00:00Z&end_time=2023-08-22T00:00:00Z"
DEMO_DAY_US = 19_800 * US_PER_DAY  # 2024-03-19, a Tuesday
DEMO_WINDOW = "start_time=2024-03-19T00:00:00Z&end_time=2024-03-21T00:00:00Z"
# Midnight at +02:00: the first and last days are partial (the cells' half-hour path).
DEMO_LOCAL = "start_time=2024-03-19T00:00:00%2B02:00&end_time=2024-03-21T00:00:00%2B02:00"
DEMO_WEEK = "start_time=2024-03-18T00:00:00Z&end_time=2024-03-25T00:00:00Z"
KINDS = ("sessions", "app_usage", "latency", "builds")


def _requests() -> list[str]:
    out = []
    for window in (GOLDEN_WEEK, DEMO_WINDOW, DEMO_LOCAL):
        out += [
            f"/api/v2/insights/templates?{window}&interval=day",
            f"/api/v2/insights/user-activity?{window}",
            f"/api/v2/insights/user-latency?{window}",
        ]
    for window in (GOLDEN_WEEK, DEMO_WEEK):
        out.append(f"/api/v2/insights/templates?{window}&interval=week")
    out.append("/api/v2/insights/daus?tz_offset=0")
    out.append("/api/v2/insights/daus?tz_offset=-5")
    return out


def _settings(stack: Stack) -> Settings:
    name = stack.prefix[3:-1]  # tests.e2e.stack: prefix e2e<name>., app id insights-e2e-<name>
    return Settings(
        kafka_bootstrap=stack.bootstrap,
        redis_url=stack.redis_url,
        topic_prefix=stack.prefix,
        topic_partitions=3,
        app_id=f"insights-e2e-{name}",
    )


def _env(stack: Stack) -> dict[str, str]:
    s = _settings(stack)
    return {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "INSIGHTS_REDIS_URL": s.redis_url,
        "INSIGHTS_TOPIC_PREFIX": s.topic_prefix,
        "INSIGHTS_APP_ID": s.app_id,
    }


def _insights(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """``insights <args>`` as an operator runs it against the stack."""
    return subprocess.run(
        [sys.executable, "-m", "insights", *args],
        env=_env(stack),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _demo_events() -> dict[str, list[Any]]:
    users = demo.make_users(12, seed=3)
    out: dict[str, list[Any]] = {k: [] for k in KINDS}
    for hh in range(2 * 48):
        for kind, event in demo.events_for_half_hour(users, DEMO_DAY_US + hh * 30 * US_PER_MIN):
            out[kind].append(event)
    for kind, event in demo.build_events(users, DEMO_DAY_US + 9 * 60 * US_PER_MIN):
        out[kind].append(event)
    return out


def _answers(stack: Stack) -> dict[str, str]:
    out = {}
    for path in _requests():
        status, _, raw = stack.get(path)
        assert status == 200, (path, raw)
        out[path] = raw
    return out


async def _group_lag(settings: Settings) -> int:
    """Messages the live workers have not committed yet, over all input partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        await consumer.start()
        try:
            tps = [
                TopicPartition(settings.topic(k), p)
                for k in KINDS
                for p in sorted(consumer.partitions_for_topic(settings.topic(k)) or ())
            ]
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        committed = await admin.list_consumer_group_offsets(settings.app_id, partitions=tps)
        return sum(ends[tp] - max(0, committed[tp].offset) for tp in tps)
    finally:
        await admin.close()


def _settle(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while asyncio.run(_group_lag(_settings(stack))) > 0:
        assert time.monotonic() < deadline, stack.log_tail()
        time.sleep(0.3)
    time.sleep(1.0)  # the API refolds a changed day at most every 250 ms


@pytest.fixture(scope="module")
def before(stack: Stack) -> dict[str, str]:
    for kind, batch in all_events().items():
        stack.produce_events(kind, batch)
    for kind, batch in _demo_events().items():
        stack.produce_events(kind, batch, batch=100)
    _settle(stack)
    answers = _answers(stack)
    week = answers[f"/api/v2/insights/templates?{DEMO_WEEK}&interval=week"]
    assert '"active_users":0' not in week
    latency = orjson.loads(answers[f"/api/v2/insights/user-latency?{DEMO_LOCAL}"])
    assert all(u["latency_ms"]["p50"] > 0 for u in latency["report"]["users"])  # partial days
    return answers


@pytest.fixture
def redis(stack: Stack) -> Iterator[Redis]:
    client = Redis.from_url(stack.redis_url)
    yield client
    client.close()


def _generation_keys(redis: Redis) -> set[int]:
    return {int(k.decode().split(":")[2][1:]) for k in redis.scan_iter(match=f"{keys.ROOT}:g*")}


class _Poller(threading.Thread):
    """GETs one endpoint in a loop and records every status: the API must answer throughout."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack, self.statuses, self.stop = stack, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.statuses.append(self.stack.get(f"/api/v2/insights/user-activity?{DEMO_WINDOW}")[0])
            time.sleep(0.05)


def test_rebuild_after_a_wipe_answers_as_before(
    stack: Stack, before: dict[str, str], redis: Redis
) -> None:
    redis.flushdb()  # every rollup lost
    redis.set("cis:v1:{d19000}:ver", 3)  # a key of the previous format, for the migration
    wiped = stack.get(f"/api/v2/insights/user-activity?{GOLDEN_WEEK}")[1]
    assert wiped["report"]["users"] == []

    poller = _Poller(stack)
    poller.start()
    started = time.monotonic()
    done = _insights(stack, "rebuild", "--yes")
    poller.stop.set()
    poller.join()
    assert done.returncode == 0, done.stderr[-3000:]
    assert "switched to generation 1 (was 0)" in done.stderr
    assert poller.statuses and set(poller.statuses) == {200}, set(poller.statuses)
    assert time.monotonic() - started < 120

    assert redis.get(keys.generation_pointer()) == b"1"
    assert redis.get(keys.rebuild_state()) is None
    time.sleep(1.5)  # API processes re-read the pointer about every second
    assert _answers(stack) == before
    assert _generation_keys(redis) == {1}
    assert redis.exists("cis:v1:{d19000}:ver") == 0  # the old format's keys went too


def test_a_rebuild_that_dies_half_way_resumes_and_ends_identical(
    stack: Stack, before: dict[str, str], redis: Redis
) -> None:
    live = int(redis.get(keys.generation_pointer()) or 0)
    settings = _settings(stack)
    calls = []

    class Crash(Exception):
        pass

    def die_after_first_batches(p: jobs.Progress) -> None:
        calls.append(p.messages)
        if p.phase == "catching up" and p.messages > 0 and len(calls) >= 3:
            raise Crash

    async def first() -> None:
        client = _aio(stack)
        try:
            await jobs.rebuild(settings, client, die_after_first_batches)
        finally:
            await client.aclose()

    with pytest.raises(Crash):
        asyncio.run(first())
    state = orjson.loads(redis.get(keys.rebuild_state()) or b"null")
    assert state["generation"] == live + 1
    assert redis.get(keys.generation_pointer()) == str(live).encode()  # not switched
    assert _answers(stack) == before  # the live generation still serves
    assert _generation_keys(redis) == {live, live + 1}

    done = _insights(stack, "rebuild", "--yes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed and switched to generation {live + 1}" in done.stderr
    time.sleep(1.5)
    assert _answers(stack) == before
    assert _generation_keys(redis) == {live + 1}


def test_a_rebuild_process_killed_with_sigkill_resumes_and_ends_identical(
    stack: Stack, before: dict[str, str], redis: Redis
) -> None:
    """``insights rebuild`` as its own process, SIGKILLed once the new generation holds
    rollups (no clean-up of any kind runs), then run again."""
    live = int(redis.get(keys.generation_pointer()) or 0)
    target = f"{keys.ROOT}:g{live + 1}:{{d*"
    proc = subprocess.Popen(
        [sys.executable, "-m", "insights", "rebuild", "--yes"],
        env=_env(stack),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(True for _ in redis.scan_iter(match=target, count=1000)):
            assert proc.poll() is None, "the rebuild ended before it wrote anything"
            assert time.monotonic() < deadline, "the rebuild wrote nothing within 60 s"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert redis.get(keys.generation_pointer()) == str(live).encode(), "killed too late"
    assert orjson.loads(redis.get(keys.rebuild_state()) or b"null")["generation"] == live + 1
    assert _answers(stack) == before  # the live generation still serves

    done = _insights(stack, "rebuild", "--yes")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed and switched to generation {live + 1}" in done.stderr
    time.sleep(1.5)
    assert _answers(stack) == before
    assert _generation_keys(redis) == {live + 1}


def test_replay_from_a_time_changes_nothing(stack: Stack, before: dict[str, str]) -> None:
    done = _insights(stack, "replay", "--from-time", "2000-01-01T00:00:00Z")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "replayed" in done.stderr and " 0 messages" not in done.stderr
    time.sleep(1.0)
    assert _answers(stack) == before


def _aio(stack: Stack) -> Any:
    from redis.asyncio import Redis as AsyncRedis

    return AsyncRedis.from_url(stack.redis_url)
