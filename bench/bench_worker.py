"""Events/s of ONE insights worker on the embedded stack (Tansu broker + Valkey).

Starts both servers itself (``insights.devstack``, 127.0.0.1 only) and stops them
at the end.
Per scenario, on topics with a unique prefix and in its own Redis database:

1. pre-produces a bounded workload in batch messages (``acks=1``, no idempotence):
   * ``sessions``  - 2,000 agents (the main workspaces of a ``streams.simulation``
     deployment) reporting every 30 s over 3 hours (batch fast path),
   * ``latency``   - one sample per event (sketch path: one Lua op per event),
   * ``app_usage`` - app sessions re-reported with a growing ``ended_at``;
2. reads the topic to the end with a bare aiokafka consumer (group, earliest, no
   processing): the ceiling of the fetch path, measured in the same run;
3. runs the real ``InsightsWorker`` in-process (fresh consumer group) until every
   produced message was processed, timed from the first processed batch (so the Tansu
   group-join hold is excluded); decode, plan and Redis apply are timed per batch by
   wrapping ``decode_batch``, ``plan_batch`` and ``RollupStore.apply`` from the outside;
4. verifies the rollups against a reference computed while generating the workload
   (active users and usage seconds through ``user_activity_report``, latency samples
   per user through the read path's ``WindowReader``).

    .venv/bin/python bench/bench_worker.py [--sessions 200000] [--latency 50000]
        [--app-usage 30000] [--agents 2000] [--partitions 4] [--fetch-mib 4]
        [--profile out.prof]

``--fetch-mib`` overrides Faust's per-partition fetch limit on the worker's app (its
default of 1 MiB holds only ~24 messages of 100 session events).  ``--profile`` runs
cProfile over the worker phases (figures then include its overhead) and prints the
hottest functions.  Total runtime is about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import math
import os
import pstats
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from aggregators import ops as ops_mod
from aggregators.model import KINDS, TOPIC_KINDS
from aggregators.queries import Window, user_activity_report
from aggregators.reader import ReadRequest, WindowReader
from aggregators.store import RollupStore
from aggregators.timebase import MIN_PER_HALF_HOUR, US_PER_MIN, US_PER_S
from insights import devstack, metrics
from insights.settings import Settings
from streams import batches as batches_mod
from streams import worker as worker_mod
from streams.decoding import MAX_LATENCY_MS
from streams.kafka_admin import create_topics
from streams.simulation import APPS, generate
from streams.workloads import (
    AccessMethod,
    AgentRef,
    App,
    app_usage_event,
    latency_event,
    random_uuid,
    session_event,
)

# 2024-03-04T08:00:00Z: a fixed, past, half-hour-aligned start
BASE_US = 1_709_539_200 * US_PER_S
SPAN_US = 3 * 60 * US_PER_MIN  # the workload's 3 hours
REPORT_EVERY_US = 30 * US_PER_S
# Wide enough for the tables when the output is a file or a pipe (rich assumes 80 columns).
console = Console(width=None if sys.stdout.isatty() else 160)


# --- workload -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agent:
    ref: AgentRef  # the ids and names its events carry
    tool: str  # main session kind (one of KINDS)
    apps: tuple[str, ...]  # its template's apps (slugs of streams.simulation.APPS)
    partition: int


@dataclass
class Expected:
    active_users: int = 0
    seconds: int = 0  # total usage seconds over all users
    latency_samples: dict[str, int] = field(default_factory=dict)  # user -> samples


@dataclass
class Scenario:
    kind: str  # topic kind
    path: str  # the code path it exercises, for the table
    prefix: str
    db: int
    messages: list[tuple[int, bytes, bytes]]  # (partition, key, value)
    events: int
    expected: Expected

    @property
    def topic(self) -> str:
        return self.prefix + self.kind

    @property
    def bytes(self) -> int:
        return sum(len(v) for _, _, v in self.messages)


def make_agents(count: int, partitions: int, seed: int) -> list[Agent]:
    """The main agents of a generated deployment of ``count`` users (one template each)."""
    return [
        Agent(user.agent(), user.tool, user.main.template.apps, user.index % partitions)
        for user in generate(count, seed).users
    ]


def _shares(total: int, parts: int) -> Iterator[int]:
    """``total`` split into ``parts`` counts differing by at most one."""
    q, r = divmod(total, parts)
    for i in range(parts):
        yield q + (1 if i < r else 0)


def _messages(
    per_partition: dict[int, list[tuple[int, dict[str, Any]]]], batch: int
) -> list[tuple[int, bytes, bytes]]:
    """Each partition's events in time order, cut into batch messages keyed by a user id."""
    out: list[tuple[int, bytes, bytes]] = []
    for partition, timed in sorted(per_partition.items()):
        timed.sort(key=lambda te: te[0])
        events = [e for _, e in timed]
        for i in range(0, len(events), batch):
            chunk = events[i : i + batch]
            out.append((partition, str(chunk[0]["user_id"]).encode(), orjson.dumps(chunk)))
    return out


