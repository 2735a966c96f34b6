"""Security options of every Kafka client the service builds, from ``INSIGHTS_KAFKA_*``.

:func:`kafka_client_kwargs` is the one mapping from settings to aiokafka's keyword
arguments (``security_protocol``, ``ssl_context``, ``sasl_mechanism``,
``sasl_plain_username``, ``sasl_plain_password``); the topic admin, the rebuild/replay
consumer and admin, the demo producer and the API's broker check take them as they are,
and the worker's Faust app gets the same context and credentials as a Faust credentials
object (``streams.worker.broker_credentials``).

Protocols: ``PLAINTEXT`` (the default), ``SSL`` (TLS; client certificate optional),
``SASL_PLAINTEXT`` and ``SASL_SSL`` (SASL over TLS) with mechanism ``PLAIN``,
``SCRAM-SHA-256`` or ``SCRAM-SHA-512``. TLS verifies the broker's certificate against
``INSIGHTS_KAFKA_SSL_CA_FILE`` (the system's CAs when unset) and its host name. Settings
refuse combinations that would be ignored (``insights.settings``); files that cannot be
loaded fail here, at start, with the setting's name. The SASL password is a ``SecretStr``
in the settings and is unwrapped only into these keyword arguments.
"""

from __future__ import annotations

import ssl
from typing import Any

from insights.settings import Settings

__all__ = ["kafka_client_kwargs", "kafka_ssl_context", "uses_tls"]


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """A client context verifying the broker (certificate and host name), with the client
    certificate when one is configured."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=settings.kafka_ssl_ca_file or None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"INSIGHTS_KAFKA_SSL_CA_FILE cannot be loaded: {_why(exc)}") from exc
    if settings.kafka_ssl_cert_file:
        try:
            # No password prompt: an encrypted key fails here instead of waiting on a terminal.
            context.load_cert_chain(
                settings.kafka_ssl_cert_file,
                settings.kafka_ssl_key_file or None,
                password=_no_key_password,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"INSIGHTS_KAFKA_SSL_CERT_FILE / _KEY_FILE cannot be loaded: {_why(exc)}"
            ) from exc
    return context


def kafka_client_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured protocol (a fresh TLS context each
    call: build a client's options once, when the client is built)."""
    protocol = settings.kafka_security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if uses_tls(settings):
        kwargs["ssl_context"] = kafka_ssl_context(settings)
    if protocol.startswith("SASL_"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def _no_key_password() -> bytes:
    return b""


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
