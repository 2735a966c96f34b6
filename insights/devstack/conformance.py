"""Conformance checks: does a broker / Redis server give the guarantees the worker relies on?

Used by the integration tests and by ``python -m insights.devstack`` (see :func:`main`), which
starts both dev-stack servers, checks them and prints the Tansu quirk figures quoted in the
:mod:`insights.devstack` package docstring. Both checks also run against external servers.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from insights.devstack.servers import TANSU_PRODUCER_SETTINGS, start_broker, start_redis

__all__ = ["BrokerCheck", "BrokerCheckError", "check_broker", "check_redis", "main"]

_CLIENT_ID: Final = "insights-embedded-check"


class BrokerCheckError(AssertionError):
    """The broker violated a guarantee the worker relies on (see :func:`check_broker`)."""


@dataclass(frozen=True)
class BrokerCheck:
    """What :func:`check_broker` verified and measured."""

    topic: str
    partitions: int
    records_per_partition: int
    #: Seconds until a lone consumer of a fresh group got its assignment (quirk 2).
    first_join_s: float
    #: Seconds for the restarted consumer to rejoin the same group (quirk 3).
    rejoin_s: float
    #: Offsets committed before the restart, by partition.
    committed: Mapping[int, int]
    #: First offset the restarted consumer received, by partition (must equal ``committed``).
    resumed_from: Mapping[int, int]
    #: Log-end offset after one 3-record produce batch to an empty partition (quirk 1).
    end_offset_expected: int
    end_offset_reported: int

    @property
    def end_offsets_reliable(self) -> bool:
        return self.end_offset_reported == self.end_offset_expected


async def _create_fresh_topics(bootstrap: str, topics: Mapping[str, int], deadline: float) -> None:
    """Create never-used ``topics`` (name -> partitions); return once each has its leaders.

    Not :func:`streams.kafka_admin.create_topics`: the dev stack sits below ``streams`` and must
    not import it, and a check wants stricter answers anyway. The names are fresh, so any error
    (even TOPIC_ALREADY_EXISTS) is a violation, as is a partition count other than the one asked
    for (what a metadata auto-create, quirk 5, would produce).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=_CLIENT_ID)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, partitions, 1) for name, partitions in topics.items()]
        )
        # v0 entries are (topic, code); later versions add an error message.
        errors = {entry[0]: entry[1:] for entry in response.topic_errors if entry[1] != 0}
        if errors:
            raise BrokerCheckError(f"CreateTopics of fresh names failed: {errors}")
        while True:
            described = await admin.describe_topics(list(topics))
            ready = {
                t["topic"]: len(t["partitions"])
                for t in described
                if t["error_code"] == 0
                and t["partitions"]
                and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
            }
            wrong = {name: n for name, n in ready.items() if n != topics[name]}
            if wrong:
                raise BrokerCheckError(f"created {dict(topics)}, metadata shows {wrong}")
            if ready.keys() == topics.keys():
                return
            if time.monotonic() >= deadline:
                raise BrokerCheckError(f"topics not ready before the deadline: {described}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _start_and_join(consumer: Any, deadline: float, what: str) -> float:
    """Start ``consumer`` and wait for its first assignment; returns the seconds that took.

    Timed from before ``start()``, which itself already waits for the group join.
    """
    started = time.monotonic()
    await consumer.start()
    while not consumer.assignment():
        if time.monotonic() >= deadline:
            raise BrokerCheckError(f"{what}: no partition assignment before the deadline")
        await consumer.getmany(timeout_ms=50)
    return time.monotonic() - started


async def _consume(consumer: Any, count: int, deadline: float, what: str) -> dict[int, list[int]]:
    """Collect ``count`` records, returning the offsets seen per partition in arrival order."""
    seen: dict[int, list[int]] = {}
    total = 0
    while total < count:
        if time.monotonic() >= deadline:
            raise BrokerCheckError(f"{what}: got {total} of {count} records ({seen})")
        batches = await consumer.getmany(timeout_ms=200)
        for tp, records in batches.items():
            seen.setdefault(tp.partition, []).extend(r.offset for r in records)
            total += len(records)
    return seen


async def check_broker(
    bootstrap: str,
    *,
    partitions: int = 3,
    records_per_partition: int = 3,
    session_timeout_ms: int = 6000,
    heartbeat_interval_ms: int = 2000,
    timeout_s: float = 90.0,
) -> BrokerCheck:
    """Verify the broker semantics the worker depends on, and measure the Tansu quirks.

    On a fresh topic: produce ``records_per_partition`` single records to each partition
    (``acks=1``, no idempotence); consume them all in a fresh consumer group
    (``auto_offset_reset="earliest"``, manual commit); commit all but the last record of each
    partition; restart the consumer and check it resumes exactly at the committed offsets.
    Raises :class:`BrokerCheckError` on any violation. Creates topics named
    ``insights-check-*``; the group's restart costs the quirk-3 wait (~11 s at 6000 ms).
    """
    if records_per_partition < 2:
        raise ValueError("records_per_partition must be >= 2 to test resuming mid-partition")
    deadline = time.monotonic() + timeout_s
    topic = f"insights-check-{uuid.uuid4().hex[:12]}"
    probe_topic = f"{topic}-eo"
    group = f"{topic}-group"
    await _create_fresh_topics(bootstrap, {topic: partitions, probe_topic: 1}, deadline)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **TANSU_PRODUCER_SETTINGS)
    await producer.start()
    try:
        for p in range(partitions):
            for i in range(records_per_partition):
                md = await producer.send_and_wait(topic, f"{p}:{i}".encode(), partition=p)
                if md.offset != i:
                    raise BrokerCheckError(f"record {i} of partition {p} got offset {md.offset}")
        # Quirk 1 probe: one produce request carrying a 3-record batch.
        batch = producer.create_batch()
        for i in range(3):
            batch.append(key=None, value=f"eo:{i}".encode(), timestamp=None)
        await (await producer.send_batch(batch, probe_topic, partition=0))
    finally:
        await producer.stop()

    def new_consumer() -> Any:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=_CLIENT_ID,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )

    expected = list(range(records_per_partition))
    commit_at = records_per_partition - 1
    consumer = new_consumer()
    try:
        first_join_s = await _start_and_join(consumer, deadline, "first join")
        seen = await _consume(consumer, partitions * records_per_partition, deadline, "first run")
        if {p: sorted(offsets) for p, offsets in seen.items()} != dict.fromkeys(
            range(partitions), expected
        ):
            raise BrokerCheckError(f"first run consumed offsets {seen}, expected {expected} each")
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        await consumer.commit(dict.fromkeys(tps, commit_at))
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        if committed != dict.fromkeys(range(partitions), commit_at):
            raise BrokerCheckError(f"committed offsets read back as {committed}")
        end_offset_reported = (await consumer.end_offsets([TopicPartition(probe_topic, 0)]))[
            TopicPartition(probe_topic, 0)
        ]
    finally:
        await consumer.stop()

    consumer = new_consumer()
    try:
        rejoin_s = await _start_and_join(consumer, deadline, "rejoin")
        seen = await _consume(
            consumer, partitions * (records_per_partition - commit_at), deadline, "resumed run"
        )
    finally:
        await consumer.stop()
    resumed_from = {p: offsets[0] for p, offsets in seen.items()}
    if resumed_from != committed:
        raise BrokerCheckError(f"resumed from {resumed_from}, committed {committed}")
    return BrokerCheck(
        topic=topic,
        partitions=partitions,
        records_per_partition=records_per_partition,
        first_join_s=first_join_s,
        rejoin_s=rejoin_s,
        committed=committed,
        resumed_from=resumed_from,
        end_offset_expected=3,
        end_offset_reported=end_offset_reported,
    )


