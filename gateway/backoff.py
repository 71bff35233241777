"""Exponential backoff with full jitter, honouring the server's `Retry-After`.

Full jitter (a uniform delay between 0 and the exponential cap) spreads the retries of many
gateways that lost central at the same moment, instead of bringing them back in waves.
"""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    def __init__(self, initial_s: float, max_s: float,
                 rand: Callable[[float, float], float] = random.uniform) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._rand = rand

    def reset(self) -> None:
        self.failures = 0

    def next_delay(self, retry_after_s: float | None = None) -> float:
        """The delay before the next attempt after one more failure."""
        cap = min(self.max_s, self.initial_s * 2 ** min(self.failures, 30))
        self.failures += 1
        delay = self._rand(0.0, cap)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_s))
        return delay
