"""The worker's Faust app hands its fetch wait to aiokafka (Faust hard-codes 1500 ms) and
commits offsets only as a group member."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import CommitFailedError, UnknownMemberIdError
from faust.transport.drivers import aiokafka as faust_aiokafka

from streams.faust_transport import NO_GENERATION, App, guard_commits


def test_worker_consumer_gets_the_configured_fetch_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    def faust_default(self: Any, transport: Any) -> Any:
        return SimpleNamespace(_fetch_max_wait_ms=1500)

    monkeypatch.setattr(
        faust_aiokafka.AIOKafkaConsumerThread, "_create_worker_consumer", faust_default
    )
    app = App("fetch-wait-test", broker="kafka://127.0.0.1:1", fetch_max_wait_ms=123)
    thread = object.__new__(app.transport.Consumer.Thread)
    assert thread._create_worker_consumer(app.transport)._fetch_max_wait_ms == 123


class _Coordinator(GroupCoordinator):
    """A group coordinator that records the commits it would send (no client)."""

    def __init__(self, generation: int) -> None:  # no super(): nothing to connect
        self.generation = generation
        self.sent: list[dict[str, int]] = []

    async def _do_commit_offsets(self, assignment: Any, offsets: Any) -> None:
        self.sent.append(offsets)


def test_a_member_commits() -> None:
    coordinator = _Coordinator(generation=4)
    guard_commits(coordinator)
    asyncio.run(coordinator._do_commit_offsets(None, {"tp": 6}))
    assert coordinator.sent == [{"tp": 6}]


def test_a_consumer_that_lost_its_membership_does_not_commit() -> None:
    """Generation -1 (aiokafka's reset after the coordinator forgot the member): brokers take
    such a commit as one of a consumer outside any group, so it must not be sent."""
    coordinator = _Coordinator(generation=4)
    guard_commits(coordinator)
    coordinator.generation = NO_GENERATION  # lost while the commit was on its way
    with pytest.raises(UnknownMemberIdError):
        asyncio.run(coordinator._do_commit_offsets(None, {"tp": 6}))
    assert coordinator.sent == []
    coordinator.generation = 5  # joined again
    asyncio.run(coordinator._do_commit_offsets(None, {"tp": 1}))
    assert coordinator.sent == [{"tp": 1}]


def test_aiokafka_reports_the_refusal_as_a_rebalance_faust_drops() -> None:
    """``commit_offsets`` turns the error into the ``CommitFailedError`` whose text Faust's
    consumer thread checks ("already rebalanced") to drop the commit without crashing."""

    async def commit() -> None:
        coordinator = _Coordinator(generation=NO_GENERATION)
        coordinator._commit_lock = asyncio.Lock()

        async def known() -> None:
            return None

        coordinator.ensure_coordinator_known = known
        guard_commits(coordinator)
        await coordinator.commit_offsets(None, {"tp": 6})

    with pytest.raises(CommitFailedError, match="already rebalanced"):
        asyncio.run(commit())


def test_no_group_no_guard() -> None:
    thing = SimpleNamespace(generation=NO_GENERATION)
    guard_commits(thing)
    assert not hasattr(thing, "_do_commit_offsets")
