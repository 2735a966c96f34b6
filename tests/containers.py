"""Which servers the integration and e2e tiers run against: containers or the embedded ones.

``INSIGHTS_TEST_SERVERS`` picks, once per session:

* ``auto`` (the default): Apache Kafka and Redis containers (testcontainers) when the
  ``testcontainers`` package is installed and a Docker engine answers, else the embedded
  servers of :mod:`insights.devstack`;
* ``containers``: the containers, or a usage error naming what is missing;
* ``embedded``: the embedded servers, without probing for Docker at all.

The containers only back the ``redis_url`` / ``kafka_bootstrap`` fixtures of the modules that
just need "a broker" and "a Redis" (:func:`uses_containers`); the fault suite and the modules
listed in :data:`EMBEDDED_MODULES` keep the embedded servers whatever the choice.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tarfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from insights import devstack

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

ENV = "INSIGHTS_TEST_SERVERS"

# The broker line the compose deployment pins (compose/docker-compose.yml): the clients are not
# verified against Kafka 4.x, which dropped old protocol versions (KIP-896).
KAFKA_IMAGE = "apache/kafka:3.9.1"
REDIS_IMAGE = "redis:7.4.2-alpine"

# `docker info` answers in well under a second where an engine runs and fails at once where
# the socket is missing; the cap only bounds an engine that accepts and then hangs.
PROBE_TIMEOUT_S = 5.0
# Covers a cold JVM start on a loaded CI machine; the image pull happens before the wait.
KAFKA_READY_TIMEOUT_S = 120.0
REDIS_READY_TIMEOUT_S = 30.0

TESTS_ROOT = Path(__file__).parent
TIERS = frozenset({"integration", "e2e"})
# Modules of those tiers that need the embedded servers themselves, with the reason.
EMBEDDED_MODULES: Mapping[str, str] = {
    # Tansu-tuned consumer groups (a 2 s session, below Kafka's 6 s minimum), the quirk
    # measurements and the session Redis's port reused as "a port taken on 127.0.0.1".
    "integration/test_embedded.py": "checks the embedded servers themselves",
}

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class Mode(StrEnum):
    AUTO = "auto"
    CONTAINERS = "containers"
    EMBEDDED = "embedded"


class ContainersUnavailable(Exception):
    """``INSIGHTS_TEST_SERVERS=containers`` where containers cannot run."""


@dataclass(frozen=True)
class Choice:
    containers: bool
    mode: Mode
    reason: str

    def describe(self) -> str:
        if self.containers:
            where = ", ".join(f"tests/{tier}" for tier in sorted(TIERS))
            return (
                f"containers ({KAFKA_IMAGE}, {REDIS_IMAGE}) for {where}; embedded for "
                f"tests/faults and {', '.join(f'tests/{m}' for m in sorted(EMBEDDED_MODULES))} "
                f"[{ENV}={self.mode}: {self.reason}]"
            )
        return f"embedded (Tansu broker, Valkey) [{ENV}={self.mode}: {self.reason}]"


@dataclass(frozen=True)
class Probe:
    reachable: bool
    detail: str


def parse_mode(env: Mapping[str, str]) -> Mode:
    raw = env.get(ENV, "").strip().lower() or Mode.AUTO.value
    try:
        return Mode(raw)
    except ValueError:
        allowed = "|".join(m.value for m in Mode)
        raise ValueError(f"{ENV}={env.get(ENV)!r}: expected one of {allowed}") from None


def testcontainers_importable() -> bool:
    # find_spec, not import: the decision must stay cheap for sessions that never start one.
    return all(importlib.util.find_spec(name) is not None for name in ("testcontainers", "docker"))


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _sdk_ping(timeout_s: float) -> str:
    # Only where the CLI is missing; the SDK's import warnings are not this suite's business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import docker

        client = docker.from_env(timeout=max(1, int(timeout_s)))
    try:
        client.ping()
        return str(client.version().get("Version", "?"))
    finally:
        client.close()


def docker_reachable(
    timeout_s: float = PROBE_TIMEOUT_S,
    *,
    run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
    which: Callable[[str], str | None] = shutil.which,
    ping: Callable[[float], str] = _sdk_ping,
) -> Probe:
    """Whether a Docker engine answers: ``docker info`` where the CLI exists (it honours the
    contexts a developer set up), the SDK's ping otherwise (what testcontainers talks through).
    Never raises and never takes much longer than ``timeout_s``."""
    cli = which("docker")
    if cli is None:
        try:
            return Probe(True, f"Docker engine {ping(timeout_s)} (SDK ping)")
        except Exception as exc:
            return Probe(False, f"no docker CLI and the SDK ping failed: {exc}")
    try:
        done = run(
            [cli, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Probe(False, f"`docker info` did not answer within {timeout_s:g}s")
    except OSError as exc:
        return Probe(False, f"`docker info` could not run: {exc}")
    if done.returncode != 0:
        return Probe(False, f"`docker info` failed: {_last_line(done.stderr or done.stdout)}")
    return Probe(True, f"Docker engine {done.stdout.strip() or '?'}")


def choose(
    env: Mapping[str, str],
    *,
    probe: Callable[[], Probe] = docker_reachable,
    importable: Callable[[], bool] = testcontainers_importable,
) -> Choice:
    """The session's servers. Raises ``ValueError`` for an unknown mode and
    :class:`ContainersUnavailable` when containers are forced but cannot run."""
    mode = parse_mode(env)
    if mode is Mode.EMBEDDED:
        return Choice(False, mode, "forced")
    if not importable():
        if mode is Mode.CONTAINERS:
            raise ContainersUnavailable(
                f"{ENV}=containers, but the testcontainers package is not installed "
                "(pip install -e '.[dev]')"
            )
        return Choice(False, mode, "testcontainers is not installed")
    found = probe()
    if not found.reachable:
        if mode is Mode.CONTAINERS:
            raise ContainersUnavailable(
                f"{ENV}=containers, but no Docker engine answers ({found.detail}); "
                f"start one, or run with {ENV}=embedded"
            )
        return Choice(False, mode, found.detail)
    return Choice(True, mode, found.detail)


def uses_containers(module: Path, tests_root: Path = TESTS_ROOT) -> bool:
    """Whether ``module`` is one whose ``redis_url`` / ``kafka_bootstrap`` may be containers."""
    try:
        relative = module.resolve().relative_to(tests_root.resolve())
    except ValueError:
        return False
    return relative.parts[0] in TIERS and relative.as_posix() not in EMBEDDED_MODULES


def source_for(choice: Choice, module: Path, tests_root: Path = TESTS_ROOT) -> str:
    """``"container"`` or ``"embedded"``: what serves ``module`` in a session that chose
    ``choice``."""
    return "container" if choice.containers and uses_containers(module, tests_root) else "embedded"


# --- the containers --------------------------------------------------------------------------


@contextmanager
def _quiet_imports() -> Iterator[None]:
    # pytest turns warnings into errors; a deprecation inside the Docker SDK or testcontainers
    # must not fail the fixture that merely imports them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _loopback_host(container: DockerContainer, *ports: int) -> str | None:
    """Publish ``ports`` on 127.0.0.1 only when the engine runs on this machine, as the
    embedded servers bind; returns the address to use then, else None (remote engine or
    Docker-in-Docker, where the engine's loopback is not ours)."""
    from testcontainers.core.config import ConnectionMode

    client = container.get_docker_client()
    if client.get_connection_mode() is not ConnectionMode.docker_host:
        return None
    if client.host() not in _LOCAL_HOSTS:
        return None
    for port in ports:
        # docker-py's (host_ip,) binding: that interface, a port picked by the engine.
        binding: Any = ("127.0.0.1",)
        container.ports[str(port)] = binding
    return "127.0.0.1"


def _logs_tail(container: DockerContainer, limit: int = 4000) -> str:
    try:
        out, err = container.get_logs()
    except Exception as exc:
        return f"(no logs: {exc})"
    return (out + err).decode(errors="replace")[-limit:]


_KAFKA_PORT = 9092  # clients, advertised as the mapped host address
_KAFKA_INTERNAL_PORT = 9093  # the broker's own listener to itself
_KAFKA_CONTROLLER_PORT = 9094
_KAFKA_START_SCRIPT = "/tmp/insights-kafka-start.sh"
_KAFKA_START_FLAG = "/tmp/insights-kafka-start.ready"


def _tar_file(path: str, content: bytes, mode: int) -> bytes:
    buffer = BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(content)
        info.mode = mode
        info.mtime = int(time.time())
        tar.addfile(info, BytesIO(content))
    return buffer.getvalue()


def _kafka_container() -> DockerContainer:
    from testcontainers.core.container import DockerContainer

    # Any KAFKA_* variable makes the image drop its bundled server.properties, so this is the
    # whole single-node KRaft configuration.
    env = {
        "CLUSTER_ID": "aW5zaWdodHMtdGVzdHMtMQ",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@localhost:{_KAFKA_CONTROLLER_PORT}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENERS": (
            f"PLAINTEXT://:{_KAFKA_PORT},BROKER://:{_KAFKA_INTERNAL_PORT},"
            f"CONTROLLER://:{_KAFKA_CONTROLLER_PORT}"
        ),
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
        # One broker: internal topics cannot have more replicas than that.
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        # Every test creates fresh consumer groups; the default 3 s hold per first join would
        # add up over the session.
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }
    container = DockerContainer(KAFKA_IMAGE)
    for key, value in env.items():
        container.with_env(key, value)
    container.with_exposed_ports(_KAFKA_PORT)
    # The advertised address contains the host port, known only once the container exists:
    # the broker starts when the script that exports it has been copied in. The flag file
    # comes after the script, so the script is complete when the loop sees the flag.
    container.with_command(
        [
            "sh",
            "-c",
            f"while [ ! -f {_KAFKA_START_FLAG} ]; do sleep 0.1; done; "
            f"exec sh {_KAFKA_START_SCRIPT}",
        ]
    )
    return container


