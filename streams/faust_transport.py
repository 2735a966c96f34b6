"""A Faust app whose Kafka consumer's fetch wait is a setting, and whose commits need a
group membership.

Faust hands aiokafka a fixed ``fetch_max_wait_ms=1500``.  Apache Kafka answers
a fetch as soon as data arrives (``fetch.min.bytes=1``), so there the wait only
bounds idle polls.  Tansu, the embedded broker, answers only when the wait
expires: a produced event then reached the worker ~0.5 s later (measured 553 ms
with a bare aiokafka consumer at 1500 ms, 4 ms at 100 ms), which was half of
the 1 s freshness budget.

When the coordinator forgets the consumer (a broker restarted without its state, a
group deleted), aiokafka resets the member to generation -1 and keeps fetching at the
positions of the old assignment until it has joined again.  A commit sent meanwhile
carries generation -1, which brokers accept as a commit of a consumer outside any
group; on a restarted, empty broker it stored offsets fetched on the old log, and the
join then started past records nobody had read (measured: 3 of 4 one-partition
restarts lost events).  ``guard_commits`` refuses such commits the way a broker refuses
a stale member's, so Faust drops them and the join finds no offset, or the last one
committed by a member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiokafka
import faust
import structlog
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import UnknownMemberIdError
from aiokafka.protocol.commit import OffsetCommitRequest
from faust.transport.drivers import aiokafka as faust_aiokafka

log = structlog.get_logger("insights.worker")

NO_GENERATION = OffsetCommitRequest.DEFAULT_GENERATION_ID


def guard_commits(coordinator: Any) -> None:
    """Make ``coordinator`` refuse to send a commit while it is not a group member.

    The check sits where aiokafka builds the request, with no await in between, so a
    membership lost while a commit waits for the coordinator is seen too.  The error is the
    one a broker answers a stale member with: aiokafka turns it into ``CommitFailedError``
    ("already rebalanced"), which Faust drops; the records are read again after the join.
    """
    if not isinstance(coordinator, GroupCoordinator):
        return  # no group: nothing is committed for a group
    send: Callable[[Any, Any], Awaitable[None]] = coordinator._do_commit_offsets

    async def commit_as_member(assignment: Any, offsets: Any) -> None:
        if offsets and coordinator.generation == NO_GENERATION:
            log.warning(
                "offset commit skipped: the consumer is not a group member until it rejoins",
                partitions=len(offsets),
            )
            raise UnknownMemberIdError("not a member of the group: commit skipped")
        await send(assignment, offsets)

    coordinator._do_commit_offsets = commit_as_member


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    fetch_max_wait_ms = 500

    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads it when the consumer starts; the consumer is not started yet.
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # The coordinator exists once the consumer has started.
        guard_commits(getattr(self._consumer, "_coordinator", None))


def _transport(fetch_max_wait_ms: int) -> type[faust_aiokafka.Transport]:
    thread = type("ConsumerThread", (_ConsumerThread,), {"fetch_max_wait_ms": fetch_max_wait_ms})

    class Consumer(faust_aiokafka.Consumer):
        Thread = thread

        def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
            return thread(self, loop=self.loop, beacon=self.beacon)  # type: ignore[no-any-return]

    return type("Transport", (faust_aiokafka.Transport,), {"Consumer": Consumer})


class App(faust.App):
    """``faust.App`` with ``fetch_max_wait_ms`` for its worker consumer."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self._transport_class = _transport(fetch_max_wait_ms)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return self._transport_class(self.conf.broker_consumer, self)
