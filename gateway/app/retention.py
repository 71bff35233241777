"""The retention part: prunes dead letters and POS captures' raw bytes once a day.

The periods are `[store] dead_letter_retention_days` and `pos_capture_retention_days`; what
is pruned is `gateway.retention`'s rule. The part prunes when the gateway starts and then
every `PRUNE_INTERVAL_S`, reading the application's clock, so a test moves time on and calls
`prune_now`. Counts are on /metrics.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from functools import partial

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.app.keys import METRICS, NOW, READER, RETENTION, SETTINGS, WRITER
from gateway.app.supervisor import part_task
from gateway.loyalty.wire import to_text
from gateway.retention import Pruned, due, prune_batch
from gateway.settings.model import StoreSettings
from gateway.store import Reader, Writer

log = logging.getLogger(__name__)

PRUNE_INTERVAL_S = 24 * 3600  # daily: the periods are counted in days


def _text(at: datetime) -> str:
    text = to_text(at)
    assert text is not None  # noqa: S101 - to_text maps only None to None
    return text


class Retention:
    def __init__(self, writer: Writer, reader: Reader, settings: StoreSettings,
                 now: Callable[[], datetime]) -> None:
        self.writer = writer
        self.reader = reader
        self.settings = settings
        self.now = now
        self.pruned = Pruned()
        self.runs = 0
        self.last_run: datetime | None = None
        self._lock = asyncio.Lock()  # the part's loop and a caller never prune at once

    async def prune_now(self) -> Pruned:
        """Prune what is past its period now, batch by batch; what this run pruned."""
        async with self._lock:
            at = self.now()
            letters = _text(at - timedelta(days=self.settings.dead_letter_retention_days))
            captures = _text(at - timedelta(days=self.settings.pos_capture_retention_days))
            run = Pruned()
            while await self.reader.run(partial(due, dead_letters_before=letters,
                                                captures_before=captures)):
                batch = await self.writer.submit(partial(
                    prune_batch, dead_letters_before=letters, captures_before=captures))
                run += batch
                self.pruned += batch
                if batch.total == 0:  # due but nothing prunable: never spin
                    break
            self.runs += 1
            self.last_run = at
        if run.total:
            log.info("retention: deleted %s dead letter(s) received before %s and the raw "
                     "bytes of %s POS capture(s) received before %s", run.dead_letters,
                     letters, run.pos_captures, captures)
        return run

    async def run(self) -> None:
        while True:
            await self.prune_now()
            await asyncio.sleep(PRUNE_INTERVAL_S)

    def families(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "mallgate_retention_dead_letters_pruned", "Dead letters deleted after "
            "[store] dead_letter_retention_days.", value=self.pruned.dead_letters)
        yield CounterMetricFamily(
            "mallgate_retention_pos_captures_pruned", "POS captures whose raw bytes were "
            "deleted after [store] pos_capture_retention_days.", value=self.pruned.pos_captures)
        yield GaugeMetricFamily(
            "mallgate_retention_last_run_timestamp_seconds", "When the last prune ran.",
            value=self.last_run.timestamp() if self.last_run else 0.0)


async def retention_context(app: web.Application) -> AsyncIterator[None]:
    retention = Retention(app[WRITER], app[READER], app[SETTINGS].store, app[NOW])
    app[RETENTION] = retention
    app[METRICS].add(retention.families)
    async with part_task(app, "retention", retention.run):
        yield
