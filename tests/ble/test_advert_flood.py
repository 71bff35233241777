"""A receiver flooding the gateway with batches, through a real mosquitto: its batches are
sampled and counted, and a kiosk's request is answered without waiting for the flood."""

from __future__ import annotations

import asyncio
from pathlib import Path

from devices.ble.remote import encode_receiver_status
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import BLE, METRICS
from tests.ble.test_welcome_gateway import GOLD, RECEIVERS, ble_settings, linger, receiver, send
from tests.conftest import free_port
from tests.kiosk.helpers import eventually, kiosk, running_gateway

FLOOD = 400


async def test_a_kiosk_is_answered_during_an_advert_flood(tmp_path: Path) -> None:
    async with (Mosquitto(free_port(), tmp_path / "broker") as broker,
                running_gateway(ble_settings(tmp_path, broker.port)) as app,
                receiver(broker.port, "rx-north") as north, kiosk(broker.port, "k1") as k1):
        ble = app[BLE]
        await ble.refresh_keys()
        state = ble.receivers["rx-north"]
        adverts = linger(GOLD, count=64, every_ms=10)
        for seq in range(FLOOD):
            send(north, "rx-north", seq, adverts)
        # The broker takes one client's messages in order: once this is acknowledged,
        # the whole flood is on its way to the gateway, ahead of the kiosk's request.
        fence = north.publish(RECEIVERS.status("rx-north"), encode_receiver_status(True),
                              qos=1, retain=True)
        await asyncio.wait_for(north.published(fence), 10)
        reply = await k1.request("balance.query", {"member_id": GOLD})
        assert reply["status"] == "ok"
        # Answered before the flood was worked through.
        assert state.batches < FLOOD
        # Every batch is accounted for: handled, or dropped and counted.
        await eventually(lambda: state.batches + state.dropped == FLOOD)
        assert state.dropped > 0
        scraped = app[METRICS].render().decode()
        assert ('mallgate_ble_receiver_dropped_total{receiver="rx-north",'
                f'zone="entrance-north"}} {float(state.dropped)}') in scraped
