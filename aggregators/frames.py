"""A day's share of a window as numpy arrays, and the merge of a window's days (pure).

Folding (``aggregators.window``) turns one UTC day's rollups into a one-day
``WindowAcc``; ``day_frame`` packs that into arrays over the day's users, and
the store caches frames by the day's rollup version, so a past day is read
and folded once.  ``merge_frames`` then combines a window's frames with
vectorised operations over one index of all its users: the per-request cost
is a few array operations per day instead of Python work per user and day.

Everything a report needs survives the packing: active half-hour masks per
template and user (48-bit, in int64), capped usage minutes per user, builtin
and app totals, app run masks per user, and latency bins per user.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from aggregators.records import KIND_COUNT, AppEntry
from aggregators.sketch import bin_value
from aggregators.timebase import HALF_HOURS_PER_DAY
from aggregators.window import WindowAcc

I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
_LAST_BIT = np.int64(1 << (HALF_HOURS_PER_DAY - 1))


@dataclass(frozen=True)
class AppFrame:
    minutes: int
    templates: frozenset[str]
    runs: I64  # per user of the frame: half-hours with minutes of this entry
    # What merging a window needs of the runs, computed once per frame: how many
    # runs start that day, and which users' runs touch midnight (ids, sorted).
    run_starts: int
    opens: I64  # users with a run at 00:00
    closes: I64  # users with a run at 23:30


def app_frame(minutes: int, templates: frozenset[str], runs: I64, user_ids: I64) -> AppFrame:
    starts = int(np.bitwise_count(runs & ~(runs << 1)).sum())
    opens = np.sort(user_ids[(runs & 1) != 0])
    closes = np.sort(user_ids[(runs & _LAST_BIT) != 0])
    return AppFrame(minutes, templates, runs, starts, opens, closes)


class UserIndex:
    """Process-wide integer ids of user ids, so frames of different days align by array ops."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._names: list[str] = []

    def ids(self, users: tuple[str, ...]) -> I64:
        get = self._ids.get
        out = np.empty(len(users), dtype=np.int64)
        for i, user in enumerate(users):
            uid = get(user)
            if uid is None:
                uid = self._ids[user] = len(self._names)
                self._names.append(user)
            out[i] = uid
        return out

    def names(self, ids: I64) -> list[str]:
        names = self._names
        return [names[i] for i in ids.tolist()]

    def __len__(self) -> int:
        return len(self._names)


@dataclass(frozen=True)
class DayFrame:
    day: int
    users: tuple[str, ...]
    user_ids: I64  # the users' ids in the store's UserIndex
    templates: tuple[str, ...]
    active: I64  # (templates, users) active half-hour masks
    minutes: I64  # (users,) usage minutes, capped per half-hour across the scope's templates
    kind_minutes: tuple[int, ...]
    kind_templates: tuple[frozenset[str], ...]
    apps: dict[AppEntry, AppFrame]
    lat_user: I64  # latency samples as (user index, bin, count) triplets
    lat_bin: I64
    lat_count: I64
    lat_templates: Bool  # (templates, users): the user has samples in the template


def day_frame(acc: WindowAcc, day: int, index_of: UserIndex) -> DayFrame:
    """Pack a one-day accumulator (``acc.first_hh == day * 48``) into a frame."""
    latency = acc.latency_counts()
    users = tuple(sorted(set(acc.active) | set(latency.users) | set(acc.minutes)))
    index = {u: i for i, u in enumerate(users)}
    names = {t for per in acc.active.values() for t in per}
    names |= {t for ts in acc.latency_templates.values() for t in ts}
    templates = tuple(sorted(names))
    row = {t: i for i, t in enumerate(templates)}
    active = np.zeros((len(templates), len(users)), dtype=np.int64)
    for user, per in acc.active.items():
        for template, mask in per.items():
            active[row[template], index[user]] = mask
    minutes = np.zeros(len(users), dtype=np.int64)
    for user, value in acc.minutes.items():
        minutes[index[user]] = value
    user_ids = index_of.ids(users)
    apps = {}
    for entry, app in acc.apps.items():
        runs = np.zeros(len(users), dtype=np.int64)
        for user, mask in app.runs.items():
            runs[index[user]] = mask
        apps[entry] = app_frame(app.minutes, frozenset(app.templates), runs, user_ids)
    lat_user = np.array([index[u] for u in latency.users], dtype=np.int64)[latency.user]
    lat_templates = np.zeros((len(templates), len(users)), dtype=np.bool_)
    for user, ts in acc.latency_templates.items():
        for template in ts:
            lat_templates[row[template], index[user]] = True
    return DayFrame(
        day, users, user_ids, templates, active, minutes, tuple(acc.kind_minutes),
        tuple(frozenset(t) for t in acc.kind_templates), apps,
        lat_user, latency.bins, latency.counts, lat_templates,
    )  # fmt: skip


