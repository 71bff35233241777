"""Two clients with one client id: the one taken over stops, it never fights for the session."""

from __future__ import annotations

import asyncio
import logging

import pytest

from devices.mqtt.broker import Mosquitto
from devices.mqtt.router import Router
from devices.mqtt.transport import MqttLink, SessionTakenOver
from gateway.app.mqtt import Mqtt, serve_link
from gateway.app.supervisor import supervise
from gateway.parts import Part, PartState, Restarts
from tests.mqtt.test_transport import config, connected


async def test_a_link_taken_over_logs_once_and_does_not_reconnect(
        broker: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="devices.mqtt.transport")
    async with (connected(config(broker, "mallgate-gw-1")) as first,
                connected(config(broker, "mallgate-gw-1")) as second):
        # mosquitto 2.0 closes the older connection without DISCONNECT 0x8E: the older
        # link tells a takeover from the broker closing it again and again at once.
        await asyncio.wait_for(first.taken_over.wait(), 15)
        assert not first.connected.is_set()
        # The newer link may still be coming back from the older one's last attempt.
        await asyncio.wait_for(second.connected.wait(), 15)
        connects = (first.stats.connects, second.stats.connects)
        # Several reconnect backoffs (0.05..0.5 s) later: nobody took anything back.
        await asyncio.sleep(2.0)
        assert (first.stats.connects, second.stats.connects) == connects
        assert second.connected.is_set() and not second.taken_over.is_set()
        assert "session taken over" in first.stats.last_error
    said = [r.getMessage() for r in caplog.records if "taken over" in r.getMessage()]
    assert len(said) == 1, said
    assert "mallgate-gw-1" in said[0]


async def test_the_mqtt_part_goes_down_with_the_takeover_as_its_reason(
        broker: Mosquitto) -> None:
    router = Router()
    async with MqttLink(config(broker, "mallgate-gw-2"),
                        subscriptions=lambda: router.subscriptions) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        mqtt = Mqtt(link, router)
        with pytest.raises(SessionTakenOver):
            async with connected(config(broker, "mallgate-gw-2")):
                await asyncio.wait_for(serve_link(mqtt), 15)
        part = Part("mqtt")
        stops: list[str] = []
        async with supervise(part, lambda: serve_link(mqtt), stop_app=stops.append,
                             restarts=Restarts(initial_s=0.05, max_s=0.1)):
            for _ in range(100):
                await asyncio.sleep(0.02)
                if part.status().state is PartState.DOWN:
                    break
            status = part.status()
        assert status.state is PartState.DOWN
        assert "session taken over" in (status.reason or "")
        assert stops == [] and not link.connected.is_set()
