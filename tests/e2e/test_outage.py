"""A Redis outage: the API answers 503 at once, the worker stalls and loses nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from insights import devstack
from tests.e2e.stack import running_stack
from tests.e2e.test_ingest import USERS, _session

PATH = (
    "/api/v2/insights/user-activity?start_time=2024-07-01T00:00:00Z&end_time=2024-07-02T00:00:00Z"
)


def test_redis_outage_stalls_the_worker_and_loses_nothing(kafka_bootstrap: str) -> None:
    port = devstack.free_port()
    redis = devstack.start_redis(port)
    try:
        with running_stack(kafka_bootstrap, redis.address, 0) as stack:
            redis.stop()
            started = time.monotonic()
            status, body, _ = stack.get(PATH)
            assert status == 503
            assert body["message"] == "Insights store unavailable."
            assert time.monotonic() - started < 5

            at = datetime(2024, 7, 1, 12, tzinfo=UTC)
            events = [_session(i, USERS[i % 4], at + timedelta(minutes=i)) for i in range(40)]
            stack.produce_events("sessions", events, batch=10)
            time.sleep(3)  # the worker holds the batch and retries

            # The server comes back empty (no persistence): what counts now was
            # produced during the outage, so nothing of it may have been dropped.
            redis = devstack.start_redis(port)
            body = stack.wait_for(
                PATH, lambda b: sum(u["seconds"] for u in b["report"]["users"]) == 40 * 60
            )
            assert [u["user_id"] for u in body["report"]["users"]] == USERS[:4]
            assert "store write failed; retrying" in (stack.logs / "worker.log").read_text()
    finally:
        redis.stop()
