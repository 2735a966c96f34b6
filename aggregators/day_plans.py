"""Which share of each day a window needs, and folding those shares into frames.

A window splits into day plans (``day_span``): whole days, the day it starts
in after midnight (its start edge) and the part of a day up to its end (on a
live dashboard, today).  Whole days and day prefixes are folded from the day
aggregates when they can answer, with every part; the rest from cells.
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregators.frames import DayFrame, UserIndex, day_frame
from aggregators.overlaps import overlapping, take_back_cap_excess
from aggregators.records import Catalogue, DayAggregates, DayCells, Parts
from aggregators.source import DayRead, RollupSource
from aggregators.timebase import HALF_HOURS_PER_DAY
from aggregators.window import WindowAcc, fold_aggregates, fold_day_cells

# Days read from their aggregates are folded with every part, so the four endpoints
# share one frame per day (the parts cost little there, unlike in cells).
ALL_PARTS: Parts = frozenset({"a", "m", "x", "l"})


@dataclass(frozen=True)
class DayPlan:
    day: int
    lo: int
    hi: int
    parts: Parts

    @property
    def whole(self) -> bool:
        return self.lo == 0 and self.hi == HALF_HOURS_PER_DAY

    @property
    def prefix(self) -> bool:
        """The window covers the day from midnight (today, on a live dashboard): the
        day aggregates answer exactly when no data lies at or after ``hi``."""
        return self.lo == 0

    @property
    def settles(self) -> bool:
        """Worth sharing: not the part of a day up to a window's end (today, when live)."""
        return self.whole or not self.prefix

    def aggregates_answer(self, aggs: list[DayAggregates]) -> bool:
        return self.whole or all(a.span is not None and a.span >> self.hi == 0 for a in aggs)


def shape_of(plan: DayPlan, templates: tuple[str, ...] | None) -> str:
    """What a frame of a day holds, apart from the day: its half-hours, templates and parts."""
    chosen = "*" if templates is None else ",".join(templates)
    return f"{plan.lo}-{plan.hi}-{chosen}-{''.join(sorted(plan.parts))}"


async def fold_days(
    source: RollupSource,
    plans: list[DayPlan],
    templates: tuple[str, ...] | None,
    catalogue: Catalogue,
    index_of: UserIndex,
) -> list[DayFrame]:
    """One frame per plan, read in one ``read_days`` call (plus cells where needed)."""
    reads = [DayRead(p.day, p.prefix, templates, p.parts) for p in plans]
    out: list[DayFrame] = []
    for plan, data in zip(plans, await source.read_days(reads), strict=True):
        acc = WindowAcc(plan.day * HALF_HOURS_PER_DAY, (plan.day + 1) * HALF_HOURS_PER_DAY)
        if isinstance(data, DayCells):
            fold_day_cells(acc, data, plan.lo, plan.hi, catalogue)
        elif plan.aggregates_answer(data) and fold_aggregates(acc, data, catalogue):
            overlaps = overlapping(data) if len(data) > 1 else {}
            if overlaps:
                who = tuple(sorted(overlaps))
                capped = frozenset(plan.parts - {"l"})  # latency is never capped
                (cells,) = await source.read_days(
                    [DayRead(plan.day, False, templates, capped, who)]
                )
                assert isinstance(cells, DayCells)
                take_back_cap_excess(acc, cells, overlaps, catalogue)
        else:
            (cells,) = await source.read_days([DayRead(plan.day, False, templates, plan.parts)])
            assert isinstance(cells, DayCells)
            fold_day_cells(acc, cells, plan.lo, plan.hi, catalogue)
        out.append(day_frame(acc, plan.day, index_of))
    return out