@dataclass
class AppTotals:
    minutes: int
    templates: set[str]
    runs: int


@dataclass
class WindowView:
    """A window's frames merged over one index of users and templates."""

    users: list[str]
    templates: list[str]
    frames: list[tuple[DayFrame, I64, I64]]  # frame, user positions, template positions
    user_templates: Bool  # (templates, users): activity in the window
    minutes: I64
    kind_minutes: list[int]
    kind_templates: list[set[str]]
    apps: dict[AppEntry, AppTotals]
    ids: I64  # sorted user ids of the window; users[rank[i]] has id ids[i]
    rank: I64
    latency_block: LatencyBlock | None = None  # samples of some frames, summed ahead

    def positions(self, ids: I64) -> I64:
        """Positions in ``users`` of the given user ids (all must be in the window)."""
        out: I64 = self.rank[np.searchsorted(self.ids, ids)]
        return out

    def active_mask(self) -> Bool:
        return any_along(self.user_templates, 0)


def any_along(a: Bool, axis: int) -> Bool:
    return np.asarray(a.any(axis=axis), dtype=np.bool_)


def merge_frames(frames: list[DayFrame], index_of: UserIndex) -> WindowView:
    frames = sorted(frames, key=lambda f: f.day)
    ids = np.unique(np.concatenate([f.user_ids for f in frames] or [np.empty(0, np.int64)]))
    names = index_of.names(ids)
    by_name = np.array(sorted(range(len(names)), key=names.__getitem__), dtype=np.int64)
    users = [names[i] for i in by_name.tolist()]
    rank = np.empty(len(ids), dtype=np.int64)
    rank[by_name] = np.arange(len(ids))  # position of each (sorted) id in the name order
    templates = sorted(set().union(*(f.templates for f in frames)))
    t_index = {t: i for i, t in enumerate(templates)}
    placed = []
    user_templates = np.zeros((len(templates), len(users)), dtype=np.bool_)
    minutes = np.zeros(len(users), dtype=np.int64)
    kinds = [0] * KIND_COUNT
    kind_templates: list[set[str]] = [set() for _ in range(KIND_COUNT)]
    for f in frames:
        pos = rank[np.searchsorted(ids, f.user_ids)]
        tpos = np.fromiter((t_index[t] for t in f.templates), dtype=np.int64)
        placed.append((f, pos, tpos))
        if len(tpos) and len(pos):
            user_templates[np.ix_(tpos, pos)] |= f.active != 0
        minutes[pos] += f.minutes
        for i in range(KIND_COUNT):
            kinds[i] += f.kind_minutes[i]
            kind_templates[i] |= f.kind_templates[i]
    view = WindowView(
        users, templates, placed, user_templates, minutes, kinds, kind_templates, {}, ids, rank
    )
    view.apps = _app_totals(placed)
    return view


def _app_totals(placed: list[tuple[DayFrame, I64, I64]]) -> dict[AppEntry, AppTotals]:
    """Minutes, templates and runs of consecutive half-hours per entry.

    Runs are counted per day as run starts; a run crossing midnight (bit 47 of
    one day and bit 0 of the next) was counted twice and is joined once.
    """
    totals: dict[AppEntry, AppTotals] = {}
    last_day: dict[AppEntry, tuple[int, I64]] = {}
    for f, _, _ in placed:
        for entry, app in f.apps.items():
            count = app.run_starts
            prev = last_day.get(entry)
            if prev is not None and prev[0] == f.day - 1:
                count -= len(np.intersect1d(app.opens, prev[1], assume_unique=True))
            last_day[entry] = (f.day, app.closes)
            tot = totals.get(entry)
            if tot is None:
                totals[entry] = AppTotals(app.minutes, set(app.templates), count)
            else:
                tot.minutes += app.minutes
                tot.templates |= app.templates
                tot.runs += count
    return totals


def interval_activity(
    view: WindowView, bounds: list[tuple[int, int]]
) -> list[tuple[int, list[str]]]:
    """(distinct active users, sorted templates) per interval of half-hours ``[first, stop)``."""
    starts = [b[0] for b in bounds]
    users: dict[int, Bool] = {}
    templates: dict[int, set[str]] = {}
    for f, pos, _ in view.frames:
        base = f.day * HALF_HOURS_PER_DAY
        i = max(0, bisect_right(starts, base) - 1)
        while i < len(bounds) and bounds[i][0] < base + HALF_HOURS_PER_DAY:
            lo = max(bounds[i][0] - base, 0)
            hi = min(bounds[i][1] - base, HALF_HOURS_PER_DAY)
            if lo < hi:
                span = np.int64(((1 << (hi - lo)) - 1) << lo)
                hit = (f.active & span) != 0
                if hit.any():
                    seen = users.setdefault(i, np.zeros(len(view.users), dtype=np.bool_))
                    seen[pos[hit.any(axis=0)]] = True
                    found = templates.setdefault(i, set())
                    found.update(t for t, h in zip(f.templates, hit.any(axis=1), strict=True) if h)
            i += 1
    return [
        (int(users[i].sum()) if i in users else 0, sorted(templates.get(i, ())))
        for i in range(len(bounds))
    ]


