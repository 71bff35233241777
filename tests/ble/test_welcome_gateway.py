"""Welcome offers end to end: a remote receiver's sightings through a real mosquitto into
the real gateway app, `cmd/offer.show` on the zone's kiosk, and the claim at the kiosk."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devices.ble.demo import DEMO_MALL_UUID, demo_key
from devices.ble.eid import ephemeral_id
from devices.ble.remote import ReceiverTopics, RemoteAdvert, encode_batch
from devices.ble.scenario import eid_ad
from devices.ble.sim import receiver_link_config
from devices.kiosk.protocol import default_contract
from devices.mqtt.broker import Mosquitto
from devices.mqtt.transport import Inbound, LinkConfig, MqttLink
from gateway.app.keys import BLE, METRICS, READER
from gateway.ids import new_ulid
from gateway.loyalty import new_code, normalise_code
from gateway.settings import Settings
from tests.conftest import free_port
from tests.kiosk.helpers import SITE, eventually, kiosk, kiosk_settings_data, running_gateway

CONTRACT = default_contract()
RECEIVERS = ReceiverTopics(SITE)
SILVER, GOLD, DIAMOND = "m-demo-0001", "m-demo-0002", "m-demo-0003"  # demo tiers by number


def ble_settings(tmp_path: Path, port: int) -> Settings:
    data = kiosk_settings_data(tmp_path, port)
    data["ble"] = {
        "enabled": True, "mall_uuid": str(DEMO_MALL_UUID), "tick_s": 0.2,
        "zones": [{"id": "entrance-north", "kind": "entrance", "kiosks": ["k1"]},
                  {"id": "atrium", "kiosks": ["k3"]}],
        "receivers": [{"id": "rx-north", "zone": "entrance-north"},
                      {"id": "rx-atrium", "zone": "atrium"}],
    }
    return Settings.model_validate_json(json.dumps(data))


def advert(member_id: str, rssi: int, age_ms: int) -> RemoteAdvert:
    key = demo_key(member_id)
    eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(time.time()))
    return RemoteAdvert(ad=eid_ad(eid), rssi=rssi, age_ms=age_ms)


def linger(member_id: str, rssi: int = -60, count: int = 6, every_ms: int = 300
           ) -> list[RemoteAdvert]:
    """A member standing near the receiver: `count` adverts, one every `every_ms`, up to
    now."""
    return [advert(member_id, rssi, age_ms=every_ms * (count - 1 - i)) for i in range(count)]


class Kiosks:
    """Every kiosk's `cmd/offer.show`, as the kiosks receive them."""

    def __init__(self, link: MqttLink) -> None:
        self.shown: list[tuple[str, dict[str, Any]]] = []
        self._pump = asyncio.create_task(self._receive(link))

    async def _receive(self, link: MqttLink) -> None:
        while True:
            message: Inbound = await link.receive()
            self.shown.append((message.topic.split("/")[4], json.loads(message.payload)))
            link.ack(message)


@asynccontextmanager
async def watching_kiosks(port: int) -> AsyncIterator[Kiosks]:
    config = LinkConfig(host="127.0.0.1", port=port, client_id="kiosk-watcher",
                        subscriptions=((f"lty/v1/{SITE}/kiosk/+/cmd/offer.show", 1),))
    async with MqttLink(config) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        watcher = Kiosks(link)
        yield watcher
        watcher._pump.cancel()


@asynccontextmanager
async def receiver(port: int, rid: str) -> AsyncIterator[MqttLink]:
    async with MqttLink(receiver_link_config(RECEIVERS, rid, "127.0.0.1", port)) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        yield link


def send(link: MqttLink, rid: str, seq: int, adverts: list[RemoteAdvert]) -> None:
    link.publish(RECEIVERS.adv(rid), encode_batch(seq, adverts, ts="2026-11-22T10:00:00Z"),
                 qos=0)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[web.Application, int]]:
    """A mosquitto and the gateway app with BLE on it: (app, broker port)."""
    async with (Mosquitto(free_port(), tmp_path / "broker") as broker,
                running_gateway(ble_settings(tmp_path, broker.port)) as app):
        yield app, broker.port


async def outbox(app: web.Application) -> list[tuple[str, dict[str, Any]]]:
    rows = await app[READER].run(lambda conn: conn.execute(
        "SELECT event_type, payload FROM outbox WHERE event_type != 'ledger.entry' "
        "ORDER BY seq").fetchall())
    return [(kind, json.loads(payload)) for kind, payload in rows]


