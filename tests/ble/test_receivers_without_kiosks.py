"""Remote receivers need the broker, not the kiosks: with `[kiosk] enabled = false` the
gateway still opens the shared MQTT link (with the `[kiosk]` broker settings) and a
receiver's sightings become an arrival and a visit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web

from devices.ble.demo import DEMO_MALL_UUID
from devices.mqtt.broker import Mosquitto
from gateway.app import create_app
from gateway.app.keys import BLE, KIOSK, PARTS, READER
from gateway.settings import Settings
from tests.ble.test_welcome_gateway import GOLD, linger, receiver, send
from tests.conftest import free_port
from tests.kiosk.helpers import SITE, eventually


def receivers_only(tmp_path: Path, broker_port: int) -> Settings:
    return Settings.model_validate_json(json.dumps({
        "site": {"mall_id": SITE, "gateway_id": "gw-test"},
        "store": {"path": str(tmp_path / "gw.db")},
        "http": {"port": free_port()},
        # no kiosks: only the broker settings (and the demo members with beacon keys)
        "kiosk": {"enabled": False, "port": broker_port, "demo_members": 3},
        "ble": {"enabled": True, "mall_uuid": str(DEMO_MALL_UUID), "tick_s": 0.2,
                "zones": [{"id": "entrance-north", "kind": "entrance", "kiosks": ["k1"]}],
                "receivers": [{"id": "rx-north", "zone": "entrance-north"}]},
    }))


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[web.Application]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        yield app
    finally:
        await runner.cleanup()


async def test_a_receiver_gives_arrivals_and_visits_without_kiosks(tmp_path: Path) -> None:
    async with (Mosquitto(free_port(), tmp_path / "broker") as broker,
                started(receivers_only(tmp_path, broker.port)) as app):
        assert app.get(KIOSK) is None
        ble = app[BLE]
        async with receiver(broker.port, "rx-north") as north:
            await eventually(lambda: ble.receivers["rx-north"].online is True, polls=500)
            await ble.refresh_keys()
            send(north, "rx-north", 1, linger(GOLD))
            await eventually(lambda: ble.stats.arrivals == 1, polls=500)
            await ble.settle()
        visits = await app[READER].run(lambda conn: conn.execute(
            "SELECT payload FROM outbox WHERE event_type = 'visit'").fetchall())
        assert [json.loads(payload)["member_id"] for (payload,) in visits] == [GOLD]
        # nobody to show the offer to: no kiosk part, and the shared link is its own part
        assert ble.stats.shows_published == 0
        assert {part.name for part in app[PARTS]} == {"store", "retention", "mqtt", "ble"}
