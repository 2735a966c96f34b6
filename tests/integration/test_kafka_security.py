"""The API's broker check (``/readyz``) speaks TLS and SASL the way the workers do.

The embedded broker (Tansu) has no TLS or SASL listener, so Kafka security cannot run
end to end here: the mapping of settings to every client's options, Faust's included, is
covered in ``tests/unit/test_connection_security.py``. This module puts a minimal broker
on 127.0.0.1, behind TLS with a throw-away CA, that answers exactly what a client does
first (ApiVersions, SaslHandshake, SaslAuthenticate with ``PLAIN``) and checks the
credentials it receives: so the check's TLS handshake (certificate and host name
verified), its SASL handshake and the credentials on the wire are real.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.protocol.admin import (
    ApiVersionResponse_v0,
    SaslAuthenticateRequest_v0,
    SaslAuthenticateResponse_v0,
    SaslHandShakeRequest_v1,
    SaslHandShakeResponse_v1,
)

from api import readiness
from api.readiness import BrokerProbe
from insights.kafka_client import kafka_client_kwargs
from insights.settings import Settings
from tests.integration.tls_certs import Pki, make_pki

pytestmark = pytest.mark.integration

USER = "insights-worker"
PASSWORD = "sasl-p@ss:w/rd-0c7d"
SASL_AUTHENTICATION_FAILED = 58
API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36


@dataclass
class FakeBroker:
    """Answers ApiVersions, SaslHandshake v1 (PLAIN) and SaslAuthenticate v0 over TLS."""

    context: ssl.SSLContext
    seen: list[int] = field(default_factory=list)
    credentials: list[tuple[str, str]] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                api_key, _version, correlation_id, id_len = struct.unpack(">hhih", frame[:10])
                body = frame[10 + max(id_len, 0) :]
                self.seen.append(api_key)
                reply = self._answer(api_key, body)
                payload = struct.pack(">i", correlation_id) + reply
                writer.write(struct.pack(">i", len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _answer(self, api_key: int, body: bytes) -> bytes:
        if api_key == API_VERSIONS:
            versions = [(API_VERSIONS, 0, 0), (SASL_HANDSHAKE, 1, 1), (SASL_AUTHENTICATE, 0, 0)]
            return ApiVersionResponse_v0(error_code=0, api_versions=versions).encode()
        if api_key == SASL_HANDSHAKE:
            mechanism = SaslHandShakeRequest_v1.decode(body).mechanism
            code = 0 if mechanism == "PLAIN" else 33  # UNSUPPORTED_SASL_MECHANISM
            return SaslHandShakeResponse_v1(error_code=code, enabled_mechanisms=["PLAIN"]).encode()
        if api_key == SASL_AUTHENTICATE:
            token = SaslAuthenticateRequest_v0.decode(body).sasl_auth_bytes
            _authzid, user, password = token.decode().split("\0")
            self.credentials.append((user, password))
            ok = (user, password) == (USER, PASSWORD)
            return SaslAuthenticateResponse_v0(
                error_code=0 if ok else SASL_AUTHENTICATION_FAILED,
                error_message=None if ok else "Authentication failed",
                sasl_auth_bytes=b"",
            ).encode()
        raise AssertionError(f"unexpected request {api_key}")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("kafka-pki"))


@pytest.fixture
async def broker(pki: Pki) -> AsyncIterator[tuple[FakeBroker, int]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pki.server.cert_file), str(pki.server.key_file))
    fake = FakeBroker(context)
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0, ssl=context)
    try:
        yield fake, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _probe(port: int, ca: Path, *, host: str = "127.0.0.1", **values: str) -> BrokerProbe:
    settings = Settings(kafka_bootstrap=f"{host}:{port}", kafka_ssl_ca_file=str(ca), **values)
    return BrokerProbe.from_bootstrap(
        settings.kafka_bootstrap, 2.0, security=kafka_client_kwargs(settings)
    )


async def _state(probe: BrokerProbe) -> str:
    try:
        return await probe.state()
    finally:
        await probe.close()


SASL_SSL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "PLAIN",
    "kafka_sasl_username": USER,
}


async def test_sasl_ssl_check_authenticates(broker: tuple[FakeBroker, int], pki: Pki) -> None:
    fake, port = broker
    probe = _probe(port, pki.ca.cert_file, **SASL_SSL, kafka_sasl_password=PASSWORD)
    assert await _state(probe) == readiness.OK
    assert fake.seen == [API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE]
    assert fake.credentials == [(USER, PASSWORD)]


async def test_wrong_password_is_an_error_not_an_outage(
    broker: tuple[FakeBroker, int], pki: Pki
) -> None:
    fake, port = broker
    probe = _probe(port, pki.ca.cert_file, **SASL_SSL, kafka_sasl_password="wrong")
    assert await _state(probe) == readiness.ERROR
    assert fake.credentials == [(USER, "wrong")]


async def test_unsupported_mechanism_is_an_error(broker: tuple[FakeBroker, int], pki: Pki) -> None:
    _, port = broker
    values = {**SASL_SSL, "kafka_sasl_mechanism": "SCRAM-SHA-512"}
    probe = _probe(port, pki.ca.cert_file, **values, kafka_sasl_password=PASSWORD)
    assert await _state(probe) == readiness.ERROR


async def test_ssl_check_verifies_the_broker(broker: tuple[FakeBroker, int], pki: Pki) -> None:
    fake, port = broker
    assert await _state(_probe(port, pki.ca.cert_file, kafka_security_protocol="SSL")) == "ok"
    assert fake.seen == [API_VERSIONS]  # no SASL without SASL_*
    # an unknown CA, or a name the certificate does not carry: refused before any request
    for probe in (
        _probe(port, pki.other_ca.cert_file, kafka_security_protocol="SSL"),
        _probe(port, pki.ca.cert_file, host="localhost", kafka_security_protocol="SSL"),
    ):
        assert await _state(probe) == readiness.ERROR
    assert fake.seen == [API_VERSIONS]
    assert fake.credentials == []


async def test_plaintext_check_against_a_tls_listener_fails_bounded(
    broker: tuple[FakeBroker, int],
) -> None:
    _, port = broker
    probe = BrokerProbe.from_bootstrap(f"127.0.0.1:{port}", 0.5)
    assert await _state(probe) in (readiness.TIMEOUT, readiness.UNREACHABLE)
