"""Repeated log lines are limited and counted, not written a million times."""

from __future__ import annotations

import logging

from gateway.logs import RepeatLimit


def record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, args, None)


def test_a_repeated_message_passes_a_burst_then_reports_what_it_dropped() -> None:
    now = [0.0]
    limit = RepeatLimit(burst=3, window_s=60, clock=lambda: now[0])
    passed = [limit.filter(record("accept failed: %s", n)) for n in range(1000)]
    assert passed.count(True) == 3
    assert limit.filter(record("another message"))  # counted apart
    now[0] = 61.0
    later = record("accept failed: %s", "x")
    assert limit.filter(later)
    assert later.getMessage() == "accept failed: x [997 more like this dropped]"
