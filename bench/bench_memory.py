"""Redis memory of the rollup store per user-active-day, and how memory and 30-day reads grow.

A user-active-day (uad) is one user active on one UTC day: one field of that day's
``cis:v<N>:...{d<day>}:g:all:m`` hash (``user_active_days``; the key patterns accept any
format version and generation: this throw-away Redis holds only what the store wrote).
The workload is a realistic deployment (``streams.simulation`` users, templates and apps;
``bench_api``'s session and app builders):
on each working day a user works ~8 hours in two blocks around lunch, the agent reports a
session every minute (the same minute masks as 30 s reports) and a latency sample every 30 s
(~960 a day), opens 3 app sessions and builds the workspace once with parameters; the 15 % of
users who have a second template also work in it for 1-2 hours inside their working hours
(the same half-hours, so the 30-minute caps across templates apply), with its own sessions,
latency samples, build and sometimes an app.  Events go straight into the store through
``RollupStore(redis, dedupe_horizon_s=...).apply(plan_batch(events))`` (no Kafka, no worker).

The store keeps a guard per latency sample id that expires a dedupe horizon after the last
write to its hash (production: 7 days), so a settled day's memory is what remains after it.
Every growth point is loaded with a 2 s horizon and measured once the guard keys
(``...{d*}:l:*``) are gone; the headline point is also loaded once more with a 7-day
horizon and measured right after the load (before the horizon).  Memory is ``INFO memory``
``used_memory_dataset`` (and ``used_memory``) over user-active-days, also net of what the
same server held right after a FLUSHALL (its own allocations, ~0.6-1 MB), measured before any
query (the API shares folded day frames through Redis, which would count otherwise); a
per-key-family breakdown (``MEMORY USAGE key SAMPLES 0`` over a SCAN) shows what dominates.

Each growth point then serves ``api.app.create_app`` on 127.0.0.1 with a fixed clock and
times ``/api/v2/insights/user-latency`` and ``/api/v2/insights/templates?interval=day`` over
the last 30 days: the first request of each (cold, a fresh API over data no API has read;
user-latency first, so templates finds the days already folded) and the median of N
sequential keep-alive requests (warm), against ``GET /healthz`` of the same point.  Memory is
shown against the smallest point, query time against /healthz: ratios within one run.

    .venv/bin/python bench/bench_memory.py [--quick] [--users 100,300,1000] [--days 7,30,90]
        [--axis-users 100] [--axis-days 7] [--json PATH] [--png docs/memory.png]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import bench_api as ba
import orjson
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aggregators.model import BuildEvent, Event, LatencyEvent
from aggregators.ops import BatchPlan, plan_batch
from aggregators.store import RollupStore
from aggregators.timebase import MIN_PER_DAY, US_PER_MIN, US_PER_S
from api.app import create_app, redis_client
from insights.devstack import ManagedProcess, start_redis
from insights.settings import Settings
from streams.simulation import TEMPLATES, User, Workspace
from streams.workloads import counter_uuid

# -- the run -----------------------------------------------------------------------------------

USERS_AXIS = (100, 300, 1000)  # users, at AXIS_DAYS days of history
DAYS_AXIS = (7, 30, 90)  # days of history, at AXIS_USERS users (365: ~+5 min)
AXIS_DAYS, AXIS_USERS, HEADLINE_USERS = 7, 100, 300
QUICK = {"users": (20, 50), "days": (7, 14), "axis_users": 20, "headline_users": 50}
SHORT_HORIZON_S = 2  # growth points: guards expire right after the load
LONG_HORIZON_S = 7 * 86_400  # the production default: the "before the horizon" figure
WINDOW_DAYS = 30
DEFAULT_PNG = Path(__file__).resolve().parent.parent / "docs" / "memory.png"
CHUNK = 50  # users per load batch (one local day of a chunk)
# Keys of one UTC day, in whichever format version the store writes (``cis:v<N>``): this
# Redis only ever holds what this script loaded.
DAY_KEYS = "cis:v[0-9]*:{d[0-9]*}"
ACTIVE_KEYS = DAY_KEYS + ":g:all:m"  # user -> usage minutes: one field per uad
GUARD_KEYS = DAY_KEYS + ":l:*"  # latency sample id guards (template, user, day)
KIND_NAMES = ("sessions", "latency", "app sessions", "builds")

# -- the workload: one working day of a chunk of users ---------------------------------------


@dataclass
class Batch:
    events: list[Event] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # KIND_NAMES
    workdays: int = 0  # (user, local day) pairs with work


def workday(rng: random.Random, u: User, local_day: int) -> list[tuple[int, int]]:
    """Epoch-minute spans ``[a, b)`` ``u`` works on ``local_day`` of their zone: on a weekday
    (with the user's chance of working that day) ~4 h before and ~4 h after a 30-60 min lunch,
    ~8 h in all; no weekend work."""
    if (local_day + 3) % 7 >= 5 or rng.random() >= u.weekday_p:  # epoch day 0: a Thursday
        return []
    start = local_day * MIN_PER_DAY - u.tz_min + u.start_min + int(rng.gauss(0, 20))
    morning = rng.randint(225, 255)
    after_lunch = start + morning + rng.randint(30, 60)
    afternoon = 480 - morning + rng.randint(-15, 15)
    return [(start, start + morning), (after_lunch, after_lunch + afternoon)]


def latency_samples(
    batch: Batch, rng: random.Random, u: User, ws: Workspace, span: tuple[int, int]
) -> None:
    """A sample every 30 s over ``span`` (bench_api's distribution, twice as often)."""
    tpl, wid, aid = ws.template.template_id, ws.workspace_id, ws.agent_id
    append, lognorm, uniform = batch.events.append, rng.lognormvariate, rng.random
    for minute in range(*span):
        for half in (0, 1):
            ms = u.latency_ms * lognorm(0.0, 0.3)
            if uniform() < 0.03:
                ms *= 6  # the occasional slow tail
            append(
                LatencyEvent(
                    counter_uuid(2, u.index, (minute * 2 + half) * 8 + ws.template_index),
                    minute * US_PER_MIN + (5 + 30 * half) * US_PER_S,
                    u.user_id,
                    tpl,
                    wid,
                    aid,
                    round(ms, 2),
                )
            )
    batch.counts[1] += 2 * (span[1] - span[0])


def build(batch: Batch, rng: random.Random, u: User, ws: Workspace, minute: int, n: int) -> None:
    """The day's build of ``ws`` (build number ``n``), usually with its usual parameters."""
    params = ws.params[1] if rng.random() < 0.1 else ws.params[0]
    batch.events.append(
        BuildEvent(
            counter_uuid(5, u.index, minute * 8 + ws.template_index),
            minute * US_PER_MIN,
            ws.template.template_id,
            ws.workspace_id,
            u.user_id,
            n,
            params,
        )
    )
    batch.counts[3] += 1


def make_batch(users: Sequence[User], local_day: int, first_day: int, seed: int) -> Batch:
    rng = random.Random(seed * 1_000_003 + local_day * 1009 + users[0].index)
    batch = Batch()
    # The builders of bench_api count their kinds in its order (sessions, apps, latency,
    # builds); only their sessions and app usage are used here, counted from theirs.
    theirs = ba.Batch(events=batch.events)
    for u in users:
        blocks = [(a, min(b, ba.END_MIN)) for a, b in workday(rng, u, local_day) if a < ba.END_MIN]
        if not blocks:
            continue
        batch.workdays += 1
        build(batch, rng, u, u.main, blocks[0][0] - 2, local_day - first_day + 1)
        for span in blocks:
            mask = u.kind_mask | (ba.SSH if rng.random() < u.ssh_p else 0)
            if rng.random() < 0.03:
                mask |= ba.SFTP
            ba._sessions(theirs, u, u.main, span, mask, 1 + mask.bit_count() // 2)
            latency_samples(batch, rng, u, u.main, span)
        for _ in range(3):
            ba._apps(theirs, rng, u, u.main, rng.choice(blocks))
        if u.second is not None:
            # Part of the day in the second template, in half-hours of the main one's.
            a, b = rng.choice(blocks)
            start = rng.randint(a, max(a, b - 60))
            span = (start, min(b, start + rng.randint(60, 120)))
            build(batch, rng, u, u.second, span[0] - 1, local_day - first_day + 1)
            ba._sessions(theirs, u, u.second, span, ba.VSCODE, 1)
            latency_samples(batch, rng, u, u.second, span)
            if rng.random() < 0.5:
                ba._apps(theirs, rng, u, u.second, span)
    batch.counts[0] += theirs.counts[0]
    batch.counts[2] += theirs.counts[1]
    return batch


def plan(
    users: Sequence[User], local_day: int, first_day: int, seed: int
) -> tuple[Batch, BatchPlan]:
    batch = make_batch(users, local_day, first_day, seed)
    return batch, plan_batch(batch.events)


@dataclass
class Load:
    events: int
    counts: list[int]
    workdays: int  # generated (user, local working day) pairs
    seconds: float


async def load(
    store: RollupStore,
    users: Sequence[User],
    days: int,
    seed: int,
    label: str,
    console: Console,
) -> Load:
    """``days`` local days of history ending at bench_api's END, ``CHUNK`` users per batch;
    the next batch is generated and planned in a thread while Redis applies the previous."""
    first = ba.END_DAY - days
    chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
    specs = [(d, c) for d in range(first, ba.END_DAY) for c in chunks]
    counts = [0, 0, 0, 0]
    workdays = 0
    pending: asyncio.Task[int] | None = None
    started = time.perf_counter()
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[events]:>11,} events {task.fields[rate]:>8,.0f} ev/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("load", total=len(specs), events=0, rate=0.0)
        for day, chunk in specs:
            batch, p = await asyncio.to_thread(plan, chunk, day, first, seed)
            if pending is not None:
                await pending
            pending = asyncio.create_task(store.apply(p))
            workdays += batch.workdays
            for i, n in enumerate(batch.counts):
                counts[i] += n
            total = sum(counts)
            rate = total / (time.perf_counter() - started)
            progress.update(task, advance=1, events=total, rate=rate)
        if pending is not None:
            await pending
    return Load(sum(counts), counts, workdays, time.perf_counter() - started)


# -- measuring ---------------------------------------------------------------------------------


async def count_keys(redis: Redis, match: str) -> int:
    n = 0
    async for _ in redis.scan_iter(match=match, count=1000):
        n += 1
    return n


async def user_active_days(redis: Redis) -> int:
    """Sum of HLEN over the days' ``g:all:m`` hashes: each field is one user active that day."""
    keys = [k async for k in redis.scan_iter(match=ACTIVE_KEYS, count=1000)]
    if not keys:
        return 0
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.hlen(key)
    return sum(int(n) for n in await pipe.execute())


async def wait_guards_gone(redis: Redis, timeout_s: float) -> tuple[int, float]:
    """Poll until no guard key is left (SCAN also expires the keys it meets), then until the
    server has freed them (``lazyfree_pending_objects``): ``(keys left, seconds waited)``."""
    started = time.perf_counter()
    left = await count_keys(redis, GUARD_KEYS)
    while left and time.perf_counter() - started < timeout_s:
        await asyncio.sleep(0.5)
        left = await count_keys(redis, GUARD_KEYS)
    await settle(redis, max(1.0, timeout_s - (time.perf_counter() - started)))
    return left, time.perf_counter() - started


async def settle(redis: Redis, timeout_s: float) -> None:
    """Wait (bounded) until the server has no object left to free in the background."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        info = await redis.info("memory")
        if not int(info.get("lazyfree_pending_objects", 0)):
            return
        await asyncio.sleep(0.1)


_DAY_TAG = re.compile(r"\{d\d+(?::\d+)?\}")  # {d<day>}, or {d<day>:<bucket>} with buckets
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX = re.compile(r"(?<![0-9a-z])[0-9a-f]{12,}(?![0-9a-z])")
_TEMPLATE_IDS = frozenset(t.template_id for t in TEMPLATES)
_HALF_HOUR = re.compile(r"(<u>):\d{1,2}$")  # per half-hour keys (latency guards)


def family(key: str) -> str:
    """The key with its day tag, template ids, user ids and digests replaced by placeholders."""
    key = _DAY_TAG.sub("{d*}", key)
    key = _UUID.sub(lambda m: "<t>" if m.group(0) in _TEMPLATE_IDS else "<u>", key)
    key = _HALF_HOUR.sub(r"\1:<hh>", key)
    return _HEX.sub("<h>", key)


@dataclass
class Family:
    type: str
    keys: int = 0
    bytes: int = 0  # sum of MEMORY USAGE ... SAMPLES 0
    elements: int = 0  # hash fields, set/zset members, string bytes


async def breakdown(redis: Redis) -> dict[str, Family]:
    """Every key's ``MEMORY USAGE key SAMPLES 0``, type and size, summed per family."""
    out: dict[str, Family] = {}
    size_of = {"hash": "hlen", "set": "scard", "zset": "zcard", "string": "strlen", "list": "llen"}
    batch: list[bytes] = []

    async def flush() -> None:
        pipe = redis.pipeline(transaction=False)
        for key in batch:
            pipe.memory_usage(key, samples=0)
            pipe.type(key)
        res = await pipe.execute()
        kinds = [(r.decode() if isinstance(r, bytes) else str(r)) for r in res[1::2]]
        pipe = redis.pipeline(transaction=False)
        for key, kind in zip(batch, kinds, strict=True):
            getattr(pipe, size_of.get(kind, "exists"))(key)
        sizes = await pipe.execute()
        for key, used, kind, n in zip(batch, res[0::2], kinds, sizes, strict=True):
            if used is None:  # expired between SCAN and MEMORY USAGE
                continue
            fam = out.setdefault(family(key.decode()), Family(kind))
            fam.keys += 1
            fam.bytes += int(used)
            fam.elements += int(n)
        batch.clear()

    async for key in redis.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            await flush()
    if batch:
        await flush()
    return out


@dataclass
class Memory:
    uad: int
    keys: int
    used_memory: int
    dataset: int  # used_memory_dataset
    empty_dataset: int  # used_memory_dataset of the same server, flushed, right before the load

    @property
    def per_uad(self) -> float:
        """used_memory_dataset per user-active-day."""
        return self.dataset / self.uad

    @property
    def net_per_uad(self) -> float:
        """The same net of what the flushed server still held (its own allocations)."""
        return (self.dataset - self.empty_dataset) / self.uad

    @property
    def used_per_uad(self) -> float:
        return self.used_memory / self.uad


async def memory(redis: Redis, empty_dataset: int) -> Memory:
    info = await redis.info("memory")
    return Memory(
        await user_active_days(redis),
        int(await redis.dbsize()),
        int(info["used_memory"]),
        int(info["used_memory_dataset"]),
        empty_dataset,
    )


# -- queries -----------------------------------------------------------------------------------


@dataclass
class QueryTime:
    cold_ms: float
    warm_ms: list[float]
    failure: str = ""
    body_bytes: int = 0

    @property
    def warm_p50(self) -> float:
        return statistics.median(self.warm_ms) if self.warm_ms else float("nan")


def window() -> tuple[tuple[str, str], tuple[str, str]]:
    start = ba.END - timedelta(days=WINDOW_DAYS)
    return (
        ("start_time", start.strftime("%Y-%m-%dT00:00:00Z")),
        ("end_time", ba.END.strftime("%Y-%m-%dT00:00:00Z")),
    )


QUERIES = (
    ba.Case("user-latency 30d", "/api/v2/insights/user-latency", window()),
    ba.Case("templates 30d day", "/api/v2/insights/templates", (*window(), ("interval", "day"))),
)
HEALTHZ = ba.Case("GET /healthz", "/healthz", ())


async def time_queries(
    url: str, args: argparse.Namespace
) -> tuple[QueryTime, dict[str, QueryTime]]:
    """A fresh API over the loaded data: /healthz, then the cold first request of each query in
    order, then each query's warm requests (``args.warmup`` untimed, ``args.requests`` timed)."""
    settings = Settings(redis_url=url, api_tokens=ba.TOKEN)
    api_redis = redis_client(settings)
    runner = None
    try:
        app = create_app(settings, store=RollupStore(api_redis), clock=lambda: ba.CLOCK)
        runner, base = await ba.serve(app)
        headers = {"Coder-Session-Token": ba.TOKEN}
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            health = await ba.time_calls(
                HEALTHZ.name, lambda: ba.fetch(session, base, HEALTHZ), args
            )
            out: dict[str, QueryTime] = {}
            for case in QUERIES:
                t0 = time.perf_counter()
                failure, size = "", 0
                try:
                    size = len(await ba.fetch(session, base, case))
                except ba.HttpFailure as exc:
                    failure = str(exc)
                out[case.name] = QueryTime((time.perf_counter() - t0) * 1000, [], failure, size)
            for case in QUERIES:
                q = out[case.name]
                if q.failure:
                    continue

                async def call(case: ba.Case = case) -> bytes:
                    return await ba.fetch(session, base, case)

                timing = await ba.time_calls(case.name, call, args)
                q.warm_ms = [s * 1000 for s in timing.seconds]
                q.failure = timing.failure
        healthz = QueryTime(float("nan"), [s * 1000 for s in health.seconds], health.failure)
        return healthz, out
    finally:
        if runner is not None:
            await runner.cleanup()
        await api_redis.aclose()


# -- one point ---------------------------------------------------------------------------------


@dataclass
class Point:
    users: int
    days: int
    horizon_s: int
    load: Load
    mem: Memory
    guards_left: int  # guard keys still there when measured
    wait_s: float  # waiting for the guards to expire (0 before the horizon)
    families: dict[str, Family]
    healthz: QueryTime | None = None
    queries: dict[str, QueryTime] = field(default_factory=dict)
    dataset_after_queries: int = 0  # with the day frames the API shared through Redis

    @property
    def label(self) -> str:
        return f"{self.users:,} users x {self.days} d"


async def measure_point(
    redis: Redis,
    url: str,
    users: Sequence[User],
    days: int,
    horizon_s: int,
    args: argparse.Namespace,
    console: Console,
    *,
    queries: bool,
) -> Point:
    await redis.flushall()
    await settle(redis, 10.0)
    empty = int((await redis.info("memory"))["used_memory_dataset"])
    short = horizon_s <= SHORT_HORIZON_S
    label = f"{len(users):,} users x {days} d ({'after' if short else 'before'} horizon)"
    store = RollupStore(redis, dedupe_horizon_s=horizon_s, day_buckets=args.buckets)
    stats = await load(store, users, days, args.seed, label, console)
    if short:
        left, waited = await wait_guards_gone(redis, args.expiry_timeout_s)
    else:
        await settle(redis, 10.0)
        left, waited = await count_keys(redis, GUARD_KEYS), 0.0
    mem = await memory(redis, empty)
    if not mem.uad:
        raise RuntimeError(f"no user-active-days under {ACTIVE_KEYS}: did the key format change?")
    fams = await breakdown(redis)
    point = Point(len(users), days, horizon_s, stats, mem, left, waited, fams)
    if short:
        guards = f"guards expired {waited:.1f} s after the load"
        if left:
            guards = f"[red]{left:,} guard keys still there after {waited:.0f} s[/]"
    else:
        guards = f"{left:,} guard keys kept"
    mix = ", ".join(
        f"{n / stats.workdays:,.1f} {kind}"
        for kind, n in zip(KIND_NAMES, stats.counts, strict=True)
    )
    console.print(
        f"  per user working day: {mix}; {stats.events:,} events in {stats.seconds:.1f} s "
        f"({stats.events / stats.seconds:,.0f} ev/s); {mem.uad:,} user-active-days "
        f"({stats.workdays:,} user working days); {guards}; {mem.keys:,} keys; used_memory "
        f"{mib(mem.used_memory)} MiB, used_memory_dataset {mib(mem.dataset)} MiB (flushed "
        f"server before the load: {empty:,} B) = {mem.per_uad:,.0f} B/uad, "
        f"net {mem.net_per_uad:,.0f} B/uad",
        highlight=False,
    )
    if queries:
        point.healthz, point.queries = await time_queries(url, args)
        await settle(redis, 5.0)
        info = await redis.info("memory")
        point.dataset_after_queries = int(info["used_memory_dataset"])
    return point


# -- output ------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def headline_table(before: Point, after: Point) -> Table:
    table = Table(
        title=f"Memory per user-active-day (uad): {after.label}, the same data loaded twice "
        "(net = used_memory_dataset minus that of the flushed server right before the load)"
    )
    cols = (
        "measured",
        "uad",
        "keys",
        "used_memory MiB",
        "used B/uad",
        "dataset MiB",
        "dataset B/uad",
        "net B/uad",
        "net x after",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "measured" else "right")
    for name, p in (
        (f"before the horizon ({LONG_HORIZON_S // 86_400} d, right after the load)", before),
        (f"after the horizon ({SHORT_HORIZON_S} s, guards expired)", after),
    ):
        m = p.mem
        table.add_row(
            name,
            f"{m.uad:,}",
            f"{m.keys:,}",
            mib(m.used_memory),
            f"{m.used_per_uad:,.0f}",
            mib(m.dataset),
            f"{m.per_uad:,.0f}",
            f"[bold]{m.net_per_uad:,.0f}[/]",
            f"{m.net_per_uad / after.mem.net_per_uad:.2f}x",
        )
    return table


def family_table(before: Point, after: Point) -> Table:
    table = Table(
        title=f"Per key family, {after.label}: MEMORY USAGE key SAMPLES 0 summed, per uad "
        "(before / after the horizon)"
    )
    cols = (
        "key family",
        "type",
        "keys",
        "elements/uad",
        "B/uad before",
        "B/uad after",
        "share before",
        "share after",
    )
    for col in cols:
        left = col in ("key family", "type")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)

    def size(p: Point, name: str) -> int:
        f = p.families.get(name)
        return f.bytes if f else 0

    names = sorted(
        before.families.keys() | after.families.keys(),
        key=lambda n: (-size(before, n) - size(after, n), n),
    )
    totals = [sum(f.bytes for f in p.families.values()) for p in (before, after)]
    for name in names:
        b, a = before.families.get(name), after.families.get(name)
        table.add_row(
            name,
            (a or b or Family("?")).type,
            f"{b.keys if b else 0:,} / {a.keys if a else 0:,}",
            f"{b.elements / before.mem.uad if b else 0:,.1f} / "
            f"{a.elements / after.mem.uad if a else 0:,.1f}",
            f"{b.bytes / before.mem.uad:,.0f}" if b else "-",
            f"{a.bytes / after.mem.uad:,.0f}" if a else "-",
            f"{b.bytes / totals[0]:.1%}" if b and totals[0] else "-",
            f"{a.bytes / totals[1]:.1%}" if a and totals[1] else "-",
        )
    table.add_section()
    table.add_row(
        "all keys (sum)",
        "",
        " / ".join(f"{sum(f.keys for f in p.families.values()):,}" for p in (before, after)),
        "",
        *(f"{t / p.mem.uad:,.0f}" for t, p in zip(totals, (before, after), strict=True)),
        "100%",
        "100%",
    )
    table.add_row(
        "net used_memory_dataset",
        "",
        "",
        "",
        *(f"{p.mem.net_per_uad:,.0f}" for p in (before, after)),
        "",
        "",
    )
    return table


def axis_rows(
    points: Sequence[Point],
    users_axis: Sequence[int],
    axis_days: int,
    days_axis: Sequence[int],
    axis_users: int,
) -> list[tuple[str, Point]]:
    by_size = {(p.users, p.days): p for p in points}
    rows = [(f"users, {axis_days} d", by_size[(u, axis_days)]) for u in users_axis]
    rows += [(f"days, {axis_users:,} users", by_size[(axis_users, d)]) for d in days_axis]
    return rows


def growth_memory_table(rows: Sequence[tuple[str, Point]], base: Point) -> Table:
    table = Table(
        title=f"Memory after the horizon as users and days grow (x base: vs {base.label}; "
        "net = used_memory_dataset minus the flushed server's)"
    )
    cols = (
        "axis",
        "users",
        "days",
        "events",
        "load s",
        "uad",
        "used_memory MiB",
        "dataset MiB",
        "dataset B/uad",
        "net B/uad",
        "net B/uad x base",
        "uad x base",
        "net x base",
    )
    for col in cols:
        table.add_column(col, justify="left" if col == "axis" else "right", no_wrap=col == "axis")
    last = ""
    b = base.mem
    for axis, p in rows:
        if last and axis != last:
            table.add_section()
        last = axis
        m = p.mem
        table.add_row(
            axis,
            f"{p.users:,}",
            str(p.days),
            f"{p.load.events:,}",
            f"{p.load.seconds:.1f}",
            f"{m.uad:,}",
            mib(m.used_memory),
            mib(m.dataset),
            f"{m.per_uad:,.0f}",
            f"[bold]{m.net_per_uad:,.0f}[/]",
            f"{m.net_per_uad / b.net_per_uad:.2f}x",
            f"{m.uad / b.uad:.1f}x",
            f"{(m.dataset - m.empty_dataset) / (b.dataset - b.empty_dataset):.1f}x",
        )
    return table


def growth_query_table(rows: Sequence[tuple[str, Point]], args: argparse.Namespace) -> Table:
    table = Table(
        title=f"{WINDOW_DAYS}-day queries: cold first request, warm median of {args.requests} "
        f"(x = warm p50 / GET /healthz p50 of the same point)"
    )
    cols = ["axis", "users", "days", "healthz ms"]
    for q in QUERIES:
        cols += [f"{q.name} cold ms", "warm p50 ms", "x healthz"]
    for col in cols:
        table.add_column(col, justify="left" if col == "axis" else "right", no_wrap=col == "axis")
    last = ""
    for axis, p in rows:
        if last and axis != last:
            table.add_section()
        last = axis
        h = p.healthz.warm_p50 if p.healthz else float("nan")
        cells = [axis, f"{p.users:,}", str(p.days), f"{h:.2f}"]
        for q in QUERIES:
            t = p.queries.get(q.name)
            if t is None or (t.failure and not t.warm_ms):
                cells += ["[red]failed[/]", "-", "-"]
                continue
            cells += [f"{t.cold_ms:,.1f}", f"{t.warm_p50:,.2f}", f"{t.warm_p50 / h:,.0f}x"]
        table.add_row(*cells)
    return table


def plot(path: Path, results: Results, axis_days: int, axis_users: int) -> bool:
    """The measured points of both axes (nothing extrapolated); False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    def log_x(ax: Any, xs: list[int]) -> None:
        """A log x axis labelled at the measured points only."""
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:,}" for x in xs])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.margins(x=0.12)
        if len(xs) == 1:
            ax.set_xlim(xs[0] / 2, xs[0] * 2)

    before, after = results.before, results.after
    users_pts = [p for axis, p in results.rows if axis.startswith("users")]
    days_pts = [p for axis, p in results.rows if axis.startswith("days")]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, (pts, attr, xlabel) in enumerate(
        (
            (users_pts, "users", f"users ({axis_days} days of history)"),
            (days_pts, "days", f"days of history ({axis_users:,} users)"),
        )
    ):
        xs = [getattr(p, attr) for p in pts]
        ax = axes[0][col]
        net = [p.mem.net_per_uad / 1024 for p in pts]
        ax.plot(xs, net, "o-", label="net used_memory_dataset / uad")
        ax.plot(
            xs,
            [p.mem.per_uad / 1024 for p in pts],
            "s--",
            alpha=0.6,
            label="used_memory_dataset / uad",
        )
        for x, y, p in zip(xs, net, pts, strict=True):
            total = (p.mem.dataset - p.mem.empty_dataset) / 2**20
            ax.annotate(
                f"{total:,.1f} MiB net",
                (x, y),
                textcoords="offset points",
                xytext=(0, -14),
                ha="center",
                fontsize=8,
            )
        ax.set_ylim(bottom=0, top=max(p.mem.per_uad for p in pts) / 1024 * 1.2)
        ax.set_ylabel("KiB per user-active-day")
        ax.set_title(f"memory after the dedupe horizon vs {attr}", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
        log_x(ax, xs)
        ax = axes[1][col]
        for q, marker in zip(QUERIES, ("o", "s"), strict=True):
            warm = [
                p.queries[q.name].warm_p50 if q.name in p.queries else float("nan") for p in pts
            ]
            cold = [p.queries[q.name].cold_ms if q.name in p.queries else float("nan") for p in pts]
            line = ax.plot(xs, warm, marker + "-", label=f"{q.name} warm p50")[0]
            cold_label = f"{q.name} cold" + (" (after user-latency)" if q is not QUERIES[0] else "")
            ax.plot(xs, cold, marker + ":", color=line.get_color(), alpha=0.6, label=cold_label)
        health = [p.healthz.warm_p50 if p.healthz else float("nan") for p in pts]
        ax.plot(xs, health, "k.--", alpha=0.5, label="GET /healthz p50")
        ax.set_yscale("log")
        log_x(ax, xs)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms")
        ax.set_title(f"{WINDOW_DAYS}-day query time vs {attr}", fontsize=10)
    fig.suptitle(
        f"Rollup store memory per user-active-day (measured points only): {after.label} "
        f"{after.mem.net_per_uad / 1024:,.1f} KiB (net) after the dedupe horizon, "
        f"{before.mem.net_per_uad / 1024:,.1f} KiB before it",
        fontsize=10,
    )
    handles, labels = axes[1][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def to_json(point: Point) -> dict[str, Any]:
    out = asdict(point)
    out["load"]["events_by_kind"] = dict(zip(KIND_NAMES, point.load.counts, strict=True))
    out["per_uad"] = point.mem.per_uad
    out["net_per_uad"] = point.mem.net_per_uad
    out["used_per_uad"] = point.mem.used_per_uad
    for name, q in point.queries.items():
        out["queries"][name]["warm_p50"] = q.warm_p50
    if point.healthz is not None:
        out["healthz"]["warm_p50"] = point.healthz.warm_p50
    return out


# -- main --------------------------------------------------------------------------------------


async def warm_up(redis: Redis, url: str, users: Sequence[User], args: argparse.Namespace) -> None:
    """A small load, its queries and a FLUSHALL before anything is measured: the server's own
    allocations that outlive a flush, the Lua scripts and the API's one-time costs (imports,
    first folds) then do not land on the first point."""
    await load(RollupStore(redis), users, 7, args.seed, "warm-up", Console(quiet=True))
    await time_queries(url, argparse.Namespace(**{**vars(args), "requests": 1, "warmup": 0}))
    await redis.flushall()


@dataclass
class Results:
    before: Point
    after: Point
    points: list[Point]
    rows: list[tuple[str, Point]]
    base: Point

    def to_json(self, args: argparse.Namespace) -> dict[str, Any]:
        return {
            "headline": {"before": to_json(self.before), "after": to_json(self.after)},
            "points": [to_json(p) for p in self.points],
            "baseline": {"users": self.base.users, "days": self.base.days},
            "axes": {
                "users": list(args.users),
                "axis_days": args.axis_days,
                "days": list(args.days),
                "axis_users": args.axis_users,
            },
        }


async def bench(args: argparse.Namespace, url: str, console: Console) -> Results:
    redis = Redis.from_url(url)
    try:
        every = sorted(
            {(u, args.axis_days) for u in args.users} | {(args.axis_users, d) for d in args.days}
        )
        population = ba.make_users(max(u for u, _ in every), args.seed)
        await warm_up(redis, url, population[:20], args)
        console.print(
            f"points after the horizon: {', '.join(f'{u:,} x {d} d' for u, d in every)}; "
            f"the headline {args.headline_users:,} x {args.axis_days} d also before it"
        )
        console.print(
            f"headline: {args.headline_users:,} users x {args.axis_days} d, "
            f"{LONG_HORIZON_S // 86_400}-day dedupe horizon (measured right after the load)"
        )
        headline = population[: args.headline_users]
        before = await measure_point(
            redis, url, headline, args.axis_days, LONG_HORIZON_S, args, console, queries=False
        )
        points: list[Point] = []
        for users, days in every:
            console.print(f"point: {users:,} users x {days} d, {SHORT_HORIZON_S} s dedupe horizon")
            points.append(
                await measure_point(
                    redis,
                    url,
                    population[:users],
                    days,
                    SHORT_HORIZON_S,
                    args,
                    console,
                    queries=True,
                )
            )
    finally:
        await redis.aclose()
    after = next(p for p in points if (p.users, p.days) == (args.headline_users, args.axis_days))
    base = min(points, key=lambda p: (p.users * p.days, p.users))
    rows = axis_rows(points, args.users, args.axis_days, args.days, args.axis_users)
    formats = sorted({name.split(":{", 1)[0] for name in after.families})
    console.print()
    console.print(f"key format: {', '.join(formats)}", highlight=False)
    console.print(headline_table(before, after))
    console.print(family_table(before, after))
    console.print(growth_memory_table(rows, base))
    frames = [
        f"{p.label} +{mib(p.dataset_after_queries - p.mem.dataset)} MiB "
        f"({(p.dataset_after_queries - p.mem.dataset) / p.mem.uad:,.0f} B/uad)"
        for p in points
        if p.dataset_after_queries
    ]
    console.print(
        "Not in these figures (measured before any query): the day frames the API then shared "
        "through Redis (2-day TTL) after each point's queries: " + "; ".join(frames),
        highlight=False,
    )
    console.print(growth_query_table(rows, args))
    left = [p.label for p in points if p.guards_left]
    if left:
        console.print(f"[red]guard keys did not all expire within the wait: {', '.join(left)}")
    return Results(before, after, points, rows, base)


def int_list(text: str) -> tuple[int, ...]:
    values = tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma separated list of positive integers")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of ~1 min")
    parser.add_argument(
        "--buckets", type=int, default=1, help="buckets per day (INSIGHTS_REDIS_DAY_BUCKETS)"
    )
    parser.add_argument("--users", type=int_list, help=f"users axis (default {USERS_AXIS})")
    parser.add_argument("--days", type=int_list, help=f"days axis (default {DAYS_AXIS})")
    parser.add_argument("--axis-days", type=int, default=AXIS_DAYS, help="history of users axis")
    parser.add_argument("--axis-users", type=int, help=f"users of the days axis ({AXIS_USERS})")
    parser.add_argument(
        "--headline-users", type=int, help=f"headline point, on the users axis ({HEADLINE_USERS})"
    )
    parser.add_argument("--requests", type=int, default=30, help="timed warm requests per query")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests before those")
    parser.add_argument("--case-budget-s", type=float, default=10.0, help="per query and point")
    parser.add_argument("--expiry-timeout-s", type=float, default=60.0, help="wait for guards")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--png", default=str(DEFAULT_PNG), help='the plot (default docs/memory.png; "" for none)'
    )
    args = parser.parse_args()
    quick: dict[str, Any] = QUICK if args.quick else {}
    args.users = args.users or quick.get("users", USERS_AXIS)
    args.days = args.days or quick.get("days", DAYS_AXIS)
    args.axis_users = args.axis_users or quick.get("axis_users", AXIS_USERS)
    args.headline_users = args.headline_users or quick.get("headline_users", HEADLINE_USERS)
    if args.headline_users not in args.users:
        args.users = tuple(sorted({*args.users, args.headline_users}))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    started = time.perf_counter()
    server: ManagedProcess | None = None
    try:
        server = start_redis()
        console.print(f"embedded Redis at {server.address} (pid {server.pid})")
        results = asyncio.run(bench(args, server.address, console))
    finally:
        if server is not None:
            server.stop()
    if args.png:
        if plot(Path(args.png), results, args.axis_days, args.axis_users):
            console.print(f"plot written to {args.png}")
        else:
            console.print('no plot: matplotlib is missing (pip install -e ".[bench]")')
    runtime = time.perf_counter() - started
    console.print(f"runtime {runtime:.0f} s")
    if args.json:
        out = results.to_json(args) | {"runtime_s": runtime}
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
        console.print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
