"""Every script call declares every key it touches: each call runs as a Redis ACL user that
may touch exactly the keys of its KEYS, so an undeclared read or write fails with NOPERM.

The workload has users in several templates (the caps read their other templates' cells),
apps, latency samples, builds and names, applied in many small batches so that a user's
templates of a day grow between calls (the writer learns of them from the script's
``missing`` reply); days are split in 4 buckets. Retention's drop calls run the same way.
"""

from __future__ import annotations

import itertools
import random
import re
from datetime import date
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from aggregators.model import BuildEvent, BuildParameter, Event, ParameterOption, SessionEvent
from aggregators.ops import plan_batch
from aggregators.store import RollupStore, codec
from aggregators.store.retention import DROP
from aggregators.store.writer import META, ROLLUP, Call
from tests.faults.workload import generate

pytestmark = pytest.mark.integration

FIRST = date(2023, 8, 15)
_user = itertools.count()


def _pattern(key: str) -> str:
    """An ACL key pattern matching exactly ``key``."""
    return "~" + re.sub(r"([*?\[\]\\])", r"\\\1", key)


async def _as_user_with(
    redis: Redis, url: str, keys: list[str], script: Any, args: list[Any]
) -> Any:
    name = f"script{next(_user)}"
    await redis.execute_command(
        "ACL", "SETUSER", name, "on", ">pw", "resetkeys", *map(_pattern, keys), "+@all"
    )
    restricted = Redis.from_url(url.replace("redis://", f"redis://{name}:pw@", 1))
    try:
        return await restricted.evalsha(script.sha, len(keys), *keys, *args)
    finally:
        await restricted.aclose()
        await redis.execute_command("ACL", "DELUSER", name)


def _builds(day_us: int, template: str, user: str) -> list[Event]:
    option = ParameterOption("EU", "", "eu", "/e.svg")
    param = BuildParameter("region", "string", "Region", "Where", (option,), "eu")
    return [
        BuildEvent(f"b{i}", day_us + i * 60_000_000, template, f"w{i}", user, i, (param,))
        for i in range(3)
    ]


async def test_every_script_call_touches_only_the_keys_it_declares(
    redis_client: Redis, redis_url: str
) -> None:
    await redis_client.execute_command("ACL", "SETUSER", "default", "on", "nopass", "~*", "+@all")
    for script in (ROLLUP, META, DROP):
        await script.load(redis_client)
    store = RollupStore(redis_client, day_buckets=4)
    await store.generations.claim()
    keys = store.generations.keys
    work = generate(3, users=10, first_day=FIRST, days=2, tag="acl", work_p=1.0)
    events: list[Event] = list(work.events)
    random.Random(3).shuffle(events)
    first = events[0]
    day_us = first.time_us - first.time_us % 86_400_000_000
    # The same reports in a second template, later: the caps then read the first one's cells.
    sessions = [e for e in events if isinstance(e, SessionEvent)][:60]
    second = [e._replace(id=f"{e.id}-2", template_id="t-second") for e in sessions]
    events += _builds(day_us, "t-builds", "u-builds")
    # Another worker's writer, which never saw the users' first template, sends the second.
    other = RollupStore(redis_client, day_buckets=4).writer
    batches = [(store.writer, events[i : i + 25]) for i in range(0, len(events), 25)]
    batches += [(other, second[i : i + 25]) for i in range(0, len(second), 25)]
    missing_replies = 0
    for writer, batch in batches:
        plan = plan_batch(batch)
        days = sorted(plan.days.keys() | plan.builds.keys())
        calls: list[Call] = writer.rollup_calls(keys, plan, days)
        if plan.meta:
            meta = writer._meta_call(keys, plan)
            await _as_user_with(redis_client, redis_url, meta.keys, META, meta.args)
        for call in calls:
            result = await _as_user_with(redis_client, redis_url, call.keys, ROLLUP, call.args)
            while isinstance(result, list):
                missing_replies += 1
                call = writer._declare(keys, call, result)
                result = await _as_user_with(redis_client, redis_url, call.keys, ROLLUP, call.args)
            writer._remember(keys, call)
        await redis_client.zadd(keys.data_days(), {str(d): d for d in days})
    assert missing_replies > 0  # users met in a new template after an earlier call
    # Everything the calls wrote is named by keys.py's builders (no stray key).
    stored = {codec.text(k) async for k in redis_client.scan_iter(match=f"{keys.root}:*")}
    assert stored and all(k.startswith(keys.root) for k in stored)

    for day in [int(codec.text(d)) for d in await redis_client.zrange(keys.data_days(), 0, -1)]:
        for bucket in range(keys.buckets):
            templates = codec.members(await redis_client.smembers(keys.day_templates(day, bucket)))
            raw = codec.str_hash(await redis_client.hgetall(keys.day_user_templates(day, bucket)))
            users = {u: codec.split_templates(v) for u, v in raw.items()}
            drop_keys = keys.bucket_keys(day, bucket, templates, users)
            args = [keys.day_prefix(day, bucket)]
            assert int(await _as_user_with(redis_client, redis_url, drop_keys, DROP, args)) >= 0
    left = {codec.text(k) async for k in redis_client.scan_iter(match=f"{keys.root}:{{d*")}
    assert all(k.endswith(("ver", "bver")) for k in left), sorted(left)[:5]


async def test_an_undeclared_key_is_refused(redis_client: Redis, redis_url: str) -> None:
    """The check itself: a call declaring too little fails under its ACL user."""
    await ROLLUP.load(redis_client)
    store = RollupStore(redis_client)
    await store.generations.claim()
    keys = store.generations.keys
    work = generate(5, users=2, first_day=FIRST, days=1, tag="acl2", work_p=1.0)
    plan = plan_batch(work.events[:20])
    (call,) = store.writer.rollup_calls(keys, plan, sorted(plan.days))
    with pytest.raises(ResponseError, match="No permissions to access a key"):
        await _as_user_with(redis_client, redis_url, call.keys[:-1], ROLLUP, call.args)
