"""Bytes and hash fields of the store <-> the core's typed records.

The field layouts written by ``rollup.lua`` and ``meta.lua`` are decoded here
and nowhere else:

* cell hash ``c:<t>:<u>``: ``<hh>|a`` agent minutes with the connected flag as bit 30,
  ``<hh>|u`` union of app minutes, ``<hh>|k|<i>`` builtin kind i,
  ``<hh>|p|<app key>`` one app (all 30-bit minute masks), ``<hh>|l`` the
  half-hour's latency bins (``unpack_bins``);
* ``ut``: user -> ``t1|t2|...``, the templates with a cell of the user that day;
* day aggregate ``g:<scope>:x``: ``k|<i>`` and ``p|<key>`` minutes; in a
  template scope ``r|<key>|<user>`` 48-bit half-hour masks of app runs, in the
  ``all`` scope ``h``, the half-hours holding any data;
* ``g:<scope>:a`` / ``:m``: user -> integer; ``g:<template>:l``: user -> packed
  bins (``latency_counts``);
* builds ``<t>|<workspace>|<build number>`` -> JSON ``[time_us, event id,
  [[definition digest, value], ...]]``, the definitions in ``pdefs`` (digest ->
  JSON), once per day;
* profiles and catalogue: ``{"n": name, "c": icon or avatar}``.

Replies may be ``str`` (clients with ``decode_responses=True``, the API's)
or ``bytes`` (the worker's): ``text`` and ``str_hash`` accept both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from aggregators.model import BuildEvent, BuildParameter
from aggregators.ops import MetaUpdate
from aggregators.parameters import BuildField, ParameterDecodeError, StoredBuild, param_uses
from aggregators.records import Bins, Catalogue, HalfHourCell, LatencyCounts, ToolMinutes
from aggregators.reports import Profile

SEP = "|"  # field separator inside hash fields; ids never contain it
_CONNECTED = 1 << 30  # bit of a cell's agent field: some report had a connection
_MINUTES = _CONNECTED - 1
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


def latency_counts(raw: Hash) -> LatencyCounts:
    """A day aggregate ``l`` hash (user -> packed bins) as one table, decoded with a few
    array operations for all users at once (``unpack_bins`` is the one-string reference)."""
    if not raw:
        return LatencyCounts.empty()
    users = tuple(raw)
    texts = [raw[u] for u in users]
    codes = np.frombuffer("".join(texts).encode(), dtype=np.uint8).astype(np.int64)
    owner = np.repeat(np.arange(len(texts)), [len(t) for t in texts])
    # A one-character entry stands for two one-digit varints: expand it into those.
    joint = codes >= _JOINT
    width = np.where(joint, 2, 1)
    codes, owner = np.repeat(codes, width), np.repeat(owner, width)
    first = np.cumsum(width) - width  # where each original character landed
    pair = first[joint]
    gap, count = (codes[pair] - _JOINT) // 3 + 1, (codes[pair] - _JOINT) % 3 + 1
    codes[pair], codes[pair + 1] = _END + gap, _END + count
    # Varints: digits least significant first, each value ends at a terminal digit.
    end = codes < _MORE
    digit = np.where(end, codes - _END, codes - _MORE)
    value_of: npt.NDArray[np.int64] = np.cumsum(end) - end
    ends = np.flatnonzero(end)
    starts = np.concatenate(([0], ends[:-1] + 1))
    shift = 5 * (np.arange(len(codes)) - starts[value_of])
    values = np.bincount(value_of, weights=digit << shift).astype(np.int64)
    # Values pair up as (gap, count); a user's first gap is its zigzagged first bin.
    gaps, counts = values[0::2], values[1::2]
    row_user = owner[ends[1::2]]
    lead = np.ones(len(gaps), dtype=np.bool_)
    lead[1:] = row_user[1:] != row_user[:-1]
    z = gaps[lead]
    gaps = gaps.copy()
    gaps[lead] = np.where(z % 2 == 0, z >> 1, -((z + 1) >> 1))
    total = np.cumsum(gaps)
    base = np.maximum.accumulate(np.where(lead, np.arange(len(gaps)), 0))
    bins = total - (total[base] - gaps[base])
    return LatencyCounts(users, row_user, bins, counts)


def cell(raw: Hash) -> tuple[dict[int, HalfHourCell], dict[int, Bins]]:
    """A cell hash: its half-hours' minute masks, and the latency bins of half-hours with
    samples."""
    out: dict[int, HalfHourCell] = {}
    latency: dict[int, Bins] = {}
    for fld, value_text in raw.items():
        hh_s, _, part = fld.partition(SEP)
        hh = int(hh_s)
        if part == "l":
            latency[hh] = unpack_bins(value_text)
            continue
        st = out.get(hh)
        if st is None:
            st = out[hh] = HalfHourCell()
        value = int(value_text)
        if part == "a":
            st.agent = value & _MINUTES
            st.connected = value >= _CONNECTED
        elif part == "u":
            st.apps_union = value
        elif part.startswith("k" + SEP):
            st.kinds[int(part[2:])] = value
        elif part.startswith("p" + SEP):
            st.apps[part[2:]] = value
    return out, latency


def cell_members(raw: Any) -> list[str]:
    """The ``template|user`` pairs of a day's ``ut`` hash, sorted."""
    return sorted(
        pair_field(t, text(user)) for user, ts in raw.items() for t in text(ts).split(SEP)
    )


