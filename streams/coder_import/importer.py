"""``insights coder import``: Coder's PostgreSQL history, then its new rows, as events.

A run

1. connects read-only (autocommit: every chunk is its own short snapshot, so the importer
   never holds back Coder's vacuum), checks the schema (``schema_check``) and loads the
   positions from Redis (``positions``);
2. **catches up**: for each table, chunk after chunk from its position (or ``--since``) up
   to the database's clock at the start of the pass, produces the chunk's events with the
   SDK producer (``streams.producer.EventProducer``: validated, batched, keyed), waits for
   the broker's acknowledgement, then saves the position;
3. with ``follow``, **tails**: every ``poll_interval_s``, a pass like the catch-up from each
   position minus its overlap window.  PostgreSQL commits rows out of ``created_at``
   order (Coder stamps a report, then a batcher inserts it), so a row may become visible
   behind the position; the window reads those again.  Rows already sent in this process
   are remembered for the window and skipped; after a restart they are sent again, which
   the ids make harmless.

Without ``follow`` the run ends once a pass up to its start is produced.  SIGINT/SIGTERM
(``stop``) end it after the chunk in flight, its position saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import structlog
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from aggregators.model import TopicKind
from aggregators.store import keys
from insights.kafka_client import kafka_client_kwargs
from insights.redis_client import create_redis
from insights.settings import Settings
from streams.coder_import.mapping import Mapped
from streams.coder_import.positions import Position, PositionStore
from streams.coder_import.readers import (
    DEFAULT_OVERLAP_US,
    READERS,
    TableReader,
    db_now_us,
)
from streams.coder_import.schema_check import check_schema
from streams.kafka_admin import create_topics
from streams.producer import EventProducer, InvalidEvent

__all__ = ["ImportOptions", "ImportResult", "TableCount", "run_import", "source_of"]

log = structlog.get_logger("insights.coder_import")

_STATEMENT_TIMEOUT = "120s"
_RECONNECT_MAX_S = 30.0


@dataclass(frozen=True)
class ImportOptions:
    postgres_url: str
    since_us: int = 0
    follow: bool = False
    poll_interval_s: float = 1.0
    chunk_rows: int = 5000
    reset: bool = False
    overlap_us: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_OVERLAP_US))


@dataclass
class TableCount:
    rows: int = 0
    events: int = 0
    refused: int = 0  # events the contract refuses (logged, never sent)


@dataclass
class ImportResult:
    tables: dict[str, TableCount]
    seconds: float = 0.0
    passes: int = 0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    @property
    def events(self) -> int:
        return sum(t.events for t in self.tables.values())


def source_of(postgres_url: str) -> str:
    """The positions' name of a Coder database: host, port and database, no credentials."""
    info = conninfo_to_dict(postgres_url)
    return keys.coder_import_source_id(
        str(info.get("host") or info.get("hostaddr") or "localhost"),
        str(info.get("port") or "5432"),
        str(info.get("dbname") or info.get("user") or ""),
    )


