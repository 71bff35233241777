"""Full-jitter backoff: bounded by the exponential cap, at least what Retry-After asks."""

from __future__ import annotations

from gateway.backoff import Backoff


def test_delays_are_uniform_below_a_doubling_cap() -> None:
    caps: list[float] = []

    def top(low: float, high: float) -> float:
        caps.append(high)
        return high

    backoff = Backoff(1.0, 10.0, rand=top)
    delays = [backoff.next_delay() for _ in range(6)]
    assert caps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0] == delays
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_retry_after_is_honoured_up_to_the_longest_delay() -> None:
    backoff = Backoff(1.0, 30.0, rand=lambda low, high: low)
    assert backoff.next_delay(retry_after_s=7) == 7
    assert backoff.next_delay(retry_after_s=600) == 30
    assert backoff.next_delay() == 0.0  # full jitter may retry at once
