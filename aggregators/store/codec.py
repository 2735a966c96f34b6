"""Bytes and hash fields of the store <-> the core's typed records.

The field layouts written by ``rollup.lua`` and ``meta.lua`` are decoded here
and nowhere else:

* cell hash ``c:<t>:<u>``: ``<hh>`` the half-hour's minute masks as text (``half_hour``),
  then ``/`` and its packed latency bins (``unpack_cell_bins``) when it has samples;
  ``<hh>|<app key>`` one app's minute mask (one token); ``<hh>l`` the bins instead, when
  masks and bins together would be too long for a listpack hash value;
* ``ut``: user -> ``t1|t2|...``, the templates with a cell of the user that day;
* day aggregate ``g:<scope>:x``: ``k|<i>`` and ``p|<key>`` minutes; in a
  template scope ``r|<key>|<user>`` 48-bit half-hour masks of app runs, in the
  ``all`` scope ``h``, the half-hours holding any data;
* ``g:<template>:a``: user -> active half-hours (48-bit mask) * 10^4 + usage minutes
  (``usage``); ``g:all:m``: user -> capped usage minutes; ``g:<template>:l``: user -> packed
  bins (``latency_counts``);
* builds ``<t>|<workspace>|<build number>`` -> JSON ``[time_us, event id,
  definition number, value, ...]``, the definitions in ``pdefs`` (number -> JSON, once
  per day; ``#<digest>`` -> its number, ``#`` the last number given);
* profiles and catalogue: ``{"n": name, "c": icon or avatar}``.

Replies may be ``str`` (clients with ``decode_responses=True``, the API's)
or ``bytes`` (the worker's): ``text`` and ``str_hash`` accept both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise
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
FULL_MASK = (1 << 30) - 1  # every minute of a half-hour
USAGE_SCALE = 10_000  # the minutes' share of a usage value: a day has 1,440 of them
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


def usage(raw: Hash) -> tuple[dict[str, int], dict[str, int]]:
    """A template's ``a`` hash: (user -> active half-hours, user -> usage minutes)."""
    masks: dict[str, int] = {}
    minutes: dict[str, int] = {}
    for user, value in raw.items():
        masks[user], minutes[user] = divmod(int(value), USAGE_SCALE)
    return masks, minutes


def usage_value(mask: int, minutes: int) -> str:
    """``usage``'s inverse (as the script writes it; for tests and tools)."""
    return str(mask * USAGE_SCALE + minutes)


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
    symbols = _SYMBOL_BY_BYTE[np.frombuffer("".join(texts).encode(), dtype=np.uint8)]
    if len(symbols) and symbols.min() < 0:
        raise ValueError("day bins: a character outside the packing's symbols")
    # An entry symbol stands for two one-digit values, its gap and count: expand it into those.
    entry = symbols >= 2 * _OCTAL
    width = np.where(entry, 2, 1)
    first = np.cumsum(width) - width  # where each symbol landed
    owner = np.repeat(np.repeat(np.arange(len(texts)), [len(t) for t in texts]), width)
    digit = np.repeat(symbols % _OCTAL, width)
    end = np.repeat((symbols < _OCTAL) | entry, width)
    pair = first[entry]
    digit[pair], digit[pair + 1] = _ENTRY_GAP[symbols[entry]], _ENTRY_COUNT[symbols[entry]]
    # Varints: digits least significant first, each value ends at a terminal digit.
    value_of: npt.NDArray[np.int64] = np.cumsum(end) - end
    ends = np.flatnonzero(end)
    starts = np.concatenate(([0], ends[:-1] + 1))
    shift = 3 * (np.arange(len(digit)) - starts[value_of])
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
    apps: list[tuple[int, str, str]] = []
    for fld, value in raw.items():
        hh_s, sep, key = fld.partition(SEP)
        if sep:
            apps.append((int(hh_s), key, value))
        elif fld.endswith(_SPILLED):
            latency[int(fld[:-1])] = unpack_cell_bins(value)
        else:
            masks, _, bins = value.partition(_BINS)
            hh = int(fld)
            if bins:
                latency[hh] = unpack_cell_bins(bins)
            if masks:
                out[hh] = half_hour(masks)
    for hh, key, value in apps:
        st = out.get(hh)
        if st is None:
            st = out[hh] = HalfHourCell()
        st.apps[key] = _token(value, 0, 0)[0]
    return out, latency


