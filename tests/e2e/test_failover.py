"""Two workers, one SIGKILLed mid-stream: the other takes its partitions over within seconds.

Runs on the default group timing (``INSIGHTS_BROKER_SESSION_TIMEOUT_S`` /
``INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S`` unset), against the session's broker. Events keep
being produced to every partition while the worker dies; the test then waits until the API
shows every event and compares the numbers with the oracle: nothing lost (the dead worker's
uncommitted batches are redelivered to the survivor) and nothing counted twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from aggregators.model import Event
from aggregators.store import RollupStore
from aggregators.timebase import NS_PER_US
from streams.decoding import decode_message
from streams.workloads import AgentRef, epoch_us, session_event
from tests.e2e.stack import Deployment, Stack, deployment, produce_to
from tests.oracle import Oracle

DB = 15  # a Redis database of its own (tests/e2e/conftest.py hands out 1, 2, ...)
PARTITIONS = 3
TOPIC_KINDS = ("sessions", "app_usage", "latency", "builds")
TEMPLATES = ["40000000-0000-4000-8000-000000000001", "40000000-0000-4000-8000-000000000002"]
USERS = [f"40000000-0000-4000-8000-0000000001{i:02d}" for i in range(6)]
DAY = datetime(2024, 8, 1, tzinfo=UTC)
START, END = DAY, DAY + timedelta(days=2)
PATH = (
    "/api/v2/insights/user-activity?start_time=2024-08-01T00:00:00Z&end_time=2024-08-03T00:00:00Z"
)
RESUME_BUDGET_S = 15.0  # the goal is 10 s; the rest is slack for a loaded 2-core machine
STREAM_MESSAGES = 30  # produced 0.1 s apart, round robin over the partitions
KILL_AFTER = 8  # messages of the stream


def _wire(n: int) -> dict[str, Any]:
    """Event n: its own minute, user and template, so every event moves the numbers."""
    user = USERS[n % len(USERS)]
    template = TEMPLATES[n % len(TEMPLATES)]
    agent = AgentRef(user, f"user-{n % len(USERS)}", template, template, template)
    at = DAY + timedelta(minutes=7 * n)
    return session_event(agent, f"failover-{n}", epoch_us(at), ["ssh", "vscode"])


def _message(first: int, count: int) -> bytes:
    return orjson.dumps([_wire(n) for n in range(first, first + count)])


def _expected(events: list[dict[str, Any]]) -> dict[str, tuple[int, list[str]]]:
    decoded: list[Event] = []
    now_us = time.time_ns() // NS_PER_US
    for wire in events:
        good, refused = decode_message(orjson.dumps(wire), "sessions", now_us)
        assert not refused
        decoded.extend(good)
    start_ns, end_ns = (epoch_us(t) * 1000 for t in (START, END))
    summary = Oracle(decoded).summary(start_ns, end_ns, None)
    seconds: dict[str, int] = summary["seconds"]  # type: ignore[assignment]
    templates: dict[str, list[str]] = summary["user_templates"]  # type: ignore[assignment]
    return {u: (seconds[u], templates[u]) for u in seconds}


def _observed(body: dict[str, Any]) -> dict[str, tuple[int, list[str]]]:
    return {
        u["user_id"]: (u["seconds"], sorted(u["template_ids"])) for u in body["report"]["users"]
    }


def _assignments(redis_url: str) -> dict[int, set[str]]:
    """pid -> partitions, from the workers' fresh heartbeats."""

    async def read() -> dict[int, set[str]]:
        redis = Redis.from_url(redis_url)
        try:
            beats = await RollupStore(redis).heartbeats.read()
        finally:
            await redis.aclose()
        now_ms = time.time_ns() // 1_000_000
        return {
            int(b.worker_id.split(":")[1]): set(b.partitions)
            for b in beats
            if b.fresh(now_ms, 3000)
        }

    return asyncio.run(read())