def sessions_workload(
    agents: list[Agent], total: int, batch: int, rng: random.Random
) -> tuple[list[tuple[int, bytes, bytes]], Expected]:
    """Agents report every 30 s for a stretch of the 3 hours; 5 % of reports are idle
    (no session open) and 10 % show no connection (the connection rule then decides)."""
    per_partition: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    # (user, epoch half-hour) -> [minute mask of reports with a session, connected]
    cells: dict[tuple[str, int], list[int]] = {}
    for agent, count in zip(agents, _shares(total, len(agents)), strict=True):
        start = BASE_US + rng.randrange(max(1, SPAN_US - count * REPORT_EVERY_US))
        for k in range(count):
            time_us = start + k * REPORT_EVERY_US + rng.randrange(US_PER_S)
            counts = dict.fromkeys(KINDS, 0)
            if rng.random() >= 0.05:
                counts[agent.tool] = 1
                if rng.random() < 0.2:
                    counts["ssh"] += 1
            connections = 0 if rng.random() < 0.1 else rng.randint(1, 3)
            event = session_event(agent.ref, random_uuid(rng), time_us, counts, connections)
            per_partition[agent.partition].append((time_us, event))
            if any(counts.values()):
                minute = time_us // US_PER_MIN
                half_hour, bit = divmod(minute, MIN_PER_HALF_HOUR)
                cell = cells.setdefault((agent.ref.user_id, half_hour), [0, 0])
                cell[0] |= 1 << bit
                cell[1] |= connections > 0
    expected = Expected()
    # One template per user, so no 30-minute cap across templates applies.
    active = {user for (user, _), (_, connected) in cells.items() if connected}
    expected.active_users = len(active)
    expected.seconds = 60 * sum(m.bit_count() for m, connected in cells.values() if connected)
    return _messages(per_partition, batch), expected


def latency_workload(
    agents: list[Agent], total: int, batch: int, rng: random.Random
) -> tuple[list[tuple[int, bytes, bytes]], Expected]:
    """Log-normal samples around 30 ms with a slow tail, spread over the 3 hours."""
    per_partition: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    expected = Expected()
    for agent, count in zip(agents, _shares(total, len(agents)), strict=True):
        for _ in range(count):
            time_us = BASE_US + rng.randrange(SPAN_US)
            latency = rng.lognormvariate(math.log(30.0), 0.5)
            if rng.random() < 0.02:
                latency *= 20
            latency_ms = round(min(latency, float(MAX_LATENCY_MS)), 3)
            event = latency_event(agent.ref, random_uuid(rng), time_us, latency_ms)
            per_partition[agent.partition].append((time_us, event))
        if count:
            expected.latency_samples[agent.ref.user_id] = count
    expected.active_users = len(expected.latency_samples)
    return _messages(per_partition, batch), expected


APP_REPORTS = 5  # reports per app session, each with a later ended_at


