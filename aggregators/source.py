"""What the read path needs from storage, as a Protocol over typed records (pure).

The Redis adapter (``aggregators.store.RedisSource``) implements it; tests use
an in-memory fake.  Each method is one or two round trips; the reader
(``aggregators.reader``) decides what to ask for and caches what it folded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aggregators.frames import DayFrame, UserIndex
from aggregators.parameters import BuildField, StoredBuild
from aggregators.records import Catalogue, DayAggregates, DayCells, Parts
from aggregators.reports import Profile

# A version is an opaque token that changes whenever what it versions changes
# (None: nothing written yet).
Version = str | None
Stamp = tuple[object, ...]  # versions a frame was built at


@dataclass(frozen=True)
class Snapshot:
    """Versions of everything a window may read, taken at one moment."""

    days: tuple[int, ...]  # days holding data, ascending
    day_versions: Mapping[int, Version]
    catalogue_version: Version  # moves when an app's name or icon changes
    users_version: Version  # moves when a user's name or avatar changes


@dataclass(frozen=True)
class DayRead:
    """Read one day: its aggregates when ``whole`` (the window covers the whole
    day), else its cells.  ``templates`` None means every template."""

    day: int
    whole: bool
    templates: tuple[str, ...] | None
    parts: Parts
    users: tuple[str, ...] | None = None  # cells of these users only (None: everyone's)


# Whole days: one aggregate of the ``all`` scope, or one per selected template.
DayData = list[DayAggregates] | DayCells


class RollupSource(Protocol):
    async def snapshot(self, first_day: int, stop_day: int) -> Snapshot:
        """Days in ``[first_day, stop_day)`` holding data, with all versions."""
        ...

    async def read_days(self, reads: Sequence[DayRead]) -> list[DayData]:
        """The requested days, in the order asked."""
        ...

    async def catalogue(self) -> Catalogue: ...

    async def profiles(self) -> dict[str, Profile]: ...

    async def template_names(self) -> dict[str, tuple[str, str]]:
        """Template id -> (template name, organization name) of templates events named."""
        ...

    async def shared_frames(
        self, wanted: Sequence[tuple[int, str]], index_of: UserIndex
    ) -> list[tuple[Stamp, DayFrame] | None]:
        """Frames other readers folded, by (day, window shape), with their stamps."""
        ...

    async def share_frames(self, frames: Sequence[tuple[int, str, Stamp, DayFrame]]) -> None:
        """Offer folded frames (day, shape, stamp, frame) to other readers."""
        ...

    async def build_versions(self, days: Sequence[int]) -> list[Version]:
        """Each day's builds version: it moves only when one of the day's builds changed."""
        ...

    async def build_fields(self, days: Sequence[int]) -> list[list[BuildField]]:
        """Which builds each day holds (by creation day), without their payloads."""
        ...

    async def builds(self, wanted: Mapping[int, Sequence[str]]) -> dict[str, StoredBuild]:
        """The named builds (``BuildField`` names) of each day, decoded."""
        ...
