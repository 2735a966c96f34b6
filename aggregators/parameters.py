"""``parameters_usage`` of the templates report (insights-api.md 4.6 and 5.5), pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import orjson

Json = dict[str, object]
# (name, type, display_name, description, options as compact JSON): identical
# definitions across templates form one entry; the options text breaks ties.
DefinitionKey = tuple[str, str, str, str, str]
# (template, workspace, build number, the store's opaque name of the build)
BuildField = tuple[str, str, int, str]


class ParameterDecodeError(ValueError):
    """A stored build's parameters cannot be read (insights-api.md section 9)."""


@dataclass(frozen=True)
class ParamUse:
    key: DefinitionKey
    options: list[Json]
    value: str


@dataclass(frozen=True)
class StoredBuild:
    template_id: str
    workspace_id: str
    build_number: int
    time_us: int
    parameters: tuple[ParamUse, ...]


def param_uses(raw: Iterable[Json]) -> tuple[ParamUse, ...]:
    """Normalise a build's parameters once, when the build is decoded (then cached)."""
    out = []
    for p in raw:
        opts = _options(p)
        key = (
            str(p.get("name", "")),
            str(p.get("type", "")),
            str(p.get("display_name", "")),
            str(p.get("description", "")),
            orjson.dumps(opts).decode(),
        )
        out.append(ParamUse(key, opts, str(p.get("value", ""))))
    return tuple(out)


def latest_builds(
    builds: Iterable[StoredBuild], start_ns: int, end_ns: int, templates: frozenset[str] | None
) -> list[StoredBuild]:
    """The greatest build number per (template, workspace) among builds created in the window."""
    best: dict[tuple[str, str], StoredBuild] = {}
    for b in builds:
        if templates is not None and b.template_id not in templates:
            continue
        if not start_ns <= b.time_us * 1000 < end_ns:
            continue
        key = (b.template_id, b.workspace_id)
        cur = best.get(key)
        if cur is None or b.build_number > cur.build_number:
            best[key] = b
    return list(best.values())


@dataclass(frozen=True)
class DayBuilds:
    """One day's stored builds as arrays: ids of (template, workspace) and of templates."""

    names: list[str]
    keys: npt.NDArray[np.int64]
    templates: npt.NDArray[np.int64]
    numbers: npt.NDArray[np.int64]


def index_day_builds(fields: list[BuildField], intern: dict[tuple[str, ...], int]) -> DayBuilds:
    """``intern`` gives process-wide ids, so arrays of different days compare."""

    def ids(items: list[tuple[str, ...]]) -> npt.NDArray[np.int64]:
        return np.array([intern.setdefault(i, len(intern)) for i in items], dtype=np.int64)

    return DayBuilds(
        [f[3] for f in fields],
        ids([(f[0], f[1]) for f in fields]),
        ids([(f[0],) for f in fields]),
        np.array([f[2] for f in fields], dtype=np.int64),
    )


def candidate_build_fields(
    days: dict[int, DayBuilds],
    interior_days: set[int],
    selected: npt.NDArray[np.int64] | None,
) -> dict[int, list[str]]:
    """Which stored builds (``template|workspace|build_number`` fields) can win a window.

    On days wholly inside the window every build qualifies, so only each workspace's
    greatest build number there can win; edge days keep all their builds because
    their exact times still decide.  ``selected`` holds the interned ids of the
    filter's templates (None: all).
    """
    out: dict[int, list[str]] = {}
    inner: list[tuple[int, DayBuilds]] = []
    for day, db in days.items():
        keep = np.ones(len(db.names), dtype=np.bool_)
        if selected is not None:
            keep = np.isin(db.templates, selected)
        if day in interior_days:
            inner.append((day, db))
        elif keep.any():
            out[day] = [db.names[i] for i in np.flatnonzero(keep)]
    if not inner:
        return out
    keys = np.concatenate([db.keys for _, db in inner])
    numbers = np.concatenate([db.numbers for _, db in inner])
    owner = np.concatenate([np.full(len(db.names), i) for i, (_, db) in enumerate(inner)])
    local = np.concatenate([np.arange(len(db.names)) for _, db in inner])
    if selected is not None:
        chosen = np.isin(np.concatenate([db.templates for _, db in inner]), selected)
        keys, numbers, owner, local = keys[chosen], numbers[chosen], owner[chosen], local[chosen]
    order = np.lexsort((numbers, keys))  # by workspace, then build number
    ordered = keys[order]
    last = np.ones(len(order), dtype=np.bool_)
    last[:-1] = ordered[1:] != ordered[:-1]
    for w in order[last]:
        day, db = inner[owner[w]]
        out.setdefault(day, []).append(db.names[local[w]])
    return out


def _options(param: Json) -> list[Json]:
    raw = param.get("options") or []
    assert isinstance(raw, list)
    return [
        {
            "name": o.get("name", ""),
            "description": o.get("description", ""),
            "value": o.get("value", ""),
            "icon": o.get("icon", ""),
        }
        for o in raw
    ]


def parameters_usage(builds: Iterable[StoredBuild], describe: Callable[[str], str]) -> list[Json]:
    """Group identical parameter definitions across templates and count their values."""
    groups: dict[DefinitionKey, set[str]] = defaultdict(set)
    values: dict[DefinitionKey, dict[str, int]] = defaultdict(dict)
    options: dict[DefinitionKey, list[Json]] = {}
    for b in builds:
        for use in b.parameters:
            groups[use.key].add(b.template_id)
            options[use.key] = use.options
            counts = values[use.key]
            counts[use.value] = counts.get(use.value, 0) + 1
    out: list[Json] = []
    for key in sorted(groups):
        name, type_, display, description, _ = key
        entry: Json = {
            "template_ids": sorted(groups[key]),
            "display_name": display,
            "name": name,
            "type": type_,
            "description": describe(description),
        }
        if options[key]:
            entry["options"] = options[key]
        entry["values"] = [{"value": v, "count": c} for v, c in sorted(values[key].items())]
        out.append(entry)
    return out