async def test_a_member_who_lingers_gets_one_offer_and_passers_by_none(
        gateway: tuple[web.Application, int]) -> None:
    app, port = gateway
    async with watching_kiosks(port) as kiosks, receiver(port, "rx-north") as north:
        ble = app[BLE]
        await eventually(lambda: ble.receivers["rx-north"].online is True)
        send(north, "rx-north", 1, linger(GOLD) + linger(SILVER)
             + [advert(DIAMOND, -60, 300), advert(DIAMOND, -61, 0)]  # walks past
             + [RemoteAdvert(ad=eid_ad(b"\x01" * 8), rssi=-55, age_ms=0)])  # a stranger
        await eventually(lambda: ble.stats.arrivals == 2)
        await ble.settle()
        await eventually(lambda: len(kiosks.shown) == 2)
        by_member = {show["data"]["member"]["member_id"]: (kid, show)
                     for kid, show in kiosks.shown}
        assert set(by_member) == {GOLD, SILVER}
        kid, gold_show = by_member[GOLD]
        assert kid == "k1" and gold_show["data"]["offer_id"] == "demo-welcome-vip"
        assert gold_show["data"]["member"]["tier"] == "gold"
        assert by_member[SILVER][1]["data"]["offer_id"] == "demo-welcome"
        for _, show in kiosks.shown:
            assert CONTRACT.schema_error("#/components/schemas/OfferShow", show) is None

        # The gold member leaves (signal fades) and comes back: a second arrival, but
        # within the cooldown, so no second offer.
        # (an exit is checked at most once per second of sightings: these span two)
        await asyncio.sleep(2.5)
        send(north, "rx-north", 2, [advert(GOLD, -98, 100 * (20 - i)) for i in range(20)])
        await eventually(lambda: ble.stats.exits["weak_signal"] == 1)
        # back after a moment, outnumbering the faded readings still in the window
        await asyncio.sleep(1)
        send(north, "rx-north", 3, linger(GOLD, count=24, every_ms=40))
        await eventually(lambda: ble.stats.arrivals == 3)
        await ble.settle()
        assert len(kiosks.shown) == 2
        visits = [p for kind, p in await outbox(app) if kind == "visit"]
        assert sorted((v["member_id"], v["offer_id"] or "") for v in visits) == [
            (SILVER, "demo-welcome"), (GOLD, ""), (GOLD, "demo-welcome-vip")]


async def test_the_shown_offer_is_claimed_once_at_the_kiosk(
        gateway: tuple[web.Application, int]) -> None:
    app, port = gateway
    async with receiver(port, "rx-north") as north, kiosk(port, "k1") as k1:
        ble = app[BLE]
        await ble.refresh_keys()
        session = await k1.session("card", "DEMO0002")  # GOLD's card
        not_shown = await k1.request("offer.claim", {"session": session,
                                                     "offer_id": "demo-welcome-vip"})
        assert not_shown["error"]["code"] == "offer_not_available"
        send(north, "rx-north", 1, linger(GOLD))
        await eventually(lambda: ble.stats.arrivals == 1)
        await ble.settle()
        claim_id = new_ulid()
        data = {"session": session, "member_id": GOLD, "offer_id": "demo-welcome-vip"}
        claimed = await k1.request("offer.claim", data, request_id=claim_id)
        assert claimed["status"] == "ok", claimed
        assert CONTRACT.schema_error("#/components/schemas/OfferClaimReply", claimed) is None
        assert claimed["data"]["description"] == "One free coffee"
        assert await k1.request("offer.claim", data, request_id=claim_id) == claimed
        twice = await k1.request("offer.claim", data)
        assert twice["error"]["code"] == "offer_already_claimed"
        claims = [p for kind, p in await outbox(app) if kind == "offer.claimed"]
        assert [(c["coupon_code"], c["kiosk_id"]) for c in claims] == [
            (claimed["data"]["coupon_code"], "k1")]


