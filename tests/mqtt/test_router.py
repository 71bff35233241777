"""The router against a real mosquitto: subscriptions from what devices registered, each
message to the handler whose filter matches, acknowledged only after its handler returns,
and what nobody claims counted and kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest

from devices.mqtt.broker import Mosquitto
from devices.mqtt.router import Router
from devices.mqtt.transport import Inbound, LinkConfig, MqttLink
from tests.kiosk.helpers import eventually

SITE = "lty/v1/t"


def config(broker: Mosquitto, client_id: str) -> LinkConfig:
    return LinkConfig(host="127.0.0.1", port=broker.port, client_id=client_id,
                      keepalive_s=5, reconnect_min_s=0.05, reconnect_max_s=0.5)


@asynccontextmanager
async def serving(broker: Mosquitto, router: Router) -> AsyncIterator[MqttLink]:
    """The gateway's side: one link subscribing what `router` holds, dispatched by it."""
    async with MqttLink(config(broker, "gw"), subscriptions=lambda: router.subscriptions) as link:
        await asyncio.wait_for(link.subscribed.wait(), 10)
        task = asyncio.create_task(router.run(link))
        try:
            yield link
        finally:
            task.cancel()


@asynccontextmanager
async def device(broker: Mosquitto, client_id: str) -> AsyncIterator[MqttLink]:
    async with MqttLink(config(broker, client_id)) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield link


async def send(link: MqttLink, topic: str, payload: bytes) -> None:
    await asyncio.wait_for(link.published(link.publish(topic, payload, qos=1)), 10)


class Handled:
    def __init__(self) -> None:
        self.messages: list[Inbound] = []
        self.fail = False

    async def __call__(self, message: Inbound) -> None:
        if self.fail:
            raise RuntimeError("not durable")
        self.messages.append(message)


def test_registrations_are_checked_and_become_the_subscriptions() -> None:
    router = Router()
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, Handled())
    router.add("ble", f"{SITE}/receiver/#", 0, Handled())
    assert router.subscriptions == ((f"{SITE}/kiosk/+/req/+", 1), (f"{SITE}/receiver/#", 0))
    with pytest.raises(ValueError, match="already routed"):
        router.add("ble", f"{SITE}/receiver/#", 0, Handled())
    with pytest.raises(ValueError, match="not an MQTT topic filter"):
        router.add("ble", f"{SITE}/#/adv", 0, Handled())
    with pytest.raises(ValueError, match="QoS"):
        router.add("ble", f"{SITE}/x", 2, Handled())


def test_the_first_matching_filter_takes_a_topic() -> None:
    kiosk, ble, rest = Handled(), Handled(), Handled()
    router = Router()
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, kiosk)
    router.add("ble", f"{SITE}/receiver/+/adv", 0, ble)
    router.add("other", f"{SITE}/#", 0, rest)
    assert router.handler_for(f"{SITE}/kiosk/k1/req/checkin") is kiosk
    assert router.handler_for(f"{SITE}/receiver/rx-1/adv") is ble
    assert router.handler_for(f"{SITE}/receiver/rx-1/status") is rest
    assert router.handler_for("lty/v1/elsewhere/kiosk/k1/req/checkin") is None


async def test_each_device_gets_its_messages_and_acks_follow_the_handler(
        broker: Mosquitto) -> None:
    kiosks, receivers, kept = Handled(), Handled(), Handled()
    router = Router(unclaimed=kept)
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, kiosks)
    router.add("ble", f"{SITE}/receiver/+/adv", 0, receivers)
    async with device(broker, "k1") as k1, device(broker, "rx-1") as rx:
        async with serving(broker, router) as link:
            await send(k1, f"{SITE}/kiosk/k1/req/checkin", b"one")
            rx.publish(f"{SITE}/receiver/rx-1/adv", b"batch", qos=0)
            await eventually(lambda: len(kiosks.messages) == 1 and len(receivers.messages) == 1)
            assert kiosks.messages[0].payload == b"one"
            assert receivers.messages[0].payload == b"batch"
            await eventually(lambda: link.stats.acked == 1)  # QoS 0 needs none

            kiosks.fail = True  # not durable: left unacknowledged
            await send(k1, f"{SITE}/kiosk/k1/req/checkin", b"two")
            await eventually(lambda: router.stats.failed == 1)
            assert link.stats.acked == 1
        kiosks.fail = False
        async with serving(broker, router):  # the broker owes us "two"
            await eventually(lambda: [m.payload for m in kiosks.messages] == [b"one", b"two"])
        assert kept.messages == []
        assert router.stats.unclaimed == 0


async def test_what_no_device_claims_is_counted_kept_and_acknowledged(
        broker: Mosquitto) -> None:
    kiosks, kept = Handled(), Handled()
    earlier = Router()  # an earlier configuration left a subscription in the session
    earlier.add("ble", f"{SITE}/receiver/+/adv", 1, Handled())
    async with serving(broker, earlier):
        pass
    router = Router(unclaimed=kept)
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, kiosks)
    async with device(broker, "rx-1") as rx, serving(broker, router) as link:
        await send(rx, f"{SITE}/receiver/rx-1/adv", b"stray")
        await eventually(lambda: router.stats.unclaimed == 1)
        assert [m.payload for m in kept.messages] == [b"stray"]
        await eventually(lambda: link.stats.acked == 1)
    logged_only = Router()
    async with device(broker, "rx-1") as rx, serving(broker, logged_only) as link:
        await send(rx, f"{SITE}/receiver/rx-1/adv", b"stray again")
        await eventually(lambda: logged_only.stats.unclaimed == 1)
        await eventually(lambda: link.stats.acked == 1)


