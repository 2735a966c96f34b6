"""The dashboard page in Chromium against a real deployment: sign-in, the numbers of every
panel, filters, themes, the live stream, and a console without errors or warnings.

Chromium is Debian's (``install_chromium.sh``, which ``make test`` runs first); Playwright
drives it and never downloads a browser. When it is missing and cannot be installed the
tests fail and say why, unless ``INSIGHTS_TEST_NO_APT=1`` asks to skip them.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from aggregators.model import BuildParameter, ParameterOption
from streams.workloads import (
    AgentRef,
    App,
    app_usage_event,
    build_event,
    epoch_us,
    latency_event,
    session_event,
)
from tests.e2e.dashboard_support import (
    CHROMIUM,
    INSTALLER,
    LAUNCH_ARGS,
    NO_APT_ENV,
    ConsoleLog,
    page_url,
)
from tests.e2e.stack import TOKEN, Stack

ZONE = "America/Sao_Paulo"  # whole-hour offset, no DST: the browser's days are easy to predict
TA = "40000000-0000-4000-8000-00000000000a"
TB = "40000000-0000-4000-8000-00000000000b"
TC = "40000000-0000-4000-8000-00000000000c"  # named by no event: the page shows its id
ORG = "acme"
NAMES = {TA: "docker-dev", TB: "kubernetes"}
USERS = [f"40000000-0000-4000-8000-0000000001{i:02d}" for i in range(5)]
# (user, template, minutes of SSH today): the leaderboard's order and seconds
FIRST = [(0, TA, 3), (1, TA, 2), (2, TB, 1)]
LATER = [(3, TA, 1), (4, TC, 1)]
APP_SESSION = "40000000-0000-4000-8000-0000000002aa"
LIVE_WITHIN_MS = 2000
LOAD_MS = 15000  # the first answers, while the worker still catches up
NO_VALUE = "\N{EN DASH}"  # what the page shows where there is no number
_UPDATED = re.compile(r"^Updated \d+ s ago$")
LIVE_PATH = "/api/v2/insights/live"
NAMES_PATH = "/api/v2/insights/template-names"


def find_chromium(binary: Path = CHROMIUM, installer: Path = INSTALLER) -> str:
    """``binary``, installed by ``installer`` when missing; the tests fail with the reason
    when that is impossible, and are skipped only when NO_APT_ENV asks for it."""
    if binary.exists():
        return str(binary)
    if os.environ.get(NO_APT_ENV) == "1":
        pytest.skip(f"{NO_APT_ENV}=1 and Debian's chromium is not installed")
    done = subprocess.run(["sh", str(installer)], capture_output=True, text=True, check=False)
    if done.returncode != 0 or not binary.exists():
        pytest.fail(
            f"the dashboard test needs Debian's chromium at {binary}, and installing it"
            f" failed:\n{done.stderr.strip()}\nInstall it (apt-get install -y chromium"
            f" chromium-driver) or set {NO_APT_ENV}=1 to skip this test.",
            pytrace=False,
        )
    return str(binary)


def test_a_missing_browser_fails_loudly_unless_apt_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "chromium"
    broken = tmp_path / "install.sh"
    broken.write_text("echo 'apt-get: no package lists' >&2; exit 1\n")
    monkeypatch.delenv(NO_APT_ENV, raising=False)
    with pytest.raises(pytest.fail.Exception, match="no package lists") as failed:
        find_chromium(missing, broken)
    assert f"{NO_APT_ENV}=1" in str(failed.value)
    monkeypatch.setenv(NO_APT_ENV, "1")
    with pytest.raises(pytest.skip.Exception):
        find_chromium(missing, broken)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def site(stack: Stack) -> str:
    return page_url(stack.base_url)


def _agent(user: int, template: str) -> AgentRef:
    uid = USERS[user]
    return AgentRef(uid, f"dev-{user}", template, f"{uid[:-3]}{template[-1]}0{user}", uid)


def _named(event: dict[str, Any], template: str) -> dict[str, Any]:
    """The names a control plane would add, where the template has one."""
    if template in NAMES:
        event |= {"template_name": NAMES[template], "organization_name": ORG}
    return event


def _a_minute_ago() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


def _today_events(
    who: list[tuple[int, str, int]], tag: str, end: datetime
) -> dict[str, list[dict[str, Any]]]:
    """SSH minutes up to ``end`` (today in ZONE: see ``_not_just_after_midnight``)."""
    sessions = [
        _named(
            session_event(
                _agent(u, t), f"{tag}-{u}-{m}", epoch_us(end - timedelta(minutes=m)), ["ssh"]
            ),
            t,
        )
        for u, t, minutes in who
        for m in range(minutes)
    ]
    latency = [
        _named(
            latency_event(
                _agent(u, t), f"{tag}-lat-{u}-{i}", epoch_us(end - timedelta(seconds=i)), ms
            ),
            t,
        )
        for u, t, _ in who[:2]
        for i, ms in enumerate((20.0 + 10 * u, 25.0 + 10 * u, 90.0 + 10 * u))
    ]
    return {"sessions": sessions, "latency": latency}


def _not_just_after_midnight() -> None:
    """The events go up to three minutes back: keep them on the browser's today."""
    local = datetime.now(ZoneInfo(ZONE))
    since_midnight = local - local.replace(hour=0, minute=0, second=0, microsecond=0)
    if since_midnight < timedelta(minutes=5):
        time.sleep((timedelta(minutes=5) - since_midnight).total_seconds())


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    _not_just_after_midnight()
    end = _a_minute_ago()
    events = _today_events(FIRST, "dash", end)
    end_us = epoch_us(end)
    code = App("code-server", "/icon/code.svg")
    events["app_usage"] = [
        _named(app_usage_event(
            _agent(0, TA), "dash-app", APP_SESSION, end_us - 120_000_000, end_us,
            slug_or_port="code-server", app=code,
        ), TA)
    ]  # fmt: skip
    region = BuildParameter(
        "region", "string", "Region", "Where the workspace runs",
        (ParameterOption("Europe", "", "eu", "/emojis/1f1ea-1f1fa.png"),
         ParameterOption("US", "", "us", "")),
        "eu",
    )  # fmt: skip
    events["builds"] = [_named(build_event(_agent(0, TA), "dash-build", end_us, 1, [region]), TA)]
    _produce(stack, events)
    stack.wait_for(
        "/api/v2/insights/user-activity?" + _utc_window(),
        lambda b: len(b["report"]["users"]) == len(FIRST),
    )
    stack.wait_for(
        "/api/v2/insights/templates?" + _utc_window(),
        lambda b: (
            b["report"]["parameters_usage"]
            and any(a["slug"] == "code-server" for a in b["report"]["apps_usage"])
        ),
    )
    stack.wait_for(NAMES_PATH, lambda b: {t["name"] for t in b["templates"]} == set(NAMES.values()))
    return stack


