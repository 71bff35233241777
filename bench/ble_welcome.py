"""Arrival -> welcome offer on the kiosk: the whole path through a real broker and gateway.

    python bench/ble_welcome.py [--quick]

A remote receiver publishes the sightings of a member walking up to an entrance (three
strong adverts, the third completes the arrival) to a real mosquitto; the gateway (the real
app, in this process, with the demo members, their beacon keys and the demo offers) turns
them into an arrival, decides the offer (member, offers, cooldown, the showing and the
visit committed durably) and publishes `cmd/offer.show`; a kiosk subscriber receives it.

- show_latency: receiver publish -> kiosk receives `cmd/offer.show`, p50 / p99, target
  p99 <= 50 ms. The baseline is the same two broker hops without the gateway (receiver
  publish -> a subscriber, then that subscriber publishes -> the kiosk), measured in the
  same run.
- gateway_latency: inside the gateway, arrival detected -> `cmd/offer.show` handed to the
  MQTT client (from the gateway's own samples).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from aiohttp import web
from benchlib import emit, free_port, percentile

from devices.ble.demo import DEMO_MALL_UUID, demo_key, demo_member_id
from devices.ble.eid import ephemeral_id
from devices.ble.remote import ReceiverTopics, RemoteAdvert, encode_batch
from devices.ble.scenario import eid_ad
from devices.ble.sim import receiver_link_config
from devices.kiosk.broker import Mosquitto
from devices.kiosk.transport import Inbound, LinkConfig, MqttLink
from gateway.app import create_app
from gateway.keys import BLE, KIOSK
from gateway.settings import Settings

BENCH = "ble_welcome"
SITE = "bench-mall"
ZONE, KIOSK_ID, RECEIVER = "entrance-north", "k1", "rx-north"


def settings(directory: Path, broker_port: int, members: int) -> Settings:
    return Settings.model_validate_json(json.dumps({
        "site": {"mall_id": SITE, "gateway_id": "gw-bench"},
        "store": {"path": str(directory / "gw.db")},
        "http": {"port": free_port()},
        "kiosk": {"enabled": True, "port": broker_port, "demo_members": members,
                  "rate_per_s": 1000, "rate_burst": 1000},
        "ble": {"enabled": True, "mall_uuid": str(DEMO_MALL_UUID),
                "zones": [{"id": ZONE, "kind": "entrance", "kiosks": [KIOSK_ID]}],
                "receivers": [{"id": RECEIVER, "zone": ZONE}]},
    }))


def walk_up(member_id: str) -> list[RemoteAdvert]:
    """Three strong adverts in the last 200 ms: the third makes the arrival."""
    key = demo_key(member_id)
    eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(time.time()))
    return [RemoteAdvert(ad=eid_ad(eid), rssi=-58, age_ms=age) for age in (200, 100, 0)]


async def link(config: LinkConfig) -> MqttLink:
    client = MqttLink(config)
    await client.__aenter__()
    await asyncio.wait_for(client.connected.wait(), 10)
    return client


async def broker_round_trips(port: int, count: int) -> list[float]:
    """Two hops through the broker without the gateway: a -> relay -> b."""
    topic_in, topic_out = f"bench/{SITE}/in", f"bench/{SITE}/out"
    relay = await link(LinkConfig(host="127.0.0.1", port=port, client_id="bench-relay",
                                  subscriptions=((topic_in, 0),)))
    sink = await link(LinkConfig(host="127.0.0.1", port=port, client_id="bench-sink",
                                 subscriptions=((topic_out, 1),)))
    source = await link(LinkConfig(host="127.0.0.1", port=port, client_id="bench-source"))

    async def pump() -> None:
        while True:
            message: Inbound = await relay.receive()
            relay.publish(topic_out, message.payload, qos=1)

    pumping = asyncio.create_task(pump())
    samples: list[float] = []
    try:
        for i in range(count):
            began = time.perf_counter()
            source.publish(topic_in, str(i).encode(), qos=0)
            message = await asyncio.wait_for(sink.receive(), 10)
            sink.ack(message)
            samples.append(time.perf_counter() - began)
            await asyncio.sleep(0.01)
    finally:
        pumping.cancel()
        for client in (source, sink, relay):
            await client.close()
    return samples


async def welcome_latency(arrivals: int, members: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        async with Mosquitto(free_port(), Path(directory) / "broker") as broker:
            baseline = await broker_round_trips(broker.port, arrivals)
            app = create_app(settings(Path(directory), broker.port, members))
            runner = web.AppRunner(app)
            await runner.setup()
            try:
                await asyncio.wait_for(app[KIOSK].link.connected.wait(), 10)
                await measure(app, broker.port, arrivals, baseline)
            finally:
                await runner.cleanup()


async def measure(app: web.Application, port: int, arrivals: int,
                  baseline: list[float]) -> None:
    ble = app[BLE]
    await ble.refresh_keys()
    topics = ReceiverTopics(SITE)
    receiver = await link(receiver_link_config(topics, RECEIVER, "127.0.0.1", port))
    kiosk = await link(LinkConfig(
        host="127.0.0.1", port=port, client_id="bench-kiosk",
        subscriptions=((f"lty/v1/{SITE}/kiosk/{KIOSK_ID}/cmd/offer.show", 1),)))
    samples: list[float] = []
    try:
        for n in range(1, arrivals + 1):
            member = demo_member_id(n)
            payload = encode_batch(n, walk_up(member), ts="2026-11-22T10:00:00Z")
            began = time.perf_counter()
            receiver.publish(topics.adv(RECEIVER), payload, qos=0)
            message = await asyncio.wait_for(kiosk.receive(), 10)
            samples.append(time.perf_counter() - began)
            kiosk.ack(message)
            shown = json.loads(message.payload)["data"]["member"]["member_id"]
            assert shown == member, (shown, member)
            await asyncio.sleep(0.02)  # arrivals spread out, as at a door
    finally:
        await receiver.close()
        await kiosk.close()
    gateway = ble.stats.show_latencies
    assert ble.welcome is not None and ble.welcome.stats.shown == arrivals
    emit(BENCH, "show_latency_p50_ms", percentile(samples, 50) * 1000, unit="ms",
         target=None, baseline=percentile(baseline, 50) * 1000)
    emit(BENCH, "show_latency_p99_ms", percentile(samples, 99) * 1000, unit="ms",
         target="<= 50", baseline=percentile(baseline, 99) * 1000)
    emit(BENCH, "gateway_arrival_to_publish_p99_ms", percentile(gateway, 99) * 1000,
         unit="ms", target=None, baseline=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run for CI")
    args = parser.parse_args()
    if args.quick:
        asyncio.run(welcome_latency(arrivals=100, members=2_000))
    else:
        asyncio.run(welcome_latency(arrivals=1_000, members=20_000))


if __name__ == "__main__":
    main()