# Packed bins (rollup.lua's pack_bins): entries sorted by bin.  The first is a varint of the
# zigzagged bin and one of the count; each next one is one character 'p'..'{' when its gap to the
# previous bin is 1-4 and its count 1-3, else a varint of the gap and one of the count.  A varint
# is base-32 digits, least significant first: '0'..'O' ends it, 'P'..'o' continues it.
_END, _MORE, _JOINT = ord("0"), ord("P"), ord("p")


def unpack_bins(packed: str) -> Bins:
    out: Bins = {}
    values: list[int] = []  # gap (or zigzagged first bin), count, gap, count, ...
    v = shift = 0
    for code in packed.encode():
        if code >= _JOINT:
            values += ((code - _JOINT) // 3 + 1, (code - _JOINT) % 3 + 1)
        elif code >= _MORE:
            v |= (code - _MORE) << shift
            shift += 5
        else:
            values.append(v | (code - _END) << shift)
            v = shift = 0
    prev = 0
    for i in range(0, len(values), 2):
        d = values[i]
        b = prev + d if i else (d >> 1 if d % 2 == 0 else -((d + 1) >> 1))
        key = str(b)
        out[key] = out.get(key, 0) + values[i + 1]
        prev = b
    return out


def pack_bins(bins: Mapping[int, int]) -> str:
    """The packed text of ``{bin: count}`` (as the script writes it; for tests and tools)."""
    out: list[str] = []
    prev: int | None = None
    for b in sorted(bins):
        count = bins[b]
        if prev is not None and b - prev <= 4 and count <= 3:
            out.append(chr(_JOINT + (b - prev - 1) * 3 + count - 1))
        else:
            d = (2 * b if b >= 0 else -2 * b - 1) if prev is None else b - prev
            for v in (d, count):
                while v >= 32:
                    out.append(chr(_MORE + v % 32))
                    v //= 32
                out.append(chr(_END + v))
        prev = b
    return "".join(out)


def catalogue(raw: Any) -> Catalogue:
    out: Catalogue = {}
    for fld, value in raw.items():
        entry = orjson.loads(value)
        out[split_pair(text(fld))] = (entry["n"], entry["c"])
    return out


def template_names(raw: Any) -> dict[str, tuple[str, str]]:
    """Template id -> (template name, organization name), as the newest naming event said."""
    out = {}
    for template, value in raw.items():
        entry = orjson.loads(value)
        out[text(template)] = (entry["n"], entry["c"])
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
    """``rollup.lua``'s build upsert: newest report of one build number wins.  Parameter
    definitions travel beside the value, named by digest, and are stored once per day."""
    defs: dict[str, str] = {}
    params = []
    for p in event.parameters:
        definition = orjson.dumps(_definition_json(p)).decode()
        digest = hashlib.blake2b(definition.encode(), digest_size=6).hexdigest()
        defs[digest] = definition
        params.append([digest, p.value])
    value = orjson.dumps([event.time_us, event.id, params]).decode()
    return ["b", build_field(event), str(event.time_us), event.id, value, list(defs.items())]


def _definition_json(p: BuildParameter) -> dict[str, object]:
    out = p._asdict()
    del out["value"]
    out["options"] = [o._asdict() for o in p.options]
    return out


def param_defs(raw: Any) -> dict[str, Any]:
    """A day's ``pdefs`` hash: digest -> definition (decoded JSON)."""
    return {text(k): orjson.loads(v) for k, v in raw.items()}


def stored_build(name: str, value: Any, defs: Mapping[str, Any]) -> StoredBuild:
    template, workspace, number, _ = parse_build_field(name)
    try:
        time_us, _, params = orjson.loads(value)
        uses = param_uses([{**defs[digest], "value": v} for digest, v in params])
        return StoredBuild(template, workspace, number, int(time_us), uses)
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise ParameterDecodeError(f"build {name}: {type(exc).__name__}") from exc


def span(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def members(raw: Iterable[Any]) -> list[str]:
    return sorted(text(m) for m in raw)


def versions(raw: Mapping[int, Any]) -> dict[int, str | None]:
    return {day: None if v is None else text(v) for day, v in raw.items()}


def meta_op(update: MetaUpdate) -> list[object]:
    """``meta.lua``'s newest-wins upsert of a profile (``u``), a catalogue entry (``a``) or
    a template's names (``t``)."""
    fld = update.owner if update.kind != "a" else pair_field(update.owner, update.app_key)
    return [update.kind, fld, str(update.time_us), update.event_id, update.name, update.icon]
