"""Coder's ``coderd_insights_*`` gauges: label and value mapping, window, publication.

The reports are the ``report`` section of the templates report (one per template), as the
refresher gets them from ``aggregators.queries.templates_report``; the refresher itself
runs against the in-memory source of the query tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aggregators.parameters import ParamUse, StoredBuild
from aggregators.reader import WindowReader
from aggregators.timebase import NS_PER_MS, US_PER_DAY
from api.coder_metrics import (
    APPLICATIONS_USAGE_SECONDS,
    COLLECTOR,
    PARAMETERS,
    REFRESHED,
    TEMPLATES_ACTIVE_USERS,
    CoderGauges,
    CoderGaugesRefresher,
    CoderInsightsCollector,
    coder_window,
    families,
    gauges_from_reports,
)
from tests.fake_source import FakeDay, FakeSource, Report

T1 = "00000000-0000-0000-0000-0000000000a1"
T2 = "00000000-0000-0000-0000-0000000000a2"
T3 = "00000000-0000-0000-0000-0000000000a3"
U1 = "00000000-0000-0000-0000-0000000000b1"
U2 = "00000000-0000-0000-0000-0000000000b2"


def _builtins(
    vscode: int = 0, jetbrains: int = 0, pty: int = 0, ssh: int = 0, sftp: int = 0
) -> list[dict[str, Any]]:
    rows = [
        ("vscode", "Visual Studio Code", vscode),
        ("jetbrains", "JetBrains", jetbrains),
        ("reconnecting-pty", "Web Terminal", pty),
        ("ssh", "SSH", ssh),
        ("sftp", "SFTP", sftp),
    ]
    return [
        {"template_ids": [], "type": "builtin", "display_name": name, "slug": slug,
         "icon": "/icon/terminal.svg", "seconds": seconds, "times_used": 0}
        for slug, name, seconds in rows
    ]  # fmt: skip


def _app(name: str, slug: str, seconds: int) -> dict[str, Any]:
    return {
        "template_ids": [T1],
        "type": "app",
        "display_name": name,
        "slug": slug,
        "icon": "",
        "seconds": seconds,
        "times_used": 1,
    }


def _param(name: str, type_: str, values: dict[str, int], **extra: str) -> dict[str, Any]:
    return {
        "template_ids": [T1],
        "display_name": extra.get("display_name", ""),
        "name": name,
        "type": type_,
        "description": "",
        "values": [{"value": v, "count": c} for v, c in values.items()],
    }


def _report(active_users: int, apps: list[dict[str, Any]], params: list[dict[str, Any]]) -> Any:
    return {
        "start_time": "",
        "end_time": "",
        "template_ids": [T1] if active_users else [],
        "active_users": active_users,
        "apps_usage": apps,
        "parameters_usage": params,
    }


# Coder's golden file (coderd/prometheusmetrics/insights/testdata/insights-metrics.json),
# transcribed: one user of "golden-template" with VS Code, JetBrains and SSH sessions in one
# minute, two minutes of the app "Golden Slug", and a build with three parameters.
CODER_GOLDEN = json.loads((Path(__file__).parent / "coder_insights_metrics.json").read_text())

GOLDEN_REPORT = _report(
    1,
    [*_builtins(vscode=60, jetbrains=60, ssh=60), _app("Golden Slug", "golden-slug", 120)],
    [
        _param("first_parameter", "string", {"Foobar": 1}),
        _param("second_parameter", "bool", {"true": 1}),
        _param("third_parameter", "number", {"789": 1}),
    ],
)


def _gathered(gauges: CoderGauges) -> dict[str, float]:
    """A scrape of the gauges keyed as Coder's test keys them (labels sorted by name)."""
    registry = CollectorRegistry()
    collector = CoderInsightsCollector()
    registry.register(collector)
    collector.publish(object(), gauges)
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.name.startswith("coderd_insights_"):
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}[{labels}]"] = s.value
    return out


def test_a_report_maps_to_coders_golden_series() -> None:
    gauges = gauges_from_reports({T1: GOLDEN_REPORT}, label=lambda _: "golden-template")
    assert _gathered(gauges) == CODER_GOLDEN


