"""Coder's ``coderd_insights_*`` Prometheus gauges, from the queries behind the HTTP API.

Coder's collector (``coderd/prometheusmetrics/insights/metricscollector.go``) queries the
insights of a fixed recent window, ``[now - 5 min, now)``, once per window (every 5
minutes), keeps the rows of its last successful refresh and turns them into three gauges
at each scrape:

* ``coderd_insights_templates_active_users{template_name}``: one series per template with
  activity in the window;
* ``coderd_insights_applications_usage_seconds{template_name,application_name,slug}``: for
  each of those templates the four built-in apps (``Visual Studio Code``, ``JetBrains``,
  ``Web Terminal``, ``SSH``; ``slug`` empty; zero seconds included; SFTP is not exported),
  and one series per app (display name and slug) that was used in the window;
* ``coderd_insights_parameters{template_name,parameter_name,parameter_type,parameter_value}``:
  how many workspaces' latest builds in the window used each value (the raw value, as
  stored; equal name, type and value of one template add up).

Series of templates, apps and values the window no longer holds disappear; nothing is
exported before the first successful refresh; a failed refresh keeps the previous values.

Here the rollups resolve activity to half-hours (a window of the read path holds whole
half-hours), so the window is the previous half-hour and the current one so far: it
always covers the last 30 minutes, at most the last 60, and an event counts in the
gauges at the next refresh.  The reports are the ``/api/v2/insights/templates`` report
of each template alone (``aggregators.queries.templates_report``), through a
``WindowReader`` of their own over the same store, so the gauges never evict the frames
the HTTP requests use.  They are recomputed every ``INSIGHTS_CODER_METRICS_REFRESH_S``
(60 s) in the background; a scrape only reads the last values, so a slow or dead store
never slows it down.  ``insights_coder_gauges_refreshed_timestamp_seconds`` says when
the values were computed.

Template names: events may name their template (``template_name``, newest wins); the
store's ``template_names()`` (template id -> (template name, organization name)) is read
once per refresh.  A template no event named is labelled with its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aggregators.queries import Window, templates_report
from aggregators.reader import WindowReader
from aggregators.timebase import MS_PER_HALF_HOUR, NS_PER_MS
from api.context import CLOCK, SETTINGS, STORE
from insights import metrics

log = structlog.get_logger("insights.api")

TEMPLATES_ACTIVE_USERS = "coderd_insights_templates_active_users"
APPLICATIONS_USAGE_SECONDS = "coderd_insights_applications_usage_seconds"
PARAMETERS = "coderd_insights_parameters"
REFRESHED = "insights_coder_gauges_refreshed_timestamp_seconds"

# Coder's collector exports these built-in apps of the report (by slug), not SFTP.
CODER_BUILTINS = ("vscode", "jetbrains", "reconnecting-pty", "ssh")
WINDOW_HALF_HOURS = 2  # the previous half-hour and the current one
_SECTIONS = frozenset({"report"})

TemplateLabel = Callable[[str], str]


def template_label(template_id: str) -> str:
    """``template_name`` of a template no event named: its id."""
    return template_id


def name_labels(names: Mapping[str, tuple[str, str]]) -> TemplateLabel:
    """``template_name`` from the store's names, the id where a template has none."""

    def label(template_id: str) -> str:
        name = names.get(template_id, ("", ""))[0]
        return name or template_id

    return label


@dataclass(frozen=True)
class CoderGauges:
    """The three gauges' samples: label values (in Coder's label order) -> value."""

    active_users: Mapping[tuple[str], float] = field(default_factory=dict)
    app_usage: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    parameters: Mapping[tuple[str, str, str, str], float] = field(default_factory=dict)
    refreshed_at: float | None = None  # unix time of the refresh; None: never refreshed


def coder_window(now: datetime, templates: tuple[str, ...] = ()) -> Window:
    """The previous half-hour and the current one: ``[hh - 1, hh + 1)`` around ``now``."""
    current = int(now.timestamp() * 1000) // MS_PER_HALF_HOUR
    start_ns = (current - WINDOW_HALF_HOURS + 1) * MS_PER_HALF_HOUR * NS_PER_MS
    end_ns = (current + 1) * MS_PER_HALF_HOUR * NS_PER_MS
    return Window(start_ns, end_ns, "", "", templates)


def gauges_from_reports(
    reports: Mapping[str, Mapping[str, Any]],
    label: TemplateLabel = template_label,
    refreshed_at: float | None = None,
) -> CoderGauges:
    """Coder's samples from the ``report`` section of each template's own templates report
    (``template id -> report``), as Coder's ``Collect`` maps its rows."""
    active: dict[tuple[str], float] = defaultdict(float)
    usage: dict[tuple[str, str, str], float] = defaultdict(float)
    params: dict[tuple[str, str, str, str], float] = defaultdict(float)
    for template_id, report in reports.items():
        name = label(template_id)
        apps = report.get("apps_usage", [])
        if report.get("active_users", 0) > 0:
            active[name,] += report["active_users"]
            for app in apps:
                if app["type"] == "builtin" and app["slug"] in CODER_BUILTINS:
                    usage[name, app["display_name"], ""] += app["seconds"]
        for app in apps:
            if app["type"] == "app" and app["seconds"] > 0:
                usage[name, app["display_name"], app["slug"]] += app["seconds"]
        for param in report.get("parameters_usage", []):
            for value in param["values"]:
                key = (name, param["name"], param["type"], value["value"])
                params[key] += value["count"]
    return CoderGauges(dict(active), dict(usage), dict(params), refreshed_at)


