"""Every async Redis client of the service comes from :func:`create_redis`.

The URL carries the credentials (``redis://user:password@host:port/db``: an ACL user, or
``redis://:password@...`` for ``requirepass``; percent-encode reserved characters), and a
``rediss://`` URL turns TLS on, configured by ``INSIGHTS_REDIS_TLS_*``: a CA bundle (the
system's CAs when unset), an optional client certificate and key, and whether to verify
the server's certificate and host name (on by default). TLS files given for a plain
``redis://`` URL are refused rather than ignored, and unreadable ones fail here, at start,
not on every later connection attempt.

A Redis Cluster is named by its seed nodes: ``redis+cluster://[user:password@]host:port,
host:port`` (``rediss+cluster://`` with TLS, the same ``INSIGHTS_REDIS_TLS_*`` options). Any
one reachable seed is enough: the client learns the slot map from it and follows MOVED/ASK
redirections. A cluster has only database 0, so a path other than ``/`` or ``/0`` is refused.
Every caller takes a :data:`RedisClient`, the plain or the cluster client alike.

Logged URLs go through :func:`redact_url`: the password never reaches a log line.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from aggregators.store.client import RedisClient
from insights.settings import Settings

__all__ = [
    "ClusterState",
    "ClusterUrl",
    "RedisClient",
    "cluster_state",
    "create_redis",
    "is_cluster_url",
    "parse_cluster_url",
    "redact_url",
    "redis_tls_kwargs",
]

REDACTED_PASSWORD = "***"
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}  # scheme -> TLS
TLS_SCHEMES = frozenset({"rediss", "rediss+cluster"})
DEFAULT_PORT = 6379
# Options of redis.asyncio.Redis the cluster client has no equivalent for: its own retry
# (below) stands in for retry_on_timeout.
_NOT_FOR_CLUSTER = frozenset({"retry_on_timeout"})


@dataclass(frozen=True)
class ClusterUrl:
    """A ``redis[s]+cluster://`` URL taken apart (the password unquoted)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    tls: bool


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError:
        return ""


def is_cluster_url(url: str) -> bool:
    return _scheme(url) in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterUrl:
    """The seeds and credentials of a cluster URL; ValueError (never echoing the URL, which
    holds the password) when it is not one or is malformed."""
    scheme = _scheme(url)
    if scheme not in CLUSTER_SCHEMES:
        raise ValueError("not a redis+cluster:// or rediss+cluster:// URL")
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise ValueError("a cluster URL takes no query or fragment")
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has only database 0: give no path or /0")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    username: str | None = None
    password: str | None = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = tuple(_host_port(item) for item in hosts.split(",") if item.strip())
    if not nodes:
        raise ValueError("a cluster URL names at least one host:port seed")
    return ClusterUrl(nodes, username, password, CLUSTER_SCHEMES[scheme])


def _host_port(item: str) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [v6] or [v6]:port
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":") or str(DEFAULT_PORT)
    elif item.count(":") == 1:
        host, _, port = item.partition(":")
    elif ":" not in item:
        host, port = item, str(DEFAULT_PORT)
    else:
        raise ValueError("a cluster seed is host:port, or [v6 address]:port")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("a cluster seed is host:port with a port in 1-65535")
    return host, int(port)


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
    if _scheme(settings.redis_url) not in TLS_SCHEMES:
        given = [name for name, path in files.items() if path]
        if given:
            raise ValueError(
                f"{', '.join(given)} set, but INSIGHTS_REDIS_URL does not use TLS:"
                " give a rediss:// (or rediss+cluster://) URL"
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


@dataclass(frozen=True)
class ClusterState:
    """What ``CLUSTER INFO`` and the client's slot map say about a cluster."""

    state: str  # "ok" or "fail"
    masters: int
    replicas: int
    slots_ok: int

    @property
    def healthy(self) -> bool:
        return self.state == "ok" and self.slots_ok == CLUSTER_SLOTS

    def describe(self) -> str:
        return (
            f"cluster_state {self.state}, {self.masters} masters, {self.replicas} replicas,"
            f" {self.slots_ok:,}/{CLUSTER_SLOTS:,} slots ok"
        )


CLUSTER_SLOTS = 16_384


async def cluster_state(client: RedisCluster) -> ClusterState:
    """The cluster as one node sees it (the client's default node, any would do)."""
    info: Any = await client.cluster_info()
    return ClusterState(
        str(info.get("cluster_state", "unknown")),
        len(client.get_primaries()),
        len(client.get_replicas()),
        int(info.get("cluster_slots_ok", 0)),
    )


def create_redis(settings: Settings, **options: Any) -> RedisClient:
    """An async client for ``settings.redis_url`` with its credentials and TLS settings: a
    ``RedisCluster`` for a cluster URL, else a ``Redis``. ``options`` are redis-py's
    (timeouts, ``decode_responses``, ...), the same for both."""
    tls = redis_tls_kwargs(settings)
    if not is_cluster_url(settings.redis_url):
        return Redis.from_url(settings.redis_url, **tls, **options)
    url = parse_cluster_url(settings.redis_url)
    kwargs = {k: v for k, v in options.items() if k not in _NOT_FOR_CLUSTER}
    if options.get("retry_on_timeout") is False:
        # A caller that bounds every wait (the API) gets one retry, which re-reads the slot
        # map after a failover, instead of the client's default several.
        kwargs.setdefault("retry", Retry(NoBackoff(), 1))
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in url.nodes],
        username=url.username,
        password=url.password,
        ssl=url.tls,
        **tls,
        **kwargs,
    )


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
