"""Ingest paths end to end: dead letters, latency sketches and live DAUs through the broker."""

from __future__ import annotations

import asyncio
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from aggregators.timebase import US_PER_S
from streams.workloads import AgentRef, epoch_us, latency_event, session_event
from tests.e2e.stack import Stack

T = "20000000-0000-4000-8000-000000000001"
USERS = [f"20000000-0000-4000-8000-0000000001{i:02d}" for i in range(5)]


def _agent(user: str) -> AgentRef:
    return AgentRef(user, f"name-{user[-2:]}", T, T, T)


def _session(n: int, user: str, at: datetime) -> dict[str, Any]:
    return session_event(_agent(user), f"ingest-{n}-{user}-{at.isoformat()}", epoch_us(at), ["ssh"])


def _dead_letters(stack: Stack, expected: int) -> list[dict[str, Any]]:
    async def consume() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            stack.topic("dead_letter"),
            bootstrap_servers=stack.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(30):
                while len(out) < expected:
                    batch = await consumer.getmany(timeout_ms=500)
                    out.extend(orjson.loads(r.value) for rs in batch.values() for r in rs)
        finally:
            await consumer.stop()
        return out

    return asyncio.run(consume())


def test_bad_events_go_to_dead_letters_and_neighbours_count(stack: Stack) -> None:
    day = datetime(2024, 5, 6, 9, tzinfo=UTC)
    good = [_session(i, USERS[i % 3], day + timedelta(minutes=i)) for i in range(6)]
    bad_uuid = dict(good[0], id="bad-uuid", user_id="not-a-uuid")
    negative = dict(good[0], id="negative", sessions={"ssh": -1})
    batch = [good[0], bad_uuid, good[1], negative, good[2]]
    stack.produce("sessions", [orjson.dumps(batch), b"\xff not json", orjson.dumps(good[3:])])
    stack.produce("latency", [orjson.dumps({"id": "x", "time": "soon"})], key=b"k1")

    letters = _dead_letters(stack, 4)
    where = sorted(
        (d["topic"].rsplit(".", 1)[1], -1 if d["index"] is None else d["index"]) for d in letters
    )
    assert where == [
        ("latency", -1),
        ("sessions", -1),
        ("sessions", 1),
        ("sessions", 3),
    ]
    assert all("\n" not in d["reason"] and d["reason"] for d in letters)
    uuid_letter = next(d for d in letters if d["index"] == 1)
    assert "user_id" in uuid_letter["reason"]
    assert orjson.loads(uuid_letter["payload"])["id"] == "bad-uuid"
    assert next(d for d in letters if "latency" in d["topic"])["key"] == "k1"

    body = stack.wait_for(
        "/api/v2/insights/user-activity?start_time=2024-05-06T00:00:00Z"
        "&end_time=2024-05-07T00:00:00Z",
        lambda b: sum(u["seconds"] for u in b["report"]["users"]) == 6 * 60,
    )
    assert [u["user_id"] for u in body["report"]["users"]] == USERS[:3]


def test_latency_samples_become_quantiles(stack: Stack) -> None:
    rnd = random.Random(5)
    at = datetime(2024, 6, 3, 10, tzinfo=UTC)
    values = [round(rnd.lognormvariate(3.4, 0.6), 3) for _ in range(400)]
    start_us = epoch_us(at)
    events = [
        latency_event(_agent(USERS[4]), f"lat-{i}", start_us + i * 30 * US_PER_S, v)
        for i, v in enumerate(values)
    ]
    stack.produce_events("latency", events, batch=100)
    path = (
        "/api/v2/insights/user-latency?start_time=2024-06-03T00:00:00Z"
        "&end_time=2024-06-04T00:00:00Z&percentiles=99"
    )
    body = stack.wait_for(
        path,
        lambda b: (
            len(b["report"]["users"]) == 1 and b["report"]["users"][0]["latency_ms"]["p50"] != -1
        ),
    )
    got = body["report"]["users"][0]
    assert got["username"] == ""  # latency events carry no username
    assert got["template_ids"] == [T]
    ordered = sorted(values)
    for key, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        ref = ordered[math.floor(q * (len(ordered) - 1))]
        assert abs(got["latency_ms"][key] - ref) <= 0.01 * ref


def test_live_activity_shows_in_todays_dau(stack: Stack) -> None:
    now = datetime.now(UTC)
    events = [_session(100 + i, USERS[i], now - timedelta(minutes=2)) for i in range(2)]
    stack.produce_events("sessions", events)
    body = stack.wait_for(
        "/api/v2/insights/daus?tz_offset=0", lambda b: b["entries"][-1]["amount"] == 2
    )
    assert len(body["entries"]) == 61
    assert body["entries"][-1]["date"] == now.strftime("%Y-%m-%d")
