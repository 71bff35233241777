"""The gateway's wall clock, and the seam through which tests move it.

Every part that stamps or compares times takes a `Clock` (default `utc_now`) instead of
calling `datetime.now` itself, so a test can advance time, jump it backwards or freeze it
and see expiry, cooldowns, outage times and retries follow. Times are aware and in UTC;
the mall's local time is derived where a business date is meant.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(UTC)
