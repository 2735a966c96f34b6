"""Helpers of the fault suite: paced producers, marker events, timed requests."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from streams.workloads import AgentRef, epoch_us
from tests.e2e.stack import TOKEN, Stack
from tests.faults.workload import US_MIN, Workload, utc_midnight

MARKER_USER = "fa000000-0000-4000-8000-00000000aaaa"
MARKER_TEMPLATE = "fa000000-0000-4000-8000-00000000bbbb"
MARKER_AGENT = AgentRef(MARKER_USER, "marker", MARKER_TEMPLATE, MARKER_TEMPLATE, MARKER_TEMPLATE)


async def _send_all(
    bootstrap: str, messages: Sequence[tuple[str, bytes, int | None]], pause_s: float
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1)
    await producer.start()
    try:
        for topic, value, partition in messages:
            await producer.send_and_wait(topic, value, partition=partition)
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        await producer.stop()


def send(
    bootstrap: str, messages: Sequence[tuple[str, bytes, int | None]], pause_s: float = 0.0
) -> None:
    """Send (topic, value, partition or None) in order, each acknowledged, ``pause_s`` apart."""
    asyncio.run(_send_all(bootstrap, messages, pause_s))


class Sender(threading.Thread):
    """``send`` in the background; ``join`` re-raises its error."""

    def __init__(
        self, bootstrap: str, messages: Sequence[tuple[str, bytes, int | None]], pause_s: float
    ) -> None:
        super().__init__(daemon=True)
        self.args_ = (bootstrap, messages, pause_s)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            send(*self.args_)
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float | None = 120.0) -> None:
        super().join(timeout)
        assert not self.is_alive(), "the producer did not finish in time"
        if self.error is not None:
            raise self.error


class Markers:
    """Session events of one user on ``day``, each in a minute of its own: once the API
    shows ``count`` minutes, every partition they were sent to was consumed up to them."""

    def __init__(self, day: date) -> None:
        self.day = day
        self.count = 0
        self.workload = Workload()

    def add(self) -> bytes:
        minute = 2 * self.count  # 15 per half-hour: no cap applies
        at = epoch_us(utc_midnight(self.day)) + minute * US_MIN + 7_000_000
        self.workload.session(MARKER_AGENT, f"marker-{self.count}", at, {"ssh": 1}, 1)
        self.count += 1
        return orjson.dumps([self.workload.wire["sessions"][-1]])

    def path(self) -> str:
        end = self.day + timedelta(days=1)
        return (
            f"/api/v2/insights/user-activity?start_time={self.day.isoformat()}T00:00:00Z"
            f"&end_time={end.isoformat()}T00:00:00Z"
        )

    def visible(self, stack: Stack) -> bool:
        status, body, _ = stack.get(self.path())
        if status != 200:
            return False
        users = [u for u in body["report"]["users"] if u["user_id"] == MARKER_USER]
        return bool(users) and users[0]["seconds"] == 60 * self.count

    def wait(self, stack: Stack, timeout_s: float) -> float:
        """Until every marker sent so far counts; returns when (monotonic)."""
        deadline = time.monotonic() + timeout_s
        while not self.visible(stack):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.count} markers not visible after {timeout_s:g} s\n{stack.log_tail()}"
                )
            time.sleep(0.1)
        return time.monotonic()


def timed_get(
    stack: Stack, path: str, *, token: str | None = TOKEN, timeout_s: float = 30.0
) -> tuple[int, Any, float]:
    """(status, JSON body or None, seconds) of one GET, errors included."""
    req = urllib.request.Request(stack.base_url + path)
    if token:
        req.add_header("Coder-Session-Token", token)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw = err.read()
        status = err.code
    elapsed = time.monotonic() - started
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return status, body, elapsed
