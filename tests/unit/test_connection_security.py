"""Settings -> client options: Redis credentials and TLS, Kafka TLS and SASL.

Every Redis client comes from ``insights.redis_client.create_redis`` and every Kafka client
takes ``insights.kafka_client.kafka_client_kwargs`` (the worker's Faust app the same, as a
Faust credentials object); the last tests check that each client the service builds gets
them. Secrets never show in errors or in the settings' repr.
"""

from __future__ import annotations

import ast
import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError
from redis.asyncio.connection import SSLConnection

from api import readiness
from api.app import create_app
from api.context import BROKER
from insights.kafka_client import kafka_client_kwargs
from insights.redis_client import create_redis, redact_url, redis_tls_kwargs
from insights.settings import Settings
from streams import demo, kafka_admin, rebuild
from streams.worker import InsightsWorker, broker_credentials
from tests.integration.tls_certs import Pki, make_pki

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Pa55w0rd"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _settings(**values: Any) -> Settings:
    return Settings(**values)


# --- Redis -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://insights@cache:6379/0", "redis://insights@cache:6379/0"),
        (f"redis://:{SECRET}@cache:6379/0", "redis://:***@cache:6379/0"),
        (f"redis://insights:{SECRET}@cache:6379/1", "redis://insights:***@cache:6379/1"),
        (f"rediss://insights:{SECRET}@[::1]:6380/0", "rediss://insights:***@[::1]:6380/0"),
        ("redis://u:p%40ss%3Aw@cache/0", "redis://u:***@cache/0"),
        ("redis://u:p@ss@cache/0", "redis://u:***@cache/0"),  # an unencoded '@' too
        ("unix:///run/redis.sock?db=0", "unix:///run/redis.sock?db=0"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


async def test_url_credentials_reach_every_connection() -> None:
    settings = _settings(redis_url="redis://insights:p%40ss%3Aw%2Frd@cache:6380/2")
    client = create_redis(settings, socket_timeout=1.5)
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("insights", "p@ss:w/rd")
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache", 6380, 2)
        assert kwargs["socket_timeout"] == 1.5
        assert client.connection_pool.connection_class is not SSLConnection
    finally:
        await client.aclose()


def test_plain_url_has_no_tls_options() -> None:
    assert redis_tls_kwargs(_settings(redis_url="redis://cache:6379/0")) == {}
    assert redis_tls_kwargs(_settings(redis_url="")) == {}  # the embedded server's


def test_rediss_verifies_by_default_with_the_system_cas() -> None:
    assert redis_tls_kwargs(_settings(redis_url="rediss://cache:6380/0")) == {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }


async def test_rediss_with_ca_and_client_certificate(pki: Pki) -> None:
    settings = _settings(
        redis_url=f"rediss://insights:{SECRET}@cache:6380/0",
        redis_tls_ca_file=str(pki.ca.cert_file),
        redis_tls_cert_file=str(pki.client.cert_file),
        redis_tls_key_file=str(pki.client.key_file),
    )
    assert redis_tls_kwargs(settings) == {
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
        "ssl_ca_certs": str(pki.ca.cert_file),
        "ssl_certfile": str(pki.client.cert_file),
        "ssl_keyfile": str(pki.client.key_file),
    }
    client = create_redis(settings)
    try:
        pool = client.connection_pool
        assert pool.connection_class is SSLConnection
        conn = pool.connection_class(**pool.connection_kwargs)
        tls = conn.ssl_context
        assert (tls.ca_certs, tls.certfile, tls.keyfile) == (
            str(pki.ca.cert_file),
            str(pki.client.cert_file),
            str(pki.client.key_file),
        )
        assert (tls.cert_reqs, tls.check_hostname) == (ssl.CERT_REQUIRED, True)
        assert conn.password == SECRET
    finally:
        await client.aclose()


def test_rediss_without_verification(pki: Pki) -> None:
    settings = _settings(
        redis_url="rediss://cache:6380/0",
        redis_tls_ca_file=str(pki.ca.cert_file),
        redis_tls_verify=False,
    )
    kwargs = redis_tls_kwargs(settings)
    assert (kwargs["ssl_cert_reqs"], kwargs["ssl_check_hostname"]) == ("none", False)


def test_tls_files_with_a_plain_url_are_refused(pki: Pki) -> None:
    settings = _settings(
        redis_url=f"redis://:{SECRET}@cache:6379/0", redis_tls_ca_file=str(pki.ca.cert_file)
    )
    with pytest.raises(ValueError, match=r"INSIGHTS_REDIS_TLS_CA_FILE.*rediss://") as err:
        create_redis(settings)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("which", ["ca", "cert", "key"])
def test_unloadable_tls_files_fail_at_start(pki: Pki, tmp_path: Path, which: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a PEM file\n")
    files = {
        "redis_tls_ca_file": str(pki.ca.cert_file),
        "redis_tls_cert_file": str(pki.client.cert_file),
        "redis_tls_key_file": str(pki.client.key_file),
    }
    files[f"redis_tls_{which}_file"] = str(garbage)
    settings = _settings(redis_url=f"rediss://:{SECRET}@cache:6380/0", **files)
    setting = "CA_FILE" if which == "ca" else "CERT_FILE"
    with pytest.raises(ValueError, match=f"INSIGHTS_REDIS_TLS_{setting}") as err:
        create_redis(settings)
    assert SECRET not in str(err.value)
    missing = _settings(redis_url="rediss://cache/0", redis_tls_ca_file=str(tmp_path / "no.pem"))
    with pytest.raises(ValueError, match="INSIGHTS_REDIS_TLS_CA_FILE cannot be loaded"):
        redis_tls_kwargs(missing)


def test_redis_key_without_certificate_is_refused() -> None:
    with pytest.raises(ValidationError, match="INSIGHTS_REDIS_TLS_KEY_FILE needs"):
        _settings(redis_url="rediss://cache/0", redis_tls_key_file="/x.key")


def test_redis_settings_come_from_the_environment(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIGHTS_REDIS_URL", "rediss://insights:pw@cache:6380/0")
    monkeypatch.setenv("INSIGHTS_REDIS_TLS_CA_FILE", str(pki.ca.cert_file))
    monkeypatch.setenv("INSIGHTS_REDIS_TLS_CERT_FILE", str(pki.client.cert_file))
    monkeypatch.setenv("INSIGHTS_REDIS_TLS_KEY_FILE", str(pki.client.key_file))
    monkeypatch.setenv("INSIGHTS_REDIS_TLS_VERIFY", "false")
    settings = Settings()
    assert settings.redis_tls_ca_file == str(pki.ca.cert_file)
    assert settings.redis_tls_key_file == str(pki.client.key_file)
    assert settings.redis_tls_verify is False


# --- Kafka -------------------------------------------------------------------------------

SASL = {"kafka_sasl_username": "insights", "kafka_sasl_password": SECRET}


def test_plaintext_is_the_default() -> None:
    settings = _settings()
    assert kafka_client_kwargs(settings) == {"security_protocol": "PLAINTEXT"}
    assert broker_credentials(settings) is None


def _assert_verifying(context: ssl.SSLContext) -> None:
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_ssl_verifies_the_broker_against_the_ca_file(pki: Pki) -> None:
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(pki.ca.cert_file))
    kwargs = kafka_client_kwargs(settings)
    assert set(kwargs) == {"security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    context = kwargs["ssl_context"]
    _assert_verifying(context)
    subjects = [dict(x[0] for x in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": "insights-test-ca"} in subjects


def test_ssl_with_a_client_certificate(pki: Pki) -> None:
    settings = _settings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=str(pki.ca.cert_file),
        kafka_ssl_cert_file=str(pki.client.cert_file),
        kafka_ssl_key_file=str(pki.client.key_file),
    )
    _assert_verifying(kafka_client_kwargs(settings)["ssl_context"])
    # the key must match the certificate: loading checks it
    wrong_key = settings.model_copy(update={"kafka_ssl_key_file": str(pki.server.key_file)})
    with pytest.raises(ValueError, match="INSIGHTS_KAFKA_SSL_CERT_FILE / _KEY_FILE"):
        kafka_client_kwargs(wrong_key)


def test_unloadable_kafka_ca_fails_at_start(tmp_path: Path) -> None:
    settings = _settings(kafka_security_protocol="SSL", kafka_ssl_ca_file=str(tmp_path / "no"))
    with pytest.raises(ValueError, match="INSIGHTS_KAFKA_SSL_CA_FILE cannot be loaded"):
        kafka_client_kwargs(settings)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl(pki: Pki, protocol: str, mechanism: str) -> None:
    tls = {"kafka_ssl_ca_file": str(pki.ca.cert_file)} if protocol == "SASL_SSL" else {}
    settings = _settings(
        kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, **SASL, **tls
    )
    kwargs = kafka_client_kwargs(settings)
    context = kwargs.pop("ssl_context", None)
    assert kwargs == {
        "security_protocol": protocol,
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "insights",
        "sasl_plain_password": SECRET,
    }
    assert (context is not None) == (protocol == "SASL_SSL")
    if context is not None:
        _assert_verifying(context)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs INSIGHTS_KAFKA_SASL_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": SECRET},
            "needs INSIGHTS_KAFKA_SASL_USERNAME",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "insights"},
            "and INSIGHTS_KAFKA_SASL_PASSWORD",
        ),
        ({**SASL}, "does not use SASL"),
        ({"kafka_security_protocol": "SSL", **SASL}, "does not use SASL"),
        ({"kafka_ssl_ca_file": "/ca.pem"}, "does not use TLS"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_ssl_ca_file": "/ca.pem", **SASL},
            "does not use TLS",
        ),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_key_file": "/k.pem"},
            "INSIGHTS_KAFKA_SSL_KEY_FILE needs INSIGHTS_KAFKA_SSL_CERT_FILE",
        ),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", **SASL},
            "kafka_sasl_mechanism",
        ),
        (
            {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "OAUTHBEARER"},
            "kafka_sasl_mechanism",
        ),
    ],
)
def test_inconsistent_kafka_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as err:
        _settings(**values)
    assert SECRET not in str(err.value)