@dataclass(frozen=True)
class LatencyBlock:
    """The latency samples of a set of days, summed per user and bin.

    The store sums the days that no longer change into one block (cached by
    their versions), so a request adds only the recent days' samples to it.
    """

    days: frozenset[int]
    ids: I64  # sorted user ids
    lo: int  # bin of column 0
    dense: npt.NDArray[np.float64]  # (users, bins) sample counts


def _triplets(frames: list[tuple[DayFrame, I64]]) -> tuple[I64, I64, npt.NDArray[np.float64]]:
    parts = [(pos[f.lat_user], f.lat_bin, f.lat_count) for f, pos in frames if len(f.lat_bin)]
    if not parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, np.empty(0)
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]).astype(np.float64),
    )


def latency_block(frames: list[DayFrame]) -> LatencyBlock:
    ids = np.unique(np.concatenate([f.user_ids for f in frames] or [np.empty(0, np.int64)]))
    user, bins, counts = _triplets([(f, np.searchsorted(ids, f.user_ids)) for f in frames])
    lo = int(bins.min()) if len(bins) else 0
    width = int(bins.max()) - lo + 1 if len(bins) else 1
    flat = user * width + (bins - lo)
    dense = np.asarray(np.bincount(flat, weights=counts, minlength=len(ids) * width), np.float64)
    return LatencyBlock(frozenset(f.day for f in frames), ids, lo, dense.reshape(len(ids), width))


def latency_quantiles(view: WindowView, qs: list[float]) -> tuple[Bool, npt.NDArray[np.float64]]:
    """(users with samples, quantile values (users, qs)) by the rank rule of the spec.

    Bins are summed per user over all days (the view's ``latency_block`` holds
    some of them already), then each requested rank is found with one
    cumulative sum per user; values are the mapping's bin values.
    """
    n = len(view.users)
    block = view.latency_block
    rest = [(f, pos) for f, pos, _ in view.frames if block is None or f.day not in block.days]
    user, bins, counts = _triplets(rest)
    values = np.full((n, len(qs)), -1.0)
    lows = [int(bins.min())] if len(bins) else []
    highs = [int(bins.max())] if len(bins) else []
    if block is not None and block.dense.size:
        lows.append(block.lo)
        highs.append(block.lo + block.dense.shape[1] - 1)
    if not lows:
        return np.zeros(n, dtype=np.bool_), values
    lo = min(lows)
    width = max(highs) - lo + 1
    flat_index = user * width + (bins - lo)
    dense = np.asarray(np.bincount(flat_index, weights=counts, minlength=n * width), np.float64)
    dense = dense.reshape(n, width)
    if block is not None and block.dense.size:
        start = block.lo - lo
        dense[view.positions(block.ids), start : start + block.dense.shape[1]] += block.dense
    cum = np.cumsum(dense, axis=1)
    total = cum[:, -1]
    has = total > 0
    # Offsetting each row by more than any row's total makes the flattened running
    # counts one sorted array: one searchsorted finds every user's rank at once.
    rows = np.arange(n)
    offset = rows * (float(total.max()) + 1.0)
    flat = (cum + offset[:, None]).ravel()
    for j, q in enumerate(qs):
        rank = q * (total - 1)
        idx = (np.searchsorted(flat, rank + offset, side="right") - rows * width)[has]
        keys, inverse = np.unique(idx, return_inverse=True)
        table = np.array([bin_value(int(k) + lo) for k in keys])
        values[has, j] = table[inverse]
    return has, values


def latency_sampled(view: WindowView) -> Bool:
    """Users with at least one latency sample in the window."""
    out = np.zeros(len(view.users), dtype=np.bool_)
    for f, pos, _ in view.frames:
        out[pos[f.lat_user[f.lat_count > 0]]] = True
    return out


def latency_templates(view: WindowView) -> Bool:
    out = np.zeros((len(view.templates), len(view.users)), dtype=np.bool_)
    for f, pos, tpos in view.frames:
        if len(tpos) and len(pos):
            out[np.ix_(tpos, pos)] |= f.lat_templates
    return out
