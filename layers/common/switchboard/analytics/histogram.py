"""Latency histogram with fixed logarithmic buckets.

Bucket 0 holds values below 1 ms; bucket ``i >= 1`` holds ``[2**((i-1)/8), 2**(i/8))`` ms,
so every bucket is 2**(1/8) = 1.0905 times wider than the one before it. A percentile is
reported as the upper bound of the bucket holding it: never below the true value and less
than 9.05 % above it (plus 1 ms below 1 ms). Values from about 57 minutes on share the
last bucket. Bucket counts add up, so minute buckets merge into hours and totals exactly, and
each is one top-level DynamoDB number attribute (``ADD`` works on it without a read).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from switchboard.analytics.answers import Latency

STEPS_PER_DOUBLING = 8
MAX_MS = 3_600_000
# The bucket holding MAX_MS is the last one: it takes everything from ~57 min on.
LAST_BUCKET = math.floor(math.log2(MAX_MS) * STEPS_PER_DOUBLING) + 1
RELATIVE_RESOLUTION = 2 ** (1 / STEPS_PER_DOUBLING) - 1  # 0.0905


def bucket_of(value_ms: float) -> int:
    if value_ms < 1:
        return 0
    index = math.floor(math.log2(value_ms) * STEPS_PER_DOUBLING) + 1
    # log2 rounding can put an exact bound one bucket off: settle it against the bounds.
    while index > 1 and value_ms < lower_bound(index):
        index -= 1
    while index < LAST_BUCKET and value_ms >= upper_bound(index):
        index += 1
    return min(index, LAST_BUCKET)


def lower_bound(index: int) -> float:
    return 0.0 if index == 0 else 2 ** ((index - 1) / STEPS_PER_DOUBLING)


def upper_bound(index: int) -> float:
    return 1.0 if index == 0 else 2 ** (index / STEPS_PER_DOUBLING)


def counts_of(values: Iterable[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for value in values:
        index = bucket_of(value)
        counts[index] = counts.get(index, 0) + 1
    return counts


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            merged[index] = merged.get(index, 0) + count
    return merged


def percentile(histogram: Mapping[int, int], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100), as its bucket's upper bound."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return round(upper_bound(index), 3)
    raise AssertionError("unreachable: rank <= total")


def summary(histogram: Mapping[int, int]) -> Latency:
    return Latency(
        count=sum(histogram.values()),
        p50=percentile(histogram, 50),
        p95=percentile(histogram, 95),
        p99=percentile(histogram, 99),
    )
