"""``insights up --demo``: the one-command embedded stack, from start to a clean SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from insights import devstack


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, {}


def _listening(port: int) -> bool:
    try:
        devstack.wait_for_redis(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
    except Exception:
        return False
    return True


def test_up_runs_everything_and_stops_within_ten_seconds() -> None:
    ports = {name: devstack.free_port() for name in ("kafka", "redis", "api")}
    workdir = Path(tempfile.mkdtemp(prefix="insights-up-"))
    log = workdir / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSIGHTS_")}
    args = [sys.executable, "-m", "insights", "up", "--demo", "--demo-users", "6",
            "--demo-days", "1", "--kafka-port", str(ports["kafka"]),
            "--redis-port", str(ports["redis"]), "--api-port", str(ports["api"]),
            "--data-dir", str(workdir / "data")]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{ports['api']}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                if _get(base + "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.25)
        else:
            raise AssertionError("not ready:\n" + log.read_text())
        token_file = re.search(r"written to (\S+)", log.read_text())
        assert token_file, log.read_text()
        token = Path(token_file[1]).read_text().strip()
        assert token not in log.read_text()  # tokens are never logged

        deadline = time.monotonic() + 30
        amounts: list[int] = []
        while time.monotonic() < deadline and not any(amounts):
            status, body = _get(base + "/api/v2/insights/daus?tz_offset=0", token)
            assert status == 200
            amounts = [e["amount"] for e in body["entries"]][-3:]  # type: ignore[index]
            time.sleep(0.5)
        assert any(amounts), "demo data never showed up"
    finally:
        stopped_at = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert time.monotonic() - stopped_at < 10
    assert proc.returncode == 0, log.read_text()
    assert not _listening(ports["redis"])  # the embedded servers went with it
    assert (workdir / "data" / "appendonlydir").is_dir()  # the rollups stay for the next start
    assert "rollups persist in" in log.read_text()
