"""Throughput of ``streams.decoding.decode_message`` against plain ``orjson.loads``.

Decodes 100 batch messages of 100 session events each and prints events/s for the
decoder and for ``orjson.loads`` of the same messages in the same run (the floor any
decoder pays), with their ratio.  Each measurement is the best of a few rounds within
a time budget, so the whole run takes a few seconds at most.

    .venv/bin/python bench/bench_decoding.py [--budget-s 2.0]

"warm": the 1,000 agents of the data set report again and again, as they do every
~30 s in production, so their UUIDs hit the decoder's memo.  "cold": the memo is
emptied before every message, so every UUID goes through the regex (worst case).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

import orjson

from aggregators.timebase import US_PER_S
from streams import decoding
from streams.decoding import decode_message
from streams.simulation import generate
from streams.workloads import random_uuid, session_event

MESSAGES = 100
EVENTS_PER_MESSAGE = 100
AGENTS = 1000
NOW_US = 1_692_600_000 * US_PER_S  # 2023-08-21T06:40:00Z
FIRST_S = 1_692_500_000  # the first report's second
MAX_ROUNDS = 20


def build_messages(seed: int = 0) -> list[bytes]:
    """Realistic session reports: distinct ids and times, agents drawn from a deployment."""
    agents = [user.agent() for user in generate(AGENTS, seed).users]
    rng = random.Random(seed)
    messages = []
    for m in range(MESSAGES):
        batch = []
        for e in range(EVENTS_PER_MESSAGE):
            agent = rng.choice(agents)
            time_us = (FIRST_S + m * 30 + e % 30) * US_PER_S + rng.randrange(US_PER_S)
            event_id = random_uuid(rng)
            connections = rng.randrange(3)
            sessions = {
                "vscode": rng.randrange(2),
                "reconnecting_pty": rng.randrange(2),
                "ssh": rng.randrange(2),
            }
            batch.append(session_event(agent, event_id, time_us, sessions, connections))
        messages.append(orjson.dumps(batch))
    return messages


def best_seconds(run: Callable[[], None], budget_s: float) -> float:
    """Best wall time of ``run`` over up to MAX_ROUNDS rounds, stopping after ``budget_s``."""
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    for _ in range(MAX_ROUNDS):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget-s", type=float, default=2.0, help="time budget per measurement")
    budget_s = parser.parse_args().budget_s

    messages = build_messages()
    total = MESSAGES * EVENTS_PER_MESSAGE
    for message in messages:  # sanity: the data set is valid, so every event is decoded
        events, rejections = decode_message(message, "sessions", NOW_US)
        assert len(events) == EVENTS_PER_MESSAGE and not rejections, rejections[:1]

    def loads_only() -> None:
        for message in messages:
            orjson.loads(message)

    def decode_warm() -> None:
        for message in messages:
            decode_message(message, "sessions", NOW_US)

    def decode_cold() -> None:
        for message in messages:
            decoding._known_uuids.clear()
            decode_message(message, "sessions", NOW_US)

    baseline = best_seconds(loads_only, budget_s)
    size = sum(map(len, messages)) / len(messages)
    print(f"{MESSAGES} messages x {EVENTS_PER_MESSAGE} session events ({size / 1024:.1f} KiB each)")
    print(f"  {'orjson.loads only':28s} {total / baseline:>12,.0f} events/s")
    for name, run in (
        ("decode_message, warm memo", decode_warm),
        ("decode_message, cold", decode_cold),
    ):
        seconds = best_seconds(run, budget_s)
        print(
            f"  {name:28s} {total / seconds:>12,.0f} events/s"
            f"  ({seconds / total * 1e6:.2f} us/event, {seconds / baseline:.1f}x orjson.loads time)"
        )


if __name__ == "__main__":
    main()
