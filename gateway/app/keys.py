"""Typed keys of the aiohttp application: how handlers and parts reach one another."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.central import CentralStatus
from gateway.http.sources import Sources
from gateway.http.tokens import Tokens
from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.parts import Parts, Restarts
from gateway.settings import Settings
from gateway.store import Reader, Writer

if TYPE_CHECKING:
    from devices.ble.service import BleService
    from devices.kiosk.service import KioskService
    from devices.pos.service import PosService
    from gateway.app.mqtt import Mqtt
    from gateway.app.retention import Retention
    from gateway.http.snapshot import Snapshots
    from sync.engine import SyncEngine
    from sync.enrolments import ProvisionalConfirmer

SETTINGS = web.AppKey("settings", Settings)
NOW: web.AppKey[Callable[[], datetime]] = web.AppKey("now")
WRITER = web.AppKey("writer", Writer)
READER = web.AppKey("reader", Reader)
LEDGER = web.AppKey("ledger", Ledger)
CENTRAL = web.AppKey("central", CentralStatus)
METRICS = web.AppKey("metrics", Metrics)
PARTS = web.AppKey("parts", Parts)
# How a part whose task ended is started again (tests shorten or lengthen it).
RESTARTS = web.AppKey("restarts", Restarts)
# Asks the running application to stop, with the reason (a part whose policy says so).
STOP: web.AppKey[Callable[[str], None]] = web.AppKey("stop")
# The shared MQTT link and its router exist only with [kiosk] enabled or BLE remote
# receivers configured: look them up with `app.get(MQTT)`.
MQTT: web.AppKey[Mqtt] = web.AppKey("mqtt")
# The kiosk service exists only with [kiosk] enabled: look it up with `app.get(KIOSK)`.
KIOSK: web.AppKey[KioskService] = web.AppKey("kiosk")
# The POS ports exist only with [[pos.ports]] configured: look them up with `app.get(POS)`.
POS: web.AppKey[PosService] = web.AppKey("pos")
# BLE proximity exists only with [ble] enabled: look it up with `app.get(BLE)`.
BLE: web.AppKey[BleService] = web.AppKey("ble")
# Sync exists only with a [central] url and [sync] enabled: look it up with `app.get(SYNC)`.
SYNC: web.AppKey[SyncEngine] = web.AppKey("sync")
# With sync: confirms provisional members (enrolled at a kiosk offline) with central.
CONFIRMER: web.AppKey[ProvisionalConfirmer] = web.AppKey("confirmer")
# The daily pruning of dead letters and POS bytes (gateway/app/retention.py).
RETENTION: web.AppKey[Retention] = web.AppKey("retention")
# The bearer tokens of the local API, read from [http] on first use (gateway/http/auth.py).
TOKENS = web.AppKey("tokens", Tokens)
# What the local API reads of the devices and sync, and how it replays a POS dead letter:
# given by the composition root (gateway/app/api.py), so the API imports none of them.
SOURCES = web.AppKey("sources", Sources)
# The dashboard's snapshot, shared by every watcher (gateway/http/snapshot.py).
SNAPSHOTS: web.AppKey[Snapshots] = web.AppKey("snapshots")
