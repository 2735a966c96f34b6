"""Typed records of what the rollups hold for one UTC day (pure).

The store decodes its hashes into these (``aggregators.store.codec``), so the
folding code works on names and integers and never sees a field separator,
a key or a byte.  Two shapes exist per day:

* ``DayAggregates`` - the rollup script's per-day aggregates of one scope
  (``all`` templates, or one template): O(users) entries, caps applied;
* ``DayCells`` - the per-(template, user) cells: minute masks per half-hour,
  the exact state the aggregates are derived from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from aggregators.model import KINDS

KIND_COUNT = len(KINDS)

# Parts of a day's rollups a report needs: a (activity), m (usage minutes),
# x (builtin and app minutes, app runs), l (latency).
Part = Literal["a", "m", "x", "l"]
Parts = frozenset[Part]

AppEntry = tuple[str, str, str]  # (slug, display_name, icon)
Catalogue = dict[tuple[str, str], tuple[str, str]]  # (template, app key) -> (display_name, icon)
Bins = dict[str, int]  # latency sketch bin (as stored text) -> sample count
UserMasks = dict[str, int]  # user -> 48-bit mask of the day's half-hours


@dataclass
class ToolMinutes:
    """Builtin and app minutes of one scope and day, and the half-hours each app ran."""

    kinds: dict[int, int] = field(default_factory=dict)  # kind index -> minutes
    apps: dict[str, int] = field(default_factory=dict)  # app key -> minutes
    runs: dict[str, UserMasks] = field(default_factory=dict)  # app key -> user -> half-hours


I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LatencyCounts:
    """Latency samples as (user, bin, count) rows, users named once: how a day's bins are
    decoded (all users at once) and folded into frames without per-user dictionaries.
    A (user, bin) may appear in several rows; rows add up."""

    users: tuple[str, ...]
    user: I64  # row -> index into ``users``
    bins: I64
    counts: I64

    @classmethod
    def empty(cls) -> LatencyCounts:
        none = np.empty(0, dtype=np.int64)
        return cls((), none, none, none)

    @classmethod
    def from_bins(cls, per_user: Mapping[str, Mapping[str, int]]) -> LatencyCounts:
        users = tuple(per_user)
        rows = [(i, int(b), c) for i, u in enumerate(users) for b, c in per_user[u].items()]
        if not rows:
            return cls(users, *(np.empty(0, dtype=np.int64) for _ in range(3)))
        cols = np.array(rows, dtype=np.int64).T
        return cls(users, cols[0], cols[1], cols[2])

    @staticmethod
    def concat(parts: Iterable[LatencyCounts]) -> LatencyCounts:
        """One table of all rows (users renumbered; a user of several parts appears once)."""
        parts = [p for p in parts if len(p.users)]
        if not parts:
            return LatencyCounts.empty()
        if len(parts) == 1:
            return parts[0]
        index: dict[str, int] = {}
        remapped = []
        for p in parts:
            ids = np.array([index.setdefault(u, len(index)) for u in p.users], dtype=np.int64)
            remapped.append(ids[p.user])
        return LatencyCounts(
            tuple(index),
            np.concatenate(remapped),
            np.concatenate([p.bins for p in parts]),
            np.concatenate([p.counts for p in parts]),
        )


@dataclass
class DayAggregates:
    """One day's aggregates of one scope (``all`` or one template).

    ``active``, ``template_tools`` and ``latency_users`` are per template (the
    scope's own template, or every template of the day for ``all``); the rest
    belongs to the scope, with the cross-template 30-minute caps applied.
    """

    day: int
    tools: ToolMinutes
    minutes: dict[str, int]  # user -> usage minutes
    latency: LatencyCounts
    active: dict[str, UserMasks]  # template -> user -> active half-hours
    template_tools: dict[str, ToolMinutes]
    latency_users: dict[str, list[str]]  # template -> users with latency samples
    # Half-hours of the day holding any data (all templates); None: not recorded.
    span: int | None = None


@dataclass
class HalfHourCell:
    """One (template, user, half-hour) cell: 30-bit minute masks."""

    agent: int = 0  # minutes with any session report
    connected: bool = False  # some report that half-hour had connection_count > 0
    apps_union: int = 0  # minutes with any app in use
    kinds: list[int] = field(default_factory=lambda: [0] * KIND_COUNT)
    apps: dict[str, int] = field(default_factory=dict)  # app key -> minutes in use


@dataclass
class DayCells:
    """One day's cells, limited to the selected templates."""

    day: int
    cells: dict[tuple[str, str], dict[int, HalfHourCell]]  # (template, user) -> hh -> cell
    latency: dict[tuple[str, str], dict[int, Bins]]  # (template, user) -> hh -> bins