# -- cell text (rollup.lua's masks_text, mask_token, pack_cell_bins) ---------------------------
#
# A half-hour's masks: "-" when no report was connected, then one token each for the agent
# minutes, builtin kinds 0-4 and the union of app minutes, trailing "." tokens left out.  A
# token is "." (none), "*" (all 30 minutes), "=" (the agent minutes), an upper then a lower
# letter for one run ("A".."^" its first minute, "a".."~" its last), or "#" and 6 base-32
# digits, least significant first.
_BINS, _SPILLED = "/", "l"
_RUN_FIRST, _RUN_LAST = ord("A"), ord("a")
_B32 = "0123456789abcdefghijklmnopqrstuv"


def mask_token(mask: int, agent: int = -1) -> str:
    if mask == 0:
        return "."
    if mask == agent:
        return "="
    if mask == FULL_MASK:
        return "*"
    low = (mask & -mask).bit_length() - 1
    run = mask >> low
    if run & (run + 1) == 0:
        return chr(_RUN_FIRST + low) + chr(_RUN_LAST + low + run.bit_length() - 1)
    return "#" + "".join(_B32[mask >> 5 * i & 31] for i in range(6))


def _token(text: str, i: int, agent: int) -> tuple[int, int]:
    """The mask of the token at ``text[i]`` and where the next one starts."""
    c = text[i]
    if c == ".":
        return 0, i + 1
    if c == "*":
        return FULL_MASK, i + 1
    if c == "=":
        return agent, i + 1
    if c == "#":
        return sum(_B32.index(d) << 5 * k for k, d in enumerate(text[i + 1 : i + 7])), i + 7
    first, last = ord(c) - _RUN_FIRST, ord(text[i + 1]) - _RUN_LAST
    return (1 << last + 1) - (1 << first), i + 2


def half_hour(masks: str) -> HalfHourCell:
    """A half-hour's masks text (without its app masks)."""
    st = HalfHourCell()
    i, n = 0, len(masks)
    if masks[0] == "-":
        i = 1
    else:
        st.connected = True
    if i < n:
        st.agent, i = _token(masks, i, 0)
    for k in range(len(st.kinds)):
        if i < n:
            st.kinds[k], i = _token(masks, i, st.agent)
    if i < n:
        st.apps_union = _token(masks, i, st.agent)[0]
    return st


def half_hour_text(st: HalfHourCell) -> str:
    """The masks text of a half-hour (``half_hour``'s inverse; the app masks live apart)."""
    tokens = [mask_token(st.agent), *(mask_token(k, st.agent) for k in st.kinds)]
    tokens.append(mask_token(st.apps_union, st.agent))
    while tokens and tokens[-1] == ".":
        tokens.pop()
    text = "".join(tokens)
    if not st.connected:
        return "-" + text if text else ""
    return text or "."


def cell_members(raw: Any) -> list[str]:
    """The ``template|user`` pairs of a day's ``ut`` hash, sorted."""
    return sorted(
        pair_field(t, text(user)) for user, ts in raw.items() for t in text(ts).split(SEP)
    )


# Half-hour bins (rollup.lua's pack_cell_bins), 88 one-character symbols ("&".."~" without
# the backslash): 0-15 a base-16 digit ending a varint, 16-31 one continuing it (least
# significant first), 32-51 one entry of gap 1-5 and count 1-4, 52-87 two entries both in
# _COMMON.  The first entry is a varint of the zigzagged bin and one of the count; any other is
# one symbol or a varint of its gap to the previous bin and one of its count.
_COMMON = ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2))
_COMMON_INDEX = {e: i for i, e in enumerate(_COMMON)}
_SYMBOLS = "".join(chr(c) for c in range(ord("&"), ord("~") + 1) if c != ord("\\"))
_SYMBOL_OF = {c: i for i, c in enumerate(_SYMBOLS.encode())}


def _hex_varint(out: list[str], v: int) -> None:
    while v >= 16:
        out.append(_SYMBOLS[16 + v % 16])
        v //= 16
    out.append(_SYMBOLS[v])


