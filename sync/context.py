"""Sync's part in the gateway application: started after the store, stopped before it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from cloud_api.client import CentralClient
from gateway.keys import CENTRAL, LEDGER, METRICS, NOW, READER, SETTINGS, WRITER
from gateway.loyalty.hlc import HybridClock
from gateway.settings import Settings
from sync.engine import SyncEngine
from sync.metrics import SyncMetrics

log = logging.getLogger(__name__)

SYNC = web.AppKey("sync", SyncEngine)


def central_client(settings: Settings) -> CentralClient | None:
    """The client for `[central]`, or None when the gateway runs standalone."""
    central = settings.central
    if central.url is None or not settings.sync.enabled:
        return None
    token = central.token.get_secret_value() if central.token is not None else ""
    return CentralClient(central.url, token, timeout_s=central.timeout_s,
                         verify_tls=central.verify_tls)


def build_engine(settings: Settings, client: CentralClient, app: web.Application,
                 clock: HybridClock) -> SyncEngine:
    return SyncEngine(client, app[WRITER], app[READER], gateway_id=settings.site.gateway_id,
                      settings=settings.sync, clock=clock, now=app[NOW])


async def sync_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    client = central_client(settings)
    if client is None:
        log.info("sync off: no [central] url, or [sync] enabled = false")
        yield
        return
    async with client:
        engine = build_engine(settings, client, app, app[LEDGER].clock)
        app[SYNC] = engine
        app[CENTRAL].attach(lambda: engine.online)
        metrics = SyncMetrics(engine)
        app[METRICS].add(metrics.families)
        refresh = asyncio.create_task(metrics.refresh_forever(), name="sync-metrics")
        task = asyncio.create_task(engine.run(), name="sync")
        task.add_done_callback(_report_crash)
        log.info("syncing with %s", settings.central.url)
        try:
            yield
        finally:
            app[CENTRAL].detach()
            refresh.cancel()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(asyncio.CancelledError):
                await refresh


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sync stopped by an unexpected error", exc_info=task.exception())
