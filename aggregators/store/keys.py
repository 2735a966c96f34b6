"""Every Redis key of the store, built in this one module.

Format version ``v3`` is part of every key, so a layout change can live beside
the old one while it is rebuilt.  (v1 kept per-sample guards forever, a sums
hash per day and a set of cells; v2 kept a cell's masks in one decimal field
each; their keys are not read.)

Rollups live in numbered **generations** (``cis:v3:g<N>:...``, ``Keyspace``):
the pointer ``generation_pointer()`` names the live one, and a rebuild fills
the next generation from the topics while the live one serves, then moves
the pointer.  Keys that one command or script touches together share a Redis
Cluster hash tag:

* ``{d<day>}`` - everything of one UTC day (cells, latency guards, day
  aggregates, builds and their parameter definitions).  The rollup script
  updates one day per call, so its keys all live in one slot; a batch
  spanning several days makes one call per day, pipelined in one round trip.
* ``{meta}`` - user profiles and the app catalogue (newest wins, any age),
  the index of days, worker heartbeats.

The rollup script (``rollup.lua``) derives a day's keys from ``day_prefix``
by appending the same suffixes as the methods below; ``tests`` check both
agree.
"""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "v3"
ROOT = f"cis:{VERSION}"
OLDER_VERSIONS = ("v1", "v2")  # formats whose keys a finished rebuild deletes
ALL = "all"


def generation_pointer() -> str:
    """Integer: the live generation (missing = 0).  Moved only by a finished rebuild."""
    return f"{ROOT}:{{meta}}:generation"


def rebuild_state() -> str:
    """JSON of the rebuild in progress (its generation and consumer group), for resuming."""
    return f"{ROOT}:{{meta}}:rebuild"


def worker_heartbeat() -> str:
    """Hash worker id -> JSON with assigned partitions, generation and a timestamp."""
    return f"{ROOT}:{{meta}}:workers"


@dataclass(frozen=True)
class Keyspace:
    """The keys of one generation of rollups."""

    generation: int = 0

    @property
    def root(self) -> str:
        return f"{ROOT}:g{self.generation}"

    def pattern(self) -> str:
        """Glob of every key of the generation (to delete it)."""
        return f"{self.root}:*"

    def day_prefix(self, day: int) -> str:
        return f"{self.root}:{{d{day}}}:"

    def day_templates(self, day: int) -> str:
        """Set of templates with any data that day (also the script's routing key)."""
        return self.day_prefix(day) + "tpls"

    def day_user_templates(self, day: int) -> str:
        """Hash user -> ``t1|t2|...``: the templates where the user has a cell or latency
        samples that day (the cells to read, and the caps over templates)."""
        return self.day_prefix(day) + "ut"

    def cell(self, day: int, template_id: str, user_id: str) -> str:
        """Hash of one (template, user)'s cells of the day: field ``<hh>`` a half-hour's
        minute masks and packed latency bins as one text, ``<hh>|<app key>`` an app's
        minutes (layouts: ``codec``)."""
        return self.day_prefix(day) + f"c:{template_id}:{user_id}"

    def latency_guards(self, day: int, template_id: str, user_id: str, hh: int | str) -> str:
        """Set of the 64-bit id digests of one half-hour's latency samples already counted
        (an intset: 8 bytes a sample).  Expires a dedupe horizon after its last write: the
        one state that grows with every sample.  ``hh`` may be a glob (``"*"``)."""
        return self.day_prefix(day) + f"l:{template_id}:{user_id}:{hh}"

    def day_agg(self, day: int, scope: str, part: str) -> str:
        """Day aggregate hash.  ``scope`` is a template id or ``all``; ``part`` one of
        ``a`` (templates only: user -> 48-bit active half-hour mask and usage minutes in one
        integer; readers OR the masks for ``all``), ``m`` (``all`` only: user -> usage minutes
        capped over templates), ``x`` (builtin/app minute totals and app run masks), ``l``
        (templates only: user -> packed latency bins; readers sum them for ``all``).
        """
        return self.day_prefix(day) + f"g:{scope}:{part}"

    def day_builds(self, day: int) -> str:
        """Hash ``template|workspace|build_number`` -> build JSON, by the build's creation day."""
        return self.day_prefix(day) + "builds"

    def day_param_defs(self, day: int) -> str:
        """Hash digest -> parameter definition JSON (name, texts, options) of the day's builds."""
        return self.day_prefix(day) + "pdefs"

    def day_version(self, day: int) -> str:
        """Counter the rollup script bumps whenever a call changed the day (frames key on it)."""
        return self.day_prefix(day) + "ver"

    def day_builds_version(self, day: int) -> str:
        """Counter the rollup script bumps whenever a call changed one of the day's builds."""
        return self.day_prefix(day) + "bver"

    def day_frame(self, day: int, shape: str) -> str:
        """A folded day frame (``frame_codec``) of one window shape, shared by API processes."""
        return self.day_prefix(day) + f"f:{shape}"

    def catalogue_version(self) -> str:
        """Counter bumped whenever an app's rendered name or icon changes (or one appears)."""
        return f"{self.root}:{{meta}}:appsver"

    def users_version(self) -> str:
        """Counter bumped whenever a user's rendered name or avatar changes (or a user appears)."""
        return f"{self.root}:{{meta}}:usersver"

    def template_names(self) -> str:
        """Hash template id -> newest ``{"n": template name, "c": organization name}``."""
        return f"{self.root}:{{meta}}:tnames"

    def template_names_version(self) -> str:
        """Counter bumped whenever a template's names change (or a named template appears)."""
        return f"{self.root}:{{meta}}:tnamesver"

    def users(self) -> str:
        """Hash user id -> newest profile JSON."""
        return f"{self.root}:{{meta}}:users"

    def app_catalogue(self) -> str:
        """Hash ``template|slug`` -> newest app display name and icon JSON."""
        return f"{self.root}:{{meta}}:apps"

    def data_days(self) -> str:
        """Sorted set of UTC days holding any data (score = day): queries skip empty days."""
        return f"{self.root}:{{meta}}:days"
