"""Memory of the API process: its read caches under many distinct windows, and wide reports.

The script starts a throw-away Redis, loads ``bench_api``'s deployment (``--users`` users,
32 days) straight into it, then runs the API as a child process on 127.0.0.1 (so its RSS
is its own), once per ``--cache-mb`` value (``INSIGHTS_API_CACHE_MB``; a huge value is
"no byte cap", the entry counts alone):

* churn: ``--clients`` keep-alive clients ask templates / user-activity / user-latency for
  random windows (start, length, hour offset, template filter) for ``--seconds``; the
  child's RSS is sampled every ``--every`` s, as a ratio to its RSS after one warm-up
  request (the baseline of its run);
* wide (``--wide``): a day-interval templates report from 0001-01-02 (~739,000 intervals)
  while ``/healthz`` is polled: the longest ``/healthz`` wait as a ratio to its idle p50,
  and the child's peak RSS (VmHWM) as a ratio to the same baseline; then four at once.

    .venv/bin/python bench/bench_api_memory.py [--users 300] [--seconds 60] [--wide]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import bench_api as ba
from aiohttp import web
from redis.asyncio import Redis

from aggregators.store import RollupStore
from api.app import create_app, redis_client
from insights.devstack import start_redis
from insights.settings import Settings
from streams.simulation import TEMPLATES

HEADERS = {"Coder-Session-Token": ba.TOKEN}
WIDE_QUERY = "start_time=0001-01-02T00:00:00Z&end_time=2024-06-03T00:00:00Z&interval=day"
NO_CAP_MB = 1_000_000


def status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


# -- the child: the API alone ------------------------------------------------------------------


def serve(redis_url: str) -> None:
    """The API on a free loopback port (printed on stdout), a fixed clock, until killed."""

    async def run() -> None:
        settings = Settings(redis_url=redis_url, api_tokens=ba.TOKEN)
        store = RollupStore(redis_client(settings))
        runner = web.AppRunner(create_app(settings, store=store, clock=lambda: ba.CLOCK))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(runner.addresses[0][1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


@dataclass
class Child:
    proc: subprocess.Popen[str]
    base: str

    @classmethod
    def start(cls, redis_url: str, cache_mb: int) -> Child:
        env = {
            **os.environ,
            "INSIGHTS_API_CACHE_MB": str(cache_mb),
            "INSIGHTS_LOG_FORMAT": "json",
            "INSIGHTS_CODER_METRICS_REFRESH_S": "0",
        }
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", redis_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port:
            proc.kill()
            raise RuntimeError("the API child did not start")
        return cls(proc, f"http://127.0.0.1:{port}")

    def rss(self) -> int:
        return status_kib(self.proc.pid, "VmRSS")

    def peak(self) -> int:
        return status_kib(self.proc.pid, "VmHWM")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- churn: many distinct windows ----------------------------------------------------------------


def random_request(rng: random.Random) -> tuple[str, dict[str, str]]:
    """A window from local midnight to local midnight in one of 27 offsets: its edge days
    are partial UTC days, so most windows need frames of their own."""
    days = rng.randint(1, 30)
    zone = timezone(timedelta(hours=rng.randint(-12, 14)))
    first = (ba.END - timedelta(days=rng.randint(days + 1, 31))).date()
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    query = {
        "start_time": start.isoformat(),
        "end_time": (start + timedelta(days=days)).isoformat(),
    }
    if rng.random() < 0.4:
        picked = rng.sample(TEMPLATES, rng.randint(1, 2))
        query["template_ids"] = ",".join(t.template_id for t in picked)
    path = rng.choice(("templates", "user-activity", "user-latency"))
    if path == "templates":
        query["interval"] = "day"
    return f"/api/v2/insights/{path}", query


@dataclass
class Churn:
    cache_mb: int
    baseline_kib: int
    samples: list[tuple[float, int]] = field(default_factory=list)
    requests: int = 0
    errors: int = 0


async def churn(child: Child, args: argparse.Namespace, cache_mb: int) -> Churn:
    rng = random.Random(args.seed)  # the same windows for every cache size
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(headers=HEADERS, connector=connector) as session:
        async with session.get(child.base + "/api/v2/insights/daus") as resp:
            await resp.read()
        result = Churn(cache_mb, child.rss())
        stop = time.monotonic() + args.seconds
        queue = [random_request(rng) for _ in range(200_000)]

        async def client() -> None:
            while time.monotonic() < stop and queue:
                path, query = queue.pop()
                async with session.get(child.base + path, params=query) as resp:
                    await resp.read()
                    result.requests += 1
                    result.errors += resp.status != 200

        async def sampler() -> None:
            started = time.monotonic()
            while time.monotonic() < stop:
                await asyncio.sleep(args.every)
                result.samples.append((time.monotonic() - started, child.rss()))

        await asyncio.gather(sampler(), *(client() for _ in range(args.clients)))
    return result


# -- wide reports --------------------------------------------------------------------------------


async def wide(child: Child, concurrent: int) -> tuple[float, float, list[int], int, int]:
    """(idle /healthz p50 s, longest /healthz wait s, statuses, baseline KiB, peak KiB)."""
    url = f"{child.base}/api/v2/insights/templates?{WIDE_QUERY}"
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers=HEADERS, timeout=timeout) as session:
        idle = []
        for _ in range(20):
            t0 = time.perf_counter()
            async with session.get(child.base + "/healthz") as resp:
                await resp.read()
            idle.append(time.perf_counter() - t0)
        baseline = child.rss()

        async def big() -> int:
            async with session.get(url) as resp:
                await resp.read()
                return resp.status

        tasks = [asyncio.create_task(big()) for _ in range(concurrent)]
        waits = []
        await asyncio.sleep(0.3)
        async with aiohttp.ClientSession() as probe:
            while not all(t.done() for t in tasks):
                t0 = time.perf_counter()
                async with probe.get(child.base + "/healthz") as resp:
                    await resp.read()
                waits.append(time.perf_counter() - t0)
                await asyncio.sleep(0.05)
        statuses = [await t for t in tasks]
    return statistics.median(idle), max(waits, default=0.0), statuses, baseline, child.peak()


# -- main ----------------------------------------------------------------------------------------


async def load(redis_url: str, args: argparse.Namespace) -> None:
    loader = Redis.from_url(redis_url)
    try:
        await loader.flushdb()
        users = ba.make_users(args.users, args.seed)
        load_args = argparse.Namespace(seed=args.seed, latency_every=10)
        stats = await ba.load(RollupStore(loader), users, load_args)
        print(f"loaded {stats.events:,} events for {args.users} users in {stats.seconds:.0f} s")
    finally:
        await loader.aclose()


def run(args: argparse.Namespace, redis_url: str) -> None:
    asyncio.run(load(redis_url, args))
    churns: list[Churn] = []
    for cache_mb in args.cache_mb:
        child = Child.start(redis_url, cache_mb)
        try:
            churns.append(asyncio.run(churn(child, args, cache_mb)))
        finally:
            child.stop()
    print(f"\nchurn: {args.clients} clients, random windows, {args.seconds:g} s per cache size")
    print("RSS of the API as a ratio to its RSS after one warm-up request (MiB in brackets)")
    for c in churns:
        cap = "no byte cap" if c.cache_mb >= NO_CAP_MB else f"cache {c.cache_mb} MB"
        row = "  ".join(f"{t:.0f}s {kib / c.baseline_kib:.2f}" for t, kib in c.samples)
        last = c.samples[-1][1] if c.samples else c.baseline_kib
        peak = max((k for _, k in c.samples), default=c.baseline_kib)
        print(
            f"{cap:>12}: {c.requests:,} requests ({c.errors} not 200); baseline "
            f"{mib(c.baseline_kib)} MiB; peak {peak / c.baseline_kib:.2f}x ({mib(peak)}), "
            f"last {last / c.baseline_kib:.2f}x ({mib(last)})\n    {row}"
        )
    if args.wide:
        for concurrent in (1, 4):
            child = Child.start(redis_url, args.cache_mb[-1])
            try:
                p50, longest, statuses, baseline, peak = asyncio.run(wide(child, concurrent))
            finally:
                child.stop()
            print(
                f"\nwide: {concurrent} x day intervals from 0001-01-02: statuses {statuses}; "
                f"longest /healthz wait {longest * 1000:.0f} ms = {longest / p50:.0f}x its idle "
                f"p50 ({p50 * 1000:.2f} ms); peak RSS {peak / baseline:.2f}x the baseline "
                f"({mib(baseline)} -> {mib(peak)} MiB)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", metavar="REDIS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=60.0, help="churn per cache size")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--every", type=float, default=5.0, help="RSS sample period, s")
    parser.add_argument(
        "--cache-mb",
        type=int,
        nargs="+",
        default=[NO_CAP_MB, 64],
        help="INSIGHTS_API_CACHE_MB of each run (the last one also serves --wide)",
    )
    parser.add_argument("--wide", action="store_true", help="also the year-1 day report")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    server = start_redis()
    try:
        run(args, server.address)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
