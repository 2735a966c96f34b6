"""The producer SDK against the real broker, worker and API, and its runnable example.

What the SDK sends must be counted exactly: big calls split into several messages within
the contract's limits, every message keyed by the contract's key, filled-in ids unique.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from aggregators.timebase import US_PER_MIN, US_PER_S
from insights.devstack import TANSU_PRODUCER_SETTINGS
from streams.decoding import MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES
from streams.producer import EventProducer
from streams.workloads import AgentRef, epoch_us, latency_event, session_event
from tests.e2e.stack import REPO_ROOT, Stack

T = "40000000-0000-4000-8000-000000000001"
A, B, C = (f"40000000-0000-4000-8000-0000000001{i:02d}" for i in range(3))
DAY = datetime(2024, 7, 1, tzinfo=UTC)
DAY_US = epoch_us(DAY)
WINDOW = "start_time=2024-07-01T00:00:00Z&end_time=2024-07-02T00:00:00Z"


def _agent(user: str) -> AgentRef:
    return AgentRef(user, f"name-{user[-2:]}", T, user, T)  # one workspace per user


def _without_id(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "id"}


def _read_topic(stack: Stack, kind: str, events: int) -> list[tuple[bytes, list[Any]]]:
    """(key, events) of every message on the topic, once ``events`` events were read."""

    async def consume() -> list[tuple[bytes, list[Any]]]:
        consumer = AIOKafkaConsumer(
            stack.topic(kind),
            bootstrap_servers=stack.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * MAX_MESSAGE_BYTES,
        )
        await consumer.start()
        out: list[tuple[bytes, list[Any]]] = []
        try:
            async with asyncio.timeout(30):
                while sum(len(batch) for _, batch in out) < events:
                    fetched = await consumer.getmany(timeout_ms=500)
                    for records in fetched.values():
                        for r in records:
                            assert len(r.value) <= MAX_MESSAGE_BYTES
                            out.append((r.key, orjson.loads(r.value)))
        finally:
            await consumer.stop()
        return out

    return asyncio.run(consume())


def test_big_calls_are_split_into_messages_and_counted_exactly(stack: Stack) -> None:
    # A: a report every minute of the day in one call: 1,440 events, over the event limit.
    every_minute = [
        session_event(_agent(A), f"sdk-a-{m}", DAY_US + m * US_PER_MIN, ["ssh"])
        for m in range(24 * 60)
    ]
    # B: 60 reports of ~40 KiB each (unknown fields are ignored): over the byte limit.
    pad = "p" * (40 << 10)
    padded = [
        {**session_event(_agent(B), f"sdk-b-{m}", DAY_US + m * US_PER_MIN, ["vscode"]), "pad": pad}
        for m in range(60)
    ]
    # C: reports sent one by one without ids, and latency samples without ids: each gets
    # its own, so every sample counts (one shared id would count one).
    rnd = random.Random(11)
    samples = [round(rnd.lognormvariate(3.2, 0.5), 3) for _ in range(300)]
    latencies = [
        _without_id(latency_event(_agent(C), "-", DAY_US + i * 30 * US_PER_S, v))
        for i, v in enumerate(samples)
    ]
    singles = [
        _without_id(session_event(_agent(C), "-", DAY_US + m * US_PER_MIN, ["jetbrains"]))
        for m in range(5)
    ]

    async def produce() -> tuple[int, int]:
        async with EventProducer(
            stack.bootstrap, topic_prefix=stack.prefix, **TANSU_PRODUCER_SETTINGS
        ) as producer:
            await producer.send_many("sessions", every_minute)
            await producer.send_many("sessions", padded)
            for event in singles:
                await producer.send("sessions", event)
            ids = await producer.send_many("latency", latencies)
            assert len(set(ids)) == len(latencies)
        return producer.delivered_messages, producer.delivered_events

    messages, events = asyncio.run(produce())
    sessions = len(every_minute) + len(padded) + len(singles)
    assert events == sessions + len(latencies)

    on_topic = _read_topic(stack, "sessions", sessions)
    assert sum(len(batch) for _, batch in on_topic) == sessions  # no loss, no duplicate
    by_key: dict[bytes, list[int]] = {}
    for key, batch in on_topic:
        assert {e["user_id"].encode() for e in batch} == {key}
        assert len(batch) <= MAX_BATCH_EVENTS
        by_key.setdefault(key, []).append(len(batch))
    assert sorted(by_key[A.encode()]) == [440, 1000]
    assert len(by_key[B.encode()]) >= 3 and sum(by_key[B.encode()]) == 60
    # Sent one by one, delivered as one batch: nothing awaited between those calls, so the
    # linger timer could not fire before the last one.
    assert by_key[C.encode()] == [5]
    assert messages == len(on_topic) + 1  # and one latency message

    body = stack.wait_for(
        f"/api/v2/insights/user-activity?{WINDOW}",
        lambda b: (
            len(b["report"]["users"]) == 3
            and {u["user_id"]: u["seconds"] for u in b["report"]["users"]}
            == {A: 24 * 3600, B: 3600, C: 5 * 60}
        ),
    )
    assert [u["template_ids"] for u in body["report"]["users"]] == [[T]] * 3

    ordered = sorted(samples)
    expected = {q: ordered[math.floor(q / 100 * (len(ordered) - 1))] for q in (50, 95)}

    def quantiles_match(body: Any) -> bool:
        users = {u["user_id"]: u["latency_ms"] for u in body["report"]["users"]}
        return C in users and all(
            abs(users[C][f"p{q}"] - ref) <= 0.01 * ref for q, ref in expected.items()
        )

    stack.wait_for(f"/api/v2/insights/user-latency?{WINDOW}", quantiles_match)


def test_the_example_agent_is_counted(stack: Stack) -> None:
    user = str(uuid.uuid4())
    done = subprocess.run(
        [
            sys.executable,
            "examples/agent_producer.py",
            "--bootstrap",
            stack.bootstrap,
            "--prefix",
            stack.prefix,
            "--embedded-broker",
            "--user-id",
            user,
            "--username",
            "example-agent",
            "--api",
            stack.base_url,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for kind in ("sessions", "latency", "app_usage", "builds"):
        assert re.search(rf"^sent {kind} +id=[0-9a-f-]{{36}}", out, re.MULTILINE), out
    assert f"delivered 4 events for user {user}" in out

    # The printed curl line is the request that shows the user counted.
    match = re.search(r'curl -s -H "Coder-Session-Token: \$TOKEN" "([^"]+)"', out)
    assert match, out
    path = match.group(1).removeprefix(stack.base_url)
    # Each topic is applied on its own: an app session may count the user before the session
    # report that carries the name is applied.
    body = stack.wait_for(
        path,
        lambda b: any(
            u["user_id"] == user and u["username"] == "example-agent" and u["seconds"] == 360
            for u in b["report"]["users"]
        ),
    )
    counted = next(u for u in body["report"]["users"] if u["user_id"] == user)
    assert counted["username"] == "example-agent"
    # The app session covers the minutes of [now - 5 min, now) (five or six of them, as the
    # seconds fall), the session report the minute of now: six distinct minutes either way.
    assert counted["seconds"] == 6 * 60

    now = datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    window = f"start_time={start:%Y-%m-%dT%H:%M:%SZ}&end_time={end:%Y-%m-%dT%H:%M:%SZ}"
    # The user shows as soon as its session is applied; its latency sample comes from another
    # topic, applied on its own: wait for the sample, not just the user.
    latency = stack.wait_for(
        f"/api/v2/insights/user-latency?{window}",
        lambda b: any(
            u["user_id"] == user and u["latency_ms"]["p50"] != -1 for u in b["report"]["users"]
        ),
    )
    sample = next(u for u in latency["report"]["users"] if u["user_id"] == user)
    assert abs(sample["latency_ms"]["p50"] - 23.4) <= 0.01 * 23.4
