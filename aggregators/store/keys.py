"""Every Redis key of the store, built in this one module.

Format version ``v4`` is part of every key, so a layout change can live beside
the old one while it is rebuilt.  (v1 kept per-sample guards forever, a sums
hash per day and a set of cells; v2 kept a cell's masks in one decimal field
each; v3 kept a whole day under one hash tag; their keys are not read.)

Rollups live in numbered **generations** (``cis:v4:g<N>:...``, ``Keyspace``):
the pointer ``generation_pointer()`` names the live one, and a rebuild fills
the next generation from the topics while the live one serves, then moves
the pointer.  Keys that one command or script touches together share a Redis
Cluster hash tag:

* ``{d<day>:<bucket>}`` - one **bucket** of one UTC day: the cells, latency
  guards and day aggregates of the users whose id hashes to that bucket
  (``bucket_of``), the day's builds and their parameter definitions in bucket
  0.  A generation splits each day into ``Keyspace.buckets`` buckets (1 on one
  Redis: the tag is then ``{d<day>}``), so a Redis Cluster spreads even today's
  writes over its shards.  A user's data of a day lives in one bucket, so the
  caps over its templates stay inside one script call; per-user aggregates of
  different buckets never share a user, and readers merge the buckets' sums.
  The rollup script updates one bucket per call, so its keys all live in one
  slot; a batch makes one call per (day, bucket), pipelined.
* ``{meta}`` - user profiles and the app catalogue (newest wins, any age),
  the index of days, worker heartbeats, each generation's bucket count.

Scripts are handed every key they touch (``rollup_keys``, ``bucket_keys``):
they derive nothing they were not told of, as Redis requires for cluster
routing and key ACLs; ``tests`` check both agree.

The Coder importer's positions live here too (``coder_import_positions``), under
a root of their own so the store's rebuild never deletes them.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

VERSION = "v4"
ROOT = f"cis:{VERSION}"
OLDER_VERSIONS = ("v1", "v2", "v3")  # formats whose keys a finished rebuild deletes
ALL = "all"
MAX_BUCKETS = 256
HALF_HOURS = 48
CODER_IMPORT_VERSION = "v1"
CODER_IMPORT_ROOT = f"cis:coderimport:{CODER_IMPORT_VERSION}"


def bucket_of(user_id: str, buckets: int) -> int:
    """The bucket of a user's data of any day: a stable hash of its id."""
    return zlib.crc32(user_id.encode()) % buckets if buckets > 1 else 0


