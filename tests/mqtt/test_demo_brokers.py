"""The demo brokers: which one `broker = "embedded"` starts, the one-line message when there
is none, and what both must do for kiosks (Last Will on a silent client, persistent
sessions, redelivery of what was not acknowledged)."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devices.mqtt import broker as brokers
from devices.mqtt.broker import (
    BrokerProcess,
    BrokerUnavailable,
    Mosquitto,
    Rumqttd,
    demo_broker,
)
from devices.mqtt.transport import LinkConfig, MqttLink
from tests.brokers import KINDS, running_broker

WILL_TOPIC = "lty/v1/t/kiosk/k9/status"
REQ = "lty/v1/t/kiosk/k1/req/checkin"


@pytest.fixture(params=KINDS)
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrokerProcess]:
    async with running_broker(request.param, tmp_path / "broker") as running:
        yield running


def installed(monkeypatch: pytest.MonkeyPatch, *, mosquitto: bool, iotcore: bool) -> None:
    monkeypatch.setattr(brokers, "find_mosquitto",
                        lambda: "/usr/sbin/mosquitto" if mosquitto else None)
    monkeypatch.setattr(brokers, "iotcore_installed", lambda: iotcore)


def test_auto_prefers_mosquitto_and_falls_back_to_rumqttd(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed(monkeypatch, mosquitto=True, iotcore=True)
    assert isinstance(demo_broker(1883, tmp_path), Mosquitto)
    assert isinstance(demo_broker(1883, tmp_path, "iotcore"), Rumqttd)
    installed(monkeypatch, mosquitto=False, iotcore=True)
    assert isinstance(demo_broker(1883, tmp_path), Rumqttd)


def test_no_broker_is_one_line_naming_both_fixes(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed(monkeypatch, mosquitto=False, iotcore=False)
    with pytest.raises(BrokerUnavailable) as raised:
        demo_broker(1883, tmp_path)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        'no MQTT broker for [kiosk] broker = "embedded": install mosquitto '
        "(apt install mosquitto) or install the Python broker "
        "(pip install 'mallgate[broker]')")
    with pytest.raises(BrokerUnavailable, match=r"pip install 'mallgate\[broker\]'"):
        demo_broker(1883, tmp_path, "iotcore")
    installed(monkeypatch, mosquitto=False, iotcore=True)
    with pytest.raises(BrokerUnavailable, match=r"apt install mosquitto"):
        demo_broker(1883, tmp_path, "mosquitto")


def test_the_rumqttd_configuration_is_mqtt5_on_loopback_only(tmp_path: Path) -> None:
    text = Rumqttd(18830, tmp_path).config_text
    assert '[v5.1]' in text and 'listen = "127.0.0.1:18830"' in text
    # Not iotcore's defaults: MQTT 3.1.1 on every address.
    assert "[v4" not in text and "0.0.0.0" not in text  # noqa: S104


def config(broker: BrokerProcess, client_id: str, *subs: str) -> LinkConfig:
    return LinkConfig(host="127.0.0.1", port=broker.port, client_id=client_id,
                      subscriptions=tuple((s, 1) for s in subs), keepalive_s=5,
                      reconnect_min_s=0.05, reconnect_max_s=0.5)


def _text(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def silent_connect(client_id: bytes, will_topic: bytes, will: bytes, keepalive_s: int) -> bytes:
    """An MQTT v5 CONNECT with a retained QoS 1 Will, after which the client says nothing:
    a kiosk that froze or lost power without closing its socket."""
    flags = 0x02 | 0x04 | 0x08 | 0x20  # clean start, will, will QoS 1, will retain
    body = (_text(b"MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive_s) + b"\x00"
            + _text(client_id) + b"\x00" + _text(will_topic) + _text(will))
    assert len(body) < 128  # one-byte remaining length
    return bytes([0x10, len(body)]) + body


async def test_the_will_of_a_silent_client_fires_after_its_keepalive(
        broker: BrokerProcess) -> None:
    async with MqttLink(config(broker, "observer", WILL_TOPIC)) as observer:
        await asyncio.wait_for(observer.subscribed.wait(), 10)
        reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        try:
            writer.write(silent_connect(b"k9", WILL_TOPIC.encode(), b'{"online":false}', 1))
            await writer.drain()
            connack = await asyncio.wait_for(reader.readexactly(2), 10)
            assert connack[0] == 0x20
            # The socket stays open: only the keepalive timeout can tell the broker.
            # mosquitto checks keepalives every few seconds, rumqttd after 1.5 x keepalive.
            message = await asyncio.wait_for(observer.receive(), 15)
            assert (message.topic, message.payload) == (WILL_TOPIC, b'{"online":false}')
        finally:
            writer.close()


async def test_a_persistent_session_gets_what_was_sent_while_away_and_the_unacked_again(
        broker: BrokerProcess) -> None:
    gw = config(broker, "gw", "lty/v1/t/kiosk/+/req/+")
    async with MqttLink(gw) as link:
        await asyncio.wait_for(link.subscribed.wait(), 10)
    async with MqttLink(config(broker, "k1")) as kiosk:
        await asyncio.wait_for(kiosk.connected.wait(), 10)
        for payload in (b"one", b"two"):
            await asyncio.wait_for(kiosk.published(kiosk.publish(REQ, payload, qos=1)), 10)
    async with MqttLink(gw) as link:
        got = [await asyncio.wait_for(link.receive(), 10) for _ in range(2)]
        assert [m.payload for m in got] == [b"one", b"two"]
        link.ack(got[0])  # "two" stays unacknowledged, as if the gateway died before commit
        await asyncio.wait_for(link.published(link.publish("lty/v1/t/barrier", b"", qos=1)), 10)
    async with MqttLink(gw) as link:
        again = await asyncio.wait_for(link.receive(), 10)
        assert again.payload == b"two"
        link.ack(again)
