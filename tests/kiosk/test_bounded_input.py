"""Input bounded per sender, through a real mosquitto: a kiosk flooding events fills no
more than a bounded number of dead letters and every event is counted; a request a kiosk
retains on its own topic is dropped and counted, never served, and not replayed when the
gateway restarts."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from devices.kiosk import const
from devices.mqtt.broker import Mosquitto
from gateway.app.keys import KIOSK, METRICS, MQTT
from gateway.ids import new_ulid
from tests.kiosk.helpers import TOPICS, eventually, kiosk, kiosk_settings, running_gateway

FLOOD = 300


def dead_letters(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "gw.db") as db:
        return int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])


async def test_a_kiosk_flooding_events_is_bounded_and_counted(broker: Mosquitto,
                                                              tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        service = app[KIOSK]
        for _ in range(FLOOD):
            k1.link.publish(TOPICS.kiosk("k1") + "/evt/heartbeat", b"{not json", qos=1)
        await eventually(lambda: service.stats.events == FLOOD)
        # What the per-kiosk limits let through in the few seconds the flood took.
        bound = const.EVENT_BURST + const.DEAD_LETTER_BURST
        assert service.stats.dead_letters <= bound
        assert service.stats.dead_letters + service.stats.events_dropped + \
            service.stats.dead_letters_dropped == FLOOD
        # The kiosk's requests are still served.
        reply = await k1.request("balance.query", {"member_id": "m-demo-0001"})
        assert reply["status"] == "ok"
        await eventually(lambda: dead_letters(tmp_path) == service.stats.dead_letters)
        scraped = app[METRICS].render().decode()
        assert f"mallgate_kiosk_events_total {FLOOD}.0" in scraped
        assert "mallgate_kiosk_events_dropped_total" in scraped
        assert "mallgate_kiosk_dead_letters_dropped_total" in scraped


async def test_a_retained_request_is_dropped_and_not_replayed(broker: Mosquitto,
                                                              tmp_path: Path) -> None:
    settings = kiosk_settings(tmp_path, broker.port)
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        request_id = new_ulid()
        body = k1.envelope({"member_id": "m-demo-0001"}, request_id)
        info = k1.link.publish(TOPICS.request("k1", "checkin"), body, qos=1, retain=True,
                               correlation=request_id.encode())
        await asyncio.wait_for(k1.link.published(info), 10)
        router = app[MQTT].router
        await eventually(lambda: router.stats.dropped[("kiosk", "retained")] == 1)
        assert app[KIOSK].stats.requests == 0  # never served
        scraped = app[METRICS].render().decode()
        assert 'mallgate_mqtt_dropped_total{owner="kiosk",reason="retained"} 1.0' in scraped
        # Served afresh without the retain flag: the retained copy changed nothing.
        session = await k1.session("card", "DEMO0001")
        checkin = await k1.request("checkin", {"session": session})
        assert checkin["status"] == "ok"
    async with running_gateway(settings) as app, kiosk(broker.port) as k1:
        # A request after the restart's subscriptions: anything replayed came before it.
        await k1.request("balance.query", {"member_id": "m-demo-0001"})
        assert app[MQTT].router.stats.dropped[("kiosk", "retained")] == 0
        assert app[KIOSK].stats.requests == 1
    assert dead_letters(tmp_path) == 0
