"""``insights check`` against a running stack: one line per finding, exit 1 on a problem."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from insights import devstack
from tests.e2e.stack import Stack
from tests.golden_fixture import all_events


def _env(stack: Stack, **overrides: str) -> dict[str, str]:
    name = stack.prefix[3:-1]  # tests.e2e.stack: prefix e2e<name>., app id insights-e2e-<name>
    return {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": stack.bootstrap,
        "INSIGHTS_REDIS_URL": stack.redis_url,
        "INSIGHTS_TOPIC_PREFIX": stack.prefix,
        "INSIGHTS_APP_ID": f"insights-e2e-{name}",
        **overrides,
    }


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "insights", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_healthy_stack_checks_ok(stack: Stack) -> None:
    for kind, batch in all_events().items():
        stack.produce_events(kind, batch)
    deadline = time.monotonic() + 30
    while True:  # until the workers committed what they consumed
        done = _check(_env(stack))
        lines = done.stdout.splitlines()
        if any(line.startswith("OK    lag ") for line in lines) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(line.split()[0] in ("OK", "WARN") for line in lines), lines
    assert f"OK    topic {stack.prefix}sessions: 3 partitions" in lines
    assert any(line.startswith("OK    lag ") for line in lines)
    assert any(line.startswith("OK    worker ") for line in lines)
    assert "OK    rollups: generation 0 is live" in lines


def test_an_unreachable_redis_fails_with_one_line_and_no_address(stack: Stack) -> None:
    port = devstack.free_port()
    done = _check(_env(stack, INSIGHTS_REDIS_URL=f"redis://:s3cret@127.0.0.1:{port}/0"))
    assert done.returncode == 1
    assert "FAIL  redis: unreachable (ConnectionError)" in done.stdout.splitlines()
    assert "s3cret" not in done.stdout + done.stderr
    assert any(line.startswith("OK    broker") for line in done.stdout.splitlines())