def _produce(stack: Stack, events: dict[str, list[dict[str, Any]]]) -> None:
    """From another thread: Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        for kind, batch in events.items():
            pool.submit(stack.produce_events, kind, batch).result(timeout=60)


def _utc_window() -> str:
    now = datetime.now(UTC)
    start = (now - timedelta(days=2)).strftime("%Y-%m-%dT00:00:00Z")
    end = (now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return f"start_time={start}&end_time={end}"


def _context(browser: Browser, zone: str = ZONE, **kwargs: Any) -> BrowserContext:
    return browser.new_context(
        timezone_id=zone, locale="en-US", viewport={"width": 1280, "height": 900}, **kwargs
    )


def _sign_in(page: Page, site: str, token: str = TOKEN) -> dict[str, str]:
    """Signs in; the page's response headers."""
    response = page.goto(site)
    assert response is not None and response.ok
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    return response.headers


def _insights_requests(page: Page) -> list[str]:
    urls: list[str] = []
    page.on(
        "request",
        lambda r: urls.append(r.url) if "/api/v2/insights/" in r.url else None,
    )
    return urls


def _activity_seconds(page: Page) -> list[int]:
    rows = page.locator("#activity-table tbody tr")
    return [int(s) for s in rows.evaluate_all("rows => rows.map(r => r.dataset.seconds)")]


