"""Exponential backoff with full jitter, honouring the server's `Retry-After`.

Full jitter (a uniform delay between 0 and the exponential cap) spreads the retries of many
gateways that lost central at the same moment, instead of bringing them back in waves.

Standard library only: central's webhook delivery retries by the same formula, from the
attempts it stored (`full_jitter`), and central imports nothing else of the gateway but
the loyalty domain.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(failures: int, initial_s: float, max_s: float,
                retry_after_s: float | None = None,
                rand: Callable[[float, float], float] = random.uniform) -> float:
    """The delay after `failures` failures before this one (0 for the first): uniform
    below the exponential cap, at least the server's `Retry-After` (itself capped)."""
    cap = min(max_s, initial_s * 2 ** min(failures, 30))
    delay = rand(0.0, cap)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_s))
    return delay


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
        delay = full_jitter(self.failures, self.initial_s, self.max_s, retry_after_s,
                            self._rand)
        self.failures += 1
        return delay
