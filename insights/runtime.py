"""Composition root: wire settings, embedded servers, worker, API and demo together."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from aggregators.store import RollupStore
from aggregators.store.generations import LayoutMismatch
from aggregators.timebase import MS_PER_S, NS_PER_MS
from api.app import create_app, create_metrics_app
from api.server import ApiRunner
from insights import devstack
from insights.kafka_client import kafka_client_kwargs
from insights.redis_client import RedisClient, create_redis, redact_url
from insights.settings import Settings
from streams.kafka_admin import cluster_id, create_topics

log = structlog.get_logger("insights")
STOP_BUDGET_S = 8.0


@dataclass
class Stack:
    settings: Settings
    processes: list[devstack.ManagedProcess] = field(default_factory=list)
    embedded_broker: bool = False

    def stop_processes(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()


def start_embedded(
    settings: Settings,
    kafka_port: int | None,
    redis_port: int | None,
    data_dir: Path | None = None,
) -> Stack:
    """Start the broker and Redis unless the settings point at existing ones; Redis keeps
    its data in ``data_dir`` (append-only file) when given."""
    stack = Stack(settings)
    try:
        if not settings.kafka_bootstrap:
            broker = devstack.start_broker(kafka_port)
            stack.processes.append(broker)
            settings.kafka_bootstrap = broker.address
            stack.embedded_broker = True
            log.info(
                "embedded Kafka broker (Tansu) listening", bootstrap=broker.address, pid=broker.pid
            )
        if not settings.redis_url:
            redis = devstack.start_redis(redis_port, data_dir=data_dir)
            stack.processes.append(redis)
            settings.redis_url = redis.address
            log.info(
                "embedded Redis-protocol server listening",
                url=redact_url(redis.address),
                pid=redis.pid,
                data_dir=str(data_dir) if data_dir else "none (not persisted)",
            )
    except BaseException:
        stack.stop_processes()
        raise
    return stack


def ensure_token(settings: Settings) -> Path | None:
    """With no token configured, mint a deployment token into a 0600 file (never logged)."""
    if settings.api_tokens or settings.api_token_file:
        return None
    path = Path(tempfile.mkdtemp(prefix="insights-")) / "token"
    path.write_text(secrets.token_urlsafe(24) + "\n")
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    settings.api_token_file = str(path)
    return path


async def serve_api(settings: Settings) -> web.AppRunner:
    runner = ApiRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    log.info(
        "insights API listening",
        url=f"http://{settings.api_host}:{settings.api_port}",
        readiness_broker=settings.kafka_bootstrap or "not checked (no INSIGHTS_KAFKA_BOOTSTRAP)",
    )
    return runner


async def serve_worker_metrics(settings: Settings) -> web.AppRunner:
    """A worker's ``GET /metrics`` (``INSIGHTS_WORKER_METRICS_HOST``/``_PORT``)."""
    runner = ApiRunner(create_metrics_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.worker_metrics_host, settings.worker_metrics_port)
    await site.start()
    host, port = runner.addresses[0][:2]
    log.info("worker metrics listening", url=f"http://{host}:{port}/metrics")
    return runner


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


