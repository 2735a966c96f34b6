"""Read latency of the four insights endpoints on a 30-day window with 1,000 active users.

The figure to check: "all four endpoints answer in well under 50 ms for a 30-day window
with a thousand active users".  The script

1. starts a throw-away Redis (``insights.devstack.start_redis``) unless ``--redis-url`` is
   given, and empties it only if it started it itself (or with ``--flush``);
2. loads a realistic deployment (``streams.simulation``) straight through
   ``RollupStore.apply(plan_batch(events))`` (domain events, no Kafka: this is a read
   benchmark): 1,000 users in 5 templates across 8 time zones, working a few hours on
   most local weekdays (one session report per minute, which sets the same minute masks
   as the agents' 30 s reports), a few app sessions a day (3-4 catalogued apps per
   template, plus the web terminal), latency samples every ``--latency-every`` minutes,
   a morning build with parameters, and 15 % of the users also working in a second
   template in the same half-hours (the 30-minute caps across templates).  It prints the
   events loaded and the load rate, a figure of the store's write path (without Kafka
   and the worker);
3. serves ``api.app.create_app`` on 127.0.0.1 (a free port) with a fixed clock just after
   the data set, and times N sequential keep-alive requests per query against two
   baselines measured in the same run: ``GET /healthz`` (same client, server and loop, no
   Redis) and a Redis ``PING`` round trip.

Client and server share one process and event loop, so every figure includes the
client's own cost; the /healthz row is that floor.

    .venv/bin/python bench/bench_api.py [--requests 30] [--profile] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import io
import math
import pstats
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import orjson
from aiohttp import web
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

from aggregators.model import (
    KINDS,
    AppUsageEvent,
    BuildEvent,
    Event,
    LatencyEvent,
    SessionEvent,
)
from aggregators.ops import BatchPlan, plan_batch
from aggregators.store import RollupStore
from aggregators.timebase import MIN_PER_DAY, US_PER_DAY, US_PER_MIN, US_PER_S
from api.app import create_app, redis_client
from insights.devstack import ManagedProcess, start_redis
from insights.settings import Settings
from streams.simulation import APPS, TEMPLATES, User, Workspace, generate, work_blocks
from streams.workloads import counter_uuid, epoch_us

# -- the deployment -----------------------------------------------------------------------

USERS = 1000
WINDOW_DAYS = 30
MARGIN_DAYS = 2  # data before the window, so no window starts at the first data day
END = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday, 00:00 UTC: the data set ends here
CLOCK = END + timedelta(hours=4)  # "now" of the API: just after the data set
END_DAY = epoch_us(END) // US_PER_DAY
END_MIN = END_DAY * MIN_PER_DAY
FIRST_LOCAL_DAY = END_DAY - WINDOW_DAYS - MARGIN_DAYS
CHUNK = 100  # users per load batch
TOKEN = "bench"

VSCODE, SSH, SFTP = (1 << KINDS.index(kind) for kind in ("vscode", "ssh", "sftp"))


def make_users(count: int, seed: int) -> list[User]:
    """The users of the generated deployment (``streams.simulation``), with avatars."""
    return list(generate(count, seed, avatars=True).users)


# -- events of one batch (one local day of a chunk of users) -------------------------------

KIND_NAMES = ("sessions", "app usage", "latency", "builds")
# Event ids are counter_uuid(kind tag, user index, n): deterministic, so reloading the
# same seed into the same Redis changes nothing.


@dataclass
class Batch:
    events: list[Event] = field(default_factory=list)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])


def _sessions(
    batch: Batch, u: User, ws: Workspace, span: tuple[int, int], mask: int, conns: int
) -> None:
    tpl = ws.template.template_id
    append = batch.events.append
    for minute in range(*span):
        append(
            SessionEvent(
                counter_uuid(1, u.index, minute * 8 + ws.template_index),
                minute * US_PER_MIN + (minute * 7919 % 30) * US_PER_S,
                u.user_id,
                u.username,
                u.avatar_url,
                tpl,
                ws.workspace_id,
                ws.agent_id,
                conns,
                mask,
            )
        )
    batch.counts[0] += span[1] - span[0]


def _latency(
    batch: Batch, rng: random.Random, u: User, ws: Workspace, span: tuple[int, int], every: int
) -> None:
    tpl = ws.template.template_id
    append = batch.events.append
    n = 0
    for minute in range(span[0], span[1], every):
        ms = u.latency_ms * rng.lognormvariate(0.0, 0.3)
        if rng.random() < 0.03:
            ms *= 6  # the occasional slow tail
        append(
            LatencyEvent(
                counter_uuid(2, u.index, minute * 8 + ws.template_index),
                minute * US_PER_MIN + 5 * US_PER_S,
                u.user_id,
                tpl,
                ws.workspace_id,
                ws.agent_id,
                round(ms, 2),
            )
        )
        n += 1
    batch.counts[2] += n


def _apps(batch: Batch, rng: random.Random, u: User, ws: Workspace, span: tuple[int, int]) -> None:
    a, b = span
    if b - a < 15:
        return
    template = ws.template
    start = rng.randint(a, b - 10)
    end = min(b, start + rng.randint(10, 90))
    method = rng.choices(("path", "subdomain", "terminal"), (0.45, 0.40, 0.15))[0]
    if method == "terminal":
        slug, name, icon = "", None, None
    else:
        slug = rng.choice(template.apps)
        name, icon = APPS[slug]
    started_us = start * US_PER_MIN + rng.randrange(US_PER_MIN)
    ended_us = (end - 1) * US_PER_MIN + rng.randrange(US_PER_MIN)
    batch.events.append(
        AppUsageEvent(
            counter_uuid(3, u.index, start * 8 + ws.template_index),
            ended_us,
            counter_uuid(4, u.index, start * 8 + ws.template_index),
            u.user_id,
            u.username,
            u.avatar_url,
            template.template_id,
            ws.workspace_id,
            ws.agent_id,
            method,
            slug,
            name,
            icon,
            started_us,
            ended_us,
            rng.randint(1, 400),
        )
    )
    batch.counts[1] += 1


def _build(batch: Batch, rng: random.Random, u: User, ws: Workspace, minute: int, day: int) -> None:
    params = ws.params[1] if rng.random() < 0.1 else ws.params[0]
    batch.events.append(
        BuildEvent(
            counter_uuid(5, u.index, day * 8 + ws.template_index),
            minute * US_PER_MIN,
            ws.template.template_id,
            ws.workspace_id,
            u.user_id,
            day - FIRST_LOCAL_DAY + 1,
            params,
        )
    )
    batch.counts[3] += 1


def make_batch(users: list[User], local_day: int, chunk: int, seed: int, every: int) -> Batch:
    rng = random.Random(seed * 1_000_003 + local_day * 1009 + chunk)
    batch = Batch()
    for u in users:
        blocks = work_blocks(rng, u, local_day, END_MIN)
        if not blocks:
            continue
        _build(batch, rng, u, u.main, blocks[0][0] - 2, local_day)
        for span in blocks:
            mask = u.kind_mask
            if rng.random() < u.ssh_p:
                mask |= SSH
            if rng.random() < 0.03:
                mask |= SFTP
            _sessions(batch, u, u.main, span, mask, 1 + mask.bit_count() // 2)
            _latency(batch, rng, u, u.main, span, every)
        for _ in range(rng.randint(2, 4)):
            _apps(batch, rng, u, u.main, rng.choice(blocks))
        if u.second is not None and rng.random() < 0.35:
            # Same half-hours in a second template: the cross-template caps apply.
            a, b = rng.choice(blocks)
            start = rng.randint(a, max(a, b - 30))
            span = (start, min(b, start + rng.randint(30, 120)))
            _build(batch, rng, u, u.second, span[0] - 1, local_day)
            _sessions(batch, u, u.second, span, VSCODE, 1)
            _latency(batch, rng, u, u.second, span, every)
            if rng.random() < 0.5:
                _apps(batch, rng, u, u.second, span)
    return batch


def plan(
    users: list[User], local_day: int, chunk: int, seed: int, every: int
) -> tuple[Batch, BatchPlan]:
    batch = make_batch(users, local_day, chunk, seed, every)
    return batch, plan_batch(batch.events)


@dataclass
class LoadStats:
    counts: list[int]
    seconds: float
    ops: int
    changed: int
    plan_s: float  # generating + plan_batch (Python, in a thread)
    wait_s: float  # then still waiting for Redis to apply the previous batch

    @property
    def events(self) -> int:
        return sum(self.counts)


async def load(store: RollupStore, users: list[User], args: argparse.Namespace) -> LoadStats:
    chunks = [users[i : i + CHUNK] for i in range(0, len(users), CHUNK)]
    specs = [(d, c) for d in range(FIRST_LOCAL_DAY, END_DAY + 1) for c in range(len(chunks))]
    counts = [0, 0, 0, 0]
    ops = changed = 0
    plan_s = wait_s = 0.0
    pending: asyncio.Task[int] | None = None
    started = time.perf_counter()
    columns = (
        TextColumn("[bold]loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[events]:>11,} events  {task.fields[rate]:>9,.0f} ev/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as progress:
        task = progress.add_task("load", total=len(specs), events=0, rate=0.0)
        for day, c in specs:
            # Plan the next batch in a thread while Redis applies the previous one.
            t0 = time.perf_counter()
            batch, p = await asyncio.to_thread(
                plan, chunks[c], day, c, args.seed, args.latency_every
            )
            t1 = time.perf_counter()
            plan_s += t1 - t0
            if pending is not None:
                changed += await pending
            wait_s += time.perf_counter() - t1
            pending = asyncio.create_task(store.apply(p))
            ops += p.op_count()
            for i, n in enumerate(batch.counts):
                counts[i] += n
            total = sum(counts)
            rate = total / (time.perf_counter() - started)
            progress.update(task, advance=1, events=total, rate=rate)
        t1 = time.perf_counter()
        if pending is not None:
            changed += await pending
        wait_s += time.perf_counter() - t1
    return LoadStats(counts, time.perf_counter() - started, ops, changed, plan_s, wait_s)


# -- requests ---------------------------------------------------------------------------------


def _day(d: datetime) -> str:
    return d.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    query: tuple[tuple[str, str], ...]


def cases() -> list[Case]:
    start30, start28 = END - timedelta(days=30), END - timedelta(days=28)
    utc30 = (("start_time", f"{_day(start30)}T00:00:00Z"), ("end_time", f"{_day(END)}T00:00:00Z"))
    t0, t1 = TEMPLATES[0].template_id, TEMPLATES[1].template_id
    templates = "/api/v2/insights/templates"
    return [
        Case("templates 30d all, interval=day", templates, (*utc30, ("interval", "day"))),
        Case(
            "templates 28d one template, week",
            templates,
            (
                ("start_time", f"{_day(start28)}T00:00:00Z"),
                ("end_time", f"{_day(END)}T00:00:00Z"),
                ("template_ids", t0),
                ("interval", "week"),
            ),
        ),
        Case(
            "templates 30d all, -03:00",
            templates,
            (
                ("start_time", f"{_day(start30)}T00:00:00-03:00"),
                ("end_time", f"{_day(END)}T00:00:00-03:00"),
                ("interval", "day"),
            ),
        ),
        Case(
            "templates 30d two templates",
            templates,
            (*utc30, ("template_ids", f"{t0},{t1}"), ("interval", "day")),
        ),
        Case("user-activity 30d all", "/api/v2/insights/user-activity", utc30),
        Case(
            "user-latency 30d all, p90,p99",
            "/api/v2/insights/user-latency",
            (*utc30, ("percentiles", "90,99")),
        ),
        Case("daus tz_offset=0", "/api/v2/insights/daus", (("tz_offset", "0"),)),
        Case("daus tz_offset=-3", "/api/v2/insights/daus", (("tz_offset", "-3"),)),
    ]


@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)
    body: bytes = b""  # of the last successful call
    failure: str = ""  # e.g. "HTTP 503 Insights store unavailable. (TimeoutError)"

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile of the timed requests."""
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)


