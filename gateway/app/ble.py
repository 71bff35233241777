"""The BLE part: keys, pipeline, local adapters, remote receivers and welcome offers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from devices.ble.eid import EidResolver
from devices.ble.identity import Identifier
from devices.ble.keyring import Keyring
from devices.ble.metrics import ble_families
from devices.ble.pipeline import Pipeline
from devices.ble.proximity import ProximityConfig, ProximityTracker
from devices.ble.remote import ReceiverTopics, default_receiver_contract
from devices.ble.service import BleService
from devices.ble.transport import ScannerReceiver
from gateway.app.keys import BLE, KIOSK, LEDGER, METRICS, MQTT, READER, SETTINGS, WRITER
from gateway.app.supervisor import part_task
from gateway.offers.welcome import Welcome
from gateway.settings.ble import BleSettings

log = logging.getLogger(__name__)


def make_pipeline(settings: BleSettings) -> Pipeline:
    zones = {zone.id: ProximityConfig(enter_rssi_dbm=zone.enter_rssi_dbm,
                                      exit_hysteresis_db=zone.exit_hysteresis_db)
             for zone in settings.zones}
    identifier = Identifier(EidResolver(), mall_uuid=settings.mall_uuid)
    return Pipeline(identifier, ProximityTracker(zones=zones))


def _scanner_check(scanner: ScannerReceiver) -> str | None:
    health = scanner.health
    if health.state == "scanning":
        return None
    return f"adapter {health.adapter} {health.state}" + (
        f": {health.last_error}" if health.last_error else "")


def _receivers_check(service: BleService) -> str | None:
    offline = sorted(rid for rid, state in service.receivers.items() if state.online is False)
    return f"receivers offline: {', '.join(offline)}" if offline else None


async def ble_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ble = settings.ble
    # The kiosk service, when there is one, is what shows offers: passed in as `Commands`.
    kiosks = app.get(KIOSK)
    if kiosks is None and any(zone.kiosks for zone in ble.zones):
        log.warning("[ble] welcome offers need [kiosk] enabled: arrivals and visits are "
                    "recorded, and no offer is shown")
    writer, reader = app[WRITER], app[READER]
    pipeline = make_pipeline(ble)
    welcome = Welcome(writer=writer, reader=reader, site=settings.site.gateway_id,
                      settings=ble, rules=app[LEDGER].rules_at, now=app[LEDGER].now)
    service = BleService(settings=ble, pipeline=pipeline, keyring=Keyring(pipeline.identifier),
                         reader=reader, welcome=welcome, commands=kiosks,
                         topics=ReceiverTopics(settings.site.mall_id),
                         contract=default_receiver_contract())
    app[BLE] = service
    app[METRICS].add(lambda: ble_families(service))
    if ble.receivers:
        service.register(app[MQTT].router)
    service.scanners = [
        ScannerReceiver(adapter.name, adapter.zone, service.feed, scanning_mode=adapter.mode)
        for adapter in ble.adapters]
    async with contextlib.AsyncExitStack() as stack:
        for scanner in service.scanners:
            await stack.enter_async_context(part_task(
                app, f"ble-adapter:{scanner.adapter}", scanner.run,
                check=partial(_scanner_check, scanner)))
        await stack.enter_async_context(part_task(
            app, "ble", service.run, check=partial(_receivers_check, service)))
        yield
