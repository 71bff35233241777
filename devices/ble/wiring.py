"""The BLE part of the gateway application: keys, pipeline, receivers and welcome offers."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from devices.ble.demo import demo_key
from devices.ble.eid import EidResolver
from devices.ble.identity import Identifier, ble_key_value
from devices.ble.keyring import Keyring
from devices.ble.metrics import ble_families
from devices.ble.pipeline import Pipeline
from devices.ble.proximity import ProximityConfig, ProximityTracker
from devices.ble.remote import ReceiverTopics, default_receiver_contract
from devices.ble.service import BleService
from devices.ble.transport import ScannerReceiver
from gateway.keys import BLE, KIOSK, LEDGER, METRICS, READER, SETTINGS, WRITER
from gateway.lifetimes import background
from gateway.loyalty.wire import to_text
from gateway.offers.demo import seed_demo_offers
from gateway.offers.welcome import Welcome
from gateway.settings.ble import BleSettings
from gateway.store import Writer

log = logging.getLogger(__name__)


def make_pipeline(settings: BleSettings) -> Pipeline:
    zones = {zone.id: ProximityConfig(enter_rssi_dbm=zone.enter_rssi_dbm,
                                      exit_hysteresis_db=zone.exit_hysteresis_db)
             for zone in settings.zones}
    identifier = Identifier(EidResolver(), mall_uuid=settings.mall_uuid)
    return Pipeline(identifier, ProximityTracker(zones=zones))


async def seed_demo_ble(writer: Writer, now: datetime) -> int:
    """Demo only: beacon keys for the demo members that lack one (the keys `mallgate sim
    ble` derives too) and the demo offers; how many keys were added."""
    def seed(conn: sqlite3.Connection) -> int:
        members = [row[0] for row in conn.execute(
            "SELECT id FROM members WHERE id LIKE 'm-demo-%' AND id NOT IN "
            "(SELECT member_id FROM member_identifiers WHERE kind = 'ble_key')")]
        conn.executemany(
            "INSERT INTO member_identifiers (kind, value, member_id) VALUES ('ble_key', ?, ?)",
            [(ble_key_value(demo_key(member)), member) for member in members])
        # a member's keys count as changed when the member row is
        conn.executemany("UPDATE members SET updated_at = ? WHERE id = ?",
                         [(to_text(now), member) for member in members])
        seed_demo_offers(conn, now)
        return len(members)
    return await writer.submit(seed)


async def ble_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ble = settings.ble
    if not ble.enabled:
        yield
        return
    kiosks = app.get(KIOSK)
    if kiosks is None and (ble.receivers or any(zone.kiosks for zone in ble.zones)):
        log.warning("[ble] remote receivers and welcome offers need [kiosk] enabled: "
                    "only local adapters run, and no offer is shown")
    writer, reader = app[WRITER], app[READER]
    if settings.kiosk.demo_members:
        made = await seed_demo_ble(writer, app[LEDGER].now())
        if made:
            log.info("demo: gave %s demo members beacon keys and added demo offers", made)
    pipeline = make_pipeline(ble)
    welcome = Welcome(writer=writer, reader=reader, site=settings.site.gateway_id,
                      settings=ble, rules=settings.loyalty, now=app[LEDGER].now)
    service = BleService(settings=ble, pipeline=pipeline, keyring=Keyring(pipeline.identifier),
                         reader=reader, welcome=welcome, commands=kiosks,
                         topics=ReceiverTopics(settings.site.mall_id),
                         contract=default_receiver_contract())
    app[BLE] = service
    app[METRICS].add(lambda: ble_families(service))
    if kiosks is not None:
        kiosks.routes.append(service.route)
    async with contextlib.AsyncExitStack() as stack:
        scanners = [await stack.enter_async_context(
            ScannerReceiver(adapter.name, adapter.zone, service.feed, scanning_mode=adapter.mode))
            for adapter in ble.adapters]
        service.scanners = scanners
        try:
            async with background(service.run(), "ble-service"):
                yield
        finally:
            if kiosks is not None:
                kiosks.routes.remove(service.route)
