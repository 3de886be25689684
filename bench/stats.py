"""Small statistics for the benchmarks: percentiles and summaries of samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between closest ranks (the
    method numpy calls "linear": rank = p/100 * (n - 1))."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(samples)
    rank = p / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def summary(samples: Sequence[float], digits: int = 2) -> dict[str, float]:
    """count, min, p50, p95, p99, max and mean of the samples, rounded."""
    return {
        "count": len(samples),
        "min": round(min(samples), digits),
        "p50": round(percentile(samples, 50), digits),
        "p95": round(percentile(samples, 95), digits),
        "p99": round(percentile(samples, 99), digits),
        "max": round(max(samples), digits),
        "mean": round(sum(samples) / len(samples), digits),
    }
