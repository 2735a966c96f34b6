"""The byte budget of ``aggregators.lru.Lru`` against a plain model, and ``approx_bytes``."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregators.lru import Lru, approx_bytes

ops = st.lists(
    st.tuples(st.sampled_from(["put", "get"]), st.integers(0, 12), st.integers(0, 60)),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 8), max_bytes=st.integers(0, 100), script=ops)
def test_a_byte_budget_keeps_the_most_recent_entries_that_fit(
    size: int, max_bytes: int, script: list[tuple[str, int, int]]
) -> None:
    lru: Lru[int, int] = Lru(size, max_bytes, weigh=lambda v: v)
    model: OrderedDict[int, int] = OrderedDict()
    for op, key, value in script:
        if op == "get":
            assert lru.get(key) == model.get(key)
            if key in model:
                model.move_to_end(key)
            continue
        lru.put(key, value)
        model.pop(key, None)
        if value <= max_bytes:
            model[key] = value
            while len(model) > size or sum(model.values()) > max_bytes:
                model.popitem(last=False)
        assert len(lru) == len(model)
        assert lru.nbytes == sum(model.values()) <= max_bytes
    assert all(lru.get(k) == v for k, v in model.items())


def test_an_entry_heavier_than_the_budget_is_not_kept_and_evicts_nothing() -> None:
    lru: Lru[str, bytes] = Lru(10, 100, weigh=len)
    lru.put("a", b"x" * 60)
    lru.put("huge", b"x" * 101)
    assert (lru.get("a"), lru.get("huge"), lru.nbytes) == (b"x" * 60, None, 60)
    lru.put("a", b"x" * 101)  # a heavier value for a kept key drops the old one too
    assert (lru.get("a"), len(lru), lru.nbytes) == (None, 0, 0)


def test_without_a_budget_only_the_count_bounds() -> None:
    lru: Lru[int, bytes] = Lru(3)
    for i in range(5):
        lru.put(i, bytes(10**6))
    assert len(lru) == 3 and lru.nbytes == 0


def test_approx_bytes_scales_with_what_entries_hold() -> None:
    array = np.zeros(10_000, dtype=np.int64)
    assert approx_bytes(array) >= 80_000
    users = [{"user_id": f"user-{i:036d}", "seconds": i * 60} for i in range(1_000)]
    one = approx_bytes(users[:1])
    assert 500 * one < approx_bytes(users) < 2_000 * one
    assert approx_bytes({"report": {"users": users}}) > approx_bytes(users)
    nested = {"frames": [(array, array)] * 4}
    assert approx_bytes(nested) >= 8 * array.nbytes
