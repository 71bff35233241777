"""The wall clock seam: aware UTC times, and parts that take it instead of reading the time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.clock import Clock, utc_now
from gateway.parts import Parts


def test_utc_now_is_aware_and_in_utc() -> None:
    before = datetime.now(UTC)
    now = utc_now()
    assert now.tzinfo is UTC
    assert before <= now <= datetime.now(UTC)


def test_a_part_dates_its_state_changes_by_the_clock_it_was_given() -> None:
    moments = [datetime(2026, 11, 22, 8, 0, tzinfo=UTC)]
    clock: Clock = lambda: moments[-1]  # noqa: E731 - a clock is any callable
    parts = Parts(now=clock)
    part = parts.add("pos:/dev/ttyS0")
    moments.append(moments[-1] + timedelta(minutes=3))
    part.failed("port vanished")
    assert part.status().since == moments[-1]