class HttpFailure(Exception):
    pass


async def fetch(session: aiohttp.ClientSession, base: str, case: Case) -> bytes:
    async with session.get(base + case.path, params=case.query) as resp:
        body = await resp.read()
        if resp.status != 200:
            try:
                err = orjson.loads(body)
                text = f"{err.get('message', '')} ({err.get('detail', '')})"
            except orjson.JSONDecodeError:
                text = body[:200].decode(errors="replace")
            raise HttpFailure(f"HTTP {resp.status} {text}")
        return body


async def time_calls(
    name: str, call: Callable[[], Awaitable[object]], args: argparse.Namespace
) -> Timing:
    """``args.warmup`` untimed calls, then up to ``args.requests`` timed ones, stopping early
    (after at least 3) once ``args.case_budget_s`` is spent; a failed call ends the case."""
    timing = Timing(name)
    started = time.perf_counter()
    for i in range(args.warmup + args.requests):
        if i >= args.warmup + 3 and time.perf_counter() - started > args.case_budget_s:
            break
        t0 = time.perf_counter()
        try:
            result = await call()
        except HttpFailure as exc:
            timing.seconds.append(time.perf_counter() - t0)
            timing.failure = str(exc)
            break
        if i >= args.warmup:
            timing.seconds.append(time.perf_counter() - t0)
        if isinstance(result, bytes):
            timing.body = result
    return timing


