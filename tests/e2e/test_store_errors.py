"""Store errors end to end: a batch refused for good goes to the dead-letter topic and the
partition moves on; a transient failure is retried and loses nothing.

The worker is a real ``insights worker`` process whose store has two injected faults
(``tests/e2e/faulty_worker.py``). The errors real Redis servers raise are classified here too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from redis import Redis as SyncRedis
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from insights import devstack
from streams.worker import is_transient_store_error
from streams.workloads import AgentRef, epoch_us, session_event
from tests.e2e.faulty_worker import FLAKY_AT, POISON_AT
from tests.e2e.stack import Stack, deployment
from tests.e2e.test_ingest import _dead_letters

DB = 14  # a Redis database of its own (tests/e2e/conftest.py hands out 1, 2, ...)
T = "50000000-0000-4000-8000-000000000001"
USERS = [f"50000000-0000-4000-8000-0000000001{i:02d}" for i in range(3)]
LATER_AT = POISON_AT + timedelta(days=2)
PATH = (
    "/api/v2/insights/user-activity?start_time=2024-09-01T00:00:00Z&end_time=2024-09-08T00:00:00Z"
)


def _session(tag: str, user: str, at: datetime) -> dict[str, Any]:
    agent = AgentRef(user, f"name-{user[-2:]}", T, T, T)
    return session_event(agent, f"{tag}-{at.isoformat()}", epoch_us(at), ["ssh"])


def test_a_refused_batch_is_dead_lettered_and_the_partition_moves_on(
    kafka_bootstrap: str, redis_url: str
) -> None:
    with SyncRedis.from_url(redis_url.rsplit("/", 1)[0] + f"/{DB}") as r:
        r.flushdb()
    module = "tests.e2e.faulty_worker"
    with deployment(kafka_bootstrap, redis_url, DB, workers=1, worker_module=module) as dep:
        stack = dep.stack
        key = b"one-partition"  # every message below lands on the same partition
        poisoned = [_session("bad", USERS[0], POISON_AT + timedelta(minutes=i)) for i in range(5)]
        invalid = dict(poisoned[0], id="invalid", user_id="not-a-uuid")
        stack.produce("sessions", [orjson.dumps([*poisoned, invalid])], key=key)

        letters = _dead_letters(stack, 6)
        assert len(letters) == 6
        refused = [d for d in letters if d["reason"].startswith("store_error")]
        assert sorted(d["index"] for d in refused) == [0, 1, 2, 3, 4]
        assert {d["reason"] for d in refused} == {"store_error: ResponseError"}
        assert {d["key"] for d in refused} == {"one-partition"}
        assert {d["topic"] for d in refused} == {stack.topic("sessions")}
        assert [orjson.loads(d["payload"]) for d in sorted(refused, key=lambda d: d["index"])] == (
            poisoned
        )
        # The invalid element keeps its own reason, once.
        (other,) = [d for d in letters if not d["reason"].startswith("store_error")]
        assert other["index"] == 5 and "user_id" in other["reason"]

        # Later events of the same partition count: its offsets moved past the refused
        # batch.  The flaky day's batch fails twice on the connection, then goes in.
        later = [_session("later", USERS[1], LATER_AT + timedelta(minutes=i)) for i in range(4)]
        flaky = [_session("flaky", USERS[2], FLAKY_AT + timedelta(minutes=i)) for i in range(3)]
        stack.produce("sessions", [orjson.dumps(later), orjson.dumps(flaky)], key=key)
        body = stack.wait_for(
            PATH,
            lambda b: (
                {u["user_id"]: u["seconds"] for u in b["report"]["users"]}
                == {USERS[1]: 4 * 60, USERS[2]: 3 * 60}
            ),
        )
        assert USERS[0] not in {u["user_id"] for u in body["report"]["users"]}

        log = (stack.logs / "worker-0.log").read_text()
        assert "store refused a batch; its events go to the dead-letter topic" in log
        assert "store write failed; retrying" in log
        assert "ConnectionError" in log
        # Nothing more went to the dead letters: the flaky batch was retried, not refused.
        assert len(_all_dead_letters(stack)) == 6


def _all_dead_letters(stack: Stack) -> list[dict[str, Any]]:
    """Every record of the stack's dead-letter topic, read until it stays quiet for 1 s."""

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
                quiet_since = time.monotonic()
                while time.monotonic() - quiet_since < 1.0:
                    batch = await consumer.getmany(timeout_ms=200)
                    records = [orjson.loads(r.value) for rs in batch.values() for r in rs]
                    if records:
                        out += records
                        quiet_since = time.monotonic()
        finally:
            await consumer.stop()
        return out

    return asyncio.run(consume())


async def test_errors_of_real_servers_are_classified(redis_url: str) -> None:
    """A script error or a wrong type is the batch's: not retried. A refused connection or a
    read-only replica is the server's state: retried."""
    redis = Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{DB}")
    try:
        await redis.set("store-errors:string", "x")
        for script in (
            "return redis.call('HINCRBY', KEYS[1], 'f', 1)",  # WRONGTYPE
            "local t = nil; return t.x",  # a Lua runtime error
        ):
            async with redis.pipeline(transaction=False) as pipe:
                pipe.eval(script, 1, "store-errors:string")
                with pytest.raises(redis_errors.ResponseError) as raised:
                    await pipe.execute()
            assert not is_transient_store_error(raised.value), raised.value
    finally:
        await redis.aclose()

    closed = Redis.from_url(f"redis://127.0.0.1:{devstack.free_port()}/0")
    try:
        with pytest.raises(redis_errors.ConnectionError) as refused:
            await closed.eval("return 1", 0)
        assert is_transient_store_error(refused.value)
    finally:
        await closed.aclose()

    with devstack.start_redis() as server:
        replica = Redis.from_url(server.address)
        try:
            # A replica of a master that is not there: read-only, as during a failover.
            await replica.execute_command("REPLICAOF", "127.0.0.1", str(devstack.free_port()))
            async with replica.pipeline(transaction=False) as pipe:
                pipe.eval("return redis.call('SET', KEYS[1], 'x')", 1, "store-errors:k")
                with pytest.raises(redis_errors.ResponseError) as readonly:
                    await pipe.execute()
            assert isinstance(readonly.value, redis_errors.ReadOnlyError), readonly.value
            assert is_transient_store_error(readonly.value)
        finally:
            await replica.aclose()