def families(gauges: CoderGauges) -> list[Metric]:
    """The gauges as metric families (empty ones before the first refresh)."""
    active = GaugeMetricFamily(
        TEMPLATES_ACTIVE_USERS,
        "The number of active users of the template.",
        labels=["template_name"],
    )
    for labels, value in sorted(gauges.active_users.items()):
        active.add_metric(labels, value)
    usage = GaugeMetricFamily(
        APPLICATIONS_USAGE_SECONDS,
        "The application usage per template.",
        labels=["template_name", "application_name", "slug"],
    )
    for app_labels, value in sorted(gauges.app_usage.items()):
        usage.add_metric(app_labels, value)
    params = GaugeMetricFamily(
        PARAMETERS,
        "The parameter usage per template.",
        labels=["template_name", "parameter_name", "parameter_type", "parameter_value"],
    )
    for param_labels, value in sorted(gauges.parameters.items()):
        params.add_metric(param_labels, value)
    refreshed = GaugeMetricFamily(
        REFRESHED, "Unix time of the last successful refresh of the coderd_insights_* gauges"
    )
    if gauges.refreshed_at is not None:
        refreshed.add_metric([], gauges.refreshed_at)
    return [active, usage, params, refreshed]


class CoderInsightsCollector(Collector):
    """Serves the last published gauges; never computes anything during a scrape.

    One instance is registered in the process's registry (``COLLECTOR``); each API app
    publishes to it as its owner, and withdraws its values when it stops.
    """

    def __init__(self) -> None:
        self._current: tuple[object, CoderGauges] | None = None

    def publish(self, owner: object, gauges: CoderGauges) -> None:
        self._current = (owner, gauges)

    def withdraw(self, owner: object) -> None:
        current = self._current
        if current is not None and current[0] is owner:
            self._current = None

    @property
    def gauges(self) -> CoderGauges:
        current = self._current
        return current[1] if current is not None else CoderGauges()

    def describe(self) -> Iterable[Metric]:
        return families(CoderGauges())

    def collect(self) -> Iterator[Metric]:
        yield from families(self.gauges)


COLLECTOR = CoderInsightsCollector()
REGISTRY.register(COLLECTOR)


def _render(epoch_ns: int) -> str:  # no interval reports are asked for: never called
    return str(epoch_ns)


def _describe(text: str) -> str:  # descriptions are not exported
    return text


class CoderGaugesRefresher:
    """Recomputes the gauges from a ``WindowReader`` and publishes them."""

    def __init__(
        self,
        reader: WindowReader,
        clock: Callable[[], datetime],
        collector: CoderInsightsCollector = COLLECTOR,
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.collector = collector

    async def compute(self) -> CoderGauges:
        """One report over all templates names the templates with activity or builds in the
        window; then each one's own report gives its numbers."""
        now = self.clock()
        overall = await self._report(coder_window(now))
        templates = set(overall["template_ids"])
        for param in overall["parameters_usage"]:
            templates.update(param["template_ids"])
        reports = {t: await self._report(coder_window(now, (t,))) for t in sorted(templates)}
        label: TemplateLabel = template_label
        if reports:
            label = name_labels(await self.reader.source.template_names())
        return gauges_from_reports(reports, label, time.time())

    async def _report(self, window: Window) -> Mapping[str, Any]:
        body: Any = await templates_report(self.reader, window, None, _SECTIONS, _render, _describe)
        report: Mapping[str, Any] = body["report"]
        return report

    async def refresh(self) -> bool:
        """Publish fresh values; on failure keep the previous ones (False)."""
        try:
            gauges = await self.compute()
        except Exception as exc:
            metrics.CODER_GAUGES_FAILURES.inc()
            text = (str(exc) or type(exc).__name__).splitlines()[0][:200]
            log.warning(
                "coderd_insights_* gauges not refreshed; the previous values stay",
                error_type=type(exc).__name__,
                error=text,
            )
            return False
        self.collector.publish(self, gauges)
        return True

    async def run(self, every_s: float) -> None:
        """Refresh now, then ``every_s`` after each refresh ends (the store's own timeouts
        bound each read, so no refresh is cancelled half way through a read)."""
        while True:
            await self.refresh()
            await asyncio.sleep(every_s)

    def withdraw(self) -> None:
        self.collector.withdraw(self)


async def refresher_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` of the API app: the gauges' refresh task while the app runs."""
    settings = app[SETTINGS]
    reader = WindowReader(app[STORE].source, max_staleness_s=settings.read_staleness_ms / 1000)
    refresher = CoderGaugesRefresher(reader, app[CLOCK])
    task = asyncio.create_task(refresher.run(settings.coder_metrics_refresh_s))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        refresher.withdraw()
