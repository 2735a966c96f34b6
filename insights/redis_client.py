"""Every async Redis client of the service comes from :func:`create_redis`.

The URL carries the credentials (``redis://user:password@host:port/db``: an ACL user, or
``redis://:password@...`` for ``requirepass``; percent-encode reserved characters), and a
``rediss://`` URL turns TLS on, configured by ``INSIGHTS_REDIS_TLS_*``: a CA bundle (the
system's CAs when unset), an optional client certificate and key, and whether to verify
the server's certificate and host name (on by default). TLS files given for a plain
``redis://`` URL are refused rather than ignored, and unreadable ones fail here, at start,
not on every later connection attempt.

Logged URLs go through :func:`redact_url`: the password never reaches a log line.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from insights.settings import Settings

__all__ = ["create_redis", "redact_url", "redis_tls_kwargs"]

REDACTED_PASSWORD = "***"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user name, host, port and db stay)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL we can take apart: show nothing of it
        return "<unparsable url>"
    if password is None:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:{REDACTED_PASSWORD}@{hostinfo}").geturl()


def redis_tls_kwargs(settings: Settings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` options for ``settings.redis_url`` (none for a ``redis://`` URL).

    Raises ValueError for TLS files with a URL that does not use TLS, and for files that
    cannot be loaded (named by their setting, never showing the URL).
    """
    files = {
        "INSIGHTS_REDIS_TLS_CA_FILE": settings.redis_tls_ca_file,
        "INSIGHTS_REDIS_TLS_CERT_FILE": settings.redis_tls_cert_file,
        "INSIGHTS_REDIS_TLS_KEY_FILE": settings.redis_tls_key_file,
    }
    try:
        scheme = urlsplit(settings.redis_url).scheme
    except ValueError:
        scheme = ""
    if scheme != "rediss":
        given = [name for name, path in files.items() if path]
        if given:
            raise ValueError(
                f"{', '.join(given)} set, but INSIGHTS_REDIS_URL does not use TLS:"
                " give a rediss:// URL"
            )
        return {}
    _check_loadable(
        settings.redis_tls_ca_file, settings.redis_tls_cert_file, settings.redis_tls_key_file
    )
    verify = settings.redis_tls_verify
    kwargs: dict[str, Any] = {
        "ssl_cert_reqs": "required" if verify else "none",
        "ssl_check_hostname": verify,
    }
    if settings.redis_tls_ca_file:
        kwargs["ssl_ca_certs"] = settings.redis_tls_ca_file
    if settings.redis_tls_cert_file:
        kwargs["ssl_certfile"] = settings.redis_tls_cert_file
        kwargs["ssl_keyfile"] = settings.redis_tls_key_file or None
    return kwargs


def create_redis(settings: Settings, **options: Any) -> Redis:
    """An async client for ``settings.redis_url`` with its credentials and TLS settings;
    ``options`` are redis-py's (timeouts, ``decode_responses``, ...)."""
    return Redis.from_url(settings.redis_url, **redis_tls_kwargs(settings), **options)


def _check_loadable(ca_file: str, cert_file: str, key_file: str) -> None:
    """Load the files once into a throw-away context: a bad path or PEM fails at start.

    redis-py builds its context lazily, on the first connection, and would otherwise turn
    the mistake into a connection error on every attempt.
    """
    context = ssl.create_default_context()
    try:
        if ca_file:
            context.load_verify_locations(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"INSIGHTS_REDIS_TLS_CA_FILE cannot be loaded: {_why(exc)}") from exc
    try:
        if cert_file:
            # No password prompt: an encrypted key fails here instead of waiting on a terminal.
            context.load_cert_chain(cert_file, key_file or None, password=_no_key_password)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"INSIGHTS_REDIS_TLS_CERT_FILE / _KEY_FILE cannot be loaded: {_why(exc)}"
        ) from exc


def _no_key_password() -> bytes:
    return b""


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
