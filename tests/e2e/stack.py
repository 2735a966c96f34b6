"""A real deployment for end-to-end tests: ``insights worker`` and ``insights api`` processes.

They run as separate OS processes, exactly as an operator runs them, against
the test session's broker and Redis; each stack gets its own topic prefix,
consumer group and Redis database so stacks never see each other's data.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from insights import devstack

TOKEN = "e2e-deployment-token"
T1_TOKEN = "e2e-template1-token"
T1 = "00000000-0000-0000-0000-000000000001"
READY_TIMEOUT_S = 60.0


@dataclass
class Stack:
    base_url: str
    bootstrap: str
    redis_url: str
    prefix: str
    logs: Path

    def topic(self, kind: str) -> str:
        return self.prefix + kind

    def get(self, path: str, token: str | None = TOKEN) -> tuple[int, Any, str]:
        """(status, parsed JSON body, raw body text) of a GET, errors included."""
        req = urllib.request.Request(self.base_url + path)
        if token:
            req.add_header("Coder-Session-Token", token)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                raw = resp.read().decode()
                return resp.status, json.loads(raw), raw
        except urllib.error.HTTPError as err:
            raw = err.read().decode()
            return err.code, json.loads(raw) if raw else None, raw

    def produce(self, kind: str, messages: Iterable[bytes], key: bytes | None = None) -> int:
        async def send() -> int:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, enable_idempotence=False, acks=1
            )
            await producer.start()
            n = 0
            try:
                for value in messages:
                    await producer.send_and_wait(self.topic(kind), value, key=key)
                    n += 1
            finally:
                await producer.stop()
            return n

        return asyncio.run(send())

    def produce_events(self, kind: str, events: list[dict[str, Any]], batch: int = 50) -> int:
        chunks = (orjson.dumps(events[i : i + batch]) for i in range(0, len(events), batch))
        return self.produce(kind, chunks)

    def wait_for(self, path: str, predicate: Any, timeout_s: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout_s
        body = None
        while time.monotonic() < deadline:
            status, body, _ = self.get(path)
            if status == 200 and predicate(body):
                return body
            time.sleep(0.2)
        raise AssertionError(f"{path} did not converge; last body: {body}")

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.logs.glob("*.log")))


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "insights", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def with_db(redis_base_url: str, db: int) -> str:
    """The URL of database ``db``; a cluster's URL as it is (a cluster has database 0 only,
    so its tests take turns on a flushed cluster)."""
    if "+cluster://" in redis_base_url:
        return redis_base_url
    return redis_base_url.rsplit("/", 1)[0] + f"/{db}"


@contextmanager
def running_stack(bootstrap: str, redis_base_url: str, db: int) -> Iterator[Stack]:
    name = uuid.uuid4().hex[:8]
    prefix = f"e2e{name}."
    redis_url = with_db(redis_base_url, db)
    port = devstack.free_port()
    env = {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": bootstrap,
        "INSIGHTS_REDIS_URL": redis_url,
        "INSIGHTS_TOPIC_PREFIX": prefix,
        "INSIGHTS_TOPIC_PARTITIONS": "3",
        "INSIGHTS_APP_ID": f"insights-e2e-{name}",
        "INSIGHTS_API_PORT": str(port),
        "INSIGHTS_API_TOKENS": f"{TOKEN},{T1_TOKEN}={T1}",
        "INSIGHTS_BROKER_SESSION_TIMEOUT_S": "6",
    }
    logs = Path(tempfile.mkdtemp(prefix="insights-e2e-"))
    stack = Stack(f"http://127.0.0.1:{port}", bootstrap, redis_url, prefix, logs)
    procs = [
        _start(["worker"], env, logs / "worker.log"),
        _start(["api"], env, logs / "api.log"),
    ]
    try:
        _wait_ready(stack, procs)
        yield stack
    finally:
        for proc in procs:
            _stop(proc)


def _wait_ready(stack: Stack, procs: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a stack process exited early:\n" + stack.log_tail())
        try:
            status, _, _ = stack.get("/readyz", token=None)
            if status == 200:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    raise RuntimeError("stack not ready in time:\n" + stack.log_tail())


# --- deployments with several workers (failover, injected faults) -------------------------

REPO_ROOT = Path(__file__).resolve().parents[2]


def produce_to(bootstrap: str, topic: str, partition: int, values: Iterable[bytes]) -> int:
    """Send ``values`` to one partition, waiting for each acknowledgement."""

    async def send() -> int:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks=1)
        await producer.start()
        n = 0
        try:
            for value in values:
                await producer.send_and_wait(topic, value, partition=partition)
                n += 1
        finally:
            await producer.stop()
        return n

    return asyncio.run(send())


@dataclass
class Deployment:
    """A stack whose worker processes the test may kill and start; ``env`` is theirs."""

    stack: Stack
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]]
    worker_module: str

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = self.stack.logs / f"worker-{len(self.workers)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", self.worker_module, "worker"],
                env=self.env,
                cwd=REPO_ROOT,  # where ``python -m tests...`` finds the test helpers
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean stop, no LeaveGroup, offsets of the last batches uncommitted."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def deployment(
    bootstrap: str,
    redis_base_url: str,
    db: int,
    *,
    workers: int,
    worker_module: str = "insights",
    settings: dict[str, str] | None = None,
    partitions: int = 3,
) -> Iterator[Deployment]:
    """Like ``running_stack`` with ``workers`` worker processes, each run as ``python -m
    worker_module worker``, and ``partitions`` per topic; ready once the API is and a worker
    holds partitions.  Without ``settings`` the group timing is the default one (no
    ``INSIGHTS_BROKER_*`` of the caller's environment); with them (``INSIGHTS_*`` variables,
    the fault suite's tuning) none of the caller's ``INSIGHTS_*`` is inherited."""
    name = uuid.uuid4().hex[:8]
    prefix = f"e2e{name}."
    redis_url = with_db(redis_base_url, db)
    port = devstack.free_port()
    dropped = "INSIGHTS_BROKER_" if settings is None else "INSIGHTS_"
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env |= {
        "INSIGHTS_KAFKA_BOOTSTRAP": bootstrap,
        "INSIGHTS_REDIS_URL": redis_url,
        "INSIGHTS_TOPIC_PREFIX": prefix,
        "INSIGHTS_TOPIC_PARTITIONS": str(partitions),
        "INSIGHTS_APP_ID": f"insights-e2e-{name}",
        "INSIGHTS_API_PORT": str(port),
        "INSIGHTS_API_TOKENS": f"{TOKEN},{T1_TOKEN}={T1}",
        **(settings or {}),
    }
    logs = Path(tempfile.mkdtemp(prefix="insights-e2e-"))
    stack = Stack(f"http://127.0.0.1:{port}", bootstrap, redis_url, prefix, logs)
    dep = Deployment(stack, env, [], worker_module)
    api = _start(["api"], env, logs / "api.log")
    try:
        for _ in range(workers):
            dep.start_worker()
        _wait_ready(stack, [api, *dep.workers])
        yield dep
    finally:
        for proc in [*dep.workers, api]:
            _stop(proc)
