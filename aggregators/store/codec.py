"""Bytes and hash fields of the store <-> the core's typed records.

The field layouts written by ``rollup.lua`` and ``meta.lua`` are decoded here
and nowhere else:

* cell hash ``c:<t>:<u>``: ``<hh>|a`` agent minutes, ``<hh>|c`` connected flag,
  ``<hh>|u`` union of app minutes, ``<hh>|k|<i>`` builtin kind i,
  ``<hh>|p|<app key>`` one app (all 30-bit minute masks);
* latency guard hash ``l:<t>:<u>``: ``<hh>|<id digest>`` -> sketch bin;
* day aggregate ``g:<scope>:x``: ``k|<i>`` and ``p|<key>`` minutes,
  ``r|<key>|<user>`` 48-bit half-hour masks of app runs; in the ``all`` scope
  also ``h``, the half-hours holding any data;
* ``g:<scope>:a`` / ``:m``: user -> integer; ``g:<scope>:l``: user -> bins JSON;
* builds ``<t>|<workspace>|<build number>`` -> ``{"t", "i", "p": payload JSON}``;
* profiles and catalogue: ``{"n": name, "c": icon or avatar}``.

Replies may be ``str`` (clients with ``decode_responses=True``, the API's)
or ``bytes`` (the worker's): ``text`` and ``str_hash`` accept both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from aggregators.model import BuildEvent, BuildParameter
from aggregators.ops import MetaUpdate
from aggregators.parameters import BuildField, ParameterDecodeError, StoredBuild, param_uses
from aggregators.records import Bins, Catalogue, HalfHourCell, ToolMinutes
from aggregators.reports import Profile

SEP = "|"  # field separator inside hash fields; ids never contain it
SPAN_FIELD = "h"  # of the all-scope x aggregate: 48-bit mask of half-hours holding data
Hash = dict[str, str]


def text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def str_hash(raw: Any) -> Hash:
    """Decoded hash reply: clients made with ``decode_responses=True`` skip the work."""
    if not raw or isinstance(next(iter(raw)), str):
        return dict(raw)
    return {k.decode(): v.decode() for k, v in raw.items()}


def int_hash(raw: Hash) -> dict[str, int]:
    return {k: int(v) for k, v in raw.items()}


def pair_field(first: str, second: str) -> str:
    """``template|user`` members of a day's cell set, ``template|slug`` catalogue fields."""
    return first + SEP + second


def split_pair(member: str) -> tuple[str, str]:
    first, _, second = member.partition(SEP)
    return first, second


def tool_minutes(x: Hash) -> ToolMinutes:
    out = ToolMinutes()
    for fld, raw in x.items():
        tag = fld[0]
        if tag == "r":
            key, _, user = fld[2:].rpartition(SEP)
            out.runs.setdefault(key, {})[user] = int(raw)
        elif tag == "k":
            out.kinds[int(fld[2:])] = int(raw)
        elif tag == "p":
            out.apps[fld[2:]] = int(raw)
    return out


def latency_bins(raw: Hash) -> dict[str, Bins]:
    return {user: orjson.loads(value) for user, value in raw.items()}


def cell(raw: Hash) -> dict[int, HalfHourCell]:
    out: dict[int, HalfHourCell] = {}
    for fld, value_text in raw.items():
        hh_s, _, part = fld.partition(SEP)
        hh = int(hh_s)
        st = out.get(hh)
        if st is None:
            st = out[hh] = HalfHourCell()
        value = int(value_text)
        if part == "a":
            st.agent = value
        elif part == "c":
            st.connected = value == 1
        elif part == "u":
            st.apps_union = value
        elif part.startswith("k" + SEP):
            st.kinds[int(part[2:])] = value
        elif part.startswith("p" + SEP):
            st.apps[part[2:]] = value
    return out


def latency_samples(raw: Hash) -> list[tuple[int, str]]:
    return [(int(fld.partition(SEP)[0]), b) for fld, b in raw.items()]


def catalogue(raw: Any) -> Catalogue:
    out: Catalogue = {}
    for fld, value in raw.items():
        entry = orjson.loads(value)
        out[split_pair(text(fld))] = (entry["n"], entry["c"])
    return out


def profiles(raw: Any) -> dict[str, Profile]:
    out = {}
    for user, value in raw.items():
        entry = orjson.loads(value)
        out[text(user)] = Profile(entry["n"], entry["c"])
    return out


# -- builds -------------------------------------------------------------------


def build_field(event: BuildEvent) -> str:
    return SEP.join((event.template_id, event.workspace_id, str(event.build_number)))


def parse_build_field(name: str) -> BuildField:
    template, workspace, number = name.split(SEP)
    return template, workspace, int(number), name


def build_op(event: BuildEvent) -> list[object]:
    """``rollup.lua``'s build upsert: newest report of one build number wins."""
    payload = orjson.dumps(
        {
            "user_id": event.user_id,
            "build_number": event.build_number,
            "time_us": event.time_us,
            "parameters": [_parameter_json(p) for p in event.parameters],
        }
    ).decode()
    return ["b", build_field(event), str(event.time_us), event.id, payload]


def _parameter_json(p: BuildParameter) -> dict[str, object]:
    out = p._asdict()
    out["options"] = [o._asdict() for o in p.options]
    return out


def stored_build(name: str, value: Any) -> StoredBuild:
    template, workspace, _, _ = parse_build_field(name)
    try:
        payload = orjson.loads(orjson.loads(value)["p"])
        return StoredBuild(
            template,
            workspace,
            int(payload["build_number"]),
            int(payload["time_us"]),
            param_uses(payload["parameters"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise ParameterDecodeError(f"build {name}: {type(exc).__name__}") from exc


def span(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def members(raw: Iterable[Any]) -> list[str]:
    return sorted(text(m) for m in raw)


def versions(raw: Mapping[int, Any]) -> dict[int, str | None]:
    return {day: None if v is None else text(v) for day, v in raw.items()}


def meta_op(update: MetaUpdate) -> list[object]:
    """``meta.lua``'s newest-wins upsert of a profile (``u``) or catalogue entry (``a``)."""
    fld = update.owner if update.kind == "u" else pair_field(update.owner, update.app_key)
    return [update.kind, fld, str(update.time_us), update.event_id, update.name, update.icon]
