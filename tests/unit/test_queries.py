"""The four queries and the read path's caching, against an in-memory source."""

from __future__ import annotations

import asyncio
from typing import Any

from aggregators.parameters import ParamUse, StoredBuild
from aggregators.queries import (
    Window,
    daus_report,
    templates_report,
    user_activity_report,
    user_latency_report,
)
from aggregators.reader import WindowReader
from aggregators.reports import Profile, offset_day_bounds
from aggregators.sketch import bin_of
from aggregators.timebase import NS_PER_DAY, US_PER_DAY
from tests.fake_source import FakeDay, FakeSource, Report

DAY = 19_800
T1 = "00000000-0000-0000-0000-0000000000a1"
T2 = "00000000-0000-0000-0000-0000000000a2"
U1 = "00000000-0000-0000-0000-0000000000b1"
U2 = "00000000-0000-0000-0000-0000000000b2"
FIRST_TEN = (1 << 10) - 1


def _window(first_day: int, days: int, templates: tuple[str, ...] = ()) -> Window:
    start = first_day * NS_PER_DAY
    return Window(start, start + days * NS_PER_DAY, "start", "end", templates)


def _source() -> FakeSource:
    return FakeSource(
        days={
            DAY: FakeDay([Report(T1, U1, 20, FIRST_TEN), Report(T2, U2, 21, FIRST_TEN, kind=3)]),
            DAY + 1: FakeDay([Report(T1, U1, 0, 1)]),
        },
        profile_entries={U1: Profile("alice", "/a.png"), U2: Profile("bob", "")},
    )


def _seconds(body: Any) -> dict[str, int]:
    users = body["report"]["users"]
    return {u["user_id"]: u["seconds"] for u in users}


async def test_user_activity_over_whole_days_reads_aggregates_once() -> None:
    source = _source()
    reader = WindowReader(source)
    body: Any = await user_activity_report(reader, _window(DAY, 2))
    assert _seconds(body) == {U1: 11 * 60, U2: 10 * 60}
    assert body["report"]["template_ids"] == sorted([T1, T2])
    assert [u["username"] for u in body["report"]["users"]] == ["alice", "bob"]
    assert all(r.whole for r in source.reads())
    source.calls.clear()
    await user_activity_report(reader, _window(DAY, 2))
    assert [name for name, _ in source.calls] == ["snapshot"]  # frames and profiles cached


async def test_a_changed_day_alone_is_read_again() -> None:
    source = _source()
    reader = WindowReader(source)
    await user_activity_report(reader, _window(DAY, 2))
    source.days[DAY + 1].reports.append(Report(T2, U2, 3, 0b11))
    source.days[DAY + 1].version += 1
    source.calls.clear()
    body: Any = await user_activity_report(reader, _window(DAY, 2))
    assert [r.day for r in source.reads()] == [DAY + 1]
    assert _seconds(body) == {U1: 11 * 60, U2: 12 * 60}


async def test_profiles_are_read_again_only_when_their_version_moves() -> None:
    source = _source()
    reader = WindowReader(source)
    await user_activity_report(reader, _window(DAY, 1))
    source.profile_entries[U1] = Profile("alice2", "")
    body: Any = await user_activity_report(reader, _window(DAY, 1))
    assert body["report"]["users"][0]["username"] == "alice"
    source.users_version += 1
    body = await user_activity_report(reader, _window(DAY, 1))
    assert body["report"]["users"][0]["username"] == "alice2"


async def test_edge_days_are_folded_from_cells_within_the_window() -> None:
    source = _source()
    start = DAY * NS_PER_DAY + 21 * 30 * 60 * 10**9  # DAY 10:30: U1's half-hour is outside
    window = Window(start, (DAY + 1) * NS_PER_DAY, "s", "e", ())
    body: Any = await user_activity_report(WindowReader(source), window)
    assert _seconds(body) == {U2: 10 * 60}
    assert [(r.day, r.whole) for r in source.reads()] == [(DAY, False)]


async def test_overlapping_templates_of_a_filter_fall_back_to_cells() -> None:
    source = FakeSource(
        days={DAY: FakeDay([Report(T1, U1, 5, 0b1), Report(T2, U1, 5, 0b10)])},
    )
    body: Any = await user_activity_report(WindowReader(source), _window(DAY, 1, (T1, T2)))
    assert _seconds(body) == {U1: 2 * 60}
    assert [(r.whole, r.templates) for r in source.reads()] == [
        (True, (T1, T2)),
        (False, (T1, T2)),
    ]