class _Display:
    """A rich progress bar per table (rows, events, events/s, ETA) on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.started = time.monotonic()

    def start(self, totals: dict[str, int]) -> None:
        self.started = time.monotonic()
        if not self.console.is_terminal:
            return
        self.bar = Progress(
            TextColumn("[bold]{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows {task.fields[events]:>11,} events {task.fields[rate]:>9,.0f} ev/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        for table, total in totals.items():
            self.tasks[table] = self.bar.add_task(table, total=total, events=0, rate=0.0)

    def update(self, table: str, count: TableCount) -> None:
        if self.bar is None or table not in self.tasks:
            return
        rate = count.events / max(time.monotonic() - self.started, 1e-6)
        self.bar.update(self.tasks[table], completed=count.rows, events=count.events, rate=rate)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.bar = None
        self.tasks = {}


class _Run:
    def __init__(
        self,
        settings: Settings,
        options: ImportOptions,
        conn: Any,
        producer: EventProducer,
        store: PositionStore,
        positions: dict[str, Position],
        stop: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.options = options
        self.conn = conn
        self.producer = producer
        self.store = store
        self.positions = positions
        self.stop = stop
        self.seen: dict[str, dict[str, int]] = {r.table: {} for r in READERS}
        self.counts: dict[str, TableCount] = {r.table: TableCount() for r in READERS}
        self.on_chunk: Callable[[str], None] = lambda _table: None

    def _from(self, reader: TableReader) -> Position:
        start = reader.start(self.options.since_us)
        stored = self.positions.get(reader.table)
        if stored is None:
            return start
        overlap = self.options.overlap_us.get(reader.table, 0)
        rewound = Position(stored.time_us - overlap, reader.min_key)
        return rewound if rewound > start else start

    async def table_pass(self, reader: TableReader, until_us: int) -> int:
        """Read ``reader``'s table from its position (less the overlap) up to ``until_us``;
        returns the rows read."""
        table = reader.table
        after = self._from(reader)
        seen = self.seen[table]
        count = self.counts[table]
        overlap = self.options.overlap_us.get(table, 0)
        rows = 0
        while not self.stop.is_set():
            chunk = await reader.chunk(self.conn, after, until_us, self.options.chunk_rows)
            if chunk.last is None:
                break
            fresh = {key for key, _ in chunk.versions if key not in seen}
            events = chunk.events
            if len(fresh) < len(chunk.versions):
                events = [e for e in events if _version_of(table, e) in fresh]
            await self._produce(table, events)
            for key, time_us in chunk.versions:
                seen[key] = time_us
            rows += chunk.rows
            count.rows += len(fresh)
            stored = self.positions.get(table)
            # Only the time of a position is used again (a pass starts at it less the
            # overlap), so it moves on time alone: keys of different tables sort differently.
            if stored is None or chunk.last.time_us > stored.time_us:
                self.positions[table] = chunk.last
                await self.store.save(table, chunk.last)
            horizon = self.positions[table].time_us - overlap
            if len(seen) > 4 * self.options.chunk_rows or chunk.rows < self.options.chunk_rows:
                self.seen[table] = seen = {k: t for k, t in seen.items() if t >= horizon}
            self.on_chunk(table)
            if chunk.rows < self.options.chunk_rows:
                break
            after = chunk.last
        return rows

    async def _produce(self, table: str, events: list[Mapped]) -> None:
        """Send a chunk's events and wait until the broker has every one of them."""
        by_kind: dict[TopicKind, list[dict[str, Any]]] = {}
        for kind, event in events:
            by_kind.setdefault(kind, []).append(event)
        count = self.counts[table]
        for kind, batch in by_kind.items():
            try:
                await self.producer.send_many(kind, batch)
                count.events += len(batch)
            except InvalidEvent as exc:
                # A row the contract cannot take (an event time far in the future, a name
                # too long...) must not hold the rest of its chunk back: send the others.
                bad = {p.index for p in exc.problems}
                first = exc.problems[0]
                log.warning(
                    f"{table}: {len(bad)} {kind} events refused by the contract, not sent "
                    f"(first: {first.event_id}: {first.reason})",
                    table=table,
                    kind=kind,
                    refused=len(bad),
                )
                good = [e for i, e in enumerate(batch) if i not in bad]
                if good:
                    await self.producer.send_many(kind, good)
                count.events += len(good)
                count.refused += len(bad)
        await self.producer.flush()


def _version_of(table: str, mapped: Mapped) -> str:
    """The version key (``readers.Chunk.versions``) an event came from, from its id."""
    event_id: str = mapped[1]["id"]
    rest = event_id.split(":", 2)[2]  # "coder:<table>:<key>[:<part>]"
    key, _, part = rest.partition(":")
    if table == "workspace_app_stats":
        return f"{key}@{part.split('.', 1)[0]}"
    return key


async def _connect(url: str) -> Any:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await conn.set_read_only(True)
    async with conn.cursor() as cur:
        await cur.execute(f"SET statement_timeout = '{_STATEMENT_TIMEOUT}'")
        await cur.execute("SET TIME ZONE 'UTC'")
    return conn


