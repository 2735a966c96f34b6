"""The broker and Redis fixtures work for real, and so does the embedded process management."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from insights import devstack
from insights.devstack import conformance
from streams.kafka_admin import cluster_id, create_topics

pytestmark = pytest.mark.integration

PARTITIONS = 3
# Every Tansu group join is held for half the session timeout (>= ~1 s); a short session keeps
# the join (~1 s) and the generation-0 restart penalty (~4 s) small. See insights.devstack.
FAST_GROUP = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 600}


def _name(prefix: str) -> str:
    return f"test-{prefix}-{uuid.uuid4().hex[:10]}"


async def _partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described}


async def test_create_topics_is_idempotent(kafka_bootstrap: str) -> None:
    a, b = _name("topic-a"), _name("topic-b")
    await create_topics(kafka_bootstrap, [a], PARTITIONS)
    # Again, together with a new one and a duplicate name: existing topics are fine.
    await create_topics(kafka_bootstrap, [a, b, b], PARTITIONS)
    assert await _partition_counts(kafka_bootstrap, [a, b]) == {a: PARTITIONS, b: PARTITIONS}


async def test_create_topics_rejects_bad_partition_count(kafka_bootstrap: str) -> None:
    with pytest.raises(ValueError, match="partitions"):
        await create_topics(kafka_bootstrap, [_name("bad")], 0)


def _group_consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **FAST_GROUP,
    )


async def _take(consumer: AIOKafkaConsumer, count: int) -> dict[int, list[tuple[int, bytes]]]:
    """Exactly ``count`` records (fails on timeout), as (offset, value) per partition."""
    got: dict[int, list[tuple[int, bytes]]] = {}

    async def collect() -> None:
        total = 0
        while total < count:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                got.setdefault(tp.partition, []).extend((r.offset, r.value) for r in records)
                total += len(records)

    await asyncio.wait_for(collect(), timeout=60)
    return got


async def test_produce_consume_commit_resume(kafka_bootstrap: str) -> None:
    topic, group = _name("events"), _name("group")
    await create_topics(kafka_bootstrap, [topic], PARTITIONS)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks=1, enable_idempotence=False)
    await producer.start()
    try:
        for i in range(3):
            for p in range(PARTITIONS):
                md = await producer.send_and_wait(topic, f"p{p}-r{i}".encode(), partition=p)
                assert (md.partition, md.offset) == (p, i)
    finally:
        await producer.stop()

    consumer = _group_consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        first = await _take(consumer, 3 * PARTITIONS)
        assert first == {
            p: [(i, f"p{p}-r{i}".encode()) for i in range(3)] for p in range(PARTITIONS)
        }
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        # Only the first two records of each partition count as processed.
        await consumer.commit(dict.fromkeys(tps, 2))
        assert [await consumer.committed(tp) for tp in tps] == [2] * PARTITIONS
    finally:
        await consumer.stop()

    # A restarted member of the same group resumes at the committed offsets, not at 0 ...
    consumer = _group_consumer(kafka_bootstrap, topic, group)
    await consumer.start()
    try:
        resumed = await _take(consumer, PARTITIONS)
        assert resumed == {p: [(2, f"p{p}-r2".encode())] for p in range(PARTITIONS)}
        # ... and keeps receiving what is produced after it joined.
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, **devstack.TANSU_PRODUCER_SETTINGS
        )
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"late", partition=1)
        finally:
            await producer.stop()
        assert await _take(consumer, 1) == {1: [(3, b"late")]}
    finally:
        await consumer.stop()


async def test_the_embedded_broker_says_it_is_one(kafka_bootstrap: str) -> None:
    """Workers pick the embedded broker's group timing by this id (Settings.group_timing)."""
    assert await cluster_id(kafka_bootstrap) == devstack.EMBEDDED_CLUSTER_ID


async def test_check_broker(kafka_bootstrap: str) -> None:
    result = await conformance.check_broker(kafka_bootstrap, **FAST_GROUP)
    assert result.resumed_from == result.committed == dict.fromkeys(range(3), 2)
    assert result.first_join_s < 30
    assert result.rejoin_s < 30


async def test_redis_ping_set_get(redis_client: Redis) -> None:
    assert await redis_client.ping() is True
    assert await redis_client.set("greeting", "hello") is True
    assert await redis_client.get("greeting") == b"hello"


async def test_redis_client_starts_empty(redis_client: Redis) -> None:
    # FLUSHALL ran before this test, whatever ran before it.
    assert await redis_client.dbsize() == 0
    await redis_client.set("leftover", "x")


