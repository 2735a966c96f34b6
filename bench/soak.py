"""Soak: events streaming into the days dashboards show, for minutes, with the stack watched.

One run: the embedded broker and Redis, then ``insights worker`` (with its ``/metrics``) and
``insights api`` as separate processes, all on 127.0.0.1 (as ``bench_live.py``, whose helpers
this reuses); ``--history-days`` of history of ``--users`` users loaded straight into Redis;
then for ``--minutes``: ``--rate`` events/s through Kafka into now (batches of 100 events, keyed
by user), ``--clients`` keep-alive dashboards looping over Coder-dashboard requests, and a
marker session every 0.5 s whose appearance in the API measures produce -> visible. Every
``--report-s`` seconds a row: events sent, requests and their p99, errors, worker / API / Redis
RSS, consumer lag and freshness. At the end: totals, error counts, RSS first / peak / last,
lag, freshness p50 / p99 / max. Everything started is stopped, also on errors and Ctrl-C.

Consumer lag is shown twice: the worker's own ``insights_consumer_lag_messages`` (log end minus
committed offset, summed over partitions) and, independent of the broker's offsets, the backlog
in events: events acknowledged by the broker minus events the worker applied or refused
(``insights_events_total`` + ``insights_events_rejected_total``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import bench_api as ba
import bench_live as bl
import orjson
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from insights import devstack
from insights.devstack import ManagedProcess
from insights.settings import Settings
from streams.kafka_admin import create_topics
from streams.workloads import AgentRef, counter_uuid, session_event

PREFIX = bl.PREFIX  # bench_live.ingest sends to its topics
MARKER_EVERY_S, POLL_S, FRESH_TIMEOUT_S = 0.5, 0.05, 10.0
LOG_ERROR = b'"level": "error"'


def rss_mib(pid: int) -> float:
    """VmRSS of a process in MiB (NaN once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """``name{label=value,...}`` -> value of every sample of a Prometheus text page."""
    try:
        async with session.get(url) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def total(metrics: dict[str, float], name: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(name + "{"))


def consumed(metrics: dict[str, float]) -> float:
    """Events the worker is through with: applied, or refused to the dead-letter topic."""
    return total(metrics, "insights_events_total") + total(
        metrics, "insights_events_rejected_total"
    )


# -- freshness: a marker session per 0.5 s, one template per minute ---------------------------


@dataclass
class Markers:
    """Marker n is a new user in the template of the minute it was sent in, so the watcher's
    answers stay small (at most 120 users) and the dashboards see at most one template a minute
    more."""

    started: float
    pending: dict[str, tuple[str, float]] = field(default_factory=dict)  # user -> (tpl, sent)
    ms: list[float] = field(default_factory=list)
    missed: int = 0
    sent: int = 0
    done: bool = False

    def template(self, at: float) -> str:
        return counter_uuid(31, 0, int((at - self.started) // 60))


async def send_markers(producer: Any, marks: Markers, until: float) -> None:
    seq = itertools.count()
    try:
        while time.perf_counter() < until:
            n, now = next(seq), time.perf_counter()
            uid, ws, agent_id = (counter_uuid(20 + i, 0, n) for i in range(3))
            template = marks.template(now)
            agent = AgentRef(uid, f"marker{n}", template, ws, agent_id)
            event = session_event(agent, counter_uuid(23, 0, n), bl.now_us(), ["vscode"])
            marks.pending[uid] = (template, now)  # before the send: the ack counts too
            await producer.send_and_wait(PREFIX + "sessions", orjson.dumps(event), key=uid.encode())
            marks.sent += 1
            await asyncio.sleep(MARKER_EVERY_S)
    finally:
        marks.done = True


def marker_case(template: str) -> ba.Case:
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start, end = hour.replace(hour=0) - timedelta(days=1), hour + timedelta(hours=1)
    query = (("start_time", start.isoformat()), ("end_time", end.isoformat()),
             ("template_ids", template))  # fmt: skip
    return ba.Case("marker", "/api/v2/insights/user-activity", query)


async def watch_markers(session: aiohttp.ClientSession, base: str, marks: Markers) -> None:
    while not (marks.done and not marks.pending):
        now = time.perf_counter()
        for uid in [u for u, (_, t0) in marks.pending.items() if now - t0 > FRESH_TIMEOUT_S]:
            del marks.pending[uid]
            marks.missed += 1
        for template in {tpl for tpl, _ in marks.pending.values()}:
            status, body = await bl.get(session, base, marker_case(template))
            seen_at = time.perf_counter()
            for user in orjson.loads(body)["report"]["users"] if status == 200 else ():
                if (hit := marks.pending.pop(user["user_id"], None)) is not None:
                    marks.ms.append((seen_at - hit[1]) * 1000)
        await asyncio.sleep(POLL_S)


# -- one row per report interval --------------------------------------------------------------


@dataclass
class Row:
    at_s: float
    events_per_s: float
    requests_per_s: float
    p99_ms: float
    e5xx: int
    errors: int  # 4xx, transport errors and 10 s client timeouts
    rss_mib: dict[str, float]
    lag_metric: float  # insights_consumer_lag_messages, summed
    backlog: float  # events acknowledged by the broker - events the worker applied or refused
    fresh_p99_ms: float
    cpu_pct: dict[str, float]


@dataclass
class Counts:
    requests: int = 0
    e5xx: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def tables(rows: list[Row], con: Console) -> None:
    t = bl.table(
        "every report interval (RSS in MiB; lag: the worker's metric in messages; backlog: "
        "events sent - events consumed)",
        ("t s", "ev/s sent", "req/s", "p99 ms", "5xx", "errors", "worker RSS", "API RSS",
         "Redis RSS", "lag", "backlog", "fresh p99 ms", "worker CPU", "API CPU"),
        [[f"{r.at_s:.0f}", bl.num(r.events_per_s, 0), bl.num(r.requests_per_s), bl.num(r.p99_ms),
          str(r.e5xx), str(r.errors), bl.num(r.rss_mib["worker"], 0), bl.num(r.rss_mib["API"], 0),
          bl.num(r.rss_mib["redis"], 0), bl.num(r.lag_metric, 0), bl.num(r.backlog, 0),
          bl.num(r.fresh_p99_ms, 0), f"{r.cpu_pct['worker']:.0f} %", f"{r.cpu_pct['API']:.0f} %"]
         for r in rows],
    )  # fmt: skip
    con.print(t)


# -- the run ----------------------------------------------------------------------------------


async def soak(args: argparse.Namespace, procs: list[ManagedProcess], con: Console) -> Any:
    procs.append(broker := devstack.start_broker())
    procs.append(redis := devstack.start_redis())
    await create_topics(broker.address, Settings(topic_prefix=PREFIX).all_topics, bl.PARTITIONS)
    port, metrics_port = devstack.free_port(), devstack.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": broker.address,
        "INSIGHTS_REDIS_URL": redis.address,
        "INSIGHTS_TOPIC_PREFIX": PREFIX,
        "INSIGHTS_TOPIC_PARTITIONS": str(bl.PARTITIONS),
        "INSIGHTS_APP_ID": f"soak-{port}",
        "INSIGHTS_API_HOST": "127.0.0.1",
        "INSIGHTS_API_PORT": str(port),
        "INSIGHTS_API_TOKENS": bl.TOKEN,
        "INSIGHTS_WORKER_METRICS_HOST": "127.0.0.1",
        "INSIGHTS_WORKER_METRICS_PORT": str(metrics_port),
        "INSIGHTS_LOG_FORMAT": "json",
    }
    worker = bl.start_insights("worker", env, base)
    api = bl.start_insights("api", env, base)
    procs += [worker, api]
    pids = {"worker": worker.pid, "API": api.pid, "redis": redis.pid, "broker": broker.pid}
    con.print(f"broker {broker.address}, redis {redis.address}, API {base}, worker metrics "
              f":{metrics_port}; pids " + ", ".join(f"{k} {v}" for k, v in pids.items()),
              highlight=False)  # fmt: skip

    users = ba.make_users(args.users, args.seed)
    t0 = time.perf_counter()
    counts = await bl.load_history(redis.address, users, args.history_days, args.seed)
    con.print(f"history: {sum(counts):,} events of {len(users)} users over {args.history_days} "
              f"days, loaded in {time.perf_counter() - t0:.1f} s straight into Redis",
              highlight=False)  # fmt: skip
    sessions = [
        aiohttp.ClientSession(headers=bl.HEADERS, timeout=bl.HTTP_TIMEOUT,
                              connector=aiohttp.TCPConnector(limit=1))
        for _ in range(args.clients)
    ]  # fmt: skip
    watcher = aiohttp.ClientSession(headers=bl.HEADERS, timeout=bl.HTTP_TIMEOUT)
    scraper = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.address, **devstack.TANSU_PRODUCER_SETTINGS
    )
    stop = asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    try:
        await producer.start()
        await bl.wait_ready(watcher, base, [worker, api])
        live, marks = bl.Live(users, args.seed), Markers(time.perf_counter())
        duration = args.minutes * 60
        end = time.perf_counter() + duration
        hard_stop = end + FRESH_TIMEOUT_S + 5
        samples: list[bl.Sample] = []
        cases = bl.dashboard_cases(datetime.now(UTC))
        tasks = [
            asyncio.create_task(bl.client(s, base, cases, i, samples, stop, hard_stop))
            for i, s in enumerate(sessions)
        ]
        tasks += [
            asyncio.create_task(bl.ingest(producer, live, args.rate, 0, stop, hard_stop)),
            asyncio.create_task(send_markers(producer, marks, end)),
            asyncio.create_task(watch_markers(watcher, base, marks)),
        ]
        con.print(f"soak: {args.rate:,} events/s, {args.clients} clients, {args.minutes:g} min; "
                  f"a row every {args.report_s:g} s", highlight=False)  # fmt: skip
        rows: list[Row] = []
        totals = Counts()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        started, last = time.perf_counter(), time.perf_counter()
        sent_last, fresh_seen = live.sent, 0
        cpu_last = {k: bl.cpu_s(pid) for k, pid in pids.items()}
        while (now := time.perf_counter()) < end:
            await asyncio.sleep(min(args.report_s, end - now))
            now, batch = time.perf_counter(), samples[:]
            samples.clear()
            lat = [s[2] for s in batch if s[3] == 200]
            e5xx = sum(s[3] >= 500 for s in batch)
            errors = sum(s[3] != 200 for s in batch) - e5xx
            totals.requests += len(batch)
            totals.e5xx += e5xx
            totals.errors += errors
            totals.latencies += lat
            metrics = await scrape(scraper, metrics_url)
            backlog = live.sent + marks.sent - consumed(metrics)
            cpu = {k: bl.cpu_s(pid) for k, pid in pids.items()}
            span = now - last
            rows.append(Row(
                now - started, (live.sent - sent_last) / span, len(batch) / span,
                bl.quantile(lat, 0.99), e5xx, errors,
                {k: rss_mib(pid) for k, pid in pids.items()},
                total(metrics, "insights_consumer_lag_messages"), backlog,
                bl.quantile(marks.ms[fresh_seen:], 0.99),
                {k: 100 * (cpu[k] - cpu_last[k]) / span for k in ("worker", "API")},
            ))  # fmt: skip
            r = rows[-1]
            con.print(f"  {r.at_s:5.0f} s: {r.events_per_s:,.0f} ev/s, {r.requests_per_s:,.0f} "
                      f"req/s (p99 {r.p99_ms:.0f} ms), 5xx {r.e5xx}, errors {r.errors}, RSS worker "
                      f"{r.rss_mib['worker']:.0f} / API {r.rss_mib['API']:.0f} MiB, lag "
                      f"{r.lag_metric:.0f} msgs / backlog {r.backlog:,.0f} events, fresh p99 "
                      f"{r.fresh_p99_ms:.0f} ms", highlight=False)  # fmt: skip
            last, sent_last, fresh_seen, cpu_last = now, live.sent, len(marks.ms), cpu
            if not (worker.is_running() and api.is_running()):
                con.print("[red]a stack process exited[/red]")
                break
        stop.set()
        await asyncio.gather(*tasks)
        tasks = []
        # Let the worker drain what was produced, then read the final counters.
        drained_s, metrics = math.nan, {}
        t1 = time.perf_counter()
        while time.perf_counter() - t1 < 60:
            metrics = await scrape(scraper, metrics_url)
            if consumed(metrics) >= live.sent + marks.sent:
                drained_s = time.perf_counter() - t1
                break
            await asyncio.sleep(0.5)
        tables(rows, con)
        return summarise(args, rows, totals, marks, live, metrics, drained_s, procs, con)
    finally:
        stop.set()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await producer.stop()
        for s in [*sessions, watcher, scraper]:
            await s.close()


def summarise(
    args: argparse.Namespace, rows: list[Row], totals: Counts, marks: Markers, live: bl.Live,
    metrics: dict[str, float], drained_s: float, procs: list[ManagedProcess], con: Console,
) -> dict[str, Any]:  # fmt: skip
    rejected = total(metrics, "insights_events_rejected_total")
    retries = total(metrics, "insights_store_retries_total")
    logged = {p.name: p.log_path.read_bytes().count(LOG_ERROR) for p in procs
              if p.name in ("worker", "api")}  # fmt: skip
    alive = {p.name: p.is_running() for p in procs}
    rss = {k: [r.rss_mib[k] for r in rows] for k in ("worker", "API", "redis", "broker")}
    out: dict[str, Any] = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "events_sent": live.sent,
        "events_per_s": live.sent / (rows[-1].at_s if rows else math.nan),
        "events_applied": total(metrics, "insights_events_total"),
        "requests": totals.requests,
        "requests_per_s": totals.requests / (rows[-1].at_s if rows else math.nan),
        "p50_ms": bl.quantile(totals.latencies, 0.5),
        "p99_ms": bl.quantile(totals.latencies, 0.99),
        "errors": {"5xx": totals.e5xx, "other non-200": totals.errors,
                   "dead-lettered events": rejected, "store retries": retries,
                   "markers missed": marks.missed, "error log lines": logged,
                   "processes not running": [k for k, v in alive.items() if not v]},
        "rss_mib": {k: {"first": v[0], "peak": max(v), "last": v[-1]} for k, v in rss.items() if v},
        "lag": {"metric_max": max((r.lag_metric for r in rows), default=math.nan),
                "backlog_max": max((r.backlog for r in rows), default=math.nan),
                "drained_after_s": drained_s},
        "fresh_ms": {"markers": len(marks.ms), "p50": bl.quantile(marks.ms, 0.5),
                     "p99": bl.quantile(marks.ms, 0.99), "max": max(marks.ms, default=math.nan)},
        "rows": [asdict(r) for r in rows],
    }  # fmt: skip
    e, lag, fresh = out["errors"], out["lag"], out["fresh_ms"]
    drained = (
        f"drained {drained_s:.1f} s after the end"
        if not math.isnan(drained_s)
        else "[red]not drained 60 s after the end[/red]"
    )
    rss_text = "; ".join(
        f"{k} {v['first']:.0f} / {v['peak']:.0f} / {v['last']:.0f}"
        for k, v in out["rss_mib"].items()
    )
    lines = [
        f"events: {live.sent:,} sent ({out['events_per_s']:,.0f}/s), "
        f"{out['events_applied']:,.0f} applied by the worker; requests: {totals.requests:,} "
        f"({out['requests_per_s']:,.0f}/s, p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms)",
        f"errors: 5xx {e['5xx']}, other non-200 {e['other non-200']}, dead-lettered events "
        f"{rejected:.0f}, store retries {retries:.0f}, markers missed {marks.missed}, error log "
        f"lines {logged}, processes not running {e['processes not running'] or 'none'}",
        f"RSS MiB first / peak / last: {rss_text}",
        f"consumer lag: the worker's metric at most {lag['metric_max']:.0f} messages; backlog "
        f"(events sent - consumed) at most {lag['backlog_max']:,.0f} events at a report; "
        f"{drained}",
        f"produce -> visible: {len(marks.ms)} markers, p50 {fresh['p50']:.0f} ms, "
        f"p99 {fresh['p99']:.0f} ms, max {fresh['max']:.0f} ms",
    ]
    con.print("\n".join(lines), highlight=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to soak")
    parser.add_argument("--rate", type=int, default=5000, help="events/s into now")
    parser.add_argument("--clients", type=int, default=50, help="concurrent dashboards")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--history-days", type=int, default=7, help="days of history, ending now")
    parser.add_argument("--report-s", type=float, default=0.0,
                        help="seconds per row (default: 20 rows, at least 10 s each)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args()
    if args.report_s <= 0:
        args.report_s = max(10.0, args.minutes * 60 / 20)
    con = Console() if Console().is_terminal else Console(width=160)
    procs: list[ManagedProcess] = []
    started = time.perf_counter()
    result: dict[str, Any] = {}
    try:
        result = asyncio.run(soak(args, procs, con))
    finally:
        for p in reversed(procs):  # everything this run started, each by its own PID/group
            p.stop()
    result["total_s"] = total_s = time.perf_counter() - started
    con.print(f"done in {total_s:.0f} s; stopped the {len(procs)} processes it started")
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    failed = result.get("errors", {})
    sys.exit(1 if failed.get("5xx") or failed.get("processes not running") else 0)


if __name__ == "__main__":
    main()
