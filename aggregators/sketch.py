"""Latency sketches: DDSketch logarithmic bins kept as plain ``{bin: count}`` maps.

The store keeps per-cell and per-day bin counts (mergeable by addition).
``ddsketch`` owns the mapping (value -> bin -> representative value, 1 %
relative accuracy).  Quantiles are taken for all users at once in
``aggregators.frames.latency_quantiles`` with the rank walk of ddsketch's
``DenseStore.key_at_rank`` (first bin whose running count exceeds
``q * (n - 1)``), vectorised instead of one ``DenseStore`` per user.

Bin keys may be ints or their decimal text (as stored): merging happens on
whatever the store returned.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def bin_value(key: int) -> float:
    """Representative value of a bin (within 1 % of every sample in it)."""
    return float(_MAPPING.value(key))