LUA = """
local doc = cjson.decode(ARGV[1])
local flags = bit.bor(bit.band(doc.flags, 0x0F), bit.lshift(1, 8))
redis.call('HSET', KEYS[1], 'user', doc.user, 'flags', flags)
local stored = redis.call('HGETALL', KEYS[1])
return cjson.encode({
  user = doc.user,
  flags = flags,
  xor = bit.bxor(doc.flags, 0xFF),
  hex = bit.tohex(flags, 4),
  n = #stored / 2,
  nums = doc.nums,
})
"""


async def test_redis_eval_lua_with_cjson_and_bit(redis_client: Redis) -> None:
    raw = await redis_client.eval(LUA, 1, "doc:1", '{"user": "ann", "flags": 45, "nums": [1, 2]}')
    assert json.loads(raw) == {
        "user": "ann",
        "flags": (45 & 0x0F) | 256,
        "xor": 45 ^ 0xFF,
        "hex": "010d",
        "n": 2,
        "nums": [1, 2],
    }
    assert await redis_client.hgetall("doc:1") == {b"user": b"ann", b"flags": b"269"}
    # The same script runs by SHA once loaded (the store uses EVALSHA).
    sha = await redis_client.script_load(LUA)
    again = await redis_client.evalsha(sha, 1, "doc:2", '{"user": "bo", "flags": 1, "nums": []}')
    assert json.loads(again)["user"] == "bo"


def test_check_redis(redis_url: str) -> None:
    assert conformance.check_redis(redis_url).split()[0] in {"valkey", "redis"}


# --- process management (fast; these start their own short-lived processes) -----------------


def _group_gone(pgid: int, within_s: float = 5.0) -> bool:
    # The killed grandchild is an orphan until init reaps it, and signal 0 still reaches a zombie,
    # so poll briefly instead of checking once.
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_managed_process_stop_escalates_to_sigkill_for_the_whole_group() -> None:
    # The shell and its child ignore SIGTERM, so only the SIGKILL to the group ends them.
    proc = devstack.ManagedProcess(
        "stubborn",
        ["sh", "-c", "trap '' TERM; sleep 60 & wait"],
        address="none",
    )
    assert proc.is_running()
    time.sleep(0.2)  # let the trap be installed
    started = time.monotonic()
    proc.stop(timeout_s=0.5)
    assert 0.4 < time.monotonic() - started < 5
    assert proc.returncode == -signal.SIGKILL
    assert _group_gone(proc.pid)
    assert not proc.workdir.exists()  # the temp dir it created is removed
    proc.stop()  # idempotent


def test_managed_process_context_manager_and_log() -> None:
    with devstack.ManagedProcess(
        "talker",
        [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"],
        address="none",
    ) as proc:
        deadline = time.monotonic() + 10
        while "hi" not in proc.log_tail() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hi" in proc.log_tail()
        assert proc.name == "talker" and proc.pid > 0
    assert not proc.is_running()
    assert proc.returncode == -signal.SIGTERM


def test_wait_reports_early_exit_with_log_tail() -> None:
    proc = devstack.ManagedProcess(
        "crasher", ["sh", "-c", "echo 'boom: cannot start' >&2; exit 3"], address="none"
    )
    try:
        with pytest.raises(devstack.EmbeddedStartError, match=r"(?s)exited with code 3.*boom"):
            devstack.wait_for_kafka(f"127.0.0.1:{devstack.free_port()}", 10, process=proc)
    finally:
        proc.stop()


def test_wait_times_out_with_clear_error() -> None:
    port = devstack.free_port()
    started = time.monotonic()
    with pytest.raises(devstack.EmbeddedStartError, match=r"within 0\.5s"):
        devstack.wait_for_redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.5)
    assert time.monotonic() - started < 5


def test_start_on_a_taken_port_fails_fast(redis_url: str) -> None:
    taken = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(devstack.EmbeddedStartError, match="not available"):
        devstack.start_broker(taken)


def test_start_and_stop_redis_with_explicit_port() -> None:
    port = devstack.free_port()
    with devstack.start_redis(port) as server:
        assert server.address == f"redis://127.0.0.1:{port}/0"
        assert server.is_running()
        devstack.wait_for_redis(server.address, timeout_s=1)
        workdir = server.workdir
    assert not server.is_running()
    assert server.returncode == 0  # SIGTERM is a clean shutdown
    assert not workdir.exists()