# Entries worth reading in a profile: project code and the libraries it calls, not the
# event loop, aiohttp's client/server plumbing or this script.
PROFILE_FILTER = r"aggregators/|/api/|/streams/|orjson|hiredis|ddsketch|/redis/"


async def profile_case(
    session: aiohttp.ClientSession, base: str, case: Case, console: Console
) -> None:
    prof = cProfile.Profile()
    failure = ""
    t0 = time.perf_counter()
    prof.enable()
    try:
        await fetch(session, base, case)
    except HttpFailure as exc:
        failure = f", {exc}"
    prof.disable()
    wall_ms = (time.perf_counter() - t0) * 1000
    console.rule(f"profile: {case.name} ({wall_ms:.0f} ms under cProfile{failure})")
    for order, count in (("cumulative", 15), ("tottime", 8)):
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats(order).print_stats(PROFILE_FILTER, count)
        text = out.getvalue()
        table = text[text.find("   ncalls") :].rstrip()
        console.print(f"top {count} by {order}:\n{table}", markup=False, highlight=False)


def dataset_check(bodies: dict[str, bytes]) -> str:
    def report(name: str) -> dict[str, Any]:
        return orjson.loads(bodies[name])["report"] if name in bodies else {}

    templates = report("templates 30d all, interval=day")
    activity = report("user-activity 30d all")
    latency = report("user-latency 30d all, p90,p99")
    daus = orjson.loads(bodies.get("daus tz_offset=0", b'{"entries": []}'))["entries"]
    busiest = max((e["amount"] for e in daus), default=0)
    apps = sum(1 for a in templates.get("apps_usage", []) if a["seconds"])
    return (
        f"response check: {templates.get('active_users')} active users in "
        f"{len(templates.get('template_ids', []))} templates, {apps} apps with usage, "
        f"{len(templates.get('parameters_usage', []))} parameters; "
        f"user-activity {len(activity.get('users', []))} users, "
        f"user-latency {len(latency.get('users', []))} users; busiest day {busiest} DAUs"
    )