async def run_import(
    settings: Settings,
    options: ImportOptions,
    *,
    stop: asyncio.Event | None = None,
    console: Console | None = None,
) -> ImportResult:
    """The whole run (``follow``: until ``stop`` is set); see the module docstring."""
    stop = stop or asyncio.Event()
    display = _Display(console or Console(stderr=True))
    started = time.monotonic()
    conn = await _connect(options.postgres_url)
    redis = create_redis(settings)
    try:
        await check_schema(conn)
        store = PositionStore(redis, source_of(options.postgres_url), settings.topic_prefix)
        if options.reset:
            await store.clear()
        positions = await store.load()
        await create_topics(
            settings.kafka_bootstrap,
            settings.all_topics,
            settings.topic_partitions,
            security=kafka_client_kwargs(settings),
        )
        producer = EventProducer(
            settings.kafka_bootstrap,
            topic_prefix=settings.topic_prefix,
            linger_s=0.05,
            max_future_s=settings.max_future_s,
            # acks=all is what a real cluster should give a history it cannot re-read; the
            # idempotent producer is not needed (ids make duplicates harmless) and the
            # embedded broker has none.
            acks="all",
            enable_idempotence=False,
            **kafka_client_kwargs(settings),
        )
        async with producer:
            run = _Run(settings, options, conn, producer, store, positions, stop)
            result = ImportResult(run.counts)
            await _catch_up(run, display, result)
            if options.follow and not stop.is_set():
                await _follow(run, result)
        result.seconds = time.monotonic() - started
        return result
    finally:
        display.stop()
        with contextlib.suppress(Exception):
            await conn.close()
        await redis.aclose()


async def _catch_up(run: _Run, display: _Display, result: ImportResult) -> None:
    until = await db_now_us(run.conn)
    totals = {}
    for reader in READERS:
        totals[reader.table] = await reader.count(run.conn, run._from(reader), until)
    display.start(totals)
    run.on_chunk = lambda table: display.update(table, run.counts[table])
    t0 = time.monotonic()
    try:
        for reader in READERS:
            if run.stop.is_set():
                break
            table_t0 = time.monotonic()
            await run.table_pass(reader, until)
            count = run.counts[reader.table]
            seconds = time.monotonic() - table_t0
            log.info(
                f"{reader.table}: {count.rows:,} rows -> {count.events:,} events in "
                f"{seconds:.1f} s ({count.rows / max(seconds, 1e-6):,.0f} rows/s)"
                + (f", {count.refused:,} refused" if count.refused else ""),
                table=reader.table,
                rows=count.rows,
                events=count.events,
                refused=count.refused,
                seconds=round(seconds, 2),
            )
    finally:
        display.stop()
        run.on_chunk = lambda _table: None
    result.passes += 1
    seconds = time.monotonic() - t0
    word = "import stopped" if run.stop.is_set() else "import done"
    log.info(
        f"{word}: {result.rows:,} rows -> {result.events:,} events in {seconds:.1f} s",
        rows=result.rows,
        events=result.events,
        seconds=round(seconds, 2),
    )


async def _follow(run: _Run, result: ImportResult) -> None:
    log.info(
        f"following Coder's tables every {run.options.poll_interval_s:g} s",
        poll_interval_s=run.options.poll_interval_s,
    )
    backoff = 0.5
    while not run.stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.stop.wait(), timeout=run.options.poll_interval_s)
        if run.stop.is_set():
            break
        before = (result.rows, result.events)
        try:
            until = await db_now_us(run.conn)
            for reader in READERS:
                await run.table_pass(reader, until)
            backoff = 0.5
        except psycopg.OperationalError as exc:
            # Coder's database restarted or the network dropped: the positions are safe in
            # Redis; connect again and go on from them.
            log.warning(f"PostgreSQL: {exc}; reconnecting in {backoff:g} s", error=str(exc))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _RECONNECT_MAX_S)
            with contextlib.suppress(Exception):
                await run.conn.close()
            with contextlib.suppress(psycopg.OperationalError):
                run.conn = await _connect(run.options.postgres_url)
            continue
        result.passes += 1
        if (result.rows, result.events) != before:
            log.info(
                f"follow: +{result.rows - before[0]:,} rows -> "
                f"+{result.events - before[1]:,} events",
                rows=result.rows,
                events=result.events,
            )
