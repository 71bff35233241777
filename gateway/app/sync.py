"""The sync part: started after the store, stopped before it, supervised like every part.

The part is degraded while changes central sent wait refused (see `docs/sync.md`).

While the sync task is not running (it died and waits for its restart), the core's
`CentralStatus` counts central as offline, so kiosks redeem only within the offline
allowance: nothing may rely on a central that nothing is talking to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.app.keys import (
    CENTRAL,
    CONFIRMER,
    LEDGER,
    METRICS,
    NOW,
    READER,
    SETTINGS,
    SYNC,
    WRITER,
)
from gateway.app.supervisor import part_task
from sync.connect import central_client
from sync.engine import SyncEngine
from sync.enrolments import CentralEnrolments, ProvisionalConfirmer, confirmer_families
from sync.metrics import SyncMetrics

log = logging.getLogger(__name__)


async def sync_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = central_client(settings)
    if client is None:
        log.info("sync off: no [central] url, or [sync] enabled = false")
        yield
        return
    async with client:
        engine = SyncEngine(client, app[WRITER], app[READER],
                            gateway_id=settings.site.gateway_id, settings=settings.sync,
                            clock=app[LEDGER].clock, now=app[NOW],
                            limits=settings.limits.plausibility(),
                            on_documents=app[LEDGER].reload_rules)
        app[SYNC] = engine
        metrics = SyncMetrics(engine)
        app[METRICS].add(metrics.families)
        refresh = asyncio.create_task(metrics.refresh_forever(), name="sync-metrics")
        log.info("syncing with %s", settings.central.url)
        try:
            enrolments = CentralEnrolments(client, settings.site.gateway_id)
            confirmer = ProvisionalConfirmer(
                enrolments, ledger=app[LEDGER], reader=app[READER], writer=app[WRITER],
                online=app[CENTRAL].online)
            app[CONFIRMER] = confirmer
            app[METRICS].add(lambda: confirmer_families(confirmer))
            async with part_task(app, "sync", engine.run, check=lambda: _health(engine)) as part:
                app[CENTRAL].attach(lambda: engine.online, part, enrolments)
                try:
                    # Provisional members enrolled offline, confirmed by central and merged.
                    async with part_task(app, "enrolments", confirmer.run):
                        yield
                finally:
                    app[CENTRAL].detach()
        finally:
            refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresh


def _health(engine: SyncEngine) -> str | None:
    """Degraded while central is offline, while changes it sent wait refused (their
    members' later changes are held back until the refused ones are resolved), and while
    a resync applies central's snapshot (the members it has not reached yet are stale);
    the reason then says how far the snapshot is."""
    snapshot = engine.snapshot
    if snapshot is not None:
        return f"applying central's snapshot: {snapshot.describe()}"
    if not engine.online:
        reason = f"central {engine.mode.value}"
        return f"{reason}: {engine.last_error}" if engine.last_error else reason
    return engine.refusals.describe()