def test_template_name_falls_back_to_the_template_id() -> None:
    gauges = gauges_from_reports({T1: GOLDEN_REPORT})
    assert gauges.active_users == {(T1,): 1}
    assert {labels[0] for labels in gauges.app_usage} == {T1}
    assert {labels[0] for labels in gauges.parameters} == {T1}


def test_which_series_a_template_gets() -> None:
    reports = {
        # Active: its four built-ins (even at zero seconds, never SFTP) and its used apps.
        T1: _report(2, [*_builtins(ssh=120, sftp=60), _app("Used", "used", 60)], []),
        # No activity, but builds in the window: its parameters only.
        T2: _report(0, _builtins(), [_param("region", "string", {"eu": 2, "us": 1})]),
        # Nothing at all: no series.
        T3: _report(0, _builtins(), []),
    }
    gauges = gauges_from_reports(reports)
    assert gauges.active_users == {(T1,): 2}
    assert gauges.app_usage == {
        (T1, "Visual Studio Code", ""): 0,
        (T1, "JetBrains", ""): 0,
        (T1, "Web Terminal", ""): 0,
        (T1, "SSH", ""): 120,
        (T1, "Used", "used"): 60,
    }
    assert gauges.parameters == {
        (T2, "region", "string", "eu"): 2,
        (T2, "region", "string", "us"): 1,
    }


def test_equal_labels_add_up() -> None:
    """Definitions differing only in what Coder does not label (display name, description,
    options) count together, as in Coder's convertParameterInsights; so do templates that
    share a name."""
    reports = {
        T1: _report(
            1,
            [*_builtins(vscode=60), _app("Same", "same", 60)],
            [
                _param("region", "string", {"eu": 1}, display_name="Region"),
                _param("region", "string", {"eu": 2, "us": 1}, display_name="Where"),
            ],
        ),
        T2: _report(3, [*_builtins(vscode=120), _app("Same", "same", 30)], []),
    }
    gauges = gauges_from_reports(reports, label=lambda _: "shared-name")
    assert gauges.active_users == {("shared-name",): 4}
    assert gauges.app_usage[("shared-name", "Visual Studio Code", "")] == 180
    assert gauges.app_usage[("shared-name", "Same", "same")] == 90
    assert gauges.parameters == {
        ("shared-name", "region", "string", "eu"): 3,
        ("shared-name", "region", "string", "us"): 1,
    }


def test_nothing_is_exported_before_the_first_refresh_nor_after_withdrawal() -> None:
    collector = CoderInsightsCollector()
    names = [f.name for f in collector.describe()]
    assert names == [TEMPLATES_ACTIVE_USERS, APPLICATIONS_USAGE_SECONDS, PARAMETERS, REFRESHED]
    assert all(not f.samples for f in collector.collect())
    owner, other = object(), object()
    collector.publish(owner, gauges_from_reports({T1: GOLDEN_REPORT}, refreshed_at=1.5))
    by_name = {f.name: f for f in collector.collect()}
    assert [s.value for s in by_name[REFRESHED].samples] == [1.5]
    assert len(by_name[APPLICATIONS_USAGE_SECONDS].samples) == 5
    collector.withdraw(other)  # not the owner of the values: they stay
    assert collector.gauges.active_users == {(T1,): 1}
    collector.withdraw(owner)
    assert all(not f.samples for f in collector.collect())


def test_the_process_collector_is_registered_with_coders_help_texts() -> None:
    by_name = {f.name: f for f in families(CoderGauges())}
    assert by_name[TEMPLATES_ACTIVE_USERS].documentation == (
        "The number of active users of the template."
    )
    assert (
        by_name[APPLICATIONS_USAGE_SECONDS].documentation == "The application usage per template."
    )
    assert by_name[PARAMETERS].documentation == "The parameter usage per template."
    assert all(f.type == "gauge" for f in by_name.values())
    text = generate_latest().decode()  # the default registry: what /metrics serves
    assert f"# TYPE {TEMPLATES_ACTIVE_USERS} gauge" in text
    assert isinstance(COLLECTOR, CoderInsightsCollector)


def _ms(window_ns: int) -> datetime:
    return datetime.fromtimestamp(window_ns / NS_PER_MS / 1000, UTC)