async def test_templates_report_lists_builtins_and_the_latest_build_parameters() -> None:
    source = _source()
    key = ("region", "string", "Region", "", "[]")
    old = StoredBuild(T1, "w1", 1, DAY * US_PER_DAY + 5, (ParamUse(key, [], "eu"),))
    new = StoredBuild(T1, "w1", 2, DAY * US_PER_DAY + 9, (ParamUse(key, [], "us"),))
    source.days[DAY].builds = {"b1": old, "b2": new}
    sections = frozenset({"report", "interval_reports"})
    body: Any = await templates_report(WindowReader(source), _window(DAY, 2), 1, sections, str, str)
    report = body["report"]
    assert report["active_users"] == 2
    seconds = {a["slug"]: a["seconds"] for a in report["apps_usage"]}
    assert seconds["vscode"] == 11 * 60 and seconds["ssh"] == 10 * 60
    params = report["parameters_usage"]
    assert [v["value"] for p in params for v in p["values"]] == ["us"]
    assert [i["active_users"] for i in body["interval_reports"]] == [2, 1]
    assert ("profiles", None) not in source.calls


async def test_user_latency_quantiles_come_from_the_bins() -> None:
    source = _source()
    samples = [(20, str(bin_of(float(ms)))) for ms in range(1, 101)]
    source.days[DAY].latency[(T1, U1)] = samples
    body: Any = await user_latency_report(WindowReader(source), _window(DAY, 2), [("p50", 0.5)])
    users = {u["user_id"]: u for u in body["report"]["users"]}
    assert abs(users[U1]["latency_ms"]["p50"] - 50) <= 1
    assert users[U2]["latency_ms"]["p50"] == -1  # active, no samples


async def test_daus_split_utc_days_at_local_midnight() -> None:
    source = _source()
    now_ms = (DAY + 1) * 86_400_000 + 12 * 3_600_000
    first = (now_ms - 11 * 3_600_000) // 86_400_000 - 60
    bounds = offset_day_bounds(first, 61, -11)
    body = await daus_report(WindowReader(source), first, bounds, -11, lambda day: str(day))
    rows = {int(e["date"]): e["amount"] for e in body["entries"]}  # type: ignore[attr-defined]
    # U1 at DAY 10:00Z and DAY+1 00:00Z, U2 at 10:30Z: all before local midnight at -11
    assert rows[DAY - 1] == 2 and rows[DAY] == 1
    assert len(rows) == 61


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_live_day_is_refolded_once_per_freshness_budget() -> None:
    source, clock = _source(), _Clock()
    reader = WindowReader(source, max_staleness_s=0.25, clock=clock)
    await user_activity_report(reader, _window(DAY, 2))
    source.days[DAY + 1].reports.append(Report(T2, U2, 3, 0b11))
    source.days[DAY + 1].version += 1
    source.calls.clear()
    body: Any = await user_activity_report(reader, _window(DAY, 2))
    assert source.reads() == []  # within the budget: the frame read 0 s ago still serves
    assert _seconds(body)[U2] == 10 * 60
    clock.now += 0.25
    body = await user_activity_report(reader, _window(DAY, 2))
    assert [r.day for r in source.reads()] == [DAY + 1]
    assert _seconds(body)[U2] == 12 * 60


async def test_concurrent_requests_share_one_fold_and_one_report() -> None:
    source = _source()
    reader = WindowReader(source)
    first, second = await asyncio.gather(
        user_activity_report(reader, _window(DAY, 2)),
        user_activity_report(reader, _window(DAY, 2)),
    )
    assert [name for name, _ in source.calls].count("read_days") == 1
    assert [name for name, _ in source.calls].count("snapshot") == 1
    assert first is second  # one report, computed once


