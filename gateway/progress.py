"""Progress of long work, told every few seconds while it runs.

Two ways, for two kinds of caller:

- `reporting(every_s, report)`: a command a person watches (`mallgate sim pos`, `sim ble`,
  `deadletters replay`) calls `report()` every `every_s` seconds of the event loop's time
  while its block runs, whatever the work is doing; the report reads the work's counters
  and writes its line on stderr, so stdout keeps the summary alone for scripts.
- `Throttle`: a part that logs its progress at the steps of its work (the sync engine's
  snapshot, chunk by chunk) asks `due()` at each step and logs at most every `every_s`
  seconds of its own clock, so a test's clock decides when, and a fast snapshot of many
  chunks does not flood the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import click

from gateway.clock import Clock, utc_now

# How often a long command tells its progress unless asked otherwise, in seconds: often
# enough that a person sees it move, rarely enough that the lines stay readable.
PROGRESS_EVERY_S = 5.0

# The option of every command that reports progress, so they all read the same.
progress_option = click.option(
    "--progress-every", "progress_every", type=click.FloatRange(0.05),
    default=PROGRESS_EVERY_S, show_default=True,
    help="Seconds between progress lines on stderr (stdout keeps the summary).")


@contextlib.asynccontextmanager
async def reporting(every_s: float, report: Callable[[], None]) -> AsyncIterator[None]:
    """Call `report()` every `every_s` seconds while the block runs (not at its end: the
    caller's summary says how it ended)."""
    if every_s <= 0:
        raise ValueError("every_s must be positive")

    async def tick() -> None:
        while True:
            await asyncio.sleep(every_s)
            report()

    ticker = asyncio.create_task(tick(), name="progress")
    try:
        yield
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


class Throttle:
    """`due()` is true at most once every `every_s` seconds of `now`, and the first time
    only after `every_s` (a short piece of work says nothing until its end)."""

    def __init__(self, every_s: float, now: Clock = utc_now) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        self.every_s = every_s
        self._now = now
        self._last: datetime = now()

    def due(self) -> bool:
        at = self._now()
        if (at - self._last).total_seconds() < self.every_s:
            return False
        self._last = at
        return True
