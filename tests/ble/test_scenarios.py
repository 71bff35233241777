"""From advertisements to arrivals: rotating MACs and EIDs, iBeacon tokens, legacy cards,
a receiver that goes quiet, all replayed through the pure pipeline with a controllable clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from devices.ble.const import APPLE_COMPANY_ID, EDDYSTONE_SERVICE_UUID
from devices.ble.eid import EidResolver, MemberKey, ephemeral_id, ibeacon_token
from devices.ble.identity import Identifier, Match
from devices.ble.pipeline import Pipeline
from devices.ble.protocol import Advertisement, parse
from devices.ble.proximity import Arrival, Event, Exit, ProximityTracker
from tests.ble.traces import linear, noisy, steady

MALL_UUID = uuid.UUID("6d616c6c-6761-7465-0000-000000000001")
LEGACY_CARD = ("ibeacon:426c7565-4368-6172-6d42-6561636f6e73:3838:4949", "legacy")
K10 = 1024


def gold_key() -> MemberKey:
    return MemberKey("gold", identity_key=bytes.fromhex("0102030405060708090a111213141516"))


def eid_advert(key: MemberKey, at: float, rssi: float) -> Advertisement:
    eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(at))
    return Advertisement(service_data={EDDYSTONE_SERVICE_UUID: b"\x30\xee" + eid},
                         service_uuids=(EDDYSTONE_SERVICE_UUID,), rssi=round(rssi))


def token_advert(key: MemberKey, at: float, rssi: float) -> Advertisement:
    eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(at))
    major, minor = ibeacon_token(eid)
    payload = (b"\x02\x15" + MALL_UUID.bytes + major.to_bytes(2, "big")
               + minor.to_bytes(2, "big") + b"\xc5")
    return Advertisement(manufacturer_data={APPLE_COMPANY_ID: payload}, rssi=round(rssi))


@dataclass
class Mall:
    pipeline: Pipeline
    clock: float = 0.0

    def run(self, adverts: list[tuple[float, str, Advertisement]], *, until: float) -> list[Event]:
        """Deliver (at, zone, advert) in time order, ticking every second like the service."""
        events: list[Event] = []
        for at, zone, advert in sorted(adverts, key=lambda item: item[0]):
            while self.clock + 1 <= at:
                self.clock += 1
                events += self.pipeline.tick(self.clock)
            events += self.pipeline.feed(advert, zone, at)
        while self.clock + 1 <= until:
            self.clock += 1
            events += self.pipeline.tick(self.clock)
        return events


def mall(start: float, *keys: MemberKey) -> Mall:
    resolver = EidResolver()
    resolver.upsert_many(keys, start)
    identifier = Identifier(resolver, mall_uuid=MALL_UUID, static_ids=dict([LEGACY_CARD]))
    return Mall(Pipeline(identifier, ProximityTracker()), clock=start)


@pytest.mark.parametrize("seed", range(4))
def test_a_visit_across_an_eid_window_turn_with_rotating_macs_is_one_visit(seed: int) -> None:
    key = gold_key()
    start = 10 * K10 - 300  # the member's id (and, on a phone, its MAC) changes 5 min in
    trace = noisy(steady(-64), start=start, duration=600, interval=1.0, seed=seed)
    # A phone's MAC rotates with its EID; the advertisement carries no address at all,
    # so nothing downstream can key on it. The EIDs heard really do change:
    adverts = [(at, "entrance-a", eid_advert(key, at, rssi)) for at, rssi in trace]
    heard = {parse(a).identity for _, _, a in adverts}  # type: ignore[union-attr]
    assert len(heard) == 2
    world = mall(start, key)
    events = world.run(adverts, until=start + 600 + 200)
    assert [type(e) for e in events] == [Arrival, Exit]
    assert events[0].member_id == "gold"
    assert isinstance(events[1], Exit) and events[1].reason == "absent"
    assert world.pipeline.identifier.stats.unknown == 0


def test_an_iphone_with_the_ibeacon_token_arrives_at_the_entrance_it_walks_to() -> None:
    key = MemberKey("ios", identity_key=b"\x42" * 16)
    start = 5_000_000.0
    approach = noisy(linear(-95, -62, 20), start=start, duration=90, interval=1.0, seed=3)
    far = noisy(steady(-92), start=start, duration=90, interval=1.0, seed=4)
    adverts = [(at, "entrance-a", token_advert(key, at, rssi)) for at, rssi in approach]
    adverts += [(at, "entrance-b", token_advert(key, at, rssi)) for at, rssi in far]
    events = mall(start, key).run(adverts, until=start + 90)
    assert [(type(e), e.member_id, e.zone) for e in events] == [(Arrival, "ios", "entrance-a")]


def test_a_legacy_card_is_matched_by_its_static_id_and_flagged_trackable() -> None:
    world = mall(0.0)
    card = Advertisement(manufacturer_data={APPLE_COMPANY_ID: bytes.fromhex(
        "0215426c7565436861726d426561636f6e730efe1355c5")}, rssi=-60)
    sighting = parse(card)
    assert sighting is not None
    assert world.pipeline.identifier.identify(sighting) == Match("legacy", "static",
                                                                  trackable=True)
    events = world.run([(float(t), "store-7", card) for t in range(1, 6)], until=6)
    assert [(type(e), e.member_id) for e in events] == [(Arrival, "legacy")]


def test_strangers_and_shop_beacons_are_counted_not_tracked() -> None:
    world = mall(0.0, gold_key())
    stranger = MemberKey("someone-else", identity_key=b"\x99" * 16)
    adverts = [(float(t), "entrance-a", eid_advert(stranger, t, -55)) for t in range(1, 6)]
    adverts += [(float(t), "entrance-a", token_advert(stranger, t, -55)) for t in range(1, 6)]
    adverts += [(float(t), "entrance-a", Advertisement(rssi=-50)) for t in range(1, 6)]
    assert world.run(adverts, until=10) == []
    assert world.pipeline.identifier.stats.unknown == 10
    assert world.pipeline.parse_stats.rejected == {"no_beacon_data": 5}
    assert len(world.pipeline.tracker) == 0


@pytest.mark.parametrize(("outage_s", "expected"), [
    (20, ["arrival"]),  # a short adapter restart: the visit goes on
    (120, ["arrival", "absent", "arrival"]),  # a long one: the member is gone, then back
])
def test_receiver_restart(outage_s: int, expected: list[str]) -> None:
    key = gold_key()
    start = 100_000.0
    before = noisy(steady(-63), start=start, duration=60, interval=1.0, seed=1, miss_rate=0)
    after = noisy(steady(-63), start=start + 60 + outage_s, duration=60, interval=1.0, seed=2,
                  miss_rate=0)
    adverts = [(at, "entrance-a", eid_advert(key, at, rssi)) for at, rssi in [*before, *after]]
    events = mall(start, key).run(adverts, until=start + 120 + outage_s)
    assert [e.reason if isinstance(e, Exit) else "arrival" for e in events] == expected


def test_two_members_in_two_zones_are_tracked_apart() -> None:
    gold, silver = gold_key(), MemberKey("silver", identity_key=b"\x07" * 16)
    adverts = [(at, "entrance-a", eid_advert(gold, at, rssi))
               for at, rssi in noisy(steady(-60), start=0, duration=30, interval=1.0, seed=5)]
    adverts += [(at, "store-7", token_advert(silver, at, rssi))
                for at, rssi in noisy(steady(-66), start=0, duration=30, interval=1.0, seed=6)]
    events = mall(0.0, gold, silver).run(adverts, until=30)
    assert sorted((e.member_id, e.zone) for e in events) == [("gold", "entrance-a"),
                                                             ("silver", "store-7")]
