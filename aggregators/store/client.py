"""The client the store talks through, and its scripts.

``RedisClient`` is either redis-py client: a single server (``Redis``) or a Redis Cluster
(``RedisCluster``); every command, pipeline and script of the store works through both.

Scripts go out as ``EVALSHA`` inside the callers' pipelines, so a batch costs one round trip
(redis-py's own script objects check ``SCRIPT EXISTS`` first on a plain pipeline, one more
round trip each time). A server that does not know a script yet (a fresh or restarted node,
a replica just promoted) answers NOSCRIPT: :func:`execute` then loads every script on every
primary and runs the pipeline again, which is safe because every write is idempotent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

RedisClient: TypeAlias = Redis | RedisCluster
Pipeline: TypeAlias = Any  # redis-py's Pipeline or ClusterPipeline: the same queueing methods


class Script:
    """One Lua script of ``aggregators/store``, called by its SHA1 digest."""

    def __init__(self, name: str) -> None:
        self.text = resources.files("aggregators.store").joinpath(name).read_text()
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()

    def queue(self, pipe: Pipeline, keys: Sequence[str], args: Sequence[str | bytes]) -> None:
        # Through execute_command: redis-py's cluster pipeline refuses its evalsha method,
        # but routes the command itself by its keys like any other.
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self, redis: RedisClient) -> None:
        """Into the script cache of every primary (the cluster client sends it to all)."""
        await redis.script_load(self.text)


def pipeline(redis: RedisClient) -> Pipeline:
    return redis.pipeline(transaction=False)


def is_cluster(redis: RedisClient) -> bool:
    return isinstance(redis, RedisCluster)


async def execute(
    redis: RedisClient, build: Callable[[Pipeline], None], scripts: Sequence[Script]
) -> list[Any]:
    """Run the pipeline ``build`` fills; on NOSCRIPT load ``scripts`` and run it again."""
    pipe = pipeline(redis)
    build(pipe)
    try:
        return list(await pipe.execute())
    except NoScriptError:
        for script in scripts:
            await script.load(redis)
        pipe = pipeline(redis)
        build(pipe)
        return list(await pipe.execute())