async def test_bad_receiver_messages_are_counted_and_sightings_keep_flowing(
        gateway: tuple[web.Application, int]) -> None:
    app, port = gateway
    async with receiver(port, "rx-atrium") as atrium, receiver(port, "rx-rogue") as rogue:
        ble = app[BLE]
        await ble.refresh_keys()
        atrium.publish(RECEIVERS.adv("rx-atrium"), b"{not json", qos=0)
        atrium.publish(RECEIVERS.adv("rx-atrium"), json.dumps(
            {"v": 1, "ts": "2026-11-22T10:00:00Z", "seq": 1,
             "adverts": [{"ad": "0g", "rssi": -60, "age_ms": 0}]}).encode(), qos=0)
        send(rogue, "rx-rogue", 1, linger(GOLD))
        send(atrium, "rx-atrium", 2, linger(SILVER))
        await eventually(lambda: ble.stats.arrivals == 1)
        state = ble.receivers["rx-atrium"]
        assert (state.rejected, state.batches) == (2, 1)
        assert ble.stats.unknown_receivers >= 1
        text = app[METRICS].render().decode()
        rejected = 'mallgate_ble_receiver_rejected_total{receiver="rx-atrium",zone="atrium"}'
        assert f"{rejected} 2.0" in text
        assert "mallgate_ble_arrivals_total 1.0" in text


async def test_a_claimed_coupon_is_listed_and_checked_at_the_kiosk(
        gateway: tuple[web.Application, int]) -> None:
    """The welcome offer's coupon is a real one: listed for its member, worth its free item
    on a basket that has it, and a typo or a code nobody issued is refused by name."""
    app, port = gateway
    async with receiver(port, "rx-north") as north, kiosk(port, "k1") as k1:
        ble = app[BLE]
        await ble.refresh_keys()
        send(north, "rx-north", 1, linger(GOLD))
        await eventually(lambda: ble.stats.arrivals == 1)
        await ble.settle()
        session = await k1.session("card", "DEMO0002")  # GOLD's card
        claimed = await k1.request("offer.claim", {"session": session, "member_id": GOLD,
                                                   "offer_id": "demo-welcome-vip"})
        code = claimed["data"]["coupon_code"]
        assert verify_code_of_run(code) and claimed["data"]["coupon"]["terms"]["sku"]

        listed = await k1.request("coupon.list", {"session": session})
        assert CONTRACT.schema_error("#/components/schemas/CouponListReply", listed) is None
        [coupon] = listed["data"]["coupons"]
        assert (coupon["status"], coupon["code"].replace("-", "")) == ("issued", code)
        assert (await k1.request("coupon.list", {"member_id": GOLD}))["error"]["code"] == \
            "session_required"  # a member's codes only where the member identified
        silver = await k1.session("card", "DEMO0001")  # SILVER's card
        assert (await k1.request("coupon.list", {"session": silver}))["data"]["coupons"] == []

        basket = {"total_fen": 4_500, "lines": [
            {"amount_fen": 3_000, "category": "food", "sku": "CAFE-COFFEE", "quantity": 2},
            {"amount_fen": 1_500, "category": "food", "sku": "CAKE"}]}
        checked = await k1.request("coupon.check", {"member_id": GOLD, "code": coupon["code"]
                                                    .lower(), **basket})
        assert CONTRACT.schema_error("#/components/schemas/CouponCheckReply", checked) is None
        assert (checked["data"]["discount_fen"], checked["data"]["sku"]) == (1_500,
                                                                             "CAFE-COFFEE")

        async def refusal(data: dict[str, Any]) -> str:
            reply = await k1.request("coupon.check", data)
            assert CONTRACT.schema_error("#/components/schemas/ErrorReply", reply) is None
            return str(reply["error"]["code"])

        typo = code[:3] + ("X" if code[3] != "X" else "Y") + code[4:]
        assert await refusal({"member_id": GOLD, "code": typo, **basket}) == (
            "coupon_code_mistyped")
        assert await refusal({"member_id": GOLD, "code": new_code(b"other", SITE),
                              **basket}) == "coupon_unknown"
        assert await refusal({"member_id": GOLD, "code": code, "total_fen": 900,
                              "lines": [{"amount_fen": 900, "sku": "TEA"}]}) == (
            "item_not_in_basket")
        assert await refusal({"member_id": SILVER, "code": code, **basket}) == (
            "not_this_member")


def verify_code_of_run(code: str) -> bool:
    """A code is 13 characters of Crockford base32 with a valid check character."""
    return normalise_code(code) == code and len(code) == 13
