"""The session's choice between containers and the embedded servers (tests/containers.py).

The probes are injected: whether this machine has a Docker engine must not change what these
tests check. The last tests run pytest itself against an engine that cannot exist.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, NoReturn

import pytest

from insights import devstack
from tests import containers
from tests.containers import Choice, ContainersUnavailable, Mode, Probe

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS = REPO_ROOT / "tests"
UP = Probe(True, "Docker engine 27.3.1")
DOWN = Probe(False, "`docker info` failed: Cannot connect to the Docker daemon")


def _never() -> NoReturn:
    raise AssertionError("must not be called")


def _choose(value: str | None, probe: Any = None, importable: Any = None) -> Choice:
    env = {} if value is None else {containers.ENV: value}
    return containers.choose(
        env,
        probe=probe or _never,
        importable=importable or (lambda: True),
    )


# --- the mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (None, Mode.AUTO),
        ("", Mode.AUTO),
        ("auto", Mode.AUTO),
        (" Containers ", Mode.CONTAINERS),
        ("EMBEDDED", Mode.EMBEDDED),
    ],
)
def test_mode_from_the_environment(value: str | None, mode: Mode) -> None:
    env = {} if value is None else {containers.ENV: value}
    assert containers.parse_mode(env) is mode


def test_an_unknown_mode_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"INSIGHTS_TEST_SERVERS='docker'.*auto\|containers"):
        _choose("docker")


# --- the decision ------------------------------------------------------------------------------


def test_auto_uses_containers_where_docker_answers() -> None:
    choice = _choose(None, probe=lambda: UP)
    assert choice == Choice(True, Mode.AUTO, UP.detail)
    assert containers.KAFKA_IMAGE in choice.describe()
    assert containers.REDIS_IMAGE in choice.describe()


def test_auto_falls_back_to_embedded_without_docker() -> None:
    choice = _choose("auto", probe=lambda: DOWN)
    assert choice == Choice(False, Mode.AUTO, DOWN.detail)
    assert choice.describe().startswith("embedded")
    assert DOWN.detail in choice.describe()


def test_auto_without_the_package_does_not_probe() -> None:
    choice = _choose("auto", probe=_never, importable=lambda: False)
    assert not choice.containers
    assert "testcontainers is not installed" in choice.reason


def test_forced_embedded_probes_nothing() -> None:
    choice = _choose("embedded", probe=_never, importable=_never)
    assert choice == Choice(False, Mode.EMBEDDED, "forced")


def test_forced_containers_with_docker() -> None:
    assert _choose("containers", probe=lambda: UP).containers


def test_forced_containers_without_docker_is_an_error() -> None:
    with pytest.raises(ContainersUnavailable) as raised:
        _choose("containers", probe=lambda: DOWN)
    message = str(raised.value)
    assert "INSIGHTS_TEST_SERVERS=containers" in message
    assert DOWN.detail in message
    assert "INSIGHTS_TEST_SERVERS=embedded" in message  # the way out


def test_forced_containers_without_the_package_is_an_error() -> None:
    with pytest.raises(ContainersUnavailable, match="testcontainers package is not installed"):
        _choose("containers", probe=_never, importable=lambda: False)


# --- which modules the containers serve -------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "contained"),
    [
        ("integration/test_api_http.py", True),
        ("integration/test_store_vs_oracle.py", True),
        ("e2e/test_golden.py", True),
        ("e2e/test_outage.py", True),
        # Checks the embedded servers themselves (Tansu-tuned 2 s consumer sessions).
        ("integration/test_embedded.py", False),
        # Kills, stops and restarts servers and workers, with group timing below Kafka's minimum.
        ("faults/test_worker_kills.py", False),
        ("faults/test_broker_restart.py", False),
        ("unit/test_codec.py", False),
    ],
)
def test_modules_served_by_the_containers(module: str, contained: bool) -> None:
    assert containers.uses_containers(TESTS / module) is contained
    with_containers = Choice(True, Mode.AUTO, UP.detail)
    without = Choice(False, Mode.AUTO, DOWN.detail)
    assert containers.source_for(with_containers, TESTS / module) == (
        "container" if contained else "embedded"
    )
    assert containers.source_for(without, TESTS / module) == "embedded"


def test_every_embedded_module_exists() -> None:
    for module in containers.EMBEDDED_MODULES:
        assert (TESTS / module).is_file(), module


def test_a_module_outside_the_tests_is_embedded(tmp_path: Path) -> None:
    assert not containers.uses_containers(tmp_path / "integration" / "test_x.py")


# --- the Docker probe --------------------------------------------------------------------------


def _which(name: str) -> str | None:
    return "/usr/bin/docker" if name == "docker" else None


def _ran(returncode: int, stdout: str = "", stderr: str = "") -> Any:
    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv[0] == "/usr/bin/docker" and argv[1] == "info"
        assert kwargs["timeout"] == 0.5  # bounded: an engine that hangs cannot hang the session
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    return run


def test_probe_docker_info_answers() -> None:
    found = containers.docker_reachable(0.5, run=_ran(0, "27.3.1\n"), which=_which, ping=_never)
    assert found == Probe(True, "Docker engine 27.3.1")


def test_probe_docker_info_fails() -> None:
    stderr = "Client: ...\nCannot connect to the Docker daemon at unix:///var/run/docker.sock.\n"
    found = containers.docker_reachable(0.5, run=_ran(1, stderr=stderr), which=_which)
    assert not found.reachable
    assert found.detail.endswith(
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
    )


def test_probe_docker_info_hangs() -> None:
    def hang(argv: list[str], **kwargs: Any) -> NoReturn:
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    found = containers.docker_reachable(0.5, run=hang, which=_which)
    assert found == Probe(False, "`docker info` did not answer within 0.5s")


def test_probe_docker_info_cannot_run() -> None:
    def broken(argv: list[str], **kwargs: Any) -> NoReturn:
        raise PermissionError(13, "Permission denied")

    assert not containers.docker_reachable(0.5, run=broken, which=_which).reachable


def test_probe_without_the_cli_pings_through_the_sdk() -> None:
    found = containers.docker_reachable(
        0.5, run=_never, which=lambda _: None, ping=lambda timeout: "26.1.0"
    )
    assert found == Probe(True, "Docker engine 26.1.0 (SDK ping)")


def test_probe_without_the_cli_and_no_engine() -> None:
    def refused(timeout: float) -> NoReturn:
        raise ConnectionError("Connection refused")

    found = containers.docker_reachable(0.5, run=_never, which=lambda _: None, ping=refused)
    assert not found.reachable
    assert "Connection refused" in found.detail


def test_real_probe_of_a_missing_engine_is_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever this machine runs: a socket that cannot exist, through the CLI or the SDK.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/insights-docker.sock")
    started = time.monotonic()
    found = containers.docker_reachable(timeout_s=3.0)
    assert not found.reachable
    assert time.monotonic() - started < 4.0


# --- the containers, with the engine replaced ---------------------------------------------------
#
# No engine is needed: the real testcontainers container objects are built, and only what
# would reach Docker (its client, starting, the port lookup, copying files in, logs, removal)
# is replaced.


class _Wrapped:
    """The docker-py container: records what is copied in and whether it was removed."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes, int]] = []
        self.removed = False

    def put_archive(self, path: str, data: bytes) -> bool:
        assert path == "/"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member)
                assert extracted is not None
                self.files.append((member.name, extracted.read(), member.mode))
        return True

    def remove(self, **kwargs: Any) -> None:
        self.removed = True


