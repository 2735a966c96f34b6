"""Readiness probes: block until a Kafka broker or Redis server really answers.

Used for the servers the dev stack starts (pass ``process=`` so a crash is reported at once,
with its log) and for external servers named by settings or test environment variables.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis
import redis.exceptions
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError

from insights.devstack.process import LOCALHOST, EmbeddedStartError, ManagedProcess

__all__ = ["wait_for_kafka", "wait_for_redis"]

_T = TypeVar("_T")


def _run_blocking(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if the caller is inside a loop.

    The probe gets a private loop in a worker thread: ``asyncio.run`` refuses to nest inside a
    running loop (an async CLI, a pytest-asyncio fixture), and it would also reset the calling
    thread's current-loop state.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="devstack-probe") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _without_password(url: str) -> str:
    """``url`` for messages: a password in it is replaced by ``***``."""
    head, at, tail = url.rpartition("@")
    scheme, sep, userinfo = head.partition("://")
    if not at or not sep or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{tail}"


def _split_hostport(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or LOCALHOST, int(port)


def _startup_failure(
    what: str, timeout_s: float, last_error: BaseException | None, proc: ManagedProcess | None
) -> EmbeddedStartError:
    """The error for a probe that gave up: why, the last probe error and the server's log."""
    if proc is not None and not proc.is_running():
        head = f"{proc.name} (pid {proc.pid}) exited with code {proc.returncode} before {what}"
    else:
        head = f"{what} did not happen within {timeout_s:g}s"
    if last_error is not None:
        head += f" (last error: {type(last_error).__name__}: {last_error})"
    if proc is not None:
        head += f"\n--- tail of {proc.log_path} ---\n{proc.log_tail()}"
    return EmbeddedStartError(head)


async def _kafka_metadata_round_trip(bootstrap: str, request_timeout_ms: int) -> None:
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="insights-embedded-probe",
        request_timeout_ms=request_timeout_ms,
    )
    try:
        await client.bootstrap()  # connects and sends a MetadataRequest
        metadata = await client.fetch_all_metadata()
        if not metadata.brokers():
            raise KafkaError("metadata response lists no brokers")
    finally:
        await client.close()


def wait_for_kafka(
    bootstrap: str, timeout_s: float = 30.0, *, process: ManagedProcess | None = None
) -> None:
    """Block until ``bootstrap`` answers a real Kafka metadata request.

    Raises :class:`EmbeddedStartError` after ``timeout_s``, or as soon as ``process`` (the
    server being waited for, if we own it) exits; the message includes the tail of its log.
    """
    deadline = time.monotonic() + timeout_s
    what = f"the Kafka broker at {bootstrap} answering a metadata request"
    first = bootstrap.split(",")[0]
    host, port = _split_hostport(first)
    last_error: BaseException | None = None
    while True:
        if process is not None and not process.is_running():
            raise _startup_failure(what, timeout_s, last_error, process)
        # Poll the socket silently first: aiokafka logs an ERROR for every refused bootstrap.
        if _tcp_accepts(host, port):
            remaining_ms = int(max(deadline - time.monotonic(), 1.0) * 1000)
            try:
                _run_blocking(
                    functools.partial(_kafka_metadata_round_trip, bootstrap, remaining_ms)
                )
            except (KafkaError, OSError) as exc:  # OSError covers TimeoutError
                last_error = exc
            else:
                # A server that failed to bind may still be alive for a moment while something
                # else answers on that port; only a live process counts as ready.
                if process is None or process.is_running():
                    return
        if time.monotonic() >= deadline:
            raise _startup_failure(what, timeout_s, last_error, process)
        time.sleep(0.05)


def wait_for_redis(
    url: str, timeout_s: float = 10.0, *, process: ManagedProcess | None = None
) -> None:
    """Block until the Redis server at ``url`` answers PING (errors as :func:`wait_for_kafka`)."""
    deadline = time.monotonic() + timeout_s
    what = f"the Redis server at {_without_password(url)} answering PING"
    last_error: BaseException | None = None
    while True:
        if process is not None and not process.is_running():
            raise _startup_failure(what, timeout_s, last_error, process)
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=1.0)
        try:
            if client.ping():
                return
        # BusyLoadingError (still loading a dataset) is a ConnectionError, so it is retried too.
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            last_error = exc
        finally:
            client.close()
        if time.monotonic() >= deadline:
            raise _startup_failure(what, timeout_s, last_error, process)
        time.sleep(0.05)