#: The Lua the store relies on: cjson and bit must be available to EVAL scripts.
_LUA_PROBE: Final = """
local doc = cjson.decode(ARGV[1])
redis.call('SET', KEYS[1], cjson.encode({n = doc.n, mask = bit.band(doc.n, 6)}))
return {bit.bor(doc.n, 8), bit.bxor(doc.n, 1), bit.lshift(1, 4), redis.call('GET', KEYS[1])}
"""


def check_redis(url: str) -> str:
    """PING/SET/GET/EVAL (with cjson and bit) against ``url``; returns the server's version.

    Touches only one random key, deleted afterwards, so it is safe against a shared server.
    """
    client = redis.Redis.from_url(url, socket_timeout=5.0)
    key = f"insights:check:{uuid.uuid4().hex}"
    try:
        if client.ping() is not True:
            raise AssertionError("PING did not answer PONG")
        client.set(key, b"v", ex=60)
        if client.get(key) != b"v":
            raise AssertionError("GET did not return what SET stored")
        result = client.eval(_LUA_PROBE, 1, key, '{"n": 5}')
        if result[:3] != [13, 4, 16] or sorted(result[3]) != sorted(b'{"n":5,"mask":4}'):
            raise AssertionError(f"Lua cjson/bit probe returned {result!r}")
        info = client.info("server")
    finally:
        client.delete(key)
        client.close()
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def main() -> int:
    """``python -m insights.devstack``: start both servers, run both checks, print the figures."""
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    with start_broker() as broker, start_redis() as redis_proc:
        print(f"broker {broker.address} pid={broker.pid} up in {time.monotonic() - started:.2f}s")
        print(
            f"redis  {redis_proc.address} pid={redis_proc.pid}: {check_redis(redis_proc.address)}"
        )
        for session_ms, heartbeat_ms in ((6000, 2000), (10000, 3000)):
            result = asyncio.run(
                check_broker(
                    broker.address,
                    session_timeout_ms=session_ms,
                    heartbeat_interval_ms=heartbeat_ms,
                )
            )
            print(
                f"session {session_ms} ms / heartbeat {heartbeat_ms} ms: "
                f"first join {result.first_join_s:.2f}s, restart rejoin {result.rejoin_s:.2f}s, "
                f"resumed at committed offsets {dict(result.resumed_from)}"
            )
        print(
            f"log-end offset after a 3-record batch: reported {result.end_offset_reported}, "
            f"expected {result.end_offset_expected}"
            + ("" if result.end_offsets_reliable else "  (quirk 1: do not trust end offsets)")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