class _Engine:
    """The engine the containers talk to: where it runs, and what was started on it."""

    def __init__(self, connection_mode: Any) -> None:
        self.host = "localhost"  # a local socket, as on a developer's machine
        self.connection_mode = connection_mode
        self.started: list[Any] = []


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> _Engine:
    core = pytest.importorskip("testcontainers.core.container")
    config = pytest.importorskip("testcontainers.core.config")
    engine = _Engine(config.ConnectionMode.docker_host)

    class Client:
        def __init__(self, **kwargs: Any) -> None:
            self.client = self  # what DockerContainer.stop closes

        def get_connection_mode(self) -> Any:
            return engine.connection_mode

        def host(self) -> str:
            return engine.host

        def close(self) -> None:
            pass

    def start(self: Any) -> Any:
        self._container = _Wrapped()
        engine.started.append(self)
        return self

    monkeypatch.setattr(core, "DockerClient", Client)
    monkeypatch.setattr(core.DockerContainer, "start", start)
    monkeypatch.setattr(core.DockerContainer, "get_exposed_port", lambda self, port: 49153)
    monkeypatch.setattr(core.DockerContainer, "get_logs", lambda self: (b"kafka said no\n", b""))
    return engine


def test_kafka_container_starts_the_broker_once_its_address_is_known(
    engine: _Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[str] = []
    monkeypatch.setattr(
        devstack, "wait_for_kafka", lambda bootstrap, **kw: waited.append(bootstrap)
    )
    with containers.kafka_container() as bootstrap:
        assert bootstrap == "127.0.0.1:49153"
        (container,) = engine.started
        assert container.image == containers.KAFKA_IMAGE
        assert container.ports == {"9092": ("127.0.0.1",)}  # published on loopback only
        assert container.env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert "/tmp/insights-kafka-start.ready" in " ".join(container._command)
        # The script first, then the flag the container's loop waits for.
        (script, body, mode), (flag, _, _) = container._container.files
        assert (script, flag) == ("tmp/insights-kafka-start.sh", "tmp/insights-kafka-start.ready")
        assert mode == 0o755
        assert b"KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://127.0.0.1:49153," in body
        assert body.rstrip().endswith(b"exec /etc/kafka/docker/run")
        assert waited == [bootstrap]
        assert not container._container.removed
    assert container._container.removed


def test_kafka_container_that_never_answers_is_removed_and_its_log_shown(
    engine: _Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def silent(bootstrap: str, **kwargs: Any) -> NoReturn:
        raise devstack.EmbeddedStartError(f"no answer from {bootstrap}")

    monkeypatch.setattr(devstack, "wait_for_kafka", silent)
    expected = r"(?s)no answer from 127\.0\.0\.1:49153.*kafka said no"
    with pytest.raises(RuntimeError, match=expected), containers.kafka_container():
        pass
    assert engine.started[0]._container.removed


def test_redis_container_keeps_nothing_on_disk(
    engine: _Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[str] = []
    monkeypatch.setattr(devstack, "wait_for_redis", lambda url, **kw: waited.append(url))
    with containers.redis_container() as url:
        assert url == "redis://127.0.0.1:49153/0"
        (container,) = engine.started
        assert container.image == containers.REDIS_IMAGE
        assert container.ports == {"6379": ("127.0.0.1",)}
        assert container._command == ["redis-server", "--save", "", "--appendonly", "no"]
        assert waited == [url]
    assert container._container.removed


def test_a_remote_engine_gets_the_default_port_publishing(
    engine: _Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.host = "docker.example"  # DOCKER_HOST=tcp://docker.example:2375
    monkeypatch.setattr(devstack, "wait_for_redis", lambda url, **kw: None)
    with containers.redis_container() as url:
        assert url == "redis://docker.example:49153/0"
        assert engine.started[0].ports == {"6379": None}


# --- whole sessions -----------------------------------------------------------------------------


def _session(servers: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        containers.ENV: servers,
        "DOCKER_HOST": "unix:///nonexistent/insights-docker.sock",
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-p",
            "no:cacheprovider",
            f"{Path(__file__).relative_to(REPO_ROOT)}::test_forced_embedded_probes_nothing",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_session_without_docker_reports_the_embedded_servers() -> None:
    done = _session("auto")
    assert done.returncode == 0, done.stdout + done.stderr
    header = [line for line in done.stdout.splitlines() if "insights test servers:" in line]
    assert len(header) == 1, done.stdout
    assert "embedded" in header[0] and "INSIGHTS_TEST_SERVERS=auto" in header[0]


def test_a_session_forced_onto_missing_containers_stops_with_a_usage_error() -> None:
    done = _session("containers")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "INSIGHTS_TEST_SERVERS=containers" in done.stderr
