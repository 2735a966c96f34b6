"""Sketch quantiles against the exact rank rule of insights-api.md section 7, many data shapes."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregators.frames import UserIndex, day_frame, latency_quantiles, merge_frames
from aggregators.sketch import Bins, bin_of, merge_into
from aggregators.window import WindowAcc


def quantiles(bins: Bins, qs: tuple[float, ...] | list[float]) -> list[float]:
    """The production path: one user's bins through a day frame and the vectorised walk."""
    acc = WindowAcc(0, 48)
    if bins:
        acc.add_latency("u", "t", {str(k): v for k, v in bins.items()})
    _, values = latency_quantiles(merge_frames([day_frame(acc, 0, USERS)], USERS), list(qs))
    return [float(v) for v in values[0]] if len(values) else [-1.0 for _ in qs]


USERS = UserIndex()
QS = (0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999)


def _bins(samples: list[float]) -> Bins:
    out: Bins = {}
    for x in samples:
        b = bin_of(x)
        out[b] = out.get(b, 0) + 1
    return out


def _reference(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[math.floor(q * (len(s) - 1))]


def _shape(name: str, rnd: random.Random, n: int) -> list[float]:
    if name == "uniform":
        return [rnd.uniform(1, 500) for _ in range(n)]
    if name == "lognormal":
        return [min(600_000.0, rnd.lognormvariate(3, 1)) for _ in range(n)]
    if name == "bimodal":
        return [rnd.gauss(20, 2) if rnd.random() < 0.9 else rnd.gauss(900, 50) for _ in range(n)]
    if name == "constant":
        return [31.3] * n
    if name == "one":
        return [rnd.uniform(0.01, 600_000)]
    if name == "extremes":
        return [rnd.choice([0.001, 600_000.0, 1.0]) for _ in range(n)]
    raise AssertionError(name)


@pytest.mark.parametrize(
    "shape", ["uniform", "lognormal", "bimodal", "constant", "one", "extremes"]
)
@pytest.mark.parametrize("n", [1, 2, 10, 1000, 20_000])
def test_quantiles_within_one_percent(shape: str, n: int) -> None:
    samples = [abs(x) or 0.5 for x in _shape(shape, random.Random(n), n)]
    got = quantiles(_bins(samples), QS)
    for q, v in zip(QS, got, strict=True):
        ref = _reference(samples, q)
        assert abs(v - ref) <= 0.01 * ref, (q, v, ref)


@given(st.lists(st.floats(0.001, 600_000), min_size=1, max_size=300), st.integers(1, 299))
def test_merged_sketches_equal_one_sketch(samples: list[float], cut: int) -> None:
    left, right = _bins(samples[:cut]), _bins(samples[cut:])
    merged: Bins = {}
    merge_into(merged, left)
    merge_into(merged, right)
    assert merged == _bins(samples)
    for q, v in zip(QS, quantiles(merged, QS), strict=True):
        ref = _reference(samples, q)
        assert abs(v - ref) <= 0.01 * ref


def test_empty_is_minus_one() -> None:
    assert quantiles({}, [0.5, 0.95]) == [-1.0, -1.0]