def app_usage_workload(
    agents: list[Agent], total: int, batch: int, rng: random.Random
) -> tuple[list[tuple[int, bytes, bytes]], Expected]:
    """App sessions of 5 to 40 minutes, each reported 5 times as it goes on (upserts):
    70 % template apps (path), 10 % port forwards (subdomain), 20 % web terminals."""
    per_partition: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    minutes: dict[str, set[int]] = defaultdict(set)
    for agent, count in zip(agents, _shares(total, len(agents)), strict=True):
        left = count
        while left > 0:
            reports = min(APP_REPORTS, left)
            left -= reports
            started = BASE_US + rng.randrange(SPAN_US - 40 * US_PER_MIN)
            length = rng.randrange(5 * US_PER_MIN, 40 * US_PER_MIN)
            roll = rng.random()
            method: AccessMethod
            app: App | None
            if roll < 0.7:
                method, slug = "path", rng.choice(agent.apps)
                app = APPS[slug]
            elif roll < 0.8:
                method, slug, app = "subdomain", str(rng.choice((3000, 8080))), None
            else:
                method, slug, app = "terminal", "", None
            session_id = random_uuid(rng)
            for r in range(1, reports + 1):
                ended = started + length * r // APP_REPORTS
                event = app_usage_event(
                    agent.ref,
                    random_uuid(rng),
                    session_id,
                    started,
                    ended,
                    access_method=method,
                    slug_or_port=slug,
                    app=app,
                    requests=rng.randrange(50),
                )
                per_partition[agent.partition].append((ended, event))
                if ended > started:
                    minutes[agent.ref.user_id].update(
                        range(started // US_PER_MIN, (ended - 1) // US_PER_MIN + 1)
                    )
    expected = Expected()
    expected.active_users = sum(1 for m in minutes.values() if m)
    expected.seconds = 60 * sum(len(m) for m in minutes.values())
    return _messages(per_partition, batch), expected


# --- measurement helpers -----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


@dataclass
class CpuSnapshot:
    worker: float
    broker: float
    redis: float

    @classmethod
    def take(cls, broker_pid: int, redis_pid: int) -> CpuSnapshot:
        return cls(time.process_time(), cpu_seconds(broker_pid), cpu_seconds(redis_pid))


@dataclass
class BareResult:
    seconds: float
    messages: int
    join_s: float


@dataclass
class WorkerStats:
    """Filled by the wrappers around the worker's hot calls."""

    expected_messages: int
    pids: tuple[int, int]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    batches: int = 0
    messages: int = 0
    events: int = 0
    rejected: int = 0
    process_s: float = 0.0
    decode_batch_s: float = 0.0  # decode + plan
    plan_s: float = 0.0
    apply_s: float = 0.0
    ops: int = 0
    meta_ops: int = 0  # of ops: profile and app-catalogue upserts (meta.lua)
    assigned: float | None = None  # partitions assigned: the join hold is over
    first_start: float | None = None
    last_end: float = 0.0
    cpu_start: CpuSnapshot | None = None
    cpu_end: CpuSnapshot | None = None
    batch_messages: list[int] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """From the assignment to the end of the batch that completed the workload."""
        return self.last_end - self.assigned if self.assigned is not None else 0.0

    def on_assigned(self) -> None:
        if self.assigned is None:
            self.assigned = time.perf_counter()
            self.cpu_start = CpuSnapshot.take(*self.pids)


@dataclass
class WorkerResult:
    stats: WorkerStats
    startup_s: float  # worker start() until the assignment: Faust start + group join
    first_batch_s: float  # assignment until the first batch reached process()
    redis_lua_s: float  # server-side EVALSHA time (Valkey commandstats)
    redis_calls: int


class Instrumentation:
    """Wraps ``decode_batch`` and ``plan_batch`` (module globals looked up per call) and a
    worker's ``store.apply`` and ``process`` (instance attributes); the library is untouched."""

    def __init__(self) -> None:
        self.stats: WorkerStats | None = None
        self._saved: list[tuple[Any, str, Any]] = []

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        # The names each module looks up at call time (streams.worker imported decode_batch,
        # streams.batches imported plan_batch), so patching them reaches the running worker.
        real_decode = getattr(worker_mod, "decode_batch")  # noqa: B009
        real_plan = getattr(batches_mod, "plan_batch")  # noqa: B009

        def decode_batch(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real_decode(*args, **kwargs)
            finally:
                if self.stats is not None:
                    self.stats.decode_batch_s += time.perf_counter() - started

        def plan_batch(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return real_plan(*args, **kwargs)
            finally:
                if self.stats is not None:
                    self.stats.plan_s += time.perf_counter() - started

        setattr(worker_mod, "decode_batch", decode_batch)  # noqa: B010
        setattr(batches_mod, "plan_batch", plan_batch)  # noqa: B010
        try:
            yield
        finally:
            setattr(worker_mod, "decode_batch", real_decode)  # noqa: B010
            setattr(batches_mod, "plan_batch", real_plan)  # noqa: B010

    def attach(self, worker: worker_mod.InsightsWorker, stats: WorkerStats) -> None:
        self.stats = stats
        real_apply = worker.store.apply
        real_process = worker.process

        async def apply(plan: ops_mod.BatchPlan) -> int:
            started = time.perf_counter()
            try:
                return await real_apply(plan)
            finally:
                stats.apply_s += time.perf_counter() - started
                stats.ops += plan.op_count()
                stats.meta_ops += len(plan.meta)

        async def process(kind: str, events: Any) -> Any:
            started = time.perf_counter()
            if stats.first_start is None:
                stats.first_start = started
                stats.on_assigned()  # in case the signal was missed
            batch = await real_process(kind, events)
            ended = time.perf_counter()
            stats.process_s += ended - started
            stats.batches += 1
            stats.messages += batch.messages
            stats.events += batch.events
            stats.rejected += len(batch.dead_letters)
            stats.batch_messages.append(batch.messages)
            stats.last_end = ended
            if stats.messages >= stats.expected_messages and not stats.done.is_set():
                stats.cpu_end = CpuSnapshot.take(*stats.pids)
                stats.done.set()
            return batch

        async def on_partitions_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            if args and args[0]:
                stats.on_assigned()

        worker.app.on_partitions_assigned.connect(on_partitions_assigned)  # type: ignore[arg-type]
        worker.store.apply = apply  # type: ignore[method-assign]
        worker.process = process  # type: ignore[method-assign]


async def produce(bootstrap: str, scenarios: list[Scenario]) -> float:
    """Send every scenario's messages; returns the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, **devstack.TANSU_PRODUCER_SETTINGS
    )
    await producer.start()
    started = time.perf_counter()
    try:
        with Progress(console=console, transient=False) as progress:
            for scn in scenarios:
                task = progress.add_task(
                    f"producing {scn.kind} ({scn.events:,} events)", total=len(scn.messages)
                )
                pending: list[asyncio.Future[Any]] = []
                for partition, key, value in scn.messages:
                    pending.append(
                        await producer.send(scn.topic, value, key=key, partition=partition)
                    )
                    if len(pending) >= 100:
                        await asyncio.gather(*pending)
                        progress.advance(task, len(pending))
                        pending.clear()
                await asyncio.gather(*pending)
                progress.advance(task, len(pending))
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def bare_consume(bootstrap: str, scn: Scenario, timeout_s: float) -> BareResult:
    """Read the topic to the end in a fresh group, touching nothing but the record count."""
    consumer = AIOKafkaConsumer(
        scn.topic,
        bootstrap_servers=bootstrap,
        group_id=f"{scn.prefix}bare",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # Tansu holds a join for half the session timeout (quirk 2): keep it short.
        session_timeout_ms=2000,
        heartbeat_interval_ms=600,
    )
    began = time.perf_counter()
    deadline = began + timeout_s
    seen = 0
    await consumer.start()
    try:
        # Timed from the assignment (the join hold excluded), like the worker.
        while not consumer.assignment():
            if time.perf_counter() > deadline:
                raise TimeoutError("bare consumer: no assignment")
            await asyncio.sleep(0.002)
        assigned = time.perf_counter()
        while seen < len(scn.messages):
            if time.perf_counter() > deadline:
                raise TimeoutError(f"bare consumer got {seen} of {len(scn.messages)} messages")
            fetched = await consumer.getmany(timeout_ms=200)
            seen += sum(len(records) for records in fetched.values())
        ended = time.perf_counter()
    finally:
        await consumer.stop()
    return BareResult(ended - assigned, seen, assigned - began)


async def lua_time(admin: Redis) -> tuple[float, int]:
    """(seconds, calls) of EVAL/EVALSHA on the server since the last CONFIG RESETSTAT."""
    stats = await admin.info("commandstats")
    usec = calls = 0
    for name in ("cmdstat_evalsha", "cmdstat_eval"):
        entry = stats.get(name)
        if entry:
            usec += int(entry["usec"])
            calls += int(entry["calls"])
    return usec / 1e6, calls


async def run_worker(
    scn: Scenario,
    bootstrap: str,
    redis_url: str,
    partitions: int,
    pids: tuple[int, int],
    instrumentation: Instrumentation,
    timeout_s: float,
    profiler: cProfile.Profile | None,
    fetch_mib: float | None,
) -> WorkerResult:
    settings = Settings(
        kafka_bootstrap=bootstrap,
        redis_url=redis_url,
        topic_prefix=scn.prefix,
        topic_partitions=partitions,
        app_id=f"{scn.prefix}worker",
    )
    redis = Redis.from_url(redis_url)
    await redis.config_resetstat()
    worker = worker_mod.InsightsWorker(settings, redis, embedded_broker=True)
    if fetch_mib:
        # Faust's per-partition fetch limit (default 1 MiB); the consumer is built at start().
        worker.app.conf.consumer_max_fetch_size = int(fetch_mib * 2**20)
    stats = WorkerStats(len(scn.messages), pids)
    instrumentation.attach(worker, stats)
    began = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        await worker.start()
        try:
            await asyncio.wait_for(stats.done.wait(), timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(
                f"{scn.kind}: worker processed {stats.messages} of {len(scn.messages)} messages "
                f"in {timeout_s:g}s"
            ) from exc
    finally:
        if profiler is not None:
            profiler.disable()
        await worker.stop()
    lua_s, calls = await lua_time(redis)
    await redis.aclose()
    assert stats.first_start is not None and stats.assigned is not None
    return WorkerResult(
        stats, stats.assigned - began, stats.first_start - stats.assigned, lua_s, calls
    )


async def verify(scn: Scenario, redis_url: str) -> tuple[bool, str]:
    """Compare the rollups with the reference computed from the generated events."""
    redis = Redis.from_url(redis_url)
    try:
        reader = WindowReader(RollupStore(redis).source)
        hh_ns = 30 * 60 * 1_000_000_000
        start_ns = BASE_US * 1000
        end_ns = start_ns + (SPAN_US * 1000 // hh_ns + 2) * hh_ns  # whole half-hours, margin
        window = Window(start_ns, end_ns, "start", "end", ())
        exp = scn.expected
        if scn.kind == "latency":
            first, stop = window.half_hours
            request = ReadRequest(first, stop, None, frozenset({"a", "l"}))
            view = (await reader.read(request)).view
            got: dict[str, int] = {}
            for frame, _, _ in view.frames:
                for i, count in zip(frame.lat_user.tolist(), frame.lat_count.tolist(), strict=True):
                    got[frame.users[i]] = got.get(frame.users[i], 0) + count
            ok = got == exp.latency_samples
            total = sum(got.values())
            return ok, (
                f"{len(got):,} users / {total:,} samples "
                f"(expected {len(exp.latency_samples):,} / {sum(exp.latency_samples.values()):,})"
            )
        report: Any = await user_activity_report(reader, window)
        users = report["report"]["users"]
        seconds = sum(int(u["seconds"]) for u in users)
        ok = len(users) == exp.active_users and seconds == exp.seconds
        return ok, (
            f"{len(users):,} active users, {seconds / 3600:,.1f} h "
            f"(expected {exp.active_users:,}, {exp.seconds / 3600:,.1f} h)"
        )
    finally:
        await redis.aclose()


def print_profile(profiler: cProfile.Profile, path: str, top: int) -> None:
    profiler.dump_stats(path)
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        body = out.getvalue()
        console.print(f"[bold]cProfile of the worker phases, by {order}[/bold] (saved to {path})")
        console.print(body[body.find("   ncalls") :], markup=False, highlight=False)


# --- main ---------------------------------------------------------------------------------


def _rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "-"


def _cpu_per_event(st: WorkerStats) -> str:
    """Worker-process CPU per event: robust to other load on the machine, unlike events/s."""
    if st.cpu_start is None or st.cpu_end is None or not st.events:
        return "-"
    return f"{1e6 * (st.cpu_end.worker - st.cpu_start.worker) / st.events:.1f}"


def _ms(seconds: float, batches: int) -> str:
    return f"{1000 * seconds / batches:.2f}" if batches else "-"


async def run(args: argparse.Namespace, broker: Any, redis_proc: Any) -> int:
    rng = random.Random(args.seed)
    run_id = uuid.uuid4().hex[:8]
    generated = time.perf_counter()
    agents = make_agents(args.agents, args.partitions, args.seed)
    builders: list[tuple[str, str, int, Callable[..., Any]]] = [
        ("sessions", "batch fast path", args.sessions, sessions_workload),
        ("latency", "sketch path", args.latency, latency_workload),
        ("app_usage", "app minutes", args.app_usage, app_usage_workload),
    ]
    scenarios: list[Scenario] = []
    for db, (kind, path, total, build) in enumerate(builders, start=1):
        if total <= 0:
            continue
        messages, expected = build(agents, total, args.batch, rng)
        prefix = f"bench{run_id}{kind.replace('_', '')}."
        scenarios.append(Scenario(kind, path, prefix, db, messages, total, expected))
    console.print(
        f"generated {sum(s.events for s in scenarios):,} events from {args.agents:,} agents "
        f"in {time.perf_counter() - generated:.1f}s; broker {broker.address}, "
        f"redis {redis_proc.address}"
    )

    for scn in scenarios:
        topics = [scn.prefix + k for k in TOPIC_KINDS] + [scn.prefix + "dead_letter"]
        await create_topics(broker.address, topics, args.partitions)
    produce_s = await produce(broker.address, scenarios)
    total_bytes = sum(s.bytes for s in scenarios)
    console.print(
        f"produced {sum(len(s.messages) for s in scenarios):,} messages "
        f"({total_bytes / 2**20:,.1f} MiB) in {produce_s:.1f}s"
    )

    base_url = redis_proc.address.rsplit("/", 1)[0]
    pids = (broker.pid, redis_proc.pid)
    profiler = cProfile.Profile() if args.profile else None
    instrumentation = Instrumentation()
    rows: list[tuple[Scenario, BareResult, WorkerResult, bool, str]] = []
    with instrumentation.installed():
        for scn in scenarios:
            console.print(f"[bold]{scn.kind}[/bold]: bare consumer ...")
            bare = await bare_consume(broker.address, scn, args.timeout_s)
            console.print(f"[bold]{scn.kind}[/bold]: worker ...")
            redis_url = f"{base_url}/{scn.db}"
            result = await run_worker(
                scn,
                broker.address,
                redis_url,
                args.partitions,
                pids,
                instrumentation,
                args.timeout_s,
                profiler,
                args.fetch_mib,
            )
            ok, detail = await verify(scn, redis_url)
            rows.append((scn, bare, result, ok, detail))
            st = result.stats
            counted = metrics.EVENTS.labels(scn.topic)._value.get()
            if counted != st.events or st.events != scn.events or st.rejected:
                rows[-1] = (scn, bare, result, False, detail + f"; counter {counted:,.0f}")

    report(rows, profiler, args)
    return 0 if all(ok for *_, ok, _ in rows) else 1


def report(
    rows: list[tuple[Scenario, BareResult, WorkerResult, bool, str]],
    profiler: cProfile.Profile | None,
    args: argparse.Namespace,
) -> None:
    title = "One worker on the embedded stack (Tansu + Valkey), in-process"
    if args.fetch_mib:
        title += f", consumer_max_fetch_size {args.fetch_mib:g} MiB"
    throughput = Table(title=title)
    headers = (
        "scenario",
        "events",
        "msgs",
        "bare msg/s",
        "bare ev/s",
        "worker msg/s",
        "worker ev/s",
        "x bare",
        "CPU us/ev",
        "wall s",
        "join s",
        "to 1st batch s",
    )
    for col in headers:
        throughput.add_column(col, justify="left" if col == "scenario" else "right")
    split = Table(title="Per batch: where the worker's time goes (ms per batch)")
    split_headers = (
        "scenario",
        "batches",
        "msgs/batch",
        "ops/batch (meta)",
        "decode",
        "plan",
        "apply",
        "of which Lua",
        "rest of process",
        "outside process",
        "CPU worker / tansu / valkey",
    )
    for col in split_headers:
        split.add_column(col, justify="left" if col == "scenario" else "right")

    summary: list[str] = []
    checks: list[str] = []
    for scn, bare, result, ok, detail in rows:
        st = result.stats
        wall = st.wall_s
        bare_rate = bare.messages / bare.seconds
        ratio = (st.messages / wall) / bare_rate if wall else 0.0
        throughput.add_row(
            f"{scn.kind} ({scn.path})",
            f"{scn.events:,}",
            f"{len(scn.messages):,}",
            f"{bare_rate:,.0f}",
            f"{bare_rate * scn.events / len(scn.messages):,.0f}",
            _rate(st.messages, wall),
            _rate(st.events, wall),
            f"{ratio:.2f}",
            _cpu_per_event(st),
            f"{wall:.2f}",
            f"{result.startup_s:.1f}",
            f"{result.first_batch_s:.2f}",
        )
        decode_s = st.decode_batch_s - st.plan_s
        rest_s = st.process_s - st.decode_batch_s - st.apply_s
        cpu = "-"
        if st.cpu_start and st.cpu_end and wall:
            c0, c1 = st.cpu_start, st.cpu_end
            cpu = " / ".join(
                f"{(b - a) / wall:.0%}"
                for a, b in ((c0.worker, c1.worker), (c0.broker, c1.broker), (c0.redis, c1.redis))
            )
        split.add_row(
            scn.kind,
            f"{st.batches}",
            f"{st.messages / max(st.batches, 1):.0f}",
            f"{st.ops / max(st.batches, 1):,.0f} ({st.meta_ops / max(st.batches, 1):,.0f})",
            _ms(decode_s, st.batches),
            _ms(st.plan_s, st.batches),
            _ms(st.apply_s, st.batches),
            _ms(result.redis_lua_s, st.batches),
            _ms(rest_s, st.batches),
            _ms(wall - st.process_s, st.batches),
            cpu,
        )
        mark = "[green]OK[/green]" if ok else "[red]FAIL[/red]"
        checks.append(f"  {mark} {scn.kind}: {detail}")
        summary.append(
            f"{scn.kind} {st.events / wall if wall else 0:,.0f} ev/s "
            f"({ratio:.2f}x bare){'' if ok else ' FAILED'}"
        )
    console.print(throughput)
    console.print(
        "bare = aiokafka consumer reading the same topic without processing; both timed from "
        "the partition assignment (the Tansu join hold excluded) to the last message."
    )
    console.print(split)
    console.print(
        "decode / plan / apply: wrapped decode_batch, plan_batch and RollupStore.apply; 'of "
        "which Lua' is Valkey's EVAL/EVALSHA time (commandstats); 'outside process': Faust and "
        "aiokafka between batches (fetch, iteration, acks, waiting); CPU: share of one core "
        "over the wall time."
    )
    console.print("verification (rollups vs the generated workload):")
    for line in checks:
        console.print(line)
    if profiler is not None:
        print_profile(profiler, args.profile, args.top)
        console.print("[yellow]figures above include cProfile overhead[/yellow]")
    all_ok = all(ok for *_, ok, _ in rows)
    console.print(
        f"[bold]worker:[/bold] {'; '.join(summary)}; "
        + ("[green]all rollups verified[/green]" if all_ok else "[red]verification FAILED[/red]")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=200_000, help="session events")
    parser.add_argument("--latency", type=int, default=50_000, help="latency events")
    parser.add_argument("--app-usage", type=int, default=30_000, help="app usage events")
    parser.add_argument("--agents", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=100, help="events per Kafka message")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=90.0, help="per consume phase")
    parser.add_argument(
        "--fetch-mib",
        type=float,
        help="override Faust's consumer_max_fetch_size (per partition; worker default 1 MiB)",
    )
    parser.add_argument("--profile", metavar="PATH", help="cProfile the worker phases into PATH")
    parser.add_argument("--top", type=int, default=25, help="functions shown with --profile")
    args = parser.parse_args()
    if not 1 <= args.batch <= 1000:
        parser.error("--batch must be 1..1000 (the spec's limit per message)")

    with devstack.start_broker() as broker, devstack.start_redis() as redis_proc:
        return asyncio.run(run(args, broker, redis_proc))


if __name__ == "__main__":
    raise SystemExit(main())
