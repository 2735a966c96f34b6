"""Live dashboards under ingest: read latency while events stream into the days they show.

One run: the embedded broker and Redis, then ``insights worker`` and ``insights api`` as separate
processes (as tests/e2e/stack.py); ``--days`` of history of ``--users`` users ending now, loaded
straight into Redis with bench_api's generators; then three phases of ``--phase-s`` s with
``--clients`` keep-alive dashboards looping over Coder-dashboard requests: (a) no ingest, (b)
``--rate`` events/s through Kafka into 75 days ago (outside every window), (c) the same into now
(the days shown). In b and c a marker session every 0.5 s measures produce -> visible in the API.
Last, the API is restarted and the first request of each shape timed (cold). Everything started
is stopped, also on errors and Ctrl-C. Clients, producer and poller share this process and its
event loop (its CPU is the "bench" column).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import bench_api as ba
import orjson
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from rich.console import Console
from rich.table import Table

from aggregators.ops import BatchPlan, plan_batch
from aggregators.store import RollupStore
from aggregators.timebase import MIN_PER_DAY, US_PER_DAY, US_PER_MIN, US_PER_S
from insights import devstack
from insights.devstack import ManagedProcess
from insights.settings import Settings
from streams.kafka_admin import create_topics
from streams.simulation import APPS, TEMPLATES, User, work_blocks
from streams.workloads import AgentRef, WireEvent, counter_uuid, session_event
from streams.workloads import app_usage_event as app_event
from streams.workloads import latency_event as lat_event

Case = ba.Case
TOKEN, PREFIX, PARTITIONS = "bench-live", "bench.", 4
HEADERS = {"Coder-Session-Token": TOKEN}
BRT = timezone(timedelta(hours=-3))  # the dashboards' zone (Sao Paulo, no DST)
MARKER_TEMPLATE = "30000000-0000-4000-8000-00000000beef"  # in no dashboard's filter
BACKFILL_DAYS = 75  # phase b: before the 61 days of /daus and the 30-day windows
LATENCY_EVERY = 10  # history: a latency sample per 10 working minutes, as bench_api
MSG_EVENTS, TICK_S = 100, 0.05  # events per Kafka message; producer pacing tick
MARKER_EVERY_S, POLL_S, FRESH_TIMEOUT_S = 0.5, 0.05, 10.0
MAX_REQUESTS = 1_000_000  # per client and phase: a count bound beside the clock
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
CLK_TCK = os.sysconf("SC_CLK_TCK")
Sample = tuple[str, float, float, int]  # shape, completed at (perf_counter), ms, HTTP status


def now_us() -> int:
    return time.time_ns() // 1000


def cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads) from /proc/<pid>/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()  # the name may hold spaces: skip it
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile like bench_api's; NaN when there is nothing to rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# -- history: bench_api's per-user generators, cut at now instead of at its fixed end ----------


def plan(
    users: list[User], day: int, chunk: int, seed: int, until: int
) -> tuple[ba.Batch, BatchPlan]:
    rng, batch = random.Random(seed * 1_000_003 + day * 1009 + chunk), ba.Batch()
    for u in users:
        blocks = work_blocks(rng, u, day, until)
        if not blocks:
            continue
        ba._build(batch, rng, u, u.main, blocks[0][0] - 2, day)
        for span in blocks:
            mask = u.kind_mask | (ba.SSH if rng.random() < u.ssh_p else 0)
            ba._sessions(batch, u, u.main, span, mask, 1 + mask.bit_count() // 2)
            ba._latency(batch, rng, u, u.main, span, LATENCY_EVERY)
        for _ in range(rng.randint(2, 4)):
            ba._apps(batch, rng, u, u.main, rng.choice(blocks))
        if u.second is not None and rng.random() < 0.35:  # same half-hours: the caps apply
            a, b = rng.choice(blocks)
            span = (a, min(b, a + rng.randint(30, 120)))
            ba._sessions(batch, u, u.second, span, ba.VSCODE, 1)
            ba._latency(batch, rng, u, u.second, span, LATENCY_EVERY)
    return batch, plan_batch(batch.events)


async def load_history(redis_url: str, users: list[User], days: int, seed: int) -> list[int]:
    redis, counts = Redis.from_url(redis_url), [0, 0, 0, 0]
    store, until = RollupStore(redis), now_us() // US_PER_MIN
    today = until // MIN_PER_DAY
    chunks = [users[i : i + 100] for i in range(0, len(users), 100)]
    pending: asyncio.Task[int] | None = None
    try:
        for day in range(today - days + 1, today + 2):  # + 1: the local today east of UTC
            for c, chunk in enumerate(chunks):
                # Plan the next batch in a thread while Redis applies the previous one.
                batch, p = await asyncio.to_thread(plan, chunk, day, c, seed, until)
                if pending is not None:
                    await pending
                pending = asyncio.create_task(store.apply(p))
                counts = [a + b for a, b in zip(counts, batch.counts, strict=True)]
        if pending is not None:
            await pending
    finally:
        await redis.aclose()
    return counts


# -- the dashboards ----------------------------------------------------------------------------


def dashboard_cases(now: datetime) -> list[ba.Case]:
    """What Coder's dashboard asks: local midnight N days ago -> the next full hour."""
    local = now.astimezone(BRT)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = (local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).isoformat()

    def span(days: int, *extra: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return (
            ("start_time", (midnight - timedelta(days=days)).isoformat()),
            ("end_time", end),
            *extra,
        )

    t0, t1 = TEMPLATES[0].template_id, TEMPLATES[1].template_id
    tpl, act, lat = (
        f"/api/v2/insights/{e}" for e in ("templates", "user-activity", "user-latency")
    )
    day, week = ("interval", "day"), ("interval", "week")
    return [
        Case("templates 7d all, day", tpl, span(7, day)),
        Case("templates 30d all, day", tpl, span(30, day)),
        # 27 days + today's hours: 3 full weeks and a last one of 6-7 days (Coder's rule).
        Case("templates 27d one, week", tpl, span(27, ("template_ids", t0), week)),
        Case("templates 30d two, day", tpl, span(30, ("template_ids", f"{t0},{t1}"), day)),
        Case("user-activity 7d", act, span(7)),
        Case("user-activity 30d", act, span(30)),
        Case("user-latency 7d one", lat, span(7, ("template_ids", t1))),
        Case("user-latency 30d", lat, span(30)),
        Case("daus tz_offset=-3", "/api/v2/insights/daus", (("tz_offset", "-3"),)),
        Case("daus tz_offset=0", "/api/v2/insights/daus", (("tz_offset", "0"),)),
    ]


async def get(session: aiohttp.ClientSession, base: str, case: ba.Case) -> tuple[int, bytes]:
    """(status, body); status 0 for a transport error or the client's 10 s timeout."""
    try:
        async with session.get(base + case.path, params=case.query) as resp:
            return resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError):
        return 0, b""