def layouts() -> str:
    """Hash generation -> buckets per day it was written with (``generations``)."""
    return f"{ROOT}:{{meta}}:layout"


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
    buckets: int = 1

    @property
    def root(self) -> str:
        return f"{ROOT}:g{self.generation}"

    def pattern(self) -> str:
        """Glob of every key of the generation (to delete it)."""
        return f"{self.root}:*"

    def bucket(self, user_id: str) -> int:
        return bucket_of(user_id, self.buckets)

    def day_prefix(self, day: int, bucket: int = 0) -> str:
        if self.buckets == 1:
            return f"{self.root}:{{d{day}}}:"
        return f"{self.root}:{{d{day}:{bucket}}}:"

    def day_templates(self, day: int, bucket: int = 0) -> str:
        """Set of templates with any data in the bucket that day (the scripts' routing key)."""
        return self.day_prefix(day, bucket) + "tpls"

    def day_user_templates(self, day: int, bucket: int = 0) -> str:
        """Hash user -> ``t1|t2|...``: the templates where the user has a cell or latency
        samples that day (the cells to read, and the caps over templates)."""
        return self.day_prefix(day, bucket) + "ut"

    def cell(self, day: int, template_id: str, user_id: str) -> str:
        """Hash of one (template, user)'s cells of the day: field ``<hh>`` a half-hour's
        minute masks and packed latency bins as one text, ``<hh>|<app key>`` an app's
        minutes (layouts: ``codec``)."""
        return self.day_prefix(day, self.bucket(user_id)) + f"c:{template_id}:{user_id}"

    def latency_guards(self, day: int, template_id: str, user_id: str, hh: int | str) -> str:
        """Set of the 64-bit id digests of one half-hour's latency samples already counted
        (an intset: 8 bytes a sample).  Expires a dedupe horizon after its last write: the
        one state that grows with every sample.  ``hh`` may be a glob (``"*"``)."""
        return self.day_prefix(day, self.bucket(user_id)) + f"l:{template_id}:{user_id}:{hh}"

    def day_agg(self, day: int, scope: str, part: str, bucket: int = 0) -> str:
        """Day aggregate hash.  ``scope`` is a template id or ``all``; ``part`` one of
        ``a`` (templates only: user -> 48-bit active half-hour mask and usage minutes in one
        integer; readers OR the masks for ``all``), ``m`` (``all`` only: user -> usage minutes
        capped over templates), ``x`` (builtin/app minute totals and app run masks), ``l``
        (templates only: user -> packed latency bins; readers sum them for ``all``).  Each
        bucket has its own: readers add the buckets' totals and join their users.
        """
        return self.day_prefix(day, bucket) + f"g:{scope}:{part}"

    def day_builds(self, day: int) -> str:
        """Hash ``template|workspace|build_number`` -> build JSON, by the build's creation day
        (bucket 0, as every key of the day that is not a user's)."""
        return self.day_prefix(day) + "builds"

    def day_param_defs(self, day: int) -> str:
        """Hash digest -> parameter definition JSON (name, texts, options) of the day's builds."""
        return self.day_prefix(day) + "pdefs"

    def day_version(self, day: int, bucket: int = 0) -> str:
        """Counter the rollup script bumps whenever a call changed the bucket (a day's
        version, on which frames key, is the sum of its buckets': counters only grow)."""
        return self.day_prefix(day, bucket) + "ver"

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

    # --- what each script call touches -------------------------------------------------

    def rollup_keys(
        self,
        day: int,
        bucket: int,
        templates: Iterable[str],
        cells: Iterable[tuple[str, str]],
        guards: Iterable[tuple[str, str, int]],
        builds: bool,
    ) -> list[str]:
        """Every key a ``rollup.lua`` call may touch, the routing key first: the bucket's
        sets, version and all-scope aggregates, each template's aggregates, each
        (template, user) cell, each (template, user, half-hour) latency guard set and, with
        builds (bucket 0), the builds, their definitions and the builds version."""
        p = self.day_prefix(day, bucket)
        out = [p + "tpls", p + "ut", p + "ver", p + "g:all:m", p + "g:all:x"]
        for t in templates:
            out += (f"{p}g:{t}:a", f"{p}g:{t}:x", f"{p}g:{t}:l")
        out += [f"{p}c:{t}:{u}" for t, u in cells]
        out += [f"{p}l:{t}:{u}:{hh}" for t, u, hh in guards]
        if builds:
            out += (p + "builds", p + "pdefs", p + "bver")
        return out

    def bucket_keys(
        self, day: int, bucket: int, templates: Sequence[str], users: Mapping[str, Sequence[str]]
    ) -> list[str]:
        """Every key of one bucket of a day as its template set (``templates``) and user
        templates (``users``: user -> templates) name them, the routing key first: what
        ``drop_day.lua`` removes (latency guards of every half-hour, as they may outlive
        the cells they guard within the dedupe horizon)."""
        p = self.day_prefix(day, bucket)
        out = [p + "tpls", p + "ut", p + "ver", p + "g:all:m", p + "g:all:x"]
        for t in templates:
            out += (f"{p}g:{t}:a", f"{p}g:{t}:x", f"{p}g:{t}:l")
        for u, ts in users.items():
            for t in ts:
                out.append(f"{p}c:{t}:{u}")
                out += [f"{p}l:{t}:{u}:{hh}" for hh in range(HALF_HOURS)]
        if bucket == 0:
            out += (p + "builds", p + "pdefs", p + "bver")
        return out


def coder_import_source_id(host: str, port: str, dbname: str) -> str:
    """A short stable name of a Coder database (credentials never enter it)."""
    digest = hashlib.sha256(f"{host}\0{port}\0{dbname}".encode()).hexdigest()
    return digest[:16]


def coder_import_positions(source: str, topic_prefix: str) -> str:
    """Hash: table -> JSON position (``streams.coder_import.positions``), one per (Coder
    database, topic prefix): the positions are where *that* database's rows were produced
    to *those* topics; another prefix, or another database, starts from nothing.  Its own
    root and version (``cis:coderimport:v1:...``): the store's rebuild, which deletes
    ``cis:v<N>:...`` keys of older formats and old generations, never touches it."""
    prefix = hashlib.sha256(topic_prefix.encode()).hexdigest()[:8]
    return f"{CODER_IMPORT_ROOT}:{{{source}}}:{prefix}:positions"
