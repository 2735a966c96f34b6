"""Every Redis key of the store, built in this one module.

Format version ``v1`` is part of every key, so a layout change can live beside
the old one while it is rebuilt.  Keys that one command or script touches
together share a Redis Cluster hash tag:

* ``{d<day>}`` - everything of one UTC day (cells, latency guards, day
  aggregates, builds).  The rollup script updates one day per call, so its
  keys all live in one slot; a batch spanning several days makes one call per
  day, pipelined in one round trip.
* ``{meta}`` - user profiles and the app catalogue (newest wins, any age).

The rollup script (``rollup.lua``) derives a day's keys from ``day_prefix``
by appending the same suffixes as the functions below; ``tests`` check both
agree.
"""

from __future__ import annotations

VERSION = "v1"
ROOT = f"cis:{VERSION}"


def day_prefix(day: int) -> str:
    return f"{ROOT}:{{d{day}}}:"


def day_templates(day: int) -> str:
    """Set of templates with any data that day (also the script's routing key)."""
    return day_prefix(day) + "tpls"


def day_cells(day: int) -> str:
    """Set of ``template|user`` pairs with a cell or latency samples that day."""
    return day_prefix(day) + "cells"


def cell(day: int, template_id: str, user_id: str) -> str:
    """Hash of one (template, user)'s cells of the day, fields ``<hh>|<part>``."""
    return day_prefix(day) + f"c:{template_id}:{user_id}"


def cell_latency(day: int, template_id: str, user_id: str) -> str:
    """Hash ``<hh>|<event id digest>`` -> sketch bin: the latency samples, once each."""
    return day_prefix(day) + f"l:{template_id}:{user_id}"


def day_agg(day: int, scope: str, part: str) -> str:
    """Day aggregate hash.  ``scope`` is a template id or ``all``; ``part`` one of
    ``a`` (user -> 48-bit active half-hour mask), ``m`` (user -> usage minutes),
    ``x`` (builtin/app minute totals and app run masks), ``l`` (user -> latency bins JSON).
    """
    return day_prefix(day) + f"g:{scope}:{part}"


def day_sums(day: int) -> str:
    """Per (half-hour, user) sums over templates, kept only to maintain the 30-minute caps."""
    return day_prefix(day) + "sum"


def day_builds(day: int) -> str:
    """Hash ``template|workspace|build_number`` -> build JSON, by the build's creation day."""
    return day_prefix(day) + "builds"


def day_version(day: int) -> str:
    """Counter the rollup script bumps whenever a call changed the day: cached frames key on it."""
    return day_prefix(day) + "ver"


def day_builds_version(day: int) -> str:
    """Counter the rollup script bumps whenever a call changed one of the day's builds."""
    return day_prefix(day) + "bver"


def day_frame(day: int, shape: str) -> str:
    """A folded day frame (``frame_codec``) of one window shape, shared by API processes."""
    return day_prefix(day) + f"f:{shape}"


def catalogue_version() -> str:
    """Counter bumped whenever an app's rendered display name or icon changes (or one appears)."""
    return f"{ROOT}:{{meta}}:appsver"


def users_version() -> str:
    """Counter bumped whenever a user's rendered name or avatar changes (or a user appears)."""
    return f"{ROOT}:{{meta}}:usersver"


def users() -> str:
    """Hash user id -> newest profile JSON."""
    return f"{ROOT}:{{meta}}:users"


def app_catalogue() -> str:
    """Hash ``template|slug`` -> newest app display name and icon JSON."""
    return f"{ROOT}:{{meta}}:apps"


def data_days() -> str:
    """Sorted set of UTC days holding any data (score = day): queries skip empty days."""
    return f"{ROOT}:{{meta}}:days"


def worker_heartbeat() -> str:
    """Hash worker id -> JSON with assigned partitions and a timestamp (readiness)."""
    return f"{ROOT}:{{meta}}:workers"


ALL = "all"
