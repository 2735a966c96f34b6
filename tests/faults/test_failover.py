"""Two workers, one SIGKILLed mid-stream: the other takes its partitions over within seconds.

Runs on the default group timing (``INSIGHTS_BROKER_SESSION_TIMEOUT_S`` /
``INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S`` unset: 6 s / 1 s), against the session's
broker. Events keep being produced to every partition while the worker dies; the test
then waits until the API shows every event (the takeover time), and compares every
endpoint with the oracle: nothing lost (the dead worker's uncommitted batches are
redelivered to the survivor) and nothing counted twice.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import orjson
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from aggregators.store import RollupStore
from streams.workloads import AgentRef, epoch_us
from tests.e2e.stack import Deployment, Stack, deployment, produce_to
from tests.faults.exact import Expectation, Windows, today_utc, wait_until_exact
from tests.faults.workload import Workload, utc_midnight
from tests.oracle import Oracle

DB = 15  # a Redis database of its own (tests/e2e/conftest.py hands out 1, 2, ...)
PARTITIONS = 3
TOPIC_KINDS = ("sessions", "app_usage", "latency", "builds")
TEMPLATES = ["40000000-0000-4000-8000-000000000001", "40000000-0000-4000-8000-000000000002"]
USERS = [f"40000000-0000-4000-8000-0000000001{i:02d}" for i in range(6)]
WINDOWS = Windows(today_utc() - timedelta(days=3), 2)
DAY_US = epoch_us(utc_midnight(WINDOWS.first))
START_NS, END_NS = DAY_US * 1000, DAY_US * 1000 + 2 * 86_400 * 10**9
PATH = WINDOWS.paths()["user-activity"]
RESUME_BUDGET_S = 15.0  # the goal is 10 s; the rest is slack for a loaded 2-core machine
STREAM_MESSAGES = 30  # produced 0.1 s apart, round robin over the partitions
KILL_AFTER = 8  # messages of the stream


class Stream:
    """Event n: its own minute, user and template, so every event moves the numbers."""

    def __init__(self) -> None:
        self.work = Workload()

    def message(self, first: int, count: int) -> bytes:
        for n in range(first, first + count):
            user = USERS[n % len(USERS)]
            template = TEMPLATES[n % len(TEMPLATES)]
            agent = AgentRef(user, f"user-{n % len(USERS)}", template, template, template)
            at = DAY_US + 7 * n * 60_000_000
            self.work.session(agent, f"failover-{n}", at, {"ssh": 1, "vscode": 1}, 1)
        return orjson.dumps(self.work.wire["sessions"][-count:])

    def expected(self) -> dict[str, tuple[int, list[str]]]:
        summary = Oracle(self.work.events).summary(START_NS, END_NS, None)
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
        stream = Stream()
        n = 0
        for p in range(PARTITIONS):
            produce_to(stack.bootstrap, topic, p, [stream.message(n, 5)])
            n += 5
        _wait_until_exact(stack, stream.expected(), 30)

        # The stream: one message every 0.1 s, round robin; the victim dies in the middle.
        killed_at: list[float] = []

        def kill_soon() -> None:
            time.sleep(KILL_AFTER * 0.1)
            killed_at.append(time.monotonic())
            dep.kill_worker(victim)

        killer = threading.Thread(target=kill_soon)
        killer.start()
        for i in range(STREAM_MESSAGES):
            produce_to(stack.bootstrap, topic, i % PARTITIONS, [stream.message(n, 3)])
            n += 3
            time.sleep(0.1)
        killer.join()
        # The stream outlasted the victim: its partitions got events after its death.
        assert killed_at and victim.poll() is not None

        visible_at, _ = _wait_until_exact(stack, stream.expected(), 25)
        resumed_s = visible_at - killed_at[0]
        print(f"\nfailover: every event visible {resumed_s:.1f} s after the SIGKILL")
        assert resumed_s < RESUME_BUDGET_S, (resumed_s, stack.log_tail())
        survivor = next(p for p in dep.workers if p is not victim)
        assert survivor.poll() is None
        _wait_for_owner(dep, survivor.pid, len(TOPIC_KINDS) * PARTITIONS)
        wait_until_exact(stack, Expectation(stream.work.events, WINDOWS), 10)


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
