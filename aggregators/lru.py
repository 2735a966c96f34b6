"""A bounded least-recently-used map: every cache of the read path is one of these.

Entry counts alone did not bound memory: one entry of a wide window (a year of
frames, a report of thousands of users) weighs a thousand of a narrow one, so a
cache may also be given a byte budget and a ``weigh`` of its values.  Weights
are estimates (``approx_bytes``): cheap enough to take on every ``put``, close
enough that the sum tracks the process's growth.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from itertools import islice
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MIB = 1 << 20
_SAMPLE = 8  # elements of a container weighed; the rest are taken to be alike
_DEPTH = 8
_SLOT = 8  # a reference in a container


def approx_bytes(obj: object, depth: int = _DEPTH) -> int:
    """Rough size of ``obj`` and what it holds: arrays by ``nbytes``, containers by a
    sample of their first elements scaled to their length, dataclasses by their fields.

    Objects shared between entries are counted in each (an over-estimate, which only
    makes a cache keep less)."""
    nbytes = getattr(obj, "nbytes", None)
    if isinstance(nbytes, int):  # numpy arrays (a view counts its base's share)
        return nbytes + 112
    size = sys.getsizeof(obj)
    if depth <= 0 or isinstance(obj, str | bytes | bytearray | int | float | bool | None):
        return size
    if isinstance(obj, Mapping):
        return (
            size + _sampled(obj.keys(), len(obj), depth) + _sampled(obj.values(), len(obj), depth)
        )
    if isinstance(obj, list | tuple | set | frozenset):
        return size + _sampled(obj, len(obj), depth)
    if dataclasses.is_dataclass(obj) and hasattr(obj, "__dict__"):
        return size + _sampled(vars(obj).values(), len(vars(obj)), depth)
    return size


def _sampled(items: Iterable[object], count: int, depth: int) -> int:
    if not count:
        return 0
    taken = list(islice(items, _SAMPLE))
    weight = sum(approx_bytes(item, depth - 1) for item in taken)
    return weight * count // max(len(taken), 1)


class Lru(Generic[K, V]):
    """At most ``size`` entries and, with ``max_bytes``, at most that many bytes by
    ``weigh``; an entry heavier than the whole budget is not kept at all (it would
    evict every other one and be evicted by the next)."""

    def __init__(
        self,
        size: int,
        max_bytes: int | None = None,
        weigh: Callable[[V], int] = approx_bytes,
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self._weigh = weigh
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.nbytes = 0

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value) if self.max_bytes is not None else 0
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if self.max_bytes is not None and weight > self.max_bytes:
            return
        self._items[key] = (value, weight)
        self.nbytes += weight
        while len(self._items) > self.size or (
            self.max_bytes is not None and self.nbytes > self.max_bytes
        ):
            _, (_, dropped) = self._items.popitem(last=False)
            self.nbytes -= dropped

    def __len__(self) -> int:
        return len(self._items)
