"""Time buckets: one item per UTC minute and per UTC hour, keyed by sortable text."""

from __future__ import annotations

import datetime as dt
from typing import Literal

Period = Literal["minute", "hour"]
PERIODS: tuple[Period, ...] = ("minute", "hour")
SECONDS: dict[Period, int] = {"minute": 60, "hour": 3600}
_FORMAT: dict[Period, str] = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H"}


def bucket_start(epoch_ms: int, period: Period) -> int:
    """Epoch seconds of the start of the bucket holding ``epoch_ms``."""
    seconds = epoch_ms // 1000
    return seconds - seconds % SECONDS[period]


def bucket_key(epoch_ms: int, period: Period) -> str:
    start = dt.datetime.fromtimestamp(bucket_start(epoch_ms, period), dt.UTC)
    return start.strftime(_FORMAT[period])


def key_to_epoch(key: str, period: Period) -> int:
    parsed = dt.datetime.strptime(key, _FORMAT[period]).replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def bucket_range(from_ms: int, to_ms: int, period: Period) -> list[str]:
    """Every bucket key from the one holding ``from_ms`` to the one holding ``to_ms``."""
    step = SECONDS[period]
    start, end = bucket_start(from_ms, period), bucket_start(to_ms, period)
    return [bucket_key(t * 1000, period) for t in range(start, end + 1, step)]
