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

from dataclasses import dataclass, field
from typing import Literal

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
    latency: dict[str, Bins]  # user -> latency bins
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
    latency: dict[tuple[str, str], list[tuple[int, str]]]  # (template, user) -> (hh, bin)