def test_protocol_and_mechanism_are_case_insensitive() -> None:
    settings = _settings(
        kafka_security_protocol=" sasl_plaintext", kafka_sasl_mechanism="scram-sha-256", **SASL
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == (
        "SASL_PLAINTEXT",
        "SCRAM-SHA-256",
    )


def test_kafka_settings_come_from_the_environment(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "INSIGHTS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "INSIGHTS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "INSIGHTS_KAFKA_SASL_USERNAME": "insights",
        "INSIGHTS_KAFKA_SASL_PASSWORD": SECRET,
        "INSIGHTS_KAFKA_SSL_CA_FILE": str(pki.ca.cert_file),
        "INSIGHTS_KAFKA_SSL_CERT_FILE": str(pki.client.cert_file),
        "INSIGHTS_KAFKA_SSL_KEY_FILE": str(pki.client.key_file),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    kwargs = kafka_client_kwargs(settings)
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_password"] == SECRET
    # the password shows nowhere else
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())


def test_validation_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ValidationError) as err:
        _settings(
            redis_url=f"redis://insights:{SECRET}@cache:6379/0",
            kafka_security_protocol="SASL_SSL",
            kafka_sasl_password=SECRET,
        )
    assert SECRET not in str(err.value)
    with pytest.raises(ValidationError) as err:
        _settings(redis_url=f"redis://:{SECRET}@cache/0", broker_heartbeat_interval_s=5)
    assert SECRET not in str(err.value)


