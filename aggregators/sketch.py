"""Latency sketches: DDSketch logarithmic bins kept as plain ``{bin: count}`` maps.

The store keeps per-cell and per-day bin counts (mergeable by addition).
``ddsketch`` owns the mapping (value -> bin -> representative value, 1 %
relative accuracy).  The rank walk below is the one of ddsketch's
``DenseStore.key_at_rank`` (first bin whose running count exceeds
``q * (n - 1)``); doing it on the merged map directly avoids building a
``DenseStore`` per user, which cost about half a millisecond each.

Bin keys may be ints or their decimal text (as stored): merging happens on
whatever the store returned and keys are converted once, at quantile time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)

K = TypeVar("K", int, str)
Bins = dict[int, int]


def bin_of(latency_ms: float) -> int:
    key: int = _MAPPING.key(latency_ms)
    return key


def merge_into(target: dict[K, int], source: Mapping[K, int]) -> None:
    for key, count in source.items():
        target[key] = target.get(key, 0) + count


def quantiles(bins: Mapping[K, int], qs: Iterable[float]) -> list[float]:
    """Quantile values (rank rule ``x[floor(q*(n-1))]``) of the samples in ``bins``.

    Empty bins give ``-1`` for every quantile, as the API renders users without samples.
    """
    wanted = list(qs)
    total = sum(bins.values())
    if total <= 0:
        return [-1.0 for _ in wanted]
    ordered = sorted((int(k), c) for k, c in bins.items() if c > 0)
    out: dict[float, float] = {}
    running = 0
    pending = sorted(set(wanted))
    i = 0
    for key, count in ordered:
        running += count
        while i < len(pending) and running > pending[i] * (total - 1):
            out[pending[i]] = float(_MAPPING.value(key))
            i += 1
        if i == len(pending):
            break
    return [out[q] for q in wanted]
