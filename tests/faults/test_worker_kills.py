"""A lone worker SIGKILLed 10 times at random moments while >= 150,000 events stream in.

The events (``tests.faults.workload``, seeded) go out in batch messages of 500-1,000
events, in random order, in 11 rounds. During each of the first 10 rounds the worker is
SIGKILLed at a seeded random moment (no clean stop, offsets of its last batches
uncommitted) and a new one is started at once; one marker event per partition of the
sessions topic then measures the recovery: the time from the kill until the new worker
has consumed everything sent before the markers. After the last round every endpoint
must agree with the oracle: the redelivered batches lost nothing and counted nothing
twice. The group session is 3 s here (default 6 s, where each recovery takes about 13 s,
the old session having to expire first); exactness does not depend on it.
"""

from __future__ import annotations

import random
import time
from datetime import timedelta

from redis import Redis as SyncRedis

from tests.e2e.stack import deployment
from tests.faults.exact import Expectation, Windows, today_utc, wait_until_exact
from tests.faults.support import Markers, Sender, send
from tests.faults.workload import generate

SEED = 20240901
KILLS = 10
USERS, DAYS = 46, 10  # about 171,000 events
MIN_EVENTS = 150_000
DB = 13  # a Redis database of its own (tests/e2e/conftest.py hands out 1, 2, ...)
PARTITIONS = 3
PAUSE_S = 0.05  # between the messages of a round: a round lasts a second or two
RECOVERY_TIMEOUT_S = 60.0
# A 3 s session (the default is 6 s) halves the wait for the killed worker's session to
# expire and the join hold after each kill: 10 kills fit the suite's time budget.
GROUP_TIMING = {
    "INSIGHTS_BROKER_SESSION_TIMEOUT_S": "3",
    "INSIGHTS_BROKER_HEARTBEAT_INTERVAL_S": "1",
}
EXACT_TIMEOUT_S = 90.0


def test_ten_sigkills_during_150k_events_lose_nothing_and_count_nothing_twice(
    kafka_bootstrap: str, redis_url: str
) -> None:
    rng = random.Random(SEED)
    windows = Windows(today_utc() - timedelta(days=DAYS), DAYS)
    work = generate(SEED, users=USERS, first_day=windows.first, days=DAYS, tag="kills")
    assert len(work) >= MIN_EVENTS
    messages = work.messages(rng, 500, 1000)
    markers = Markers(windows.first - timedelta(days=2))
    with SyncRedis.from_url(redis_url.rsplit("/", 1)[0] + f"/{DB}") as r:
        r.flushdb()
    try:
        with deployment(
            kafka_bootstrap, redis_url, DB, workers=1, settings=GROUP_TIMING, partitions=PARTITIONS
        ) as dep:
            stack = dep.stack
            topic = stack.topic
            rounds = [messages[i :: KILLS + 1] for i in range(KILLS + 1)]
            recoveries: list[float] = []
            started = time.monotonic()
            for kill in range(KILLS):
                sender = Sender(
                    stack.bootstrap, [(topic(k), v, None) for k, v in rounds[kill]], PAUSE_S
                )
                sender.start()
                time.sleep(rng.uniform(0.2, 1.5))  # the kill's moment within the round
                victim = dep.workers[-1]
                assert victim.poll() is None, stack.log_tail()
                dep.kill_worker(victim)
                killed_at = time.monotonic()
                dep.start_worker()
                sender.join()
                send(
                    stack.bootstrap,
                    [(topic("sessions"), markers.add(), p) for p in range(PARTITIONS)],
                )
                recoveries.append(markers.wait(stack, RECOVERY_TIMEOUT_S) - killed_at)
            send(stack.bootstrap, [(topic(k), v, None) for k, v in rounds[KILLS]])
            work.extend(markers.workload)
            expected = Expectation(work.events, windows)
            exact_at = wait_until_exact(stack, expected, EXACT_TIMEOUT_S)
            assert dep.workers[-1].poll() is None
            print(
                f"\nworker kills: {len(work):,} events in {len(messages)} batch messages, "
                f"{KILLS} SIGKILLs; recovered (kill -> consuming, s): "
                + " ".join(f"{s:.1f}" for s in recoveries)
                + f"; exact {exact_at - started:.0f} s after the first round"
            )
    finally:
        with SyncRedis.from_url(redis_url.rsplit("/", 1)[0] + f"/{DB}") as r:
            r.flushdb()