def by_level(topic: str) -> str:
    return topic.split("/")[4]  # the kiosk or receiver


async def test_one_lane_in_arrival_order_and_lanes_side_by_side(broker: Mosquitto) -> None:
    """k1's first message waits; k1's second waits behind it, k2's is handled meanwhile."""
    gate = asyncio.Event()
    order: list[bytes] = []

    async def handler(message: Inbound) -> None:
        if message.payload == b"k1-slow":
            await gate.wait()
        order.append(message.payload)

    router = Router()
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, handler, lane=by_level)
    async with device(broker, "k1") as k1, device(broker, "k2") as k2, \
            serving(broker, router):
        await send(k1, f"{SITE}/kiosk/k1/req/redeem", b"k1-slow")
        await send(k1, f"{SITE}/kiosk/k1/req/balance", b"k1-next")
        await send(k2, f"{SITE}/kiosk/k2/req/balance", b"k2")
        await eventually(lambda: order == [b"k2"])
        gate.set()
        await eventually(lambda: order == [b"k2", b"k1-slow", b"k1-next"])


class HeldLink:
    """The link's side the router uses once a message is in hand (ack, publish): to hand
    the router a burst that is all there at once, as a socket read full of batches is."""

    def __init__(self) -> None:
        self.acked = 0

    def ack(self, message: Inbound) -> None:
        self.acked += 1

    def publish(self, topic: str, payload: bytes, **kwargs: object) -> None:
        pass


def inbound(topic: str, payload: bytes, qos: int = 0) -> Inbound:
    return Inbound(topic=topic, payload=payload, qos=qos, retain=False, mid=0, generation=0)


async def test_a_flooded_lane_yields_to_the_others_and_drops_past_its_backlog() -> None:
    flood: list[bytes] = []
    seen_at: list[int] = []

    async def batches(message: Inbound) -> None:
        flood.append(message.payload)  # all work, no await: as a batch of sightings is

    async def requests(message: Inbound) -> None:
        seen_at.append(len(flood))

    held = HeldLink()
    link = cast(MqttLink, held)
    router = Router()
    router.add("ble", f"{SITE}/receiver/+/adv", 0, batches, lane=by_level, backlog=1000)
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, requests, lane=by_level)
    for n in range(500):
        router.dispatch(link, inbound(f"{SITE}/receiver/rx-1/adv", b"%d" % n))
    router.dispatch(link, inbound(f"{SITE}/kiosk/k1/req/balance", b"?", qos=1))
    await eventually(lambda: len(flood) == 500 and len(seen_at) == 1)
    # Dispatched after the whole flood, handled as soon as the flood's lane yielded.
    assert seen_at == [1]
    assert flood == [b"%d" % n for n in range(500)]  # and the lane kept its order
    assert held.acked == 501

    flood.clear()
    bounded = Router()
    bounded.add("ble", f"{SITE}/receiver/+/adv", 0, batches, lane=by_level, backlog=5)
    for n in range(500):
        bounded.dispatch(link, inbound(f"{SITE}/receiver/rx-1/adv", b"%d" % n))
    await eventually(lambda: len(flood) == 5)
    assert flood == [b"%d" % n for n in range(5)]
    assert bounded.stats.dropped[("ble", "backlog")] == 495
    with pytest.raises(ValueError, match="backlog"):
        bounded.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, requests, lane=by_level, backlog=5)


async def test_retained_input_is_dropped_counted_and_cleared(broker: Mosquitto) -> None:
    requests, statuses = Handled(), Handled()
    router = Router()
    router.add("kiosk", f"{SITE}/kiosk/+/req/+", 1, requests, lane=by_level)
    router.add("kiosk", f"{SITE}/kiosk/+/status", 1, statuses, lane=by_level, retained=True)
    async with device(broker, "k1") as k1:
        info = k1.publish(f"{SITE}/kiosk/k1/req/checkin", b"kept", qos=1, retain=True)
        await asyncio.wait_for(k1.published(info), 10)
        info = k1.publish(f"{SITE}/kiosk/k1/status", b"online", qos=1, retain=True)
        await asyncio.wait_for(k1.published(info), 10)
        async with serving(broker, router) as link:
            await eventually(lambda: [m.payload for m in statuses.messages] == [b"online"])
            await eventually(lambda: router.stats.dropped[("kiosk", "retained")] == 1)
            await eventually(lambda: link.stats.acked == 2)
            # Live, with the flag as published: dropped too.
            await send(k1, f"{SITE}/kiosk/k1/req/checkin", b"live")  # not retained
            info = k1.publish(f"{SITE}/kiosk/k1/req/checkin", b"again", qos=1, retain=True)
            await asyncio.wait_for(k1.published(info), 10)
            await eventually(lambda: router.stats.dropped[("kiosk", "retained")] == 2)
            await eventually(lambda: [m.payload for m in requests.messages] == [b"live"])
        async with serving(broker, router):  # subscribed again: nothing left to replay
            await eventually(lambda: len(statuses.messages) == 2)
        assert router.stats.dropped[("kiosk", "retained")] == 2
        assert [m.payload for m in requests.messages] == [b"live"]