def test_numbers_filters_and_themes(browser: Browser, site: str, seeded: Stack) -> None:
    context = _context(browser)
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    requests = _insights_requests(page)
    try:
        headers = _sign_in(page, site)
        # the server's policy is in force: whatever it blocked would be on the console
        assert "default-src 'self'" in headers["content-security-policy"]
        expect(page.get_by_test_id("daus-today")).to_have_text("3", timeout=LOAD_MS)
        expect(page.get_by_test_id("active-users")).to_have_text("3", timeout=LOAD_MS)
        expect(page.locator("#activity-table tbody tr")).to_have_count(3, timeout=LOAD_MS)
        assert _activity_seconds(page) == [180, 120, 60]
        expect(page.get_by_test_id("activity-total")).to_have_text("6 min")
        expect(page.locator("#apps-list li[data-slug='code-server']")).to_contain_text("2 min")
        expect(page.locator("#apps-list li[data-slug='ssh']")).to_contain_text("6 min")
        expect(page.locator("#latency-table tbody tr")).to_have_count(3)
        slowest = page.locator("#latency-table tbody tr").first
        expect(slowest).to_contain_text("dev-1")
        expect(slowest.locator("td").nth(3)).not_to_have_text(NO_VALUE)  # p99
        no_samples = page.locator("#latency-table tbody tr[data-user='dev-2'] td")
        expect(no_samples.nth(1)).to_have_text(NO_VALUE)
        expect(page.locator(".param[data-name='region']")).to_contain_text("Europe")
        expect(page.locator(".param[data-name='region'] p")).to_have_text(
            "Where the workspace runs · Template: docker-dev"
        )
        expect(page.get_by_test_id("updated")).to_have_text(_UPDATED)
        expect(page.get_by_role("main")).to_have_id("reports")  # the only one shown
        # Coder's icon paths are not served: letter badges, never broken images
        expect(page.locator("#panel-apps img")).to_have_count(0)
        expect(page.locator(".panel-error:not(:empty)")).to_have_count(0)

        templates = page.get_by_label("Template")
        expect(templates.locator("option")).to_have_text(["All templates", *sorted(NAMES.values())])
        templates.select_option(label=NAMES[TB])
        expect(templates).to_have_value(TB)
        expect(page.get_by_test_id("active-users")).to_have_text("1")
        expect(page.locator("#activity-table tbody tr")).to_have_count(1)
        assert _activity_seconds(page) == [60]

        page.get_by_label("Date range").select_option("4w")
        expect(page.locator("#active-table tbody tr")).to_have_count(28)
        page.get_by_label("Interval").select_option("week")
        expect(page.locator("#active-table tbody tr")).to_have_count(4)
        page.get_by_label("Date range").select_option("custom")
        page.get_by_label("Interval").select_option("day")
        today = datetime.now(ZoneInfo(ZONE)).date()
        page.get_by_label("From", exact=True).fill((today - timedelta(days=2)).isoformat())
        page.get_by_label("To", exact=True).fill(today.isoformat())
        expect(page.locator("#active-table tbody tr")).to_have_count(3)
        expect(page.get_by_test_id("active-users")).to_have_text("1")
        page.get_by_label("Template").select_option("")
        expect(page.get_by_test_id("active-users")).to_have_text("3")

        toggle = page.get_by_role("button", name="Dark theme")
        expect(toggle).to_have_attribute("aria-pressed", "false")
        toggle.click()
        expect(toggle).to_have_attribute("aria-pressed", "true")
        background = "getComputedStyle(document.documentElement).backgroundColor"
        assert page.evaluate(background) == "rgb(13, 17, 23)"
        expect(page.locator("#daus-chart canvas")).to_have_count(1)

        expect(page.locator(".panel-error:not(:empty)")).to_have_count(0)
        _assert_requests_in_zone(requests)
        assert console.problems == []
        # What the page looked like, for the CI log; docs/dashboard.png is the simulator's
        # month (bench/screenshot_dashboard.py), not this test's three users.
        shot = _artifacts() / "dashboard-test.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"\ndashboard screenshot: {shot}")
    finally:
        context.close()


def _artifacts() -> Path:
    """``INSIGHTS_TEST_ARTIFACTS`` (CI can keep it), else a directory under the temp dir."""
    base = Path(os.environ.get("INSIGHTS_TEST_ARTIFACTS") or tempfile.gettempdir())
    path = base / "insights-test-artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _assert_requests_in_zone(urls: list[str]) -> None:
    """``tz`` on every report request; the windows in the zone's offset, by Coder's rules.
    The names take no parameters (and refuse any)."""
    reports = [u for u in urls if LIVE_PATH not in u and NAMES_PATH not in u]
    assert reports
    names = [u for u in urls if NAMES_PATH in u]
    assert names and all(not urlsplit(u).query for u in names), names
    for url in reports:
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
        assert query.get("tz") == [ZONE], url
        if "/daus" in url:
            assert "tz_offset" not in query, url
            continue
        start, end = query["start_time"][0], query["end_time"][0]
        assert start.endswith("T00:00:00-03:00"), url
        assert end.endswith(":00:00-03:00"), url


