"""SIGTERM stops a worker that is still starting because the broker is unreachable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def test_sigterm_during_startup_with_a_silent_broker_exits_promptly(redis_url: str) -> None:
    # A broker address that accepts connections and never answers: startup waits on it.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    log = Path(tempfile.mkdtemp(prefix="insights-stop-")) / "worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTS_")}
    env |= {
        "INSIGHTS_KAFKA_BOOTSTRAP": f"127.0.0.1:{silent.getsockname()[1]}",
        "INSIGHTS_REDIS_URL": redis_url,
        "INSIGHTS_APP_ID": "insights-e2e-stop-while-starting",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "insights", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        time.sleep(4)  # well into the attempts to reach the broker
        assert proc.poll() is None, log.read_text()
        stopped_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        silent.close()
    exited_s = time.monotonic() - stopped_at
    assert exited_s < 10, log.read_text()
    assert proc.returncode == 0, log.read_text()
    assert "stopped while starting" in log.read_text()
    print(f"\nSIGTERM while starting against a silent broker: exited 0 in {exited_s:.1f} s")
