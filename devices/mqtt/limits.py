"""Rate limits per sender (kiosk, receiver): one token bucket per key, fed by a clock the
caller passes in."""

from __future__ import annotations

from dataclasses import dataclass

# Buckets of senders silent for this long are forgotten (they refill to full anyway).
IDLE_FORGET_S = 3600.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._swept_at = 0.0

    def allow(self, key: str, now: float) -> bool:
        """Take one token from `key`'s bucket if there is one; `now` is a monotonic time."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if now - self._swept_at > IDLE_FORGET_S:
            self._sweep(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _sweep(self, now: float) -> None:
        self._swept_at = now
        for key in [k for k, b in self._buckets.items() if now - b.at > IDLE_FORGET_S]:
            del self._buckets[key]