def test_a_wrong_token_shows_the_form_with_the_server_message(
    browser: Browser, site: str, seeded: Stack
) -> None:
    context = _context(browser, color_scheme="dark")
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    try:
        page.goto(site)
        expect(page.get_by_role("button", name="Dark theme")).to_have_attribute(
            "aria-pressed", "true"
        )  # the system's dark preference, untouched
        _sign_in(page, site, "not-a-token")
        expect(page.get_by_test_id("login-error")).to_have_text(
            "You must be logged in to access this resource."
        )
        expect(page.get_by_label("API token")).to_be_focused()
        expect(page.get_by_role("main")).to_have_accessible_name("Sign in")  # the only one
        assert page.evaluate("sessionStorage.getItem('insights-token')") is None
        page.get_by_label("API token").fill(TOKEN)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("daus-today")).to_have_text("3", timeout=LOAD_MS)
        assert page.evaluate("sessionStorage.getItem('insights-token')") == TOKEN
        page.reload()  # the tab keeps its token
        expect(page.get_by_test_id("daus-today")).to_have_text("3", timeout=LOAD_MS)
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_label("API token")).to_be_visible()
        # the browser reports each refused request; nothing else may show
        assert [p for p in console.problems if "status of 401" not in p] == []
    finally:
        context.close()


def test_a_half_hour_zone_gets_valid_windows(browser: Browser, site: str, seeded: Stack) -> None:
    """In +05:30 the next local full hour can be past the API's limit: the page stays within."""
    context = _context(browser, zone="Asia/Kolkata")
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    requests = _insights_requests(page)
    try:
        context.add_cookies([{"name": "coder_session_token", "value": TOKEN, "url": site}])
        page.goto(site)  # signed in by the cookie, no form
        expect(page.locator("#panel-latency.loaded")).to_have_count(1, timeout=LOAD_MS)
        expect(page.locator("#panel-active.loaded")).to_have_count(1, timeout=LOAD_MS)
        expect(page.locator(".panel-error:not(:empty)")).to_have_count(0)
        ends = [parse_qs(urlsplit(u).query)["end_time"][0] for u in requests if "start_time=" in u]
        assert ends and all(e.endswith(":00:00+05:30") for e in ends), ends
        assert console.problems == []
    finally:
        context.close()


def test_new_events_show_within_two_seconds(browser: Browser, site: str, seeded: Stack) -> None:
    context = _context(browser)
    page = context.new_page()
    console = ConsoleLog()
    console.attach(page)
    try:
        _sign_in(page, site)
        expect(page.get_by_test_id("daus-today")).to_have_text("3", timeout=LOAD_MS)
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")
        expect(page.locator("#live-label")).to_have_text("Live")
        expect(page.get_by_test_id("activity-total")).to_have_text("6 min")
        expect(page.get_by_test_id("updated")).to_have_text(_UPDATED)

        later = _today_events(LATER, "dash-later", _a_minute_ago())
        _produce(seeded, {"latency": later.pop("latency")})
        _produce(seeded, later)  # the sessions, which move every number: the clock starts here
        started = time.monotonic()
        expect(page.get_by_test_id("daus-today")).to_have_text("5", timeout=LIVE_WITHIN_MS)
        expect(page.locator("#activity-table tbody tr")).to_have_count(5, timeout=LIVE_WITHIN_MS)
        expect(page.get_by_test_id("activity-total")).to_have_text("8 min", timeout=LIVE_WITHIN_MS)
        expect(page.get_by_test_id("active-users")).to_have_text("5", timeout=LIVE_WITHIN_MS)
        elapsed = time.monotonic() - started
        assert elapsed < LIVE_WITHIN_MS / 1000, f"{elapsed:.2f} s from the producer's ack"
        # a template no event named is listed by its id
        expect(page.get_by_label("Template").locator("option")).to_have_text(
            ["All templates", *sorted(NAMES.values()), TC]
        )
        assert console.problems == []
    finally:
        context.close()
