"""``insights`` command line: up (everything), worker, api."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from insights.logging import configure_logging
from insights.settings import Settings


@click.group()
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
def main(log_level: str) -> None:
    """Coder-compatible deployment insights, computed as events stream in."""
    configure_logging(log_level, Settings().log_format)


@main.command()
@click.option("--kafka-port", type=int, default=19092, show_default=True)
@click.option("--redis-port", type=int, default=16379, show_default=True)
@click.option("--api-port", type=int, default=None, help="default: INSIGHTS_API_PORT or 8080")
@click.option("--demo", is_flag=True, help="feed a realistic stream of demo events")
@click.option("--demo-users", type=int, default=40, show_default=True)
# 62 days of history: the 61-day DAU chart is full (what `insights simulate` sends too).
@click.option("--demo-days", type=int, default=62, show_default=True)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".insights-data"),
    show_default=True,
    help="where the embedded Redis keeps its append-only file across restarts",
)
def up(
    kafka_port: int,
    redis_port: int,
    api_port: int | None,
    demo: bool,
    demo_users: int,
    demo_days: int,
    data_dir: Path,
) -> None:
    """Broker + Redis + worker + API (embedded servers unless INSIGHTS_* point elsewhere)."""
    from insights import runtime

    settings = Settings()
    if not settings.redis_url:
        click.echo(f"rollups persist in {data_dir.resolve()}", err=True)
    if api_port is not None:
        settings.api_port = api_port
    token_file = runtime.ensure_token(settings)
    if token_file:
        click.echo(f"API token (deployment scope) written to {token_file}", err=True)
    stack = runtime.start_embedded(settings, kafka_port, redis_port, data_dir.resolve())
    try:
        asyncio.run(
            runtime.run_stack(
                settings,
                stack,
                worker=True,
                api=True,
                demo_users=demo_users if demo else 0,
                demo_days=demo_days,
            )
        )
    finally:
        stack.stop_processes()


@main.command()
def worker() -> None:
    """Run the Faust worker alone (needs INSIGHTS_KAFKA_BOOTSTRAP and INSIGHTS_REDIS_URL)."""
    from insights import runtime

    settings = _external_settings()
    stack = runtime.Stack(settings)
    asyncio.run(
        runtime.run_stack(settings, stack, worker=True, api=False, demo_users=0, demo_days=0)
    )


@main.command()
@click.option("--port", type=int, default=None)
def api(port: int | None) -> None:
    """Run the stateless HTTP API alone (needs INSIGHTS_REDIS_URL)."""
    from insights import runtime

    settings = Settings()
    if not settings.redis_url:
        raise click.UsageError("INSIGHTS_REDIS_URL is required")
    if port is not None:
        settings.api_port = port
    asyncio.run(runtime.run_api_only(settings))


@main.command("worker-alive")
@click.option("--max-age-s", type=float, default=30.0, show_default=True)
def worker_alive(max_age_s: float) -> None:
    """Exit 0 when a worker of this host beat within --max-age-s (container health check)."""
    import socket

    from insights import runtime

    settings = Settings()
    if not settings.redis_url:
        raise click.UsageError("INSIGHTS_REDIS_URL is required")
    alive = asyncio.run(runtime.host_worker_alive(settings, socket.gethostname(), max_age_s))
    sys.exit(0 if alive else 1)


def _external_settings() -> Settings:
    settings = Settings()
    if not settings.kafka_bootstrap or not settings.redis_url:
        raise click.UsageError("INSIGHTS_KAFKA_BOOTSTRAP and INSIGHTS_REDIS_URL are required")
    return settings


@main.command()
@click.option("--yes", is_flag=True, help="do not ask for confirmation (scripts)")
def rebuild(yes: bool) -> None:
    """Rebuild every rollup from the topics into a new generation, then switch to it.

    The API keeps serving the current generation until the rebuild has caught up with
    the live workers; a killed rebuild resumes when run again.  Unset INSIGHTS_KAFKA_BOOTSTRAP
    / INSIGHTS_REDIS_URL mean the embedded stack of `insights up` on its default ports.
    """
    from rich.console import Console

    from insights import maintenance

    settings = maintenance.with_embedded_defaults(Settings())
    console = Console(stderr=True)
    if not yes:
        click.confirm(
            f"Re-read every retained event of {settings.topic_prefix}* on "
            f"{settings.kafka_bootstrap} into a new generation of rollups?",
            abort=True,
        )
    result = maintenance.run_rebuild(settings, console)
    word = "resumed and switched" if result.resumed else "switched"
    console.print(
        f"{word} to generation {result.generation} (was {result.previous}); "
        f"drained {result.messages:,} messages last; deleted {result.deleted_keys:,} old keys"
    )


@main.command()
@click.option(
    "--from-time",
    "from_time",
    required=True,
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    help="RFC 3339 time (UTC when no offset is given)",
)
def replay(from_time: datetime) -> None:
    """Re-apply every event the broker stored at or after --from-time (idempotent: counted
    events do not count twice), into the live rollups."""
    from rich.console import Console

    from insights import maintenance

    if from_time.tzinfo is None:
        from_time = from_time.replace(tzinfo=UTC)
    settings = maintenance.with_embedded_defaults(Settings())
    console = Console(stderr=True)
    result = maintenance.run_replay(settings, int(from_time.timestamp() * 1000), console)
    console.print(
        f"replayed {result.messages:,} messages ({result.events:,} events) "
        f"from {result.partitions} partitions"
    )


@main.command("schema")
@click.argument("topic", required=False)
@click.option(
    "--write",
    "write_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="write <topic>.json into this directory instead of printing (make schemas)",
)
def schema_command(topic: str | None, write_dir: Path | None) -> None:
    """Print the JSON Schema of a TOPIC's messages (sessions, app_usage, latency, builds),
    or of every input topic as one JSON object keyed by topic."""
    from aggregators.model import TOPIC_KINDS
    from streams.decoding import schema

    kinds: tuple[str, ...] = TOPIC_KINDS
    if topic is not None:
        kind = topic.removeprefix(Settings().topic_prefix)
        if kind not in TOPIC_KINDS:
            raise click.BadParameter(
                f"{topic!r} is not an input topic; expected one of {', '.join(TOPIC_KINDS)}",
                param_hint="TOPIC",
            )
        kinds = (kind,)
    if write_dir is not None:
        for path in schema.write_schemas(write_dir, kinds):
            click.echo(f"wrote {path}", err=True)
    elif topic is None:
        click.echo(schema.schema_text(schema.all_schemas()), nl=False)
    else:
        click.echo(schema.schema_text(schema.topic_schema(kinds[0])), nl=False)


@main.command("check")
@click.option(
    "--lag-warn",
    type=int,
    default=10_000,
    show_default=True,
    help="messages of consumer lag per partition that count as a warning",
)
def check_command(lag_warn: int) -> None:
    """Check the pipeline: broker and topics, consumer lag per partition, Redis, workers.

    One line per finding (OK, WARN, FAIL); exits 1 when anything FAILs.  Unset
    INSIGHTS_KAFKA_BOOTSTRAP / INSIGHTS_REDIS_URL mean the embedded stack of `insights up`.
    """
    from insights import check, maintenance

    settings = maintenance.with_embedded_defaults(Settings())
    sys.exit(check.check(settings, click.echo, lag_warn))


@main.command("simulate")
@click.option(
    "--days",
    type=click.IntRange(0, 3650),
    default=62,
    show_default=True,
    help="days of history to send first (62 fills the 61-day DAU chart; 0: none)",
)
@click.option("--users", type=click.IntRange(1, 1_000_000), default=40, show_default=True)
@click.option(
    "--seed",
    type=int,
    default=7,
    show_default=True,
    help="draws the deployment: the same seed sends the same users and events again",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="live events/s; 0 is the deployment's own pace (each open session every 30 s)",
)
@click.option(
    "--live/--no-live",
    default=True,
    show_default=True,
    help="after the history, keep sending events as they happen until Ctrl-C / SIGTERM",
)
def simulate_command(days: int, users: int, seed: int, rate: float, live: bool) -> None:
    """Feed a simulated deployment to the broker: --days of history, then live events.

    Users in eight time zones work business hours on weekdays, join, leave and take
    holidays; their agents report sessions and latency every 30 s, they use template apps
    and build their workspaces most mornings (streams/simulation.py).  Unset
    INSIGHTS_KAFKA_BOOTSTRAP means the embedded broker of `insights up`; topics are
    INSIGHTS_TOPIC_PREFIX + kind, created when missing.
    """
    from aiokafka.errors import KafkaError
    from rich.console import Console

    from insights import maintenance
    from streams import demo

    settings = maintenance.with_embedded_defaults(Settings())
    console = Console(stderr=True)
    try:
        asyncio.run(
            demo.simulate(
                settings, users=users, seed=seed, days=days, rate=rate, live=live, console=console
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)
    except (KafkaError, OSError, ValueError) as exc:
        raise click.ClickException(
            f"cannot simulate into {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}"
        ) from exc


@main.group("coder")
def coder_group() -> None:
    """Work with an existing Coder deployment."""


def _duration_s(value: str) -> float:
    """``1s``, ``500ms``, ``2m`` or a plain number of seconds."""
    text = value.strip().lower()
    for suffix, factor in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)], factor
            break
    else:
        scale = 1.0
    try:
        seconds = float(text) * scale
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (1s, 500ms, 2m)") from None
    if not seconds > 0:
        raise click.BadParameter(f"{value!r}: must be more than 0")
    return seconds


@coder_group.command("import")
@click.option(
    "--postgres-url",
    envvar="INSIGHTS_CODER_POSTGRES_URL",
    required=True,
    help="Coder's database: postgres://user:password@host:5432/coder (or "
    "INSIGHTS_CODER_POSTGRES_URL, which keeps the password out of the process list); a "
    "role with SELECT on the tables read is enough",
)
@click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None,
    help="import nothing older than this RFC 3339 time (UTC when no offset is given)",
)
@click.option("--follow", is_flag=True, help="after the history, keep producing new rows")
@click.option(
    "--poll-interval",
    default="1s",
    show_default=True,
    help="how often --follow looks for new rows (1s, 500ms, 2m)",
)
@click.option(
    "--chunk-rows",
    type=click.IntRange(1, 100_000),
    default=5000,
    show_default=True,
    help="rows per read (keyset page)",
)
@click.option(
    "--reset",
    is_flag=True,
    help="forget the saved positions and import everything (from --since) again",
)
def coder_import(
    postgres_url: str,
    since: datetime | None,
    follow: bool,
    poll_interval: str,
    chunk_rows: int,
    reset: bool,
) -> None:
    """Produce a Coder deployment's history from its PostgreSQL database as events, then
    (--follow) its new rows as Coder writes them.

    Reads Coder's tables only (README: Use with an existing Coder deployment).  Positions
    are kept in Redis, so a run resumes where the last one stopped; rows read again are
    sent with the same ids and change no number.  Unset INSIGHTS_KAFKA_BOOTSTRAP /
    INSIGHTS_REDIS_URL mean the embedded stack of `insights up`.
    """
    import signal

    from rich.console import Console

    from insights import maintenance

    try:
        from streams.coder_import import importer
        from streams.coder_import.schema_check import SchemaError
    except ImportError as exc:  # psycopg is the optional extra "coder"
        raise click.ClickException(
            f"insights coder import needs the 'coder' extra ({exc.name} is missing): "
            "pip install 'coder-insights-streams[coder]'"
        ) from exc
    import psycopg
    from aiokafka.errors import KafkaError
    from redis.exceptions import RedisError

    interval = _duration_s(poll_interval)
    since_us = 0
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        since_us = max(0, int(since.timestamp() * 1_000_000))
    settings = maintenance.with_embedded_defaults(Settings())
    options = importer.ImportOptions(
        postgres_url,
        since_us=since_us,
        follow=follow,
        poll_interval_s=interval,
        chunk_rows=chunk_rows,
        reset=reset,
    )
    console = Console(stderr=True)

    async def run() -> importer.ImportResult:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await importer.run_import(settings, options, stop=stop, console=console)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    try:
        result = asyncio.run(run())
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"Coder's database: {first}") from None
    except (KafkaError, RedisError, OSError) as exc:
        raise click.ClickException(
            f"cannot import into {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}"
        ) from None
    console.print(
        f"imported {result.rows:,} rows as {result.events:,} events in {result.seconds:.1f} s"
    )
