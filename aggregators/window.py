"""Fold one UTC day's rollups into an accumulator (pure).

Two sources feed the same accumulator:

* day aggregates (``fold_aggregates``) for days lying wholly inside the
  window: O(users) fields per day, with the cross-template 30-minute caps
  already applied by the rollup script (``all`` scope), or per-template
  aggregates added up when no user is active in two selected templates in one
  half-hour (so no cap can bind);
* cells (``fold_day_cells``) for the window's partial edge days and for
  multi-template filters where such an overlap exists: the exact definition
  of insights-api.md section 4 applied to cell state.

Every capped quantity is capped per (half-hour, user); half-hours never span
two days, so per-day results add up (``aggregators.frames`` merges them).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from aggregators.records import (
    KIND_COUNT,
    AppEntry,
    Bins,
    Catalogue,
    DayAggregates,
    DayCells,
    LatencyCounts,
    ToolMinutes,
)
from aggregators.sketch import merge_into
from aggregators.timebase import HALF_HOURS_PER_DAY, MIN_PER_HALF_HOUR


@dataclass
class AppAcc:
    minutes: int = 0
    templates: set[str] = field(default_factory=set)
    runs: dict[str, int] = field(default_factory=dict)  # user -> window half-hour mask


@dataclass
class WindowAcc:
    """Everything the four reports need, over window half-hours ``[first_hh, stop_hh)``."""

    first_hh: int
    stop_hh: int
    active: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    minutes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    kind_minutes: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    kind_templates: list[set[str]] = field(
        default_factory=lambda: [set() for _ in range(KIND_COUNT)]
    )
    apps: dict[AppEntry, AppAcc] = field(default_factory=dict)
    # Latency: day aggregates' decoded tables as they are, cells' bins per user (edge days).
    latency_parts: list[LatencyCounts] = field(default_factory=list)
    latency: dict[str, dict[str, int]] = field(default_factory=dict)  # bin text -> count
    latency_templates: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def mark_active(self, user: str, template: str, mask: int) -> None:
        per_user = self.active[user]
        per_user[template] = per_user.get(template, 0) | mask

    def app(self, entry: AppEntry) -> AppAcc:
        acc = self.apps.get(entry)
        if acc is None:
            acc = self.apps[entry] = AppAcc()
        return acc

    def add_latency(self, user: str, template: str, bins: Bins) -> None:
        merge_into(self.latency.setdefault(user, {}), bins)
        self.latency_templates[user].add(template)

    def latency_counts(self) -> LatencyCounts:
        """Every latency sample folded so far, as one table."""
        return LatencyCounts.concat([*self.latency_parts, LatencyCounts.from_bins(self.latency)])


def app_key_entries(agg: DayAggregates, catalogue: Catalogue) -> dict[str, AppEntry] | None:
    """Entry of each used app key of the day, or ``None`` when one key maps to
    different entries in different templates (then the all-template caps of the
    day aggregates do not apply and the day must be folded from cells)."""
    out: dict[str, AppEntry | None] = {}
    for template, tools in agg.template_tools.items():
        for key in tools.apps:
            meta = catalogue.get((template, key))
            entry = None if meta is None else (key, *meta)
            if key in out and out[key] != entry:
                return None
            out[key] = entry
    return {k: v for k, v in out.items() if v is not None}


def fold_aggregates(acc: WindowAcc, aggs: list[DayAggregates], catalogue: Catalogue) -> bool:
    """Fold a wholly covered day from its aggregates; ``False`` when only cells can answer.

    One ``all``-scope aggregate carries the cross-template caps already.  Several
    template scopes (a multi-template filter) add up exactly except where a user
    is active in two of them in the same half-hour: only there can a cap bind,
    and ``aggregators.overlaps`` takes the excess back from those users' cells.
    """
    entries = [app_key_entries(agg, catalogue) for agg in aggs]
    if any(e is None for e in entries):
        return False
    for agg, keyed in zip(aggs, entries, strict=True):
        assert keyed is not None
        fold_day_aggregates(acc, agg, keyed)
    return True


def fold_day_aggregates(acc: WindowAcc, agg: DayAggregates, entries: dict[str, AppEntry]) -> None:
    """Fold a day lying wholly inside the window (``entries`` from ``app_key_entries``).

    This loop runs per user and day of a window, so it keeps to local names and
    plain dict operations.
    """
    shift = agg.day * HALF_HOURS_PER_DAY - acc.first_hh
    active = acc.active
    for template, masks in agg.active.items():
        for user, mask in masks.items():
            per_user = active[user]
            per_user[template] = per_user.get(template, 0) | (mask << shift)
    minutes = acc.minutes
    for user, value in agg.minutes.items():
        minutes[user] += value
    for template, tools in agg.template_tools.items():
        _fold_template_names(acc, template, tools, entries)
    _fold_scope_tools(acc, agg.tools, entries, shift)
    if len(agg.latency.users):
        acc.latency_parts.append(agg.latency)
    latency_templates = acc.latency_templates
    for template, users in agg.latency_users.items():
        for user in users:
            latency_templates[user].add(template)


def _fold_template_names(
    acc: WindowAcc, template: str, tools: ToolMinutes, entries: dict[str, AppEntry]
) -> None:
    """Which builtins and apps this template contributed minutes to."""
    for i, value in tools.kinds.items():
        if value > 0:
            acc.kind_templates[i].add(template)
    for key, entry in entries.items():
        if tools.apps.get(key, 0) > 0:
            acc.app(entry).templates.add(template)


def _fold_scope_tools(
    acc: WindowAcc, tools: ToolMinutes, entries: dict[str, AppEntry], shift: int
) -> None:
    for key, per_user in tools.runs.items():
        if key not in entries:
            continue
        runs = acc.app(entries[key]).runs
        for user, mask in per_user.items():
            runs[user] = runs.get(user, 0) | (mask << shift)
    for i, value in tools.kinds.items():
        acc.kind_minutes[i] += value
    for key, value in tools.apps.items():
        if key in entries:
            acc.app(entries[key]).minutes += value


def fold_day_cells(acc: WindowAcc, cells: DayCells, lo: int, hi: int, cat: Catalogue) -> None:
    """Fold half-hours ``lo <= hh < hi`` of one day from cell state (exact definition)."""
    base = cells.day * HALF_HOURS_PER_DAY - acc.first_hh
    usage: dict[tuple[int, str], int] = defaultdict(int)
    kinds: dict[tuple[int, str, int], int] = defaultdict(int)
    apps: dict[tuple[int, str, AppEntry], int] = defaultdict(int)
    for (template, user), half_hours in cells.cells.items():
        for hh, st in half_hours.items():
            if not lo <= hh < hi:
                continue
            agent = st.agent if st.connected else 0
            minutes = (st.apps_union | agent).bit_count()
            if minutes == 0:
                continue
            acc.mark_active(user, template, 1 << (base + hh))
            usage[hh, user] += minutes
            for i, kmask in enumerate(st.kinds):
                eff = kmask.bit_count() if st.connected else 0
                if eff:
                    acc.kind_templates[i].add(template)
                    kinds[hh, user, i] += eff
            for key, amask in st.apps.items():
                meta = cat.get((template, key))
                if meta is None or not amask:
                    continue
                entry = (key, *meta)
                apps[hh, user, entry] += amask.bit_count()
                app = acc.app(entry)
                app.templates.add(template)
                app.runs[user] = app.runs.get(user, 0) | (1 << (base + hh))
    for (_, user), v in usage.items():
        acc.minutes[user] += min(v, MIN_PER_HALF_HOUR)
    for (_, _, i), v in kinds.items():
        acc.kind_minutes[i] += min(v, MIN_PER_HALF_HOUR)
    for (_, _, entry), v in apps.items():
        acc.app(entry).minutes += min(v, MIN_PER_HALF_HOUR)
    _fold_cell_latency(acc, cells, lo, hi)


def _fold_cell_latency(acc: WindowAcc, cells: DayCells, lo: int, hi: int) -> None:
    for (template, user), half_hours in cells.latency.items():
        bins: Bins = {}
        for hh, hh_bins in half_hours.items():
            if lo <= hh < hi:
                merge_into(bins, hh_bins)
        if bins:
            acc.add_latency(user, template, bins)
