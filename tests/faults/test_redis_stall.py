"""Redis SIGSTOPped for 20 s mid-stream: the API answers 503 within the store timeout, the
worker waits and resumes on its own once Redis runs again, and nothing is lost.

A dedicated Valkey (ours to stop) holds the rollups; the API's store timeout is 1 s.
Events stream in batch messages before, during and after the stall. While Redis is
stopped, every endpoint answers 503 with Coder's JSON error body, naming no address, in
at most the timeout plus some slack, and ``/readyz`` says Redis is not answering. After
SIGCONT every endpoint must agree with the oracle.
"""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import timedelta

from insights import devstack
from tests.e2e.stack import deployment
from tests.faults.exact import Expectation, Windows, today_utc, wait_until_exact
from tests.faults.support import Sender, send, timed_get
from tests.faults.workload import generate

SEED = 7
USERS, DAYS = 12, 3
STALL_S = 20.0
STORE_TIMEOUT_S = 1.0
SLACK_S = 2.0  # a loaded 2-core machine: scheduling, not the store
PAUSE_S = 0.3


def test_redis_stopped_20s_gives_503s_then_the_worker_resumes_and_loses_nothing(
    kafka_bootstrap: str,
) -> None:
    rng = random.Random(SEED)
    windows = Windows(today_utc() - timedelta(days=DAYS), DAYS)
    work = generate(SEED, users=USERS, first_day=windows.first, days=DAYS, tag="stall")
    messages = work.messages(rng, 500, 1000)
    before, during, after = messages[::3], messages[1::3], messages[2::3]
    expected = Expectation(work.events, windows)
    redis = devstack.start_redis()
    stopped = False
    try:
        settings = {"INSIGHTS_STORE_TIMEOUT_S": str(STORE_TIMEOUT_S)}
        with deployment(kafka_bootstrap, redis.address, 0, workers=1, settings=settings) as dep:
            stack = dep.stack
            paths = windows.paths()
            sender = Sender(
                stack.bootstrap, [(stack.topic(k), v, None) for k, v in before + during], PAUSE_S
            )
            sender.start()
            time.sleep(PAUSE_S * len(before))  # the stall starts mid-stream
            os.kill(redis.pid, signal.SIGSTOP)
            stopped = True
            stopped_at = time.monotonic()
            answers: list[float] = []
            readiness: set[str] = set()
            while time.monotonic() - stopped_at < STALL_S - 2 * (STORE_TIMEOUT_S + SLACK_S):
                for name, path in paths.items():
                    status, body, elapsed = timed_get(stack, path)
                    assert status == 503, (name, status, body)
                    assert body["message"] == "Insights store unavailable.", body
                    assert "127.0.0.1" not in str(body), body
                    assert elapsed < STORE_TIMEOUT_S + SLACK_S, (name, elapsed)
                    answers.append(elapsed)
                status, body, _ = timed_get(stack, "/readyz", token=None)
                assert status == 503 and body["ready"] is False, body
                readiness.add(body["redis"])
            sender.join()
            time.sleep(max(0.0, STALL_S - (time.monotonic() - stopped_at)))
            os.kill(redis.pid, signal.SIGCONT)
            stopped = False
            resumed_at = time.monotonic()
            assert all(p.poll() is None for p in dep.workers), stack.log_tail()
            send(stack.bootstrap, [(stack.topic(k), v, None) for k, v in after])
            exact_at = wait_until_exact(stack, expected, 60)
            assert readiness <= {"timeout", "unreachable"}, readiness
            print(
                f"\nredis stall: {len(work):,} events, Redis stopped "
                f"{resumed_at - stopped_at:.0f} s; {len(answers)} answers, all 503 in "
                f"{min(answers):.2f}-{max(answers):.2f} s (store timeout "
                f"{STORE_TIMEOUT_S:g} s); readyz redis={'/'.join(sorted(readiness))}; "
                f"exact {exact_at - resumed_at:.1f} s after SIGCONT"
            )
    finally:
        if stopped:
            os.kill(redis.pid, signal.SIGCONT)
        redis.stop()
