"""RSSI traces for scenario tests: a member's level over time, with seeded realistic noise."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

Profile = Callable[[float], float]  # seconds since start -> mean RSSI (dBm)


def noisy(profile: Profile, *, start: float, duration: float, interval: float, seed: int,
          sigma: float = 4.0, fade_rate: float = 0.05, fade_db: float = 20.0,
          miss_rate: float = 0.1) -> Iterator[tuple[float, float]]:
    """(at, rssi) sightings every `interval` s: Gaussian noise, some deep fades (a body
    between phone and receiver), some adverts missed by the scanner, a little jitter."""
    rng = random.Random(seed)
    t = 0.0
    while t < duration:
        if rng.random() >= miss_rate:
            rssi = profile(t) + rng.gauss(0, sigma)
            if rng.random() < fade_rate:
                rssi -= fade_db
            yield start + t + rng.uniform(0, interval / 10), round(rssi)
        t += interval


def linear(start_dbm: float, end_dbm: float, over_s: float) -> Profile:
    def level(t: float) -> float:
        return start_dbm + (end_dbm - start_dbm) * min(1.0, t / over_s)
    return level


def steady(dbm: float) -> Profile:
    return lambda _t: dbm
