"""Sync on `/metrics`: lag and backlog, from a status refreshed in the background.

Collectors run on the event loop and must not read the database, so a small task keeps
the last status and the collector only reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.store import StoreError
from sync.engine import SyncEngine
from sync.mode import Mode
from sync.state import SyncStatus

# Often enough for a dashboard's one-minute view, cheap enough to be unnoticeable.
REFRESH_S = 5.0


class SyncMetrics:
    def __init__(self, engine: SyncEngine) -> None:
        self.engine = engine
        self.last: SyncStatus | None = None

    async def refresh_forever(self) -> None:
        while True:
            with contextlib.suppress(StoreError):  # the store is closing: skip a beat
                self.last = await self.engine.status()
            await asyncio.sleep(REFRESH_S)

    def families(self) -> Iterator[Metric]:
        status = self.last
        mode = GaugeMetricFamily("mallgate_sync_mode", "Sync mode: 1 for the current one.",
                                 labels=["mode"])
        for name in Mode:
            mode.add_metric([name.value], 1.0 if self.engine.mode is name else 0.0)
        yield mode
        # Read now, not from the last refresh: it turns 0 the moment central's answers
        # are too old, as kiosks see it.
        yield GaugeMetricFamily("mallgate_sync_online", "1 while central answered both a "
                                "push and a pull recently enough to count as online.",
                                value=1.0 if self.engine.online else 0.0)
        yield CounterMetricFamily("mallgate_sync_refused_changes", "Changes from central "
                                  "the gateway refused to apply (kept in dead letters).",
                                  value=self.engine.counters["refused_changes"])
        if status is None:
            return
        yield GaugeMetricFamily("mallgate_sync_outbox_depth", "Events not yet settled with "
                                "central.", value=status.outbox_depth)
        yield GaugeMetricFamily("mallgate_sync_oldest_pending_seconds", "Age of the oldest "
                                "unsettled event (0 when none).",
                                value=status.oldest_pending_s or 0.0)
        yield GaugeMetricFamily("mallgate_sync_failing_events", "Events central keeps "
                                "refusing for now (they hold back their account).",
                                value=status.failing_events)
        yield GaugeMetricFamily("mallgate_sync_dead_letters", "Events central rejected for "
                                "good, not yet replayed.", value=status.dead_letters)
        yield GaugeMetricFamily("mallgate_sync_refused_pending", "Refused changes from "
                                "central not yet resolved.", value=status.refused_changes)
        yield GaugeMetricFamily("mallgate_sync_held_changes", "Changes from central waiting "
                                "behind a refused change of their member.",
                                value=status.held_changes)
        if status.cursor_lag is not None:
            yield GaugeMetricFamily("mallgate_sync_cursor_lag", "Central changes not yet "
                                    "applied here.", value=status.cursor_lag)