def test_the_window_is_the_previous_and_the_current_half_hour() -> None:
    for now, start, end in [
        (datetime(2024, 3, 10, 10, 40, 5, tzinfo=UTC), (10, 0), (11, 0)),
        (datetime(2024, 3, 10, 10, 0, tzinfo=UTC), (9, 30), (10, 30)),
        (datetime(2024, 3, 10, 10, 29, 59, 999_000, tzinfo=UTC), (9, 30), (10, 30)),
    ]:
        window = coder_window(now, (T1,))
        day = datetime(2024, 3, 10, tzinfo=UTC)
        assert _ms(window.start_ns) == day + timedelta(hours=start[0], minutes=start[1])
        assert _ms(window.end_ns) == day + timedelta(hours=end[0], minutes=end[1])
        assert window.templates == (T1,)
        first, stop = window.half_hours
        assert stop - first == 2
    midnight = coder_window(datetime(2024, 3, 10, 0, 10, tzinfo=UTC))
    assert _ms(midnight.start_ns) == datetime(2024, 3, 9, 23, 30, tzinfo=UTC)


DAY = 19_792  # 2024-03-10
NOW = datetime(2024, 3, 10, 10, 40, tzinfo=UTC)  # window: half-hours 20 and 21 of DAY
ALL_MINUTES = (1 << 30) - 1


def _source() -> FakeSource:
    key = ("region", "string", "", "", "[]")
    build_us = DAY * US_PER_DAY + 10 * 3_600_000_000 + 5 * 60_000_000  # 10:05
    return FakeSource(
        days={
            DAY: FakeDay(
                [
                    Report(T1, U1, 20, 0b111),  # 10:00-10:03, VS Code
                    Report(T1, U2, 21, 0b1, kind=3),  # 10:30, SSH
                    Report(T2, U2, 19, ALL_MINUTES),  # 09:30-10:00: before the window
                ],
                builds={
                    "b1": StoredBuild(T3, "w1", 1, build_us, (ParamUse(key, [], "eu"),)),
                },
            )
        }
    )


async def test_the_refresher_reads_each_templates_report_of_the_window() -> None:
    collector = CoderInsightsCollector()
    refresher = CoderGaugesRefresher(WindowReader(_source()), lambda: NOW, collector)
    assert await refresher.refresh()
    gauges = collector.gauges
    assert gauges.active_users == {(T1,): 2}
    assert gauges.app_usage == {
        (T1, "Visual Studio Code", ""): 180,
        (T1, "JetBrains", ""): 0,
        (T1, "Web Terminal", ""): 0,
        (T1, "SSH", ""): 60,
    }
    assert gauges.parameters == {(T3, "region", "string", "eu"): 1}
    assert gauges.refreshed_at is not None
    refresher.withdraw()
    assert collector.gauges == CoderGauges()


class _Down(FakeSource):
    async def snapshot(self, first_day: int, stop_day: int) -> Any:
        raise ConnectionError("store down")


async def test_a_failed_refresh_keeps_the_previous_values() -> None:
    collector = CoderInsightsCollector()
    refresher = CoderGaugesRefresher(WindowReader(_source()), lambda: NOW, collector)
    assert await refresher.refresh()
    before = collector.gauges
    refresher.reader = WindowReader(_Down())
    assert not await refresher.refresh()
    assert collector.gauges is before


class _Named(FakeSource):
    async def template_names(self) -> dict[str, tuple[str, str]]:
        return {T1: ("golden-template", "acme"), T3: ("", "acme")}


async def test_templates_are_labelled_with_the_names_the_store_keeps() -> None:
    """A store that keeps the names events gave (``template_names``) labels by name; a
    template without one keeps its id."""
    named = _Named(days=_source().days)
    collector = CoderInsightsCollector()
    assert await CoderGaugesRefresher(WindowReader(named), lambda: NOW, collector).refresh()
    assert collector.gauges.active_users == {("golden-template",): 2}
    assert {labels[0] for labels in collector.gauges.app_usage} == {"golden-template"}
    assert collector.gauges.parameters == {(T3, "region", "string", "eu"): 1}