@contextmanager
def kafka_container() -> Iterator[str]:
    """A single-node KRaft Apache Kafka container; yields its ``host:port`` bootstrap."""
    with _quiet_imports():
        container = _kafka_container()
        loopback = _loopback_host(container, _KAFKA_PORT)
    try:
        with _quiet_imports():
            container.start()
        host = loopback or container.get_container_host_ip()
        bootstrap = f"{host}:{container.get_exposed_port(_KAFKA_PORT)}"
        script = (
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{bootstrap},"
            f"BROKER://localhost:{_KAFKA_INTERNAL_PORT}\n"
            "exec /etc/kafka/docker/run\n"
        ).encode()
        wrapped = container.get_wrapped_container()
        for path, content, mode in (
            (_KAFKA_START_SCRIPT, script, 0o755),
            (_KAFKA_START_FLAG, b"", 0o644),
        ):
            if not wrapped.put_archive("/", _tar_file(path, content, mode)):
                raise RuntimeError(f"could not copy {path} into the Kafka container")
        try:
            devstack.wait_for_kafka(bootstrap, timeout_s=KAFKA_READY_TIMEOUT_S)
        except devstack.EmbeddedStartError as exc:
            raise RuntimeError(
                f"{exc}\n--- {KAFKA_IMAGE} log ---\n{_logs_tail(container)}"
            ) from exc
        yield bootstrap
    finally:
        container.stop()


@contextmanager
def redis_container() -> Iterator[str]:
    """A Redis container; yields its ``redis://host:port/0`` URL."""
    with _quiet_imports():
        from testcontainers.community.redis import RedisContainer

        container = RedisContainer(REDIS_IMAGE)
        # Like the embedded server: nothing persisted, the data only lives as long as the session.
        container.with_command(["redis-server", "--save", "", "--appendonly", "no"])
        loopback = _loopback_host(container, container.port)
    try:
        with _quiet_imports():
            container.start()
        host = loopback or container.get_container_host_ip()
        url = f"redis://{host}:{container.get_exposed_port(container.port)}/0"
        try:
            devstack.wait_for_redis(url, timeout_s=REDIS_READY_TIMEOUT_S)
        except devstack.EmbeddedStartError as exc:
            raise RuntimeError(
                f"{exc}\n--- {REDIS_IMAGE} log ---\n{_logs_tail(container)}"
            ) from exc
        yield url
    finally:
        container.stop()