class _Startup:
    """Cancels the starting task on SIGINT/SIGTERM: starting may wait on an unreachable
    broker for good, and a stop request must not wait for it."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)

    def _on_signal(self) -> None:
        self.stop.set()
        if self._task is not None:
            self._task.cancel()

    def done(self) -> None:
        """Started: from now on a signal only sets ``stop``."""
        self._task = None

    def interrupted(self) -> bool:
        """After a CancelledError while starting: was it our stop request?"""
        task = asyncio.current_task()
        if not self.stop.is_set() or task is None:
            return False
        task.uncancel()  # consumed here, so the cleanup that follows is not cancelled too
        return True


async def _is_embedded_broker(settings: Settings) -> bool:
    """A broker another ``insights up`` (or the test suite) started: its group timing and
    fetch wait differ (``Settings.group_timing``, ``streams.faust_transport``)."""
    try:
        found = await cluster_id(settings.kafka_bootstrap, kafka_client_kwargs(settings))
    except Exception as exc:  # the worker's own start reports an unreachable broker
        log.debug("broker cluster id unknown", error=str(exc))
        return False
    return found == devstack.EMBEDDED_CLUSTER_ID


async def _claim_layout(settings: Settings, redis: RedisClient) -> None:
    """Refuse to start a worker whose buckets per day differ from the live generation's:
    its writes would land where readers do not look (only a rebuild changes the layout)."""
    store = RollupStore(redis, day_buckets=settings.day_buckets)
    try:
        await store.generations.claim(strict=True)
    except LayoutMismatch as exc:
        raise SystemExit(f"insights worker: {exc}") from None


async def run_stack(
    settings: Settings, stack: Stack, *, worker: bool, api: bool, demo_users: int, demo_days: int
) -> None:
    """Run until SIGINT/SIGTERM, then stop what was started within the stop budget."""
    from streams.worker import InsightsWorker  # faust is heavy: only the worker imports it

    stop = asyncio.Event()
    startup = _Startup(stop)
    redis = create_redis(settings)
    tasks: list[asyncio.Task[None]] = []
    insights_worker = None
    runner = None
    metrics_runner = None
    try:
        try:
            await create_topics(
                settings.kafka_bootstrap,
                settings.all_topics,
                settings.topic_partitions,
                security=kafka_client_kwargs(settings),
            )
            if worker:
                await _claim_layout(settings, redis)
                embedded = stack.embedded_broker or await _is_embedded_broker(settings)
                insights_worker = InsightsWorker(settings, redis, embedded_broker=embedded)
                await insights_worker.start()
                session_s, heartbeat_s = settings.group_timing(embedded)
                log.info(
                    "worker consuming",
                    topics=settings.all_topics[:-1],
                    pid=os.getpid(),
                    group_session_s=session_s,
                    group_heartbeat_s=heartbeat_s,
                )
                if settings.worker_metrics_port is not None:
                    metrics_runner = await serve_worker_metrics(settings)
            if api:
                runner = await serve_api(settings)
            if demo_users:
                from streams.demo import DemoProducer

                producer = DemoProducer(settings, users=demo_users)
                tasks.append(asyncio.create_task(producer.run(demo_days, stop)))
                log.info("demo producer started", users=demo_users, backfill_days=demo_days)
            startup.done()
        except asyncio.CancelledError:
            if not startup.interrupted():
                raise
            log.info("stopped while starting")
        else:
            await stop.wait()
            log.info("stopping")
    finally:
        stop.set()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            async with asyncio.timeout(STOP_BUDGET_S):
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if runner is not None:
                    await runner.cleanup()
                if metrics_runner is not None:
                    await metrics_runner.cleanup()
                if insights_worker is not None:
                    await insights_worker.stop()
        await redis.aclose()


async def run_api_only(settings: Settings) -> None:
    stop = _stop_event()
    runner = await serve_api(settings)
    try:
        await stop.wait()
    finally:
        async with asyncio.timeout(STOP_BUDGET_S):
            await runner.cleanup()


async def host_worker_alive(settings: Settings, host: str, max_age_s: float) -> bool:
    """Whether a worker on ``host`` wrote a heartbeat within ``max_age_s`` (health checks)."""
    redis = create_redis(settings, socket_timeout=3, socket_connect_timeout=3)
    try:
        beats = await RollupStore(redis).heartbeats.read()
    finally:
        await redis.aclose()
    now_ms = time.time_ns() // NS_PER_MS
    max_age_ms = int(max_age_s * MS_PER_S)
    return any(b.worker_id.startswith(host + ":") and b.fresh(now_ms, max_age_ms) for b in beats)