# --- the worker's Faust app ---------------------------------------------------------------


def _auth_without_context(kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    kwargs = dict(kwargs)
    return kwargs, kwargs.pop("ssl_context", None)


@pytest.mark.parametrize(
    ("protocol", "credentials_type"),
    [
        ("PLAINTEXT", type(None)),
        ("SSL", faust.SSLCredentials),
        ("SASL_PLAINTEXT", faust.SASLCredentials),
        ("SASL_SSL", faust.SASLCredentials),
    ],
)
async def test_faust_app_gets_the_same_security(
    pki: Pki, protocol: str, credentials_type: type
) -> None:
    values: dict[str, Any] = {"kafka_security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        values["kafka_ssl_ca_file"] = str(pki.ca.cert_file)
    if protocol.startswith("SASL_"):
        values.update(SASL, kafka_sasl_mechanism="SCRAM-SHA-256")
    settings = _settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0", **values)
    redis = create_redis(settings)  # never connected
    worker = InsightsWorker(settings, redis)
    try:
        credentials = worker.app.conf.broker_credentials
        assert isinstance(credentials, credentials_type)
        assert SECRET not in repr(credentials)
        # Faust's own translation for its consumer, producer and admin == ours
        faust_kwargs, faust_context = _auth_without_context(
            dict(credentials_to_aiokafka_auth(credentials, worker.app.conf.ssl_context))
        )
        ours, our_context = _auth_without_context(kafka_client_kwargs(settings))
        if protocol.startswith("SASL_"):
            assert faust_kwargs == ours
        else:
            assert faust_kwargs == ours  # no SASL keys at all
        assert (faust_context is None) == (our_context is None)
        if faust_context is not None:
            _assert_verifying(faust_context)
            assert faust_context.get_ca_certs() == our_context.get_ca_certs()
        # ... and it reaches the real aiokafka consumer of the worker and its producer
        thread = worker.app.consumer._thread  # not started
        consumer = thread._create_worker_consumer(worker.app.transport)
        try:
            client = consumer._client
            assert client._security_protocol == protocol
            assert client._ssl_context is faust_context
            if protocol.startswith("SASL_"):
                assert client._sasl_mechanism == "SCRAM-SHA-256"
                assert client._sasl_plain_username == "insights"
                assert client._sasl_plain_password == SECRET
        finally:
            await consumer.stop()
            thread.thread_loop.close()
        producer_auth = dict(worker.app.producer._settings_auth())
        assert producer_auth["security_protocol"] == protocol
    finally:
        await redis.aclose()


# --- every Kafka client the service builds ---------------------------------------------------


class _Built(Exception):
    """Raised by a fake client where the real one would start talking to the broker."""


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def client_class(self) -> type:
        calls = self.calls

        class Fake:
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                calls.append(kwargs)

            async def start(self) -> None:
                raise _Built

        return Fake


@pytest.fixture
def sasl_ssl(pki: Pki) -> Settings:
    return _settings(
        kafka_bootstrap="broker-1:9093,broker-2:9093",
        redis_url="redis://127.0.0.1:1/0",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_ssl_ca_file=str(pki.ca.cert_file),
        **SASL,
    )


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    yield _Recorder()


def _assert_secured(kwargs: dict[str, Any]) -> None:
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("insights", SECRET)
    _assert_verifying(kwargs["ssl_context"])


async def test_topic_admin_is_secured(
    sasl_ssl: Settings, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka_admin, "AIOKafkaAdminClient", recorder.client_class())
    with pytest.raises(_Built):
        await kafka_admin.create_topics(
            sasl_ssl.kafka_bootstrap, ["t"], 1, security=kafka_client_kwargs(sasl_ssl)
        )
    _assert_secured(recorder.calls[0])


async def test_rebuild_consumer_and_admin_are_secured(
    sasl_ssl: Settings, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rebuild, "AIOKafkaConsumer", recorder.client_class())
    monkeypatch.setattr(rebuild, "AIOKafkaAdminClient", recorder.client_class())
    reader = rebuild._Reader(sasl_ssl, store=None, group="g")  # type: ignore[arg-type]
    with pytest.raises(_Built):
        await reader.start()
    with pytest.raises(_Built):
        await rebuild._live_group_offsets(sasl_ssl, [])
    assert len(recorder.calls) == 2
    for kwargs in recorder.calls:
        _assert_secured(kwargs)


async def test_demo_producer_is_secured(
    sasl_ssl: Settings, recorder: _Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo, "AIOKafkaProducer", recorder.client_class())
    with pytest.raises(_Built):
        await demo.DemoProducer(sasl_ssl, users=1).run(0, asyncio.Event())
    _assert_secured(recorder.calls[0])


async def test_readiness_broker_check_is_secured(
    sasl_ssl: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int, dict[str, Any]]] = []

    async def create_conn(host: str, port: int, **kwargs: Any) -> Any:
        seen.append((host, port, kwargs))
        raise readiness.SaslAuthenticationFailed("Authentication failed")

    monkeypatch.setattr(readiness, "create_conn", create_conn)
    store: Any = SimpleNamespace(source=None)  # never read: only the broker is checked
    app = create_app(sasl_ssl, store=store)
    try:
        assert await app[BROKER].state() == readiness.ERROR  # refused, not unreachable
    finally:
        await app[BROKER].close()
    assert [(h, p) for h, p, _ in seen] == [("broker-1", 9093), ("broker-2", 9093)]
    for _, _, kwargs in seen:
        _assert_secured(kwargs)


# --- no client is built around the factories ---------------------------------------------

# aiokafka's clients, and the project's functions that build one from a ``security`` mapping
_KAFKA_CLIENTS = {
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "AIOKafkaAdminClient",
    "AIOKafkaClient",
    "create_conn",
    "create_topics",  # streams.kafka_admin's (not the admin client's method of that name)
    "BrokerProbe.from_bootstrap",
}


def _production_modules() -> list[Path]:
    """The service's code; the dev stack only ever talks to its own embedded servers."""
    files = []
    for package in ("insights", "api", "streams", "aggregators"):
        files += [p for p in (ROOT / package).rglob("*.py") if "devstack" not in p.parts]
    return files


def _calls(path: Path) -> Iterator[ast.Call]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        base = func.value.id if isinstance(func.value, ast.Name) else ""
        return f"{base}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def test_every_redis_client_comes_from_the_factory() -> None:
    found = []
    for path in _production_modules():
        for call in _calls(path):
            if _name(call) in ("Redis", "Redis.from_url", "redis.Redis", "StrictRedis"):
                found.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert found == ["insights/redis_client.py:" + str(_factory_line())]


def _factory_line() -> int:
    path = ROOT / "insights" / "redis_client.py"
    return next(c.lineno for c in _calls(path) if _name(c) == "Redis.from_url")


def test_every_kafka_client_gets_the_security_options() -> None:
    """Each construction of a Kafka client unpacks options (``**kafka_client_kwargs(...)``,
    ``**security``) or passes ``security=``, and the Faust app gets ``broker_credentials``:
    none is built with the defaults, i.e. PLAINTEXT."""
    unsecured, apps = [], 0
    for path in _production_modules():
        for call in _calls(path):
            full = _name(call)
            name = full.rpartition(".")[2]
            given = {k.arg for k in call.keywords}
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            client = full in _KAFKA_CLIENTS or (name in _KAFKA_CLIENTS and name[0].isupper())
            if client and not given & {None, "security"}:
                unsecured.append(where)
            if name == "App" and "broker" in given:
                apps += 1
                if "broker_credentials" not in given:
                    unsecured.append(where)
    assert unsecured == []
    assert apps == 1  # the worker's
