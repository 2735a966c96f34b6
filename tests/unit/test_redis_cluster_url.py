"""Cluster URLs: ``redis+cluster://`` / ``rediss+cluster://`` seed lists become redis-py's
cluster client with the same options, credentials and TLS as the single-server client."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection

from insights.redis_client import (
    ClusterUrl,
    create_redis,
    is_cluster_url,
    parse_cluster_url,
    redact_url,
)
from insights.settings import Settings

SECRET = "s3cr3t-Pa55w0rd"


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        (
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
            ClusterUrl((("127.0.0.1", 7000), ("127.0.0.1", 7001)), None, None, False),
        ),
        (
            f"rediss+cluster://insights:{SECRET}@a.example:7000,b.example/0",
            ClusterUrl((("a.example", 7000), ("b.example", 6379)), "insights", SECRET, True),
        ),
        (
            "redis+cluster://:p%40ss%3Aw@[::1]:7000,[fe80::1]/",
            ClusterUrl((("::1", 7000), ("fe80::1", 6379)), None, "p@ss:w", False),
        ),
        (
            "REDIS+CLUSTER://u@h:1",
            ClusterUrl((("h", 1),), "u", None, False),
        ),
    ],
)
def test_cluster_urls_are_parsed(url: str, parsed: ClusterUrl) -> None:
    assert is_cluster_url(url)
    assert parse_cluster_url(url) == parsed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:1/0", r"not a redis\+cluster"),
        ("redis+cluster://h:1/2", "only database 0"),
        ("redis+cluster://,", "at least one"),
        ("redis+cluster://h:0", "port in 1-65535"),
        ("redis+cluster://h:x", "port in 1-65535"),
        ("redis+cluster://h:1:2", "host:port"),
        ("redis+cluster://h:1?db=1", "no query"),
    ],
)
def test_malformed_cluster_urls_are_refused_without_echoing_them(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_cluster_url(url)
    assert url not in str(info.value)


def test_plain_urls_are_not_cluster_urls() -> None:
    for url in ("redis://h:1/0", "rediss://h:1/0", "", "unix:///run/redis.sock"):
        assert not is_cluster_url(url)


def test_redact_cluster_url() -> None:
    url = f"rediss+cluster://insights:{SECRET}@h1:7000,h2:7001"
    assert redact_url(url) == "rediss+cluster://insights:***@h1:7000,h2:7001"


def _node_kwargs(client: RedisCluster) -> dict[str, Any]:
    node = next(iter(client.nodes_manager.startup_nodes.values()))
    return dict(node.connection_kwargs)


async def test_a_cluster_url_gives_the_cluster_client_with_the_same_options() -> None:
    settings = Settings(redis_url=f"redis+cluster://insights:{SECRET}@h1:7000,h2:7001")
    client = create_redis(settings, socket_timeout=1.5, decode_responses=True)
    try:
        assert isinstance(client, RedisCluster)
        seeds = [(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()]
        assert seeds == [("h1", 7000), ("h2", 7001)]
        kwargs = _node_kwargs(client)
        assert (kwargs["username"], kwargs["password"]) == ("insights", SECRET)
        assert kwargs["socket_timeout"] == 1.5 and kwargs["decode_responses"] is True
    finally:
        await client.aclose()


async def test_bounded_callers_get_one_retry_on_a_cluster() -> None:
    """The API's ``retry_on_timeout=False`` (not a cluster option) becomes one retry."""
    settings = Settings(redis_url="redis+cluster://h1:7000")
    client = create_redis(settings, retry_on_timeout=False)
    try:
        assert isinstance(client, RedisCluster)
        assert client.retry.get_retries() == 1
    finally:
        await client.aclose()


async def test_rediss_cluster_uses_tls_and_its_options() -> None:
    settings = Settings(
        redis_url="rediss+cluster://h1:7000", redis_tls_verify=False, redis_day_buckets=4
    )
    client = create_redis(settings)
    try:
        assert isinstance(client, RedisCluster)
        node = next(iter(client.nodes_manager.startup_nodes.values()))
        assert node.connection_class is SSLConnection
        assert node.connection_kwargs["ssl_cert_reqs"] == "none"
    finally:
        await client.aclose()
    assert settings.day_buckets == 4


def test_tls_files_with_a_plain_cluster_url_are_refused(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    settings = Settings(redis_url="redis+cluster://h1:7000", redis_tls_ca_file=str(ca))
    with pytest.raises(ValueError, match="rediss"):
        create_redis(settings)


async def test_a_plain_url_still_gives_the_single_server_client() -> None:
    client = create_redis(Settings(redis_url="redis://h:1/3"))
    try:
        assert isinstance(client, Redis)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "buckets"),
    [("redis://h:1/0", 1), ("", 1), ("redis+cluster://h:1", 16), ("rediss+cluster://h:1", 16)],
)
def test_day_buckets_default_by_kind_of_redis(url: str, buckets: int) -> None:
    settings = Settings(redis_url=url)
    assert settings.redis_cluster == (buckets == 16)
    assert settings.day_buckets == buckets
