"""Latency sketches: DDSketch logarithmic bins kept as plain ``{bin: count}`` maps.

The store keeps per-cell and per-day bin counts (mergeable by addition);
``ddsketch`` owns the mapping (value -> bin, 1 % relative accuracy) and the
quantile walk, so there is no hand-written sketch math here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)

Bins = dict[int, int]


def bin_of(latency_ms: float) -> int:
    key: int = _MAPPING.key(latency_ms)
    return key


def merge_into(target: Bins, source: Mapping[int, int]) -> None:
    for key, count in source.items():
        target[key] = target.get(key, 0) + count


def quantiles(bins: Mapping[int, int], qs: Iterable[float]) -> list[float]:
    """Quantile values (rank rule ``x[floor(q*(n-1))]``) of the samples in ``bins``.

    Empty bins give ``-1`` for every quantile, as the API renders users without samples.
    """
    qs = list(qs)
    if not bins or sum(bins.values()) <= 0:
        return [-1.0 for _ in qs]
    store = DenseStore()
    for key, count in bins.items():
        store.add(key, count)
    sketch = BaseDDSketch(_MAPPING, store, DenseStore(), 0.0)
    values = [sketch.get_quantile_value(q) for q in qs]
    return [-1.0 if v is None else float(v) for v in values]