def results_table(timings: list[Timing], baseline: Timing, ping: Timing, title: str) -> Table:
    table = Table(title=title)
    for col in ("request", "n", "p50 ms", "p95 ms", "max ms", "body", "p50 / healthz"):
        table.add_column(col, justify="left" if col == "request" else "right")

    def row(t: Timing, ratio: bool) -> None:
        if not t.seconds:
            table.add_row(t.name, "0", "-", "-", "-", "-", "-")
            return
        ms = [f"{v * 1000:.2f}" for v in (t.p50, t.quantile(0.95), max(t.seconds))]
        size = f"{len(t.body):,} B" if t.body else "-"
        rel = f"{t.p50 / baseline.p50:.0f}x" if ratio else "-"
        name = f"{t.name}\n[red]{t.failure}[/]" if t.failure else t.name
        table.add_row(name, str(len(t.seconds)), *ms, size, rel)

    for t in timings:
        row(t, True)
    table.add_section()
    row(baseline, True)
    row(ping, False)
    return table


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """The app on an ephemeral loopback port, without access logs: ``(runner, base URL)``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def bench(
    args: argparse.Namespace, redis_url: str, started_here: bool, console: Console
) -> None:
    loader = Redis.from_url(redis_url)
    settings = Settings(redis_url=redis_url, api_tokens=TOKEN)
    if args.store_timeout is not None:
        settings = settings.model_copy(update={"store_timeout_s": args.store_timeout})
    api_redis = redis_client(settings)
    runner: web.AppRunner | None = None
    try:
        if started_here or args.flush:
            await loader.flushdb()
        users = make_users(args.users, args.seed)
        if not args.skip_load:
            stats = await load(RollupStore(loader), users, args)
            kinds = ", ".join(f"{n:,} {k}" for k, n in zip(KIND_NAMES, stats.counts, strict=True))
            console.print(
                f"loaded {stats.events:,} events ({kinds}) for {len(users):,} users over "
                f"{END_DAY - FIRST_LOCAL_DAY} days in {stats.seconds:.1f} s: "
                f"[bold]{stats.events / stats.seconds:,.0f} events/s[/] through "
                f"RollupStore.apply(plan_batch(...)) directly (no Kafka, no worker); "
                f"{stats.ops:,} rollup ops ({stats.ops / stats.seconds:,.0f} ops/s); "
                f"{stats.plan_s:.1f} s generating + planning, {stats.wait_s:.1f} s more "
                f"waiting for Redis"
            )
        info = await loader.info("memory")
        console.print(
            f"redis: {await loader.dbsize():,} keys, {info['used_memory_human']} used "
            f"(latency sample every {args.latency_every} min)"
        )

        runner, base = await serve(
            create_app(settings, store=RollupStore(api_redis), clock=lambda: CLOCK)
        )
        console.print(
            f"API on {base}, clock {CLOCK.isoformat()}, store timeout "
            f"{settings.store_timeout_s:g} s; {args.warmup} warm-ups + up to {args.requests} "
            f"timed requests per query (budget {args.case_budget_s:g} s each)"
        )

        headers = {"Coder-Session-Token": TOKEN}
        connector = aiohttp.TCPConnector(limit=1)
        timings: list[Timing] = []
        bodies: dict[str, bytes] = {}
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            health = Case("GET /healthz (no Redis)", "/healthz", ())
            baseline = await time_calls(health.name, lambda: fetch(session, base, health), args)
            ping = await time_calls("Redis PING round trip", api_redis.ping, args)
            for case in cases():
                t = await time_calls(case.name, functools.partial(fetch, session, base, case), args)
                timings.append(t)
                if t.body:
                    bodies[case.name] = t.body
            if args.profile:
                for case in cases():
                    await profile_case(session, base, case, console)

        console.print(dataset_check(bodies))
        title = f"insights API, {WINDOW_DAYS}-day windows, {len(users):,} active users"
        console.print(results_table(timings, baseline, ping, title))
        ok = all(not t.failure and t.quantile(0.95) < 0.050 for t in timings)
        over = [t.name for t in timings if t.failure or t.quantile(0.95) >= 0.050]
        if over:
            console.print(f"p95 >= 50 ms or failing: {', '.join(over)}", highlight=False)
        print(f"verdict: all endpoints p95 < 50 ms: {'yes' if ok else 'no'}")
    finally:
        if runner is not None:
            await runner.cleanup()
        await api_redis.aclose()
        await loader.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--flush", action="store_true", help="FLUSHDB a --redis-url first")
    parser.add_argument("--skip-load", action="store_true", help="query what is already there")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests first")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--latency-every", type=int, default=10, help="minutes between samples")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--case-budget-s", type=float, default=10.0, help="stop timing a query after this"
    )
    parser.add_argument(
        "--store-timeout", type=float, help="API store deadline in s (default: Settings' 2 s)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile one request per query")
    args = parser.parse_args()
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)
    server: ManagedProcess | None = None
    url = args.redis_url
    try:
        if url is None:
            server = start_redis()
            url = server.address
            console.print(f"embedded Redis at {url} (pid {server.pid})")
        asyncio.run(bench(args, url, server is not None, console))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
