"""A throw-away PostgreSQL 16 (the ``pgserver`` wheel's binaries) on 127.0.0.1 for the tests.

Started once per test session by ``conftest.py`` and stopped by PID at its end; each test
module gets a database of its own with Coder's tables (``coder_database``).  PostgreSQL
refuses to run as root, so under root the cluster runs as ``nobody``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from insights.devstack import free_port
from streams.coder_import.coder_schema import CONSTRAINTS, TABLES, TYPES

SUPERUSER = "postgres"
SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "jit": "off"}


def pg_bindir() -> Path | None:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if (path / "initdb").is_file() else None


@dataclass
class PgServer:
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path

    def url(self, dbname: str, user: str = SUPERUSER, password: str = "") -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{dbname}"

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "postgres.log").read_text(errors="replace")[-3000:]
        return ""


@contextmanager
def running_postgres(bindir: Path) -> Iterator[PgServer]:
    workdir = Path(tempfile.mkdtemp(prefix="insights-coder-import-pg-"))
    data = workdir / "data"
    data.mkdir()
    as_user: str | None = None
    if os.geteuid() == 0:
        as_user = "nobody"
        account = pwd.getpwnam(as_user)
        for path in (workdir, data):
            os.chown(path, account.pw_uid, account.pw_gid)
        workdir.chmod(0o755)
    proc: subprocess.Popen[bytes] | None = None
    pwfile = workdir / "pwfile"
    pwfile.write_text("postgres\n")
    if as_user is not None:
        os.chown(pwfile, account.pw_uid, account.pw_gid)
    try:
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "-A",
                "md5",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            cwd=workdir,
            user=as_user,
            timeout=120,
            check=True,
        )
        port = free_port()
        argv = [str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
        argv += ["-k", ""]
        for key, value in SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        with open(workdir / "postgres.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                user=as_user,
                start_new_session=True,
            )
        server = PgServer(port, proc, workdir)
        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(
                    server.url("postgres", password="postgres"), connect_timeout=2
                ).close()
                break
            except psycopg.OperationalError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"postgres did not start:\n{server.log_tail()}") from None
                time.sleep(0.1)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def create_coder_database(server: PgServer, name: str) -> str:
    """A fresh database ``name`` with Coder's types and tables (no keys yet: load first,
    then ``add_constraints``); returns the superuser's URL of it."""
    with psycopg.connect(server.url("postgres", password="postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    url = server.url(name, password="postgres")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TYPES)
        conn.execute(TABLES)
    return url


def add_constraints(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(CONSTRAINTS)
        conn.execute("ANALYZE")