async def test_a_failed_fold_fails_every_waiting_request_and_is_retried() -> None:
    source = _source()
    reader = WindowReader(source)
    real = source.read_days

    async def failing(reads: Any) -> Any:
        raise ConnectionError("store down")

    source.read_days = failing  # type: ignore[method-assign]
    results = await asyncio.gather(
        user_activity_report(reader, _window(DAY, 2)),
        user_activity_report(reader, _window(DAY, 2)),
        return_exceptions=True,
    )
    assert all(isinstance(r, ConnectionError) for r in results)
    source.read_days = real  # type: ignore[method-assign]
    body: Any = await user_activity_report(reader, _window(DAY, 2))
    assert _seconds(body) == {U1: 11 * 60, U2: 10 * 60}


async def test_a_window_ending_after_the_days_last_data_folds_its_aggregates() -> None:
    source = _source()
    end = DAY * NS_PER_DAY + 23 * 30 * 60 * 10**9  # DAY 11:30: all of DAY's data lies before
    body: Any = await user_activity_report(
        WindowReader(source), Window(DAY * NS_PER_DAY, end, "s", "e", ())
    )
    assert _seconds(body) == {U1: 10 * 60, U2: 10 * 60}
    assert [(r.day, r.whole) for r in source.reads()] == [(DAY, True)]


async def test_a_window_ending_before_the_days_last_data_reads_cells() -> None:
    source = _source()
    end = DAY * NS_PER_DAY + 21 * 30 * 60 * 10**9  # DAY 10:30: U2's half-hour lies after
    body: Any = await user_activity_report(
        WindowReader(source), Window(DAY * NS_PER_DAY, end, "s", "e", ())
    )
    assert _seconds(body) == {U1: 10 * 60}
    assert [(r.day, r.whole) for r in source.reads()] == [(DAY, True), (DAY, False)]


async def test_builds_are_listed_again_only_when_their_version_moves() -> None:
    source = _source()
    key = ("region", "string", "Region", "", "[]")
    source.days[DAY].builds = {
        "b1": StoredBuild(T1, "w1", 1, DAY * US_PER_DAY + 5, (ParamUse(key, [], "eu"),))
    }
    reader = WindowReader(source)
    sections = frozenset({"report"})

    async def values() -> list[str]:
        body: Any = await templates_report(reader, _window(DAY, 2), None, sections, str, str)
        return [v["value"] for p in body["report"]["parameters_usage"] for v in p["values"]]

    assert await values() == ["eu"]
    source.days[DAY].version += 1  # new activity, same builds
    source.calls.clear()
    assert await values() == ["eu"]
    assert [n for n, _ in source.calls if n.startswith("build")] == ["build_versions"]
    source.days[DAY].builds["b2"] = StoredBuild(
        T1, "w1", 2, DAY * US_PER_DAY + 9, (ParamUse(key, [], "us"),)
    )
    source.days[DAY].version += 1
    source.days[DAY].builds_version += 1
    assert await values() == ["us"]


async def test_a_second_reader_takes_the_whole_days_the_first_one_shared() -> None:
    source = _source()
    sections = frozenset({"report", "interval_reports"})
    first: Any = await templates_report(
        WindowReader(source), _window(DAY, 2), 1, sections, str, str
    )
    assert {shape for _, shape in source.frames} == {"0-48-*-almx"}
    source.calls.clear()
    second: Any = await templates_report(
        WindowReader(source), _window(DAY, 2), 1, sections, str, str
    )
    assert second == first
    assert source.reads() == []  # both days came from the shared frames
    source.days[DAY].version += 1  # a shared frame of an older version is not taken
    source.calls.clear()
    await templates_report(WindowReader(source), _window(DAY, 2), 1, sections, str, str)
    assert [r.day for r in source.reads()] == [DAY]


async def test_caps_bind_across_filtered_templates_from_the_overlapping_users_cells() -> None:
    twenty = (1 << 20) - 1
    source = FakeSource(
        days={
            DAY: FakeDay(
                [
                    Report(T1, U1, 5, twenty),
                    Report(T2, U1, 5, twenty << 10),  # same half-hour: 40 minutes, capped at 30
                    Report(T2, U2, 6, 0b111),
                ]
            )
        },
    )
    body: Any = await user_activity_report(WindowReader(source), _window(DAY, 1, (T1, T2)))
    assert _seconds(body) == {U1: 30 * 60, U2: 3 * 60}
    cell_reads = [r for r in source.reads() if not r.whole]
    assert [r.users for r in cell_reads] == [(U1,)]  # only the overlapping user's cells
