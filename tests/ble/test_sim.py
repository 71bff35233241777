"""The BLE simulator: a replayable scenario, demo keys both sides agree on, and the whole
path from simulated receivers through a real mosquitto to arrivals in the real pipeline."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from click.testing import CliRunner

from devices.ble.const import ENTER_RSSI_DBM
from devices.ble.demo import (
    DEMO_MALL_UUID,
    DEMO_RECEIVERS,
    demo_key,
    demo_keys,
    demo_member_id,
)
from devices.ble.eid import EidResolver, MemberKey
from devices.ble.identity import Identifier, ble_key_value, parse_ble_key
from devices.ble.pipeline import Pipeline
from devices.ble.protocol import Advertisement, EddystoneEID, IBeacon, advertisement_from_ad, parse
from devices.ble.proximity import Arrival, Event, ProximityTracker
from devices.ble.remote import (
    MAX_ADVERTS,
    MAX_AGE_MS,
    ReceiverTopics,
    decode_batch,
    decode_receiver_status,
    default_receiver_contract,
    encode_batch,
)
from devices.ble.scenario import Scenario, ScenarioConfig, SimReceiver, Visit
from devices.ble.sim import Pacer, publish_scenario, rfc3339
from devices.mqtt.broker import Mosquitto
from devices.mqtt.transport import LinkConfig, MqttLink
from gateway.cli import main
from gateway.demo import demo_ids
from tests.conftest import free_port
from tests.kiosk.helpers import eventually

START = 1_800_000_000.0
SITE = "demo-mall"
CONTRACT = default_receiver_contract()
LAYOUT = tuple(SimReceiver(rid, zone) for rid, zone in DEMO_RECEIVERS.items())
# Two receivers covering one zone, as a wide entrance has.
TWO_IN_ONE = (*LAYOUT, SimReceiver("rx-atrium-east", "atrium"))


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Mosquitto]:
    async with Mosquitto(free_port(), tmp_path / "broker") as running:
        yield running


def scenario(seed: int, *, receivers: tuple[SimReceiver, ...] = LAYOUT, members: int = 20,
             **config: object) -> Scenario:
    if "count" not in config:
        config.setdefault("duration_s", 120.0)
    settings = ScenarioConfig(receivers=receivers, members=tuple(demo_keys(members)),
                              **config)  # type: ignore[arg-type]
    return Scenario(settings, seed=seed, start=START)


def lingered(visits: Iterable[Visit]) -> set[tuple[str, str]]:
    return {(visit.member_id, leg.zone) for visit in visits if visit.member_id is not None
            for leg in visit.legs if leg.mode == "linger"}


# --- demo keys --------------------------------------------------------------------------

def test_demo_keys_are_fixed_per_member_and_provisionable_as_ble_keys() -> None:
    key = demo_key("m-demo-0001")
    # pinned: the demo gateway seeds and the simulator derives exactly this
    assert ble_key_value(key) == "eid:7f2a7ab5b95e31936d7af111e7305805:10"
    assert demo_key("m-demo-0001") == key
    assert parse_ble_key("m-demo-0001", ble_key_value(key)) == key
    keys = demo_keys(50)
    assert len({k.identity_key for k in keys}) == 50
    assert [k.member_id for k in keys[:3]] == ["m-demo-0001", "m-demo-0002", "m-demo-0003"]
    assert all(demo_member_id(n) == demo_ids(n)[0] for n in (1, 20, 9999))


# --- the scenario -----------------------------------------------------------------------

def test_a_scenario_is_the_same_for_the_same_seed_and_differs_across_seeds() -> None:
    first = list(scenario(3).batches())
    assert first == list(scenario(3).batches())
    assert first != list(scenario(4).batches())
    in_batches = sorted((h for b in first for h in b.heard), key=lambda h: (h.at, h.rid))
    assert sorted(scenario(3).heard(), key=lambda h: (h.at, h.rid)) == in_batches


@pytest.mark.parametrize("seed", range(6))
def test_lingering_members_are_heard_strongly_and_passers_by_at_most_twice(seed: int) -> None:
    world = scenario(seed, receivers=TWO_IN_ONE, duration_s=300.0, rate_per_min=10.0)
    heard = list(world.heard())
    zone_of = {r.rid: r.zone for r in world.config.receivers}
    by_visit_zone: dict[tuple[int, str], list[int]] = {}
    for item in heard:
        if item.visit is not None:
            by_visit_zone.setdefault((item.visit, zone_of[item.rid]), []).append(item.rssi)
    legs = Counter(leg.mode for visit in world.visits for leg in visit.legs)
    assert legs["linger"] >= 5 and legs["pass"] >= 3, legs  # the scenario has both kinds
    for visit in world.visits:
        for leg in visit.legs:
            inside = [h for h in heard if h.visit == visit.index and zone_of[h.rid] == leg.zone
                      and leg.start <= h.at <= leg.end and h.kind == leg.mode]
            if leg.mode == "linger":
                assert sum(h.rssi >= ENTER_RSSI_DBM for h in inside) >= 10, (visit, leg)
            else:
                assert 1 <= len(inside) <= 2, (visit, leg)
        if all(leg.mode == "pass" for leg in visit.legs):  # a passer-by and nothing else
            for leg in visit.legs:
                assert len(by_visit_zone[visit.index, leg.zone]) <= 2


def test_members_send_eid_or_the_ibeacon_token_and_strangers_and_noise_are_mixed_in() -> None:
    world = scenario(5, duration_s=300.0, rate_per_min=12.0)
    frames: dict[str, set[type]] = {}
    kinds: Counter[str] = Counter()
    for item in world.heard():
        kinds[item.kind] += 1
        sighting = parse(advertisement_from_ad(item.ad, rssi=item.rssi))
        if item.kind == "noise":
            assert sighting is None
            continue
        assert sighting is not None
        if isinstance(sighting.frame, IBeacon):
            assert sighting.frame.uuid == DEMO_MALL_UUID
        visit = next(v for v in world.visits if v.index == item.visit)
        frames.setdefault(visit.key.member_id, set()).add(type(sighting.frame))
    assert set(kinds) == {"linger", "pass", "bleed", "noise"}
    assert frames["m-demo-0001"] == {EddystoneEID}  # odd members: Android, Eddystone-EID
    assert frames["m-demo-0002"] == {IBeacon}  # even members: iPhone, the iBeacon token
    assert any(member.startswith("stranger-") for member in frames)
    assert all(len(kind) == 1 for kind in frames.values())


def test_eids_and_addresses_rotate_over_a_long_run() -> None:
    world = scenario(2, members=2, count=80, rate_per_min=1.0, noise_per_s=0.0,
                     stranger_share=0.0)
    ads: dict[str | None, set[bytes]] = {}
    macs: dict[str | None, set[str]] = {}
    for item in world.heard():
        owner = next(v.member_id for v in world.visits if v.index == item.visit)
        ads.setdefault(owner, set()).add(item.ad)
        macs.setdefault(owner, set()).add(item.mac)
    assert world.visits[-1].end - START > 3 * 1024  # several EID windows
    assert len(ads["m-demo-0001"]) >= 3
    assert len(macs["m-demo-0001"]) >= 3


def test_batches_carry_every_advert_once_in_order_within_the_limits() -> None:
    world = scenario(7, receivers=TWO_IN_ONE, rate_per_min=30.0)
    batches = list(world.batches())
    assert sorted((h for b in batches for h in b.heard), key=lambda h: (h.at, h.rid)) == sorted(
        world.heard(), key=lambda h: (h.at, h.rid))
    assert all(a.send_at <= b.send_at for a, b in itertools.pairwise(batches))
    seqs: dict[str, list[int]] = {}
    for b in batches:
        assert 1 <= len(b.heard) <= MAX_ADVERTS
        assert all(0 <= a.age_ms <= MAX_AGE_MS for a in b.adverts)
        assert all(h.rid == b.rid and h.at <= b.send_at for h in b.heard)
        seqs.setdefault(b.rid, []).append(b.seq)
    assert all(s == list(range(1, len(s) + 1)) for s in seqs.values())


@pytest.mark.parametrize("bad", [
    {"receivers": ()}, {"rate_per_min": 0.0}, {"duration_s": None},
    {"count": 3}, {"duration_s": None, "count": 0}, {"duration_s": -1.0},
    {"stranger_share": 1.5}, {"noise_per_s": -1.0},
    {"receivers": (SimReceiver("rx-a", "a"), SimReceiver("rx-a", "b"))},
])
def test_a_scenario_config_refuses_nonsense(bad: dict[str, object]) -> None:
    arguments: dict[str, object] = {"receivers": LAYOUT, "members": (), "duration_s": 60.0}
    arguments.update(bad)
    with pytest.raises(ValueError, match=r"receiver|rate|duration|count|share|noise"):
        ScenarioConfig(**arguments)  # type: ignore[arg-type]


# --- through the pipeline -----------------------------------------------------------------

def pipeline(keys: Iterable[MemberKey], now: float) -> Pipeline:
    resolver = EidResolver()
    resolver.upsert_many(keys, now)
    return Pipeline(Identifier(resolver, mall_uuid=DEMO_MALL_UUID), ProximityTracker())


def replay(pipe: Pipeline, sightings: list[tuple[Advertisement, str, float]],
           start: float) -> list[Event]:
    """Feed (advert, zone, at) in time order, ticking every second as the service does."""
    events: list[Event] = []
    clock = start
    for advertisement, zone, at in sorted(sightings, key=lambda item: item[2]):
        while clock + 1 <= at:
            clock += 1
            events += pipe.tick(clock)
        events += pipe.feed(advertisement, zone, at)
    for _ in range(200):
        clock += 1
        events += pipe.tick(clock)
    return events


@pytest.mark.parametrize("seed", range(4))
def test_decoded_batches_give_arrivals_exactly_where_members_lingered(seed: int) -> None:
    world = scenario(seed, receivers=TWO_IN_ONE, duration_s=400.0, rate_per_min=10.0)
    zone_of = {r.rid: r.zone for r in world.config.receivers}
    sightings = []
    for b in world.batches():
        payload = encode_batch(b.seq, b.adverts, ts=rfc3339(b.send_at))
        decoded = decode_batch(CONTRACT, b.rid, payload, received_at=b.send_at)
        sightings += [(adv, zone_of[b.rid], at) for adv, at in decoded.sightings]
    events = replay(pipeline(world.config.members, START), sightings, START)
    arrivals = {(e.member_id, e.zone) for e in events if isinstance(e, Arrival)}
    assert arrivals == lingered(world.visits)
    assert len(arrivals) >= 3


# --- through a real broker ----------------------------------------------------------------

async def test_receivers_publish_through_mosquitto_and_the_gateway_side_decodes_arrivals(
        broker: Mosquitto) -> None:
    world = Scenario(ScenarioConfig(receivers=LAYOUT, members=tuple(demo_keys(20)),
                                    duration_s=150.0, rate_per_min=12.0),
                     seed=11, start=START)
    topics = ReceiverTopics(SITE)
    gateway = LinkConfig(host="127.0.0.1", port=broker.port, client_id="gw-test",
                         subscriptions=tuple((t, 0) for t in topics.subscriptions))
    received: list[tuple[str, bytes, float]] = []
    statuses: dict[str, list[bool]] = {}
    async with MqttLink(gateway) as link:
        await asyncio.wait_for(link.connected.wait(), 10)
        pacer = Pacer(START, speed=50.0)

        async def consume() -> None:
            while True:
                message = await link.receive()
                parsed = topics.parse(message.topic)
                assert parsed is not None
                rid, kind = parsed
                if kind == "status":
                    status = decode_receiver_status(CONTRACT, rid, message.payload)
                    statuses.setdefault(rid, []).append(status.online)
                else:  # the gateway stamps with its own clock on arrival
                    received.append((rid, message.payload, pacer.now()))

        consumer = asyncio.create_task(consume())
        stats = await publish_scenario(world, host="127.0.0.1", port=broker.port, site=SITE,
                                       pacer=pacer)
        await eventually(lambda: len(received) == stats.batches
                         and all(s[-1:] == [False] for s in statuses.values()))
        consumer.cancel()
    assert stats.dropped == 0 and stats.batches > 100
    assert set(statuses) == set(DEMO_RECEIVERS)
    assert all(s == [True, False] for s in statuses.values())  # birth, then the clean Will
    sightings = []
    for rid, payload, received_at in received:
        batch = decode_batch(CONTRACT, rid, payload, received_at=received_at)
        sightings += [(adv, DEMO_RECEIVERS[rid], at) for adv, at in batch.sightings]
    assert len(sightings) == stats.adverts
    events = replay(pipeline(demo_keys(20), START), sightings, START)
    arrivals = {(e.member_id, e.zone) for e in events if isinstance(e, Arrival)}
    expected = lingered(world.visits)
    assert arrivals == expected
    assert len(expected) >= 3
    # and nobody who only walked past was greeted
    walked_past_only = {(v.member_id, leg.zone) for v in world.visits for leg in v.legs
                        if v.member_id is not None and leg.mode == "pass"} - expected
    assert walked_past_only
    assert not arrivals & walked_past_only


async def test_the_command_runs_against_a_broker_and_leaves_its_receivers_offline(
        broker: Mosquitto) -> None:
    result = await asyncio.to_thread(CliRunner().invoke, main, [
        "sim", "ble", "--port", str(broker.port), "--duration", "3", "--rate", "60",
        "--receiver", "rx-gate=gate", "--members", "4", "--seed", "2",
        "--progress-every", "0.5"])
    assert result.exit_code == 0, result.output
    assert "from 1 receivers (seed 2)" in result.stdout.splitlines()[0]
    assert "adverts by kind: noise" in result.stdout  # 3 s: too short for a visit
    # progress on stderr while it ran, never mixed into the summary on stdout
    progress = [line for line in result.stderr.splitlines()
                if line.startswith("sim ble: published")]
    assert progress, result.stderr
    assert "sim ble:" not in result.stdout
    topics = ReceiverTopics(SITE)
    late = LinkConfig(host="127.0.0.1", port=broker.port, client_id="late",
                      subscriptions=((topics.status("rx-gate"), 1),))
    async with MqttLink(late) as link:
        retained = await asyncio.wait_for(link.receive(), 10)
    assert retained.retain and json.loads(retained.payload)["online"] is False


def test_the_command_refuses_a_bad_receiver_and_an_unreachable_broker() -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["sim", "ble", "--receiver", "RX=gate"])
    assert bad.exit_code == 2 and "slug" in bad.output
    unreachable = runner.invoke(main, ["sim", "ble", "--port", str(free_port()),
                                       "--duration", "2", "--connect-timeout", "0.5"])
    assert unreachable.exit_code == 1 and "MQTT broker 127.0.0.1" in unreachable.output