def _wait_for_two_owners(dep: Deployment, timeout_s: float = 45.0) -> dict[int, set[str]]:
    """Until both workers hold partitions and together hold each exactly once."""
    every = {f"{dep.stack.topic(k)}:{p}" for k in TOPIC_KINDS for p in range(PARTITIONS)}
    pids = {p.pid for p in dep.workers}
    deadline = time.monotonic() + timeout_s
    owners: dict[int, set[str]] = {}
    while time.monotonic() < deadline:
        owners = _assignments(dep.stack.redis_url)
        held = [owners.get(pid, set()) & every for pid in pids]  # not Faust's leader topic
        if all(held) and sum(map(len, held)) == len(every) and set().union(*held) == every:
            return owners
        time.sleep(0.25)
    raise AssertionError(f"the two workers never shared the partitions: {owners}\n")


def _wait_until_exact(stack: Stack, expected: Any, timeout_s: float) -> tuple[float, Any]:
    deadline = time.monotonic() + timeout_s
    body: Any = None
    while time.monotonic() < deadline:
        status, body, _ = stack.get(PATH)
        if status == 200 and _observed(body) == expected:
            return time.monotonic(), body
        time.sleep(0.1)
    raise AssertionError(f"not exact in {timeout_s:g}s: {body and _observed(body)}")


def test_a_killed_worker_is_replaced_within_seconds_and_nothing_is_lost(
    kafka_bootstrap: str, redis_url: str
) -> None:
    base = redis_url.rsplit("/", 1)[0]
    with SyncRedis.from_url(f"{base}/{DB}") as r:
        r.flushdb()
    with deployment(kafka_bootstrap, redis_url, DB, workers=2) as dep:
        stack = dep.stack
        topic = stack.topic("sessions")
        owners = _wait_for_two_owners(dep)
        victim = next(
            p for p in dep.workers if any(tp.startswith(topic + ":") for tp in owners[p.pid])
        )

        # Before: every partition in use, both workers busy.
        produced: list[dict[str, Any]] = []
        n = 0
        for p in range(PARTITIONS):
            produce_to(stack.bootstrap, topic, p, [_message(n, 5)])
            produced += [_wire(i) for i in range(n, n + 5)]
            n += 5
        _wait_until_exact(stack, _expected(produced), 30)

        # The stream: one message every 0.1 s, round robin; the victim dies in the middle.
        killed_at: list[float] = []

        def kill_soon() -> None:
            time.sleep(KILL_AFTER * 0.1)
            killed_at.append(time.monotonic())
            dep.kill_worker(victim)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        for i in range(STREAM_MESSAGES):
            produce_to(stack.bootstrap, topic, i % PARTITIONS, [_message(n, 3)])
            produced += [_wire(j) for j in range(n, n + 3)]
            n += 3
            time.sleep(0.1)
        killer.join()
        # The stream outlasted the victim: its partitions got events after its death.
        assert killed_at and victim.poll() is not None

        visible_at, _ = _wait_until_exact(stack, _expected(produced), 25)
        resumed_s = visible_at - killed_at[0]
        print(f"\nfailover: every event visible {resumed_s:.1f} s after the SIGKILL")
        assert resumed_s < RESUME_BUDGET_S, (resumed_s, stack.log_tail())
        survivor = next(p for p in dep.workers if p is not victim)
        assert survivor.poll() is None
        _wait_for_owner(dep, survivor.pid, len(TOPIC_KINDS) * PARTITIONS)


def _wait_for_owner(dep: Deployment, pid: int, partitions: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    owners: dict[int, set[str]] = {}
    while time.monotonic() < deadline:
        owners = _assignments(dep.stack.redis_url)
        if (
            len({tp for tp in owners.get(pid, set()) if tp.startswith(dep.stack.prefix)})
            == partitions
        ):
            return
        time.sleep(0.25)
    raise AssertionError(f"worker {pid} does not hold all {partitions} partitions: {owners}")
