"""Reconnect delays: exponential backoff with full jitter.

``delay(n) = uniform(0, min(cap, base * factor**n))`` -- "full jitter" spreads clients
that lost their connection at the same moment (a deploy, a network blip) over the whole
window instead of letting them reconnect in synchronised waves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.base <= 0 or self.factor < 1 or self.cap < self.base:
            raise ValueError("need base > 0, factor >= 1 and cap >= base")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the ``attempt``-th delay (0-based)."""
        # Stop multiplying once the cap is reached: factor**attempt overflows otherwise.
        value = self.base
        for _ in range(attempt):
            value *= self.factor
            if value >= self.cap:
                return self.cap
        return min(value, self.cap)

    def next_delay(self) -> float:
        """The delay before the next attempt; each call widens the window until the cap."""
        delay = self.rng.uniform(0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """After a connection proved healthy: the next failure starts from ``base`` again."""
        self.attempt = 0
