"""The application factory and the process around it.

Each part is opened and closed by one cleanup context, in order, so a failure at start
closes what was already opened and shutdown runs in reverse. A device's wiring is imported
only when the configuration enables it, so a gateway without BLE never loads bleak.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial

from aiohttp import web

from cloud_api.httpguard import ConnectionGuard, GuardedSockSite, HttpLimits
from gateway.app import api
from gateway.app.keys import (
    CENTRAL,
    LEDGER,
    NOW,
    PARTS,
    READER,
    RESTARTS,
    SETTINGS,
    STOP,
    WRITER,
)
from gateway.app.retention import retention_context
from gateway.app.supervisor import part_task
from gateway.central import CentralStatus
from gateway.clock import utc_now
from gateway.http import health, metrics
from gateway.ledger import Ledger
from gateway.loyalty.hlc import HybridClock
from gateway.parts import DEFAULT_RESTARTS, Parts, Policy, Restarts
from gateway.settings import Settings
from gateway.settings.advice import log_advice
from gateway.store import Reader, Writer
from gateway.store.lock import StoreBusy, StoreLock

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
                    now=app[NOW], limits=settings.limits.plausibility(),
                )
                # Versions central published before this start are in force again at once.
                await app[LEDGER].reload_rules()
                # Nothing is durable without the writer: if its thread ends while the
                # gateway runs, the gateway stops rather than acknowledge what it cannot keep.
                async with part_task(app, "store", writer.wait_stopped, policy=Policy.STOP_APP,
                                     check=partial(_writer_check, writer)):
                    yield
        log.info("store closed: %s", writer.stats)
    finally:
        sys.setswitchinterval(interval)


def _writer_check(writer: Writer) -> str | None:
    if writer.stats.queue_depth >= writer.queue_max:
        return "writer queue full"
    return None


def _needs_mqtt(settings: Settings) -> bool:
    """Whether any part talks over MQTT: kiosks, or BLE remote receivers."""
    return settings.kiosk.enabled or (settings.ble.enabled and bool(settings.ble.receivers))


class Stopper:
    """What `app[STOP]` calls: remembers the first reason and wakes the serving loop."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.event = asyncio.Event()

    def __call__(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            log.critical("stopping the gateway: %s", reason)
        self.event.set()


def create_app(settings: Settings, *, now: Callable[[], datetime] = utc_now,
               restarts: Restarts = DEFAULT_RESTARTS) -> web.Application:
    app = web.Application()
    app[RESTARTS] = restarts
    app[SETTINGS] = settings
    app[NOW] = now
    app[PARTS] = Parts(now=now)
    stop: Callable[[str], None] = Stopper()
    app[STOP] = stop
    app[CENTRAL] = CentralStatus(configured=settings.central.url is not None
                                 and settings.sync.enabled)
    app.cleanup_ctx.append(store_context)
    app.cleanup_ctx.append(retention_context)
    # Imported here, each only when enabled: wiring loads its device's libraries.
    if settings.kiosk.demo_members:
        from gateway.app.demo import demo_context  # noqa: PLC0415
        app.cleanup_ctx.append(demo_context)
    # Kiosks and BLE receivers share one MQTT link: made before them, connected after
    # they have registered what they read.
    if mqtt := _needs_mqtt(settings):
        from gateway.app.mqtt import mqtt_context  # noqa: PLC0415
        app.cleanup_ctx.append(mqtt_context)
    if settings.kiosk.enabled:
        from gateway.app.kiosk import kiosk_context  # noqa: PLC0415
        app.cleanup_ctx.append(kiosk_context)
    if settings.ble.enabled:
        from gateway.app.ble import ble_context  # noqa: PLC0415
        app.cleanup_ctx.append(ble_context)
    if mqtt:
        from gateway.app.mqtt import mqtt_link_context  # noqa: PLC0415
        app.cleanup_ctx.append(mqtt_link_context)
    if settings.pos.ports:
        from gateway.app.pos import pos_context  # noqa: PLC0415
        app.cleanup_ctx.append(pos_context)
    if settings.central.url is not None and settings.sync.enabled:
        from gateway.app.sync import sync_context  # noqa: PLC0415
        app.cleanup_ctx.append(sync_context)
    health.add_routes(app)
    metrics.setup(app)
    api.setup(app)
    return app


def run(settings: Settings) -> int:
    """Serve until SIGINT or SIGTERM, or until a part's policy stops the gateway; then shut
    every part down in order. The process's exit status: 0, or 1 when a part stopped it or
    it could not start."""
    return asyncio.run(_serve(settings))


def _listen(host: str, port: int) -> socket.socket:
    """The HTTP socket, bound before any part starts: a second gateway started on the same
    configuration by mistake stops here, before it takes over the first one's broker
    session or starts a broker of its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def _serve(settings: Settings) -> int:
    host, port = settings.http.host, settings.http.port
    try:
        sock = _listen(host, port)
    except OSError as exc:
        log.critical("cannot listen on http://%s:%s: %s (is another gateway running with "
                     "this configuration?)", host, port, exc.strerror or exc)
        return 1
    # The store next: a second gateway on the same store stops here, before it writes.
    store_lock = StoreLock(settings.store.path)
    try:
        store_lock.acquire()
    except StoreBusy as exc:
        sock.close()
        log.critical("cannot open the store: %s", exc)
        return 1
    except OSError as exc:
        sock.close()
        log.critical("cannot lock the store %s: %s", settings.store.path, exc.strerror or exc)
        return 1
    try:
        return await _serve_locked(settings, sock)
    finally:
        store_lock.release()


async def _serve_locked(settings: Settings, sock: socket.socket) -> int:
    host, port = settings.http.host, settings.http.port
    log_advice(settings)
    app = create_app(settings)
    stopper = app[STOP]
    assert isinstance(stopper, Stopper)  # noqa: S101 - create_app puts it there
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopper.event.set)
    limits = HttpLimits(max_connections=settings.http.max_connections,
                        header_timeout_s=settings.http.header_timeout_s)
    guard = ConnectionGuard(limits)
    guard.install(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=limits.keepalive_timeout_s)
    try:
        try:
            await runner.setup()
        except Exception as exc:
            log.critical("the gateway could not start: %s: %s", type(exc).__name__, exc,
                         exc_info=exc)
            return 1
        await GuardedSockSite(runner, sock, guard).start()
        log.info("mallgate %s/%s listening on http://%s:%s", settings.site.mall_id,
                 settings.site.gateway_id, host, port)
        await stopper.event.wait()
    finally:
        await runner.cleanup()
        sock.close()
    return 1 if stopper.reason is not None else 0
