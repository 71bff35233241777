"""The paho adapter against a real mosquitto: manual acks, sessions, status and Will, reconnects."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from paho.mqtt.enums import MQTTErrorCode

from devices.mqtt.broker import Mosquitto
from devices.mqtt.transport import Inbound, LinkConfig, MqttLink, Retained
from tests.kiosk.helpers import eventually

REQ = "lty/v1/t/kiosk/k1/req/checkin"
GW_STATUS = "lty/v1/t/gateway/status"


def config(broker: Mosquitto, client_id: str, *subs: str, **kw: object) -> LinkConfig:
    return LinkConfig(host="127.0.0.1", port=broker.port, client_id=client_id,
                      subscriptions=tuple((s, 1) for s in subs), keepalive_s=5,
                      reconnect_min_s=0.05, reconnect_max_s=0.5, **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def connected(cfg: LinkConfig) -> AsyncIterator[MqttLink]:
    async with MqttLink(cfg) as link:
        await asyncio.wait_for(link.subscribed.wait(), 10)
        yield link


async def receive(link: MqttLink) -> Inbound:
    return await asyncio.wait_for(link.receive(), 10)


async def publish(link: MqttLink, topic: str, payload: bytes) -> None:
    await asyncio.wait_for(link.published(link.publish(topic, payload, qos=1)), 10)


async def test_an_unacked_request_is_redelivered_and_an_acked_one_is_not(
        broker: Mosquitto) -> None:
    async with connected(config(broker, "kiosk-k1")) as kiosk:
        async with connected(config(broker, "gw", "lty/v1/t/kiosk/+/req/+")) as gateway:
            await publish(kiosk, REQ, b"first")
            got = await receive(gateway)
            assert (got.topic, got.payload, got.qos) == (REQ, b"first", 1)
            # Gone before acking: the broker still owes us this message.
        async with connected(config(broker, "gw", "lty/v1/t/kiosk/+/req/+")) as gateway:
            again = await receive(gateway)
            assert again.payload == b"first"
            gateway.ack(again)
            await publish(kiosk, REQ, b"second")
            second = await receive(gateway)
            gateway.ack(second)
            assert second.payload == b"second"
            await barrier(gateway)
        async with connected(config(broker, "gw", "lty/v1/t/kiosk/+/req/+")) as gateway:
            await publish(kiosk, REQ, b"third")
            assert (await receive(gateway)).payload == b"third"  # nothing acked came back


async def test_retained_birth_clean_offline_and_will(broker: Mosquitto) -> None:
    birth = Retained(GW_STATUS, b'{"online":true}')
    will = Retained(GW_STATUS, b'{"online":false}')
    async with connected(config(broker, "observer", GW_STATUS)) as observer:
        async with connected(config(broker, "gw", birth=birth, will=will)):
            assert json.loads((await receive(observer)).payload) == {"online": True}
        assert json.loads((await receive(observer)).payload) == {"online": False}
        gateway = MqttLink(config(broker, "gw", birth=birth, will=will))
        async with gateway:
            await asyncio.wait_for(gateway.connected.wait(), 10)
            assert json.loads((await receive(observer)).payload) == {"online": True}
            await gateway.close(will=True)  # the broker itself publishes the Will
            assert json.loads((await receive(observer)).payload) == {"online": False}
    async with connected(config(broker, "late", GW_STATUS)) as late:
        status = await receive(late)
        assert status.retain and json.loads(status.payload) == {"online": False}


async def test_reconnects_after_a_broker_restart_and_keeps_the_session(
        broker: Mosquitto) -> None:
    """Requests queued for the gateway while it was away survive a broker restart."""
    gw = config(broker, "gw", "lty/v1/t/kiosk/+/req/+")
    async with connected(gw):
        pass  # the broker now holds a persistent session with the subscription
    async with connected(config(broker, "kiosk-k1")) as kiosk:
        await publish(kiosk, REQ, b"queued")
    await broker.stop()  # graceful: mosquitto writes its persistence file
    await broker.start()
    async with connected(gw) as gateway:
        got = await receive(gateway)
        assert got.payload == b"queued"
        gateway.ack(got)
        await barrier(gateway)
        connects = gateway.stats.connects
        await broker.stop()
        await broker.start()
        await eventually(lambda: gateway.stats.connects > connects)
        async with connected(config(broker, "kiosk-k1")) as kiosk:
            await publish(kiosk, REQ, b"after")
        assert (await receive(gateway)).payload == b"after"
        assert gateway.stats.disconnects >= 1


async def barrier(link: MqttLink) -> None:
    """Our acks have reached the broker: the PUBACK of a later publish on the same
    connection comes back only after the broker has read everything sent before it."""
    await publish(link, "lty/v1/t/barrier", b"")



async def test_commands_queued_for_an_offline_kiosk_survive_a_broker_restart(
        broker: Mosquitto) -> None:
    kiosk_cfg = config(broker, "kiosk-k1", "lty/v1/t/kiosk/k1/cmd/+")
    async with connected(kiosk_cfg):
        pass  # the kiosk's session and subscription now live in the broker
    async with connected(config(broker, "gw")) as gateway:
        info = gateway.publish("lty/v1/t/kiosk/k1/cmd/offer.show", b'{"offer":"o1"}', qos=1,
                               expiry_s=600)
        await asyncio.wait_for(gateway.published(info), 10)
    await broker.stop()
    await broker.start()
    async with connected(kiosk_cfg) as kiosk:
        command = await receive(kiosk)
        assert (command.topic, command.payload) == ("lty/v1/t/kiosk/k1/cmd/offer.show",
                                                    b'{"offer":"o1"}')


async def test_pubacks_leave_in_arrival_order_whatever_order_handlers_finish(
        broker: Mosquitto) -> None:
    """MQTT wants PUBACKs in the order the PUBLISHes came (a broker may drop a client
    that answers out of order); a message handled early waits for those before it."""
    async with connected(config(broker, "kiosk-k1")) as kiosk, \
            connected(config(broker, "gw", "lty/v1/t/kiosk/+/req/+")) as gateway:
        for n in range(3):
            await publish(kiosk, REQ, f"m{n}".encode())
        first, second, third = [await receive(gateway) for _ in range(3)]
        sent: list[int] = []
        real_ack = gateway._client.ack

        def record(mid: int, qos: int) -> MQTTErrorCode:
            sent.append(mid)
            return real_ack(mid, qos)
        gateway._client.ack = record  # type: ignore[method-assign]
        gateway.ack(third)
        gateway.ack(second)
        assert sent == []  # the first is not handled yet: nothing may go
        gateway.ack(first)
        assert sent == [first.mid, second.mid, third.mid]
        gateway.ack(first)  # a second ack of the same message sends nothing more
        assert len(sent) == 3
