"""The dashboard page in a real browser: Debian's Chromium driven by Playwright.

Shared by the browser test and ``bench/screenshot_dashboard.py``; both open the page where
the API serves it (``GET /`` of the stack's base URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
INSTALLER = Path(__file__).with_name("install_chromium.sh")
NO_APT_ENV = "INSIGHTS_TEST_NO_APT"
# Debian's build, headless; nothing that reaches out to the network on its own.
LAUNCH_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def page_url(base_url: str) -> str:
    """The dashboard of the API at ``base_url``."""
    return base_url.rstrip("/") + "/"


@dataclass
class ConsoleLog:
    """The console errors and warnings of a page (Content-Security-Policy reports included),
    and its uncaught exceptions."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))

    def _on_console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            where = message.location.get("url", "") if message.location else ""
            self.problems.append(f"{message.type}: {message.text} ({where})")
