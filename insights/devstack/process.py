"""Supervision of the dev stack's child servers: start, stop, logs, ports.

Nothing here knows about Kafka or Redis; :mod:`insights.devstack.servers` builds the command
lines and :mod:`insights.devstack.probes` decides when a server is ready.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

__all__ = [
    "LOCALHOST",
    "EmbeddedStartError",
    "ManagedProcess",
    "free_port",
    "start_with_retries",
]

log = logging.getLogger(__name__)

#: Every dev-stack server binds here only: nothing of it is reachable from another machine.
LOCALHOST: Final = "127.0.0.1"

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_LOG_TAIL_BYTES: Final = 4000
# When a port is picked by free_port() another process can grab it before the child binds it;
# a few fresh attempts make that race harmless.
_PORT_ATTEMPTS: Final = 3


class EmbeddedStartError(RuntimeError):
    """An embedded server did not come up (or an external one was unreachable) in time."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _shutdown(
    popen: subprocess.Popen[bytes],
    log_file: IO[bytes],
    workdir: Path | None,
    timeout_s: float,
) -> None:
    """Stop a child and its process group, then release its log and work dir.

    The group is only signalled while the leader is un-reaped: until ``wait()`` collects it,
    its PID (which is also the group id, thanks to ``start_new_session``) cannot be reused, so
    we can never signal an unrelated process.
    """
    try:
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
    finally:
        log_file.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


class ManagedProcess:
    """A child server process in its own process group, logging to a file in a temp dir.

    Stopped by :meth:`stop`, by leaving a ``with`` block, when garbage-collected, or at
    interpreter exit (whichever comes first), so a crashed test session or CLI does not leak
    servers.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        address: str,
        workdir: Path | None = None,
        remove_workdir: bool | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``argv`` now.

        ``workdir`` (created as a fresh temp dir when omitted) is the child's cwd and holds its
        log; it is deleted on stop when ``remove_workdir`` is true, which defaults to "we
        created it".
        """
        self.name = name
        self.address = address
        self.argv: tuple[str, ...] = tuple(argv)
        created = workdir is None
        self.workdir: Path = (
            workdir if workdir is not None else Path(tempfile.mkdtemp(prefix=f"insights-{name}-"))
        )
        remove = created if remove_workdir is None else remove_workdir
        self.log_path = self.workdir / f"{name}.log"
        log_file = open(self.log_path, "wb")  # noqa: SIM115 - closed by _shutdown
        try:
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=dict(env) if env is not None else None,
                # Own session => own process group, so stop() can signal the server and anything
                # it spawned without touching our group, and a Ctrl-C in the terminal reaches only
                # the CLI, which then stops its children in order. (Were the CLI SIGKILLed, the
                # servers would outlive it: nothing in-process can run then.)
                start_new_session=True,
            )
        except BaseException:
            log_file.close()
            if remove:
                shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        self._finalizer = weakref.finalize(
            self, _shutdown, self._popen, log_file, self.workdir if remove else None, 5.0
        )
        log.debug("started %s pid=%d: %s", name, self._popen.pid, " ".join(self.argv))

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has exited (negative = killed by that signal)."""
        return self._popen.poll()

    def is_running(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self, max_bytes: int = _LOG_TAIL_BYTES) -> str:
        """The end of the process's log, without terminal colour codes (Tansu emits them)."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                data = fh.read()
        except OSError:
            return "<log unavailable>"
        return _ANSI_ESCAPE.sub("", data.decode("utf-8", errors="replace"))

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``; idempotent."""
        registered = self._finalizer.detach()
        if registered is None:
            return  # already stopped (or finalized)
        _obj, _func, (popen, log_file, workdir, _default_timeout), _kwargs = registered
        _shutdown(popen, log_file, workdir, timeout_s)
        log.debug("stopped %s pid=%d rc=%s", self.name, self.pid, popen.returncode)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited rc={self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {self.address} {state}>"


def _ensure_port_free(port: int) -> None:
    """Fail fast if ``port`` is taken, before a readiness probe could reach the other server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Like the servers themselves: a port whose old connections are in TIME_WAIT is usable.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOCALHOST, port))
        except OSError as exc:
            raise EmbeddedStartError(f"port {LOCALHOST}:{port} is not available: {exc}") from exc


def start_with_retries(
    port: int | None,
    launch: Callable[[int], ManagedProcess],
    wait: Callable[[ManagedProcess], None],
) -> ManagedProcess:
    """``launch`` a server on ``port`` (a free one when None) and ``wait`` until it is ready.

    ``wait`` raises :class:`EmbeddedStartError` when the server is not ready; the process is then
    stopped, and relaunched on a fresh port if it died on an auto-picked one. Any failure stops
    the process, so a caller never holds a half-started server.
    """
    if port is not None:
        _ensure_port_free(port)
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(1, attempts + 1):
        proc = launch(port if port is not None else free_port())
        try:
            wait(proc)
        except EmbeddedStartError:
            died = not proc.is_running()
            proc.stop()
            # A server that exited at once on an auto-picked port most likely lost the
            # free_port() race; a fresh port is worth another try. Anything else is final.
            if died and attempt < attempts:
                log.warning("%s exited during start-up; retrying on another port", proc.name)
                continue
            raise
        except BaseException:
            proc.stop()
            raise
        return proc
    raise AssertionError("unreachable")
