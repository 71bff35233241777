"""The gateway application: wires the core's parts and owns their lifetimes.

Each long-running part is opened and closed by one cleanup context, in order, so a
failure at start closes what was already opened and shutdown runs in reverse.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from aiohttp import web

from devices.ble.wiring import ble_context
from devices.kiosk.wiring import kiosk_context
from devices.pos.wiring import pos_context
from gateway.central import CentralStatus
from gateway.http import health, metrics
from gateway.keys import CENTRAL, LEDGER, NOW, READER, SETTINGS, WRITER
from gateway.ledger import Ledger
from gateway.ledger.service import utc_now
from gateway.loyalty.hlc import HybridClock
from gateway.settings import Settings
from gateway.store import Reader, Writer
from sync.context import sync_context

log = logging.getLogger(__name__)

# The event loop and the store's writer thread hand Python's GIL to each other several
# times per write. At the default switch interval (5 ms) a thread that wants the GIL back
# may wait that long behind the other: it showed as the tail of kiosk reply times. At 1 ms
# the wait is bounded by less than a write's own work, for a few more switches per second.
GIL_SWITCH_INTERVAL_S = 0.001


async def store_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    path = settings.store.path
    path.parent.mkdir(parents=True, exist_ok=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    try:
        async with Writer(path, batch_max=settings.store.batch_max,
                          batch_wait_ms=settings.store.batch_wait_ms) as writer:
            if writer.migrations_applied:
                log.info("store %s migrated to schema %s", path, writer.migrations_applied[-1])
            async with Reader(path) as reader:
                app[WRITER], app[READER] = writer, reader
                app[LEDGER] = Ledger(
                    writer, reader, site=settings.site.gateway_id,
                    clock=HybridClock(settings.site.gateway_id), rules=settings.loyalty,
                    now=app[NOW],
                )
                yield
        log.info("store closed: %s", writer.stats)
    finally:
        sys.setswitchinterval(interval)


def create_app(settings: Settings, *, now: Callable[[], datetime] = utc_now) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app[NOW] = now
    app[CENTRAL] = CentralStatus(configured=settings.central.url is not None
                                 and settings.sync.enabled)
    app.cleanup_ctx.append(store_context)
    app.cleanup_ctx.append(kiosk_context)
    app.cleanup_ctx.append(ble_context)
    app.cleanup_ctx.append(pos_context)
    app.cleanup_ctx.append(sync_context)
    health.add_routes(app)
    metrics.setup(app)
    return app


def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then shut every part down in order."""
    app = create_app(settings)
    host, port = settings.http.host, settings.http.port

    async def announce(app: web.Application) -> None:
        # Registered last, so it runs once every part has opened.
        log.info("mallgate %s/%s listening on http://%s:%s", settings.site.mall_id,
                 settings.site.gateway_id, host, port)

    app.on_startup.append(announce)
    web.run_app(app, host=host, port=port, print=None, access_log=None)
