"""Topic administration the worker needs before it starts: create its topics, idempotently.

Runs against any Kafka-protocol broker (a real Kafka cluster or the dev stack's Tansu). The
Tansu quirks referred to by number are described in the :mod:`insights.devstack` docstring;
this module does not import it (``streams`` sits below ``insights``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.metadata import MetadataRequest

__all__ = ["create_topics"]


async def create_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Create ``names`` with ``partitions`` partitions each; existing topics are left as they are.

    Returns once every topic is visible in metadata with a leader for each partition (instant on
    Tansu; a real Kafka cluster can lag a little behind its CreateTopics answer). ``security``:
    the client's TLS/SASL options (``insights.kafka_client.kafka_client_kwargs``).
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    unique = list(dict.fromkeys(names))
    if not unique:
        return
    deadline = time.monotonic() + timeout_s
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="insights-admin",
        request_timeout_ms=int(timeout_s * 1000),
        **(security or {}),
    )
    await admin.start()
    try:
        # No lookup first: on Tansu a metadata request for a missing topic auto-creates it with
        # 4 partitions (quirk 5). Instead create and accept TOPIC_ALREADY_EXISTS (quirk 6).
        response = await admin.create_topics(
            [NewTopic(name, partitions, replication_factor) for name in unique]
        )
        failures: list[str] = []
        # v0 entries are (topic, code); later versions add an error message.
        for entry in response.topic_errors:
            topic, code = entry[0], entry[1]
            message = entry[2] if len(entry) > 2 else None
            if code in (0, TopicAlreadyExistsError.errno):
                continue
            failures.append(f"{topic}: {for_code(code).__name__} ({code}) {message or ''}".strip())
        if failures:
            raise KafkaError("could not create topics: " + "; ".join(failures))
        await _wait_topics_ready(admin, unique, deadline)
    finally:
        await admin.close()


async def _wait_topics_ready(admin: AIOKafkaAdminClient, names: list[str], deadline: float) -> None:
    """Poll metadata until every topic in ``names`` has a leader for each of its partitions."""
    while True:
        described = await admin.describe_topics(names)
        pending = [
            t["topic"]
            for t in described
            if t["error_code"] != 0
            or not t["partitions"]
            or any(p["error_code"] != 0 or p["leader"] < 0 for p in t["partitions"])
        ]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise KafkaError(f"topics not ready in time: {', '.join(pending)}")
        await asyncio.sleep(0.1)


async def cluster_id(
    bootstrap: str, security: Mapping[str, Any] | None = None, timeout_s: float = 5.0
) -> str | None:
    """The id the cluster reports in its metadata (None when it reports none)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, **(security or {}))
    try:
        async with asyncio.timeout(timeout_s):
            await client.bootstrap()
            response = await client.send(client.get_random_node(), MetadataRequest([]))
    finally:
        await client.close()
    found = getattr(response, "cluster_id", None)
    return found if isinstance(found, str) and found else None