def pack_cell_bins(bins: Mapping[int, int]) -> str:
    """The packed text of a half-hour's ``{bin: count}`` (non-empty), as the script writes it."""
    order = sorted(bins)
    out: list[str] = []
    first = order[0]
    _hex_varint(out, 2 * first if first >= 0 else -2 * first - 1)
    _hex_varint(out, bins[first])
    entries = [(b - a, bins[b]) for a, b in pairwise(order)]
    i = 0
    while i < len(entries):
        gap, count = entries[i]
        ci = _COMMON_INDEX.get(entries[i])
        cj = _COMMON_INDEX.get(entries[i + 1]) if ci is not None and i + 1 < len(entries) else None
        if ci is not None and cj is not None:
            out.append(_SYMBOLS[52 + ci * 6 + cj])
            i += 2
            continue
        if gap <= 5 and count <= 4:
            out.append(_SYMBOLS[32 + (gap - 1) * 4 + count - 1])
        else:
            _hex_varint(out, gap)
            _hex_varint(out, count)
        i += 1
    return "".join(out)


def unpack_cell_bins(packed: str) -> Bins:
    values: list[int] = []  # zigzagged first bin, count, gap, count, ...
    v = shift = 0
    for code in packed.encode():
        x = _SYMBOL_OF[code]
        if x < 16:
            values.append(v | x << shift)
            v = shift = 0
        elif x < 32:
            v |= (x - 16) << shift
            shift += 4
        elif x < 52:
            values += ((x - 32) // 4 + 1, (x - 32) % 4 + 1)
        else:
            values += (*_COMMON[(x - 52) // 6], *_COMMON[(x - 52) % 6])
    return _bins_of(values)


def _bins_of(values: list[int]) -> Bins:
    """Bins of decoded (zigzagged first bin, count, gap, count, ...) values."""
    out: Bins = {}
    prev = 0
    for i in range(0, len(values), 2):
        d = values[i]
        b = prev + d if i else (d >> 1 if d % 2 == 0 else -((d + 1) >> 1))
        key = str(b)
        out[key] = out.get(key, 0) + values[i + 1]
        prev = b
    return out


# Day bins (rollup.lua's pack_day_bins), in the same 88 symbols: 0-7 an octal digit ending a
# varint, 8-15 one continuing it (least significant first), 16-87 one whole entry of
# _DAY_ENTRIES (gap to the previous bin, count): a user's working day in a template is some
# 100 entries, mostly next to each other with counts up to ~40.  The first entry is a varint
# of the zigzagged bin and one of the count; any other is one symbol or a varint of its gap
# and one of its count.
_OCTAL = 8
_DAY_ENTRIES = (
    *(
        (gap, count)
        for gap, most in ((1, 39), (2, 6), (3, 4), (4, 3))
        for count in range(1, most + 1)
    ),
    *((gap, 1) for gap in range(5, 25)),
)
_DAY_ENTRY_SYMBOL = {e: 2 * _OCTAL + i for i, e in enumerate(_DAY_ENTRIES)}
assert 2 * _OCTAL + len(_DAY_ENTRIES) == len(_SYMBOLS)
# By byte: its symbol (-1: none), and the gap and count of an entry symbol.
_SYMBOL_BY_BYTE = np.full(256, -1, dtype=np.int64)
_SYMBOL_BY_BYTE[np.frombuffer(_SYMBOLS.encode(), dtype=np.uint8)] = np.arange(len(_SYMBOLS))
_ENTRY_GAP = np.array([0] * 2 * _OCTAL + [g for g, _ in _DAY_ENTRIES], dtype=np.int64)
_ENTRY_COUNT = np.array([0] * 2 * _OCTAL + [c for _, c in _DAY_ENTRIES], dtype=np.int64)


def _octal_varint(out: list[str], v: int) -> None:
    while v >= _OCTAL:
        out.append(_SYMBOLS[_OCTAL + v % _OCTAL])
        v //= _OCTAL
    out.append(_SYMBOLS[v])


def pack_bins(bins: Mapping[int, int]) -> str:
    """The packed day text of ``{bin: count}`` (as the script writes it; for tests and tools)."""
    out: list[str] = []
    prev: int | None = None
    for b in sorted(bins):
        count = bins[b]
        symbol = None if prev is None else _DAY_ENTRY_SYMBOL.get((b - prev, count))
        if symbol is not None:
            out.append(_SYMBOLS[symbol])
        else:
            _octal_varint(out, (2 * b if b >= 0 else -2 * b - 1) if prev is None else b - prev)
            _octal_varint(out, count)
        prev = b
    return "".join(out)


def unpack_bins(packed: str) -> Bins:
    values: list[int] = []
    v = shift = 0
    for code in packed.encode():
        x = _SYMBOL_OF[code]
        if x < _OCTAL:
            values.append(v | x << shift)
            v = shift = 0
        elif x < 2 * _OCTAL:
            v |= (x - _OCTAL) << shift
            shift += 3
        else:
            values += _DAY_ENTRIES[x - 2 * _OCTAL]
    return _bins_of(values)


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
    """``rollup.lua``'s build upsert: newest report of one build number wins.  Each parameter
    travels with its definition's digest and definition; the script keeps a definition once
    per day under a number and stores the build with that number."""
    params = []
    for p in event.parameters:
        definition = orjson.dumps(_definition_json(p))
        digest = hashlib.blake2b(definition, digest_size=6).hexdigest()
        params.append([digest, definition.decode(), orjson.dumps(p.value).decode()])
    head = orjson.dumps([event.time_us, event.id]).decode()[:-1]  # the script appends the rest
    return ["b", build_field(event), str(event.time_us), event.id, head, params]


def _definition_json(p: BuildParameter) -> dict[str, object]:
    out = p._asdict()
    del out["value"]
    out["options"] = [o._asdict() for o in p.options]
    return out


def param_defs(raw: Any) -> dict[str, Any]:
    """A day's ``pdefs`` hash: definition number -> definition (decoded JSON)."""
    out = {}
    for k, v in raw.items():
        key = text(k)
        if not key.startswith("#"):
            out[key] = orjson.loads(v)
    return out


def stored_build(name: str, value: Any, defs: Mapping[str, Any]) -> StoredBuild:
    template, workspace, number, _ = parse_build_field(name)
    try:
        time_us, _, *params = orjson.loads(value)
        uses = param_uses(
            [{**defs[str(n)], "value": v} for n, v in zip(params[::2], params[1::2], strict=True)]
        )
        return StoredBuild(template, workspace, number, int(time_us), uses)
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as exc:
        raise ParameterDecodeError(f"build {name}: {type(exc).__name__}") from exc


def span(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def members(raw: Iterable[Any]) -> list[str]:
    return sorted(text(m) for m in raw)


def versions(raw: Mapping[int, Any]) -> dict[int, str | None]:
    return {day: None if v is None else text(v) for day, v in raw.items()}


def bucket_version(raw: Sequence[Any]) -> str | None:
    """A day's version from its buckets' counters: their sum (each only grows, so the sum
    moves whenever one does); None when no bucket has one."""
    if len(raw) == 1:
        return None if raw[0] is None else text(raw[0])
    given = [int(text(v)) for v in raw if v is not None]
    return str(sum(given)) if given else None


def split_templates(raw: Any) -> list[str]:
    """A ``ut`` value: the user's templates of the day."""
    return text(raw).split(SEP)


def merge_users(hashes: Sequence[Hash]) -> Hash:
    """Per-user hashes of a day's buckets as one: a user lives in one bucket only."""
    if len(hashes) == 1:
        return hashes[0]
    out: Hash = {}
    for h in hashes:
        out.update(h)
    return out


def merge_tools(hashes: Sequence[Hash]) -> Hash:
    """``x`` aggregates of a day's buckets as one: minute totals (``k|``, ``p|``) add up,
    masks (app runs ``r|``, the span ``h``) are OR-ed."""
    if len(hashes) == 1:
        return hashes[0]
    out: dict[str, int] = {}
    for h in hashes:
        for fld, raw in h.items():
            value = int(raw)
            if fld[0] == "r" or fld == SPAN_FIELD:
                out[fld] = out.get(fld, 0) | value
            else:
                out[fld] = out.get(fld, 0) + value
    return {fld: str(v) for fld, v in out.items()}


def merge_spans(raw: Sequence[Any]) -> Any:
    """The span field of a day's buckets: OR-ed, None when no bucket has one."""
    if len(raw) == 1:
        return raw[0]
    given = [int(text(v)) for v in raw if v is not None]
    if not given:
        return None
    out = 0
    for v in given:
        out |= v
    return out


def meta_op(update: MetaUpdate) -> list[object]:
    """``meta.lua``'s newest-wins upsert of a profile (``u``), a catalogue entry (``a``) or
    a template's names (``t``)."""
    fld = update.owner if update.kind != "a" else pair_field(update.owner, update.app_key)
    return [update.kind, fld, str(update.time_us), update.event_id, update.name, update.icon]