async def client(
    session: aiohttp.ClientSession, base: str, cases: list[ba.Case], first: int,
    out: list[Sample], stop: asyncio.Event, hard_stop: float,
) -> None:  # fmt: skip
    # Each client starts at another shape, so every endpoint is in flight at any moment.
    for n in range(MAX_REQUESTS):
        if stop.is_set() or time.perf_counter() > hard_stop:
            return
        case = cases[(first + n) % len(cases)]
        t0 = time.perf_counter()
        status, _ = await get(session, base, case)
        t1 = time.perf_counter()
        out.append((case.name, t1, (t1 - t0) * 1000, status))


# -- ingest and freshness ----------------------------------------------------------------------


class Live:
    """Wire events of the deployment's agents at a moment: mostly session reports (agents
    report every ~30 s), some latency samples (one Lua op each), some app-session upserts."""

    def __init__(self, users: list[User], seed: int) -> None:
        self.users, self.rng, self.seq, self.sent = users, random.Random(seed), itertools.count(), 0

    def events(self, n: int, at_us: int) -> dict[str, list[WireEvent]]:
        rng = self.rng
        out: dict[str, list[WireEvent]] = {"sessions": [], "latency": [], "app_usage": []}
        for _ in range(n):
            u = rng.choice(self.users)
            ws = u.second if u.second is not None and rng.random() < 0.2 else u.main
            agent, eid, r = u.agent(ws), counter_uuid(11, u.index, next(self.seq)), rng.random()
            t = at_us - rng.randrange(30 * US_PER_S)
            if r < 0.85:
                kinds = {u.tool, "ssh"} if rng.random() < u.ssh_p else {u.tool}
                out["sessions"].append(session_event(agent, eid, t, kinds, len(kinds)))
            elif r < 0.95:
                ms = round(u.latency_ms * rng.lognormvariate(0.0, 0.3), 2)
                out["latency"].append(lat_event(agent, eid, t, ms))
            else:
                slug, start = rng.choice(ws.template.apps), t - rng.randint(1, 90) * US_PER_MIN
                sid = counter_uuid(13, u.index, start // US_PER_MIN)  # later reports upsert it
                app, requests = APPS[slug], rng.randint(1, 400)
                ev = app_event(
                    agent, eid, sid, start, t, slug_or_port=slug, app=app, requests=requests
                )
                out["app_usage"].append(ev)
        return out


async def ingest(
    producer: Any, live: Live, rate: int, shift_us: int, stop: asyncio.Event, hard_stop: float
) -> None:
    owed, last = 0.0, time.perf_counter()
    while not stop.is_set() and time.perf_counter() < hard_stop:
        # Paced on the clock; at most 1 s of backlog is kept, so a slow broker shows as a lower
        # "ev/s sent" rather than as bursts.
        now = time.perf_counter()
        owed, last = min(owed + rate * (now - last), float(rate)), now
        if (due := int(owed)) > 0:
            owed -= due
            acks = []
            for kind, events in live.events(due, now_us() + shift_us).items():
                for i in range(0, len(events), MSG_EVENTS):
                    chunk = events[i : i + MSG_EVENTS]  # keyed like the contract: user_id
                    value, key = orjson.dumps(chunk), chunk[0]["user_id"].encode()
                    acks.append(await producer.send(PREFIX + kind, value, key=key))
            await asyncio.gather(*acks)
            live.sent += due
        await asyncio.sleep(TICK_S)


@dataclass
class Freshness:
    pending: dict[str, float] = field(default_factory=dict)  # marker user -> produced at
    ms: list[float] = field(default_factory=list)
    missed: int = 0
    done: bool = False  # no more markers will come


async def markers(producer: Any, fresh: Freshness, until: float, seq: itertools.count[int]) -> None:
    try:
        while time.perf_counter() < until:
            n = next(seq)
            uid, ws, agent_id = (counter_uuid(20 + i, 0, n) for i in range(3))
            # A new user each time, so "it appeared" is unambiguous.
            event = session_event(AgentRef(uid, f"marker{n}", MARKER_TEMPLATE, ws, agent_id),
                                  counter_uuid(23, 0, n), now_us(), ["vscode"])  # fmt: skip
            fresh.pending[uid] = time.perf_counter()  # before the send: the ack counts too
            await producer.send_and_wait(PREFIX + "sessions", orjson.dumps(event), key=uid.encode())
            await asyncio.sleep(MARKER_EVERY_S)
    finally:
        fresh.done = True


def marker_case() -> ba.Case:
    """user-activity of the marker template from yesterday's UTC midnight (never "future")."""
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start, end = hour.replace(hour=0) - timedelta(days=1), hour + timedelta(hours=1)
    span = (("start_time", start.isoformat()), ("end_time", end.isoformat()))
    return Case(
        "markers", "/api/v2/insights/user-activity", (*span, ("template_ids", MARKER_TEMPLATE))
    )


async def watch(session: aiohttp.ClientSession, base: str, fresh: Freshness) -> None:
    """Poll user-activity of the marker template until every marker is seen or given up."""
    while not (fresh.done and not fresh.pending):
        now = time.perf_counter()
        for uid in [u for u, t0 in fresh.pending.items() if now - t0 > FRESH_TIMEOUT_S]:
            del fresh.pending[uid]
            fresh.missed += 1
        if fresh.pending:
            status, body = await get(session, base, marker_case())
            seen_at = time.perf_counter()
            for user in orjson.loads(body)["report"]["users"] if status == 200 else ():
                if user["user_id"] in fresh.pending:
                    fresh.ms.append((seen_at - fresh.pending.pop(user["user_id"])) * 1000)
        await asyncio.sleep(POLL_S)


# -- phases ------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    ingest: str
    requests: int
    rps: float
    p50: float
    p95: float
    p99: float
    e5xx: int
    errors: int  # 4xx, transport errors, 10 s client timeouts
    produced_eps: float
    cpu_s: dict[str, float]
    fresh: dict[str, float]  # markers seen and missed, p50 and p99 ms
    per_case: dict[str, tuple[float, float]]  # p50, p99 ms of each request shape


@dataclass
class Ctx:
    args: argparse.Namespace
    base: str
    pids: dict[str, int]
    sessions: list[aiohttp.ClientSession]
    watcher: aiohttp.ClientSession
    producer: Any
    live: Live
    marker_seq: itertools.count[int] = field(default_factory=itertools.count)


async def run_phase(ctx: Ctx, name: str, label: str, shift_us: int | None) -> Phase:
    args, samples, stop, fresh = ctx.args, list[Sample](), asyncio.Event(), Freshness()
    cases = dashboard_cases(datetime.now(UTC))  # per phase: the hour may have turned
    cpu0, sent0 = {k: cpu_s(pid) for k, pid in ctx.pids.items()}, ctx.live.sent
    end = time.perf_counter() + args.phase_s
    hard_stop = end + FRESH_TIMEOUT_S + 5
    tasks = [
        asyncio.create_task(client(s, ctx.base, cases, i, samples, stop, hard_stop))
        for i, s in enumerate(ctx.sessions)
    ]
    if shift_us is None:
        fresh.done = True
    else:
        tasks += [
            asyncio.create_task(
                ingest(ctx.producer, ctx.live, args.rate, shift_us, stop, hard_stop)
            ),
            asyncio.create_task(markers(ctx.producer, fresh, end, ctx.marker_seq)),
            asyncio.create_task(watch(ctx.watcher, ctx.base, fresh)),
        ]
    try:
        await asyncio.sleep(args.phase_s)
        cpu = {k: cpu_s(pid) - cpu0[k] for k, pid in ctx.pids.items()}
        produced = ctx.live.sent - sent0
        # The last markers settle under the same load (bounded by FRESH_TIMEOUT_S); requests
        # and CPU count up to the phase end only.
        while not (fresh.done and not fresh.pending) and time.perf_counter() < hard_stop:
            await asyncio.sleep(POLL_S)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    done = [s for s in samples if s[1] <= end]

    def ms(shape: str | None = None) -> list[float]:
        return [s[2] for s in done if s[3] == 200 and shape in (None, s[0])]

    p50, p95, p99 = (quantile(ms(), q) for q in (0.5, 0.95, 0.99))
    e5xx = sum(s[3] >= 500 for s in done)
    errors = sum(s[3] != 200 for s in done) - e5xx
    fresh_figures = {"seen": len(fresh.ms), "missed": fresh.missed,
                     "p50": quantile(fresh.ms, 0.5), "p99": quantile(fresh.ms, 0.99)}  # fmt: skip
    per_case = {c.name: (quantile(ms(c.name), 0.5), quantile(ms(c.name), 0.99)) for c in cases}
    return Phase(name, label, len(done), len(done) / args.phase_s, p50, p95, p99, e5xx, errors,
                 produced / args.phase_s, cpu, fresh_figures, per_case)  # fmt: skip


# -- the stack ---------------------------------------------------------------------------------


def start_insights(role: str, env: dict[str, str], base: str) -> ManagedProcess:
    """``insights worker|api`` in its own process group; ``.stop()`` signals that group only."""
    return ManagedProcess(role, [sys.executable, "-m", "insights", role], address=base, env=env)


async def wait_ready(
    session: aiohttp.ClientSession, base: str, procs: list[ManagedProcess]
) -> None:
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if dead := [p for p in procs if not p.is_running()]:
            raise RuntimeError(f"{dead[0].name} exited early:\n{dead[0].log_tail()}")
        if (await get(session, base, Case("readyz", "/readyz", ())))[0] == 200:
            return
        await asyncio.sleep(0.25)
    raise RuntimeError("not ready in 60 s:\n" + "\n".join(p.log_tail() for p in procs))


async def cold_start(
    ctx: Ctx, procs: list[ManagedProcess], env: dict[str, str]
) -> tuple[float, list[tuple[str, float, int]]]:
    """Restart the API (the worker keeps running) and time one first request per shape."""
    old = next(p for p in procs if p.name == "api")
    old.stop()
    procs.remove(old)
    t0 = time.perf_counter()
    procs.append(api := start_insights("api", env, ctx.base))
    ctx.pids["API"] = api.pid
    await wait_ready(ctx.watcher, ctx.base, [api])
    ready_s, out = time.perf_counter() - t0, list[tuple[str, float, int]]()
    async with aiohttp.ClientSession(headers=HEADERS, timeout=HTTP_TIMEOUT) as session:
        for case in dashboard_cases(datetime.now(UTC)):
            t1 = time.perf_counter()
            status, _ = await get(session, ctx.base, case)
            out.append((case.name, (time.perf_counter() - t1) * 1000, status))
        # A fresh process has no cache: tells a stale API from a worker that lags.
        status, body = await get(session, ctx.base, marker_case())
        out.append(("markers visible", len(orjson.loads(body)["report"]["users"]), status))
    return ready_s, out


# -- output ------------------------------------------------------------------------------------


def num(v: float, digits: int = 1) -> str:
    return "-" if math.isnan(v) else f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> str:
    return "-" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def table(title: str, cols: Sequence[str], rows: list[list[str]]) -> Table:
    out = Table(title=title)
    for i, col in enumerate(cols):
        out.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def tables(phases: list[Phase], title: str) -> list[Table]:
    a, c = phases[0], phases[-1]
    reads = [
        [p.name, p.ingest, num(p.produced_eps, 0), num(p.rps), num(p.p50), num(p.p95), num(p.p99),
         str(p.e5xx), str(p.errors), ratio(p.rps, a.rps), ratio(p.p99, a.p99)]
        for p in phases
    ]  # fmt: skip
    cost = [
        [p.name, *(num(v) for v in p.cpu_s.values()), *(["-"] * 4 if p.ingest == "none" else [
            num(p.fresh["seen"], 0), num(p.fresh["p50"], 0), num(p.fresh["p99"], 0),
            num(p.fresh["missed"], 0)])]
        for p in phases
    ]  # fmt: skip
    shapes = [
        [n, *(num(v) for v in (*a.per_case[n], c50, c99)), ratio(c99, a.per_case[n][1])]
        for n, (c50, c99) in c.per_case.items()
    ]
    return [
        table(title, ("phase", "ingest", "ev/s sent", "req/s", "p50 ms", "p95 ms", "p99 ms", "5xx",
                      "errors", "req/s vs a", "p99 vs a"), reads),
        table("CPU seconds per process during each phase; freshness = marker produced -> seen",
              ("phase", *a.cpu_s, "markers", "fresh p50 ms", "fresh p99 ms", "missed"), cost),
        table(f"per request shape, phase a vs c ({c.ingest})",
              ("request", "a p50 ms", "a p99 ms", "c p50 ms", "c p99 ms", "p99 c/a"), shapes),
    ]  # fmt: skip


# -- the run -----------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, procs: list[ManagedProcess], con: Console) -> Any:
    procs.append(broker := devstack.start_broker())
    procs.append(redis := devstack.start_redis())
    # Created up front: a produce to a missing topic would auto-create it on the dev broker.
    topics = Settings(topic_prefix=PREFIX).all_topics
    await create_topics(broker.address, topics, PARTITIONS)
    port = devstack.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": broker.address,
        "INSIGHTS_REDIS_URL": redis.address,
        "INSIGHTS_TOPIC_PREFIX": PREFIX,
        "INSIGHTS_TOPIC_PARTITIONS": str(PARTITIONS),
        "INSIGHTS_APP_ID": f"bench-live-{port}",
        "INSIGHTS_API_HOST": "127.0.0.1",
        "INSIGHTS_API_PORT": str(port),
        "INSIGHTS_API_TOKENS": TOKEN,
        # The dev broker holds every group join for half the session timeout (quirk 2).
        "INSIGHTS_BROKER_SESSION_TIMEOUT_S": "6",
    }
    procs += [start_insights("worker", env, base), start_insights("api", env, base)]
    con.print(f"broker {broker.address}, redis {redis.address}, API {base}; pids "
              + ", ".join(f"{p.name} {p.pid}" for p in procs), highlight=False)  # fmt: skip

    # The worker and the API start up while the history loads.
    users, t0 = ba.make_users(args.users, args.seed), time.perf_counter()
    counts = await load_history(redis.address, users, args.days, args.seed)
    load_s = time.perf_counter() - t0
    kinds = ", ".join(f"{n:,} {k}" for k, n in zip(ba.KIND_NAMES, counts, strict=True))
    con.print(
        f"history: {sum(counts):,} events ({kinds}) of {len(users)} users over the last "
        f"{args.days} days up to now, loaded in {load_s:.1f} s straight into Redis "
        "(RollupStore.apply(plan_batch(...)); no Kafka, no worker)",
        highlight=False,
    )
    sessions = [
        aiohttp.ClientSession(
            headers=HEADERS, timeout=HTTP_TIMEOUT, connector=aiohttp.TCPConnector(limit=1)
        )
        for _ in range(args.clients)
    ]  # one keep-alive connection per dashboard
    watcher = aiohttp.ClientSession(headers=HEADERS, timeout=HTTP_TIMEOUT)
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.address, **devstack.TANSU_PRODUCER_SETTINGS
    )
    try:
        await producer.start()
        await wait_ready(watcher, base, procs[2:])
        pids = {"API": procs[3].pid, "worker": procs[2].pid, "redis": redis.pid,
                "broker": broker.pid, "bench": os.getpid()}  # fmt: skip
        ctx = Ctx(args, base, pids, sessions, watcher, producer, Live(users, args.seed))
        for case in dashboard_cases(datetime.now(UTC)):  # phase a is the warm steady state
            await get(watcher, base, case)
        phases = []
        for name, label, shift in (
            ("a", "none", None),
            ("b", f"{args.rate:,}/s {BACKFILL_DAYS} d ago", -BACKFILL_DAYS * US_PER_DAY),
            ("c", f"{args.rate:,}/s now", 0),
        ):
            con.print(f"phase {name}: {args.clients} clients, ingest {label}, {args.phase_s:g} s")
            phases.append(await run_phase(ctx, name, label, shift))
        title = (f"{args.clients} dashboards, {args.users} users, {args.days} days of history, "
                 f"{args.phase_s:g} s per phase; latency of 200s")  # fmt: skip
        for t in tables(phases, title):
            con.print(t)
        ready_s, cold = await cold_start(ctx, procs, env)
        (_, visible, _), cold = cold[-1], cold[:-1]
        firsts = ", ".join(
            f"{n} {ms:,.0f} ms" + ("" if s == 200 else f" (HTTP {s})") for n, ms, s in cold
        )
        con.print(f"cold: API restarted, ready in {ready_s:.1f} s; first request of each shape, "
                  f"in this order (later ones reuse days cached by earlier ones): {firsts}",
                  highlight=False)  # fmt: skip
        produced = sum(int(p.fresh["seen"] + p.fresh["missed"]) for p in phases)
        con.print(
            f"markers: {visible:.0f} of the {produced} produced are visible to the restarted API"
        )
        return {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "history": {"events": sum(counts), "load_s": load_s},
            "phases": [asdict(p) for p in phases],
            "cold": {"ready_s": ready_s, "first_request_ms": {n: ms for n, ms, _ in cold}},
            "markers": {"produced": produced, "visible_after_restart": visible},
        }
    finally:
        await producer.stop()
        for s in [*sessions, watcher]:
            await s.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=32, help="days of history, ending now")
    parser.add_argument("--clients", type=int, default=50, help="concurrent dashboards")
    parser.add_argument("--phase-s", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--rate", type=int, default=2000, help="events/s in phases b and c")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    con = Console() if Console().is_terminal else Console(width=120)
    procs: list[ManagedProcess] = []
    started = time.perf_counter()
    try:
        result = asyncio.run(bench(args, procs, con))
    finally:
        for p in reversed(procs):  # everything this run started, each by its own PID/group
            p.stop()
    result["total_s"] = total = time.perf_counter() - started
    con.print(f"done in {total:.0f} s; stopped the {len(procs)} processes it started")
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
