"""docs/dashboard.png and docs/dashboard-dark.png: the dashboard over a simulated
deployment, as a browser shows it in either theme.

Starts the embedded broker and Redis and a worker and an API (as tests/e2e/stack.py does),
sends ``--days`` of a ``--users`` deployment with ``insights simulate --no-live``
(streams/simulation.py: users in eight time zones, business hours, apps, builds), waits
until the worker has folded it all, then opens the page the API serves in Debian's chromium
(Playwright, as tests/e2e/test_dashboard.py) in ``--zone``, signs in, waits for every panel
and for the live stream, and saves a full-page screenshot ``--width`` pixels wide per theme.
Console errors or warnings (a Content-Security-Policy violation among them) fail the run
after the screenshots are saved. Everything started is stopped at the end. About two minutes
on two cores; needs /usr/bin/chromium (``make chromium``).

    .venv/bin/python bench/screenshot_dashboard.py
    .venv/bin/python bench/screenshot_dashboard.py --theme dark --dark-out /tmp/dark.png
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the page helpers live with the browser test

from playwright.sync_api import sync_playwright  # noqa: E402

from insights import devstack  # noqa: E402
from tests.e2e.dashboard_support import CHROMIUM, LAUNCH_ARGS, ConsoleLog, page_url  # noqa: E402
from tests.e2e.stack import TOKEN, Stack, running_stack  # noqa: E402

SETTLE_S = 3.0  # totals unchanged this long: the worker has caught up


def simulate(stack: Stack, days: int, users: int, seed: int) -> None:
    env = {
        **os.environ,
        "INSIGHTS_KAFKA_BOOTSTRAP": stack.bootstrap,
        "INSIGHTS_TOPIC_PREFIX": stack.prefix,
        "INSIGHTS_TOPIC_PARTITIONS": "3",
        "INSIGHTS_LOG_FORMAT": "json",
    }
    args = ["simulate", "--days", str(days), "--users", str(users), "--seed", str(seed)]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "insights", *args, "--no-live"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"insights simulate failed:\n{done.stderr[-3000:]}")
    print(f"simulated {days} days of {users} users in {time.monotonic() - started:.0f} s")


def wait_settled(stack: Stack, timeout_s: float = 600.0) -> None:
    """Until the daily active users stop changing (every event folded in)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        status, body, _ = stack.get("/api/v2/insights/daus?tz_offset=0")
        now = time.monotonic()
        if status != 200 or body != last:
            last, since = body, now
        elif now - since >= SETTLE_S:
            return
        time.sleep(0.5)
    raise SystemExit("the worker did not catch up in time:\n" + stack.log_tail())


def screenshot(site: str, out: Path, zone: str, theme: str, width: int) -> list[str]:
    """Saves the page in ``theme``; the console's errors and warnings."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": width, "height": 900},
                timezone_id=zone,
                locale="en-US",
                color_scheme="dark" if theme == "dark" else "light",
            )
            page = context.new_page()
            console = ConsoleLog()
            console.attach(page)
            page.goto(site)
            page.get_by_label("API token").fill(TOKEN)
            page.get_by_role("button", name="Sign in").click()
            for panel in ("daus", "active", "latency", "apps", "activity", "params"):
                page.wait_for_selector(f"#panel-{panel}.loaded", timeout=60_000)
            page.wait_for_selector("#live-state[data-state='live']", timeout=30_000)
            page.wait_for_timeout(1500)  # charts finish drawing, "Updated" ticks once
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            return console.problems
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--days", type=int, default=62, help="days of history (62: full DAUs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--zone", default="Europe/Berlin", help="the browser's IANA time zone")
    parser.add_argument("--theme", choices=("both", "light", "dark"), default="both")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "dashboard.png")
    parser.add_argument("--dark-out", type=Path, default=REPO_ROOT / "docs" / "dashboard-dark.png")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: `make chromium` installs it")
    with (
        devstack.start_broker() as broker,
        devstack.start_redis() as redis,
        running_stack(broker.address, redis.address, 0) as stack,
    ):
        simulate(stack, args.days, args.users, args.seed)
        wait_settled(stack)
        problems: list[str] = []
        for theme, out in (("light", args.out), ("dark", args.dark_out)):
            if args.theme in ("both", theme):
                found = screenshot(page_url(stack.base_url), out, args.zone, theme, args.width)
                problems += [f"{theme}: {p}" for p in found]
                print(f"wrote {out}")
    if problems:
        raise SystemExit("console:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
