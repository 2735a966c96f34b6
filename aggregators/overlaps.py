"""Multi-template filters: take back what the 30-minute caps remove where templates overlap.

Per-template day aggregates add up exactly for a set of templates except in
the (user, half-hour) pairs active in two or more of them, where usage,
builtin and app minutes are capped at 30 across the set (insights-api.md
section 4).  Those pairs are few (a user switching templates), so instead of
folding the whole day from cells, the reader reads the cells of the
overlapping users only and subtracts each pair's excess over the cap (pure).
"""

from __future__ import annotations

from aggregators.records import (
    KIND_COUNT,
    AppEntry,
    Catalogue,
    DayAggregates,
    DayCells,
    HalfHourCell,
)
from aggregators.timebase import MIN_PER_HALF_HOUR
from aggregators.window import WindowAcc


def overlapping(aggs: list[DayAggregates]) -> dict[str, int]:
    """User -> half-hours (48-bit mask) active in two or more of the scopes."""
    seen: dict[str, int] = {}
    twice: dict[str, int] = {}
    for agg in aggs:
        for masks in agg.active.values():
            for user, mask in masks.items():
                prior = seen.get(user, 0)
                if prior & mask:
                    twice[user] = twice.get(user, 0) | (prior & mask)
                seen[user] = prior | mask
    return twice


def _excess(total: int) -> int:
    return total - min(total, MIN_PER_HALF_HOUR)


def _usage(cell: HalfHourCell) -> int:
    return (cell.apps_union | (cell.agent if cell.connected else 0)).bit_count()


def take_back_cap_excess(
    acc: WindowAcc, cells: DayCells, overlaps: dict[str, int], catalogue: Catalogue
) -> None:
    """Subtract, per overlapping (user, half-hour), what the caps remove from the sums."""
    by_user: dict[str, list[tuple[str, dict[int, HalfHourCell]]]] = {}
    for (template, user), half_hours in cells.cells.items():
        by_user.setdefault(user, []).append((template, half_hours))
    for user, mask in overlaps.items():
        for hh in range(mask.bit_length()):
            if mask >> hh & 1:
                here = [(t, hhs[hh]) for t, hhs in by_user.get(user, ()) if hh in hhs]
                _take_back(acc, user, here, catalogue)


def _take_back(
    acc: WindowAcc, user: str, here: list[tuple[str, HalfHourCell]], catalogue: Catalogue
) -> None:
    acc.minutes[user] -= _excess(sum(_usage(cell) for _, cell in here))
    for i in range(KIND_COUNT):
        kind = sum(cell.kinds[i].bit_count() for _, cell in here if cell.connected)
        acc.kind_minutes[i] -= _excess(kind)
    apps: dict[AppEntry, int] = {}
    for template, cell in here:
        for key, minutes in cell.apps.items():
            meta = catalogue.get((template, key))
            if meta is not None and minutes:
                entry = (key, *meta)
                apps[entry] = apps.get(entry, 0) + minutes.bit_count()
    for entry, total in apps.items():
        if entry in acc.apps:
            acc.apps[entry].minutes -= _excess(total)
