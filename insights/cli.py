"""``insights`` command line: up (everything), worker, api."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click
import structlog

from insights.settings import Settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    # Faust and aiokafka are chatty at INFO; keep their warnings.
    for name in ("faust", "mode", "aiokafka"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


@click.group()
@click.option("--log-level", default="info", show_default=True)
def main(log_level: str) -> None:
    """Coder-compatible deployment insights, computed as events stream in."""
    _configure_logging(log_level)


@main.command()
@click.option("--kafka-port", type=int, default=19092, show_default=True)
@click.option("--redis-port", type=int, default=16379, show_default=True)
@click.option("--api-port", type=int, default=None, help="default: INSIGHTS_API_PORT or 8080")
@click.option("--demo", is_flag=True, help="feed a realistic stream of demo events")
@click.option("--demo-users", type=int, default=40, show_default=True)
@click.option("--demo-days", type=int, default=14, show_default=True)
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
