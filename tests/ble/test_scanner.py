"""The real `BleakScanner`, through `ScannerReceiver`, against a fake BlueZ on a private bus.

Each test gets its own bus daemon, mock bluetoothd and event loop (bleak keeps one BlueZ
manager per loop). Adverts are scripted as bluetoothd reports them: a new Device1 object
(InterfacesAdded), then PropertiesChanged for each later advert.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from bleak.backends.scanner import AdvertisementData

from devices.ble import const
from devices.ble.const import APPLE_COMPANY_ID, EDDYSTONE_SERVICE_UUID
from devices.ble.eid import EidResolver, MemberKey, ephemeral_id
from devices.ble.identity import Identifier
from devices.ble.pipeline import Pipeline
from devices.ble.protocol import (
    Advertisement,
    EddystoneEID,
    IBeacon,
    ParseStats,
    parse,
)
from devices.ble.proximity import Arrival, Event, ProximityTracker
from devices.ble.transport import (
    BEACON_OR_PATTERNS,
    ScannerReceiver,
    ScannerState,
    ScanningMode,
    advertisement_of,
    restart_backoff,
)
from tests.ble.bluez import FakeBlueZ, running

WAIT_S = 5.0  # upper bound of any wait; a passing test waits milliseconds
MALL_UUID = uuid.UUID("6d616c6c-6761-7465-0000-000000000001")
SHOP_UUID = uuid.UUID("426c7565-4368-6172-6d42-6561636f6e73")


def ibeacon(beacon: uuid.UUID, major: int, minor: int, power: int = -59) -> dict[int, bytes]:
    return {APPLE_COMPANY_ID: b"\x02\x15" + beacon.bytes + major.to_bytes(2, "big")
            + minor.to_bytes(2, "big") + (power & 0xFF).to_bytes(1, "big")}


def eid_frame(eid: bytes, power_0m: int = -20) -> dict[str, bytes]:
    return {EDDYSTONE_SERVICE_UUID: b"\x30" + (power_0m & 0xFF).to_bytes(1, "big") + eid}


class Ticker:
    """A clock that moves `step` seconds each time it is read."""

    def __init__(self, start: float, step: float = 1.0) -> None:
        self.now = start
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class Heard:
    """What the receiver's callback was given, with a bounded wait for more."""

    items: list[tuple[Advertisement, str, float]] = field(default_factory=list)
    _more: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, advertisement: Advertisement, zone: str, at: float) -> None:
        self.items.append((advertisement, zone, at))
        self._more.set()

    async def wait_for(self, count: int) -> list[Advertisement]:
        async with asyncio.timeout(WAIT_S):
            while len(self.items) < count:
                self._more.clear()
                await self._more.wait()
        return [advertisement for advertisement, _, _ in self.items]


@pytest.fixture
async def bluez(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBlueZ]:
    async with running(monkeypatch, "hci0") as fake:
        yield fake


def receiver(on_advert: Heard, *, mode: ScanningMode = "active",
             clock: Ticker | None = None) -> ScannerReceiver:
    return ScannerReceiver("hci0", "entrance-a", on_advert, scanning_mode=mode,
                           clock=clock or Ticker(1000.0), retry_first_s=0.05, retry_max_s=0.2,
                           probe_interval_s=0.5, call_timeout_s=2.0)


async def in_state(scanner: ScannerReceiver, state: ScannerState) -> None:
    async with asyncio.timeout(WAIT_S):
        await scanner.wait_for_state(state)


async def test_an_ibeacon_reaches_the_callback_with_zone_and_clock_time(
        bluez: FakeBlueZ) -> None:
    heard = Heard()
    async with receiver(heard, clock=Ticker(1000.0)) as scanner:
        await in_state(scanner, "scanning")
        await bluez.add_device("C0:FF:EE:00:00:01", rssi=-58, name="shop-7",
                               manufacturer_data=ibeacon(SHOP_UUID, 3838, 4949),
                               tx_power=-4)
        [advert] = await heard.wait_for(1)
        _, zone, at = heard.items[0]
        assert zone == "entrance-a"
        assert at == scanner.health.last_advert_at
        assert at > scanner.health.since  # type: ignore[operator]
        assert (advert.rssi, advert.local_name, advert.tx_power) == (-58, "shop-7", -4)
        sighting = parse(advert)
        assert sighting is not None
        assert sighting.frame == IBeacon(uuid=SHOP_UUID, major=3838, minor=4949, power_1m=-59)
        assert scanner.health.adverts == 1
    assert await bluez.calls("/org/bluez/hci0") == [
        "SetDiscoveryFilter", "StartDiscovery", "StopDiscovery", "SetDiscoveryFilter"]


async def test_an_eddystone_eid_under_the_feaa_service_uuid_is_read(bluez: FakeBlueZ) -> None:
    heard = Heard()
    eid = bytes.fromhex("0123456789abcdef")
    async with receiver(heard) as scanner:
        await in_state(scanner, "scanning")
        await bluez.add_device("4A:00:00:00:00:02", rssi=-67, service_data=eid_frame(eid),
                               uuids=[EDDYSTONE_SERVICE_UUID])
        [advert] = await heard.wait_for(1)
    assert advert.service_uuids == (EDDYSTONE_SERVICE_UUID,)
    assert advert.service_data == {EDDYSTONE_SERVICE_UUID: b"\x30\xec" + eid}
    sighting = parse(advert)
    assert sighting is not None
    assert sighting.frame == EddystoneEID(eid=eid, tx_power_0m=-20)
    assert sighting.rssi == -67


async def test_every_rssi_update_of_a_device_is_delivered(bluez: FakeBlueZ) -> None:
    heard = Heard()
    async with receiver(heard) as scanner:
        await in_state(scanner, "scanning")
        path = await bluez.add_device("4A:00:00:00:00:03", rssi=-80,
                                      manufacturer_data=ibeacon(SHOP_UUID, 1, 2))
        for rssi in (-74, -69, -69, -61):
            await bluez.update_device(path, rssi=rssi)
        adverts = await heard.wait_for(5)
    assert [a.rssi for a in adverts] == [-80, -74, -69, -69, -61]
    assert {parse(a).identity for a in adverts} == {  # type: ignore[union-attr]
        f"ibeacon:{SHOP_UUID}:1:2"}
    times = [at for _, _, at in heard.items]
    assert times == sorted(times) and len(set(times)) == 5


async def test_a_rotated_mac_carrying_the_same_payload_is_the_same_identity(
        bluez: FakeBlueZ) -> None:
    heard = Heard()
    eid = bytes.fromhex("feedfacecafebeef")
    async with receiver(heard) as scanner:
        await in_state(scanner, "scanning")
        # Each random address is a new Device1 object in BlueZ.
        await bluez.add_device("5B:11:22:33:44:01", rssi=-62, service_data=eid_frame(eid))
        await bluez.add_device("6C:55:66:77:88:02", rssi=-63, service_data=eid_frame(eid))
        adverts = await heard.wait_for(2)
    sightings = [parse(a) for a in adverts]
    assert [s.rssi for s in sightings if s is not None] == [-62, -63]
    assert {s.identity for s in sightings if s is not None} == {f"eddystone-eid:{eid.hex()}"}


async def test_garbage_payloads_are_delivered_and_counted_by_parse_without_a_crash(
        bluez: FakeBlueZ) -> None:
    heard = Heard()
    stats = ParseStats()
    async with receiver(heard) as scanner:
        await in_state(scanner, "scanning")
        path = await bluez.add_device("4A:00:00:00:00:04", rssi=-70,
                                      manufacturer_data={0x0059: b"\xde\xad\xbe\xef"})
        await bluez.update_device(path, manufacturer_data={APPLE_COMPANY_ID: b"\x02\x15\x01"})
        await bluez.update_device(path, manufacturer_data={}, service_data={
            EDDYSTONE_SERVICE_UUID: b"\x77\x00"})
        adverts = await heard.wait_for(3)
        assert scanner.health.state == "scanning"
    assert [parse(a, stats) for a in adverts] == [None, None, None]
    # BlueZ's properties are cumulative: the third advert still carries the earlier
    # manufacturer data, but the Eddystone frame is looked at first.
    assert stats.rejected == {"no_beacon_data": 1, "truncated": 1, "unknown_frame": 1}
    assert scanner.health.callback_errors == 0


async def test_a_raising_callback_is_counted_and_scanning_goes_on(bluez: FakeBlueZ) -> None:
    heard = Heard()

    def flaky(advertisement: Advertisement, zone: str, at: float) -> None:
        if advertisement.rssi < -70:
            raise ValueError("bad advert")
        heard(advertisement, zone, at)

    async with ScannerReceiver("hci0", "entrance-a", flaky) as scanner:
        await in_state(scanner, "scanning")
        path = await bluez.add_device("4A:00:00:00:00:05", rssi=-90,
                                      manufacturer_data=ibeacon(SHOP_UUID, 5, 5))
        await bluez.update_device(path, rssi=-88)
        await bluez.update_device(path, rssi=-50)
        [advert] = await heard.wait_for(1)
        assert advert.rssi == -50
        assert scanner.health.callback_errors == 2
        assert scanner.health.adverts == 3
        assert scanner.health.state == "scanning"


async def test_passive_scanning_registers_beacon_patterns_and_delivers(
        bluez: FakeBlueZ) -> None:
    heard = Heard()
    async with receiver(heard, mode="passive") as scanner:
        await in_state(scanner, "scanning")
        assert await bluez.calls("/org/bluez/hci0") == ["RegisterMonitor"]
        await bluez.add_device("4A:00:00:00:00:06", rssi=-66,
                               manufacturer_data=ibeacon(SHOP_UUID, 7, 8))
        [advert] = await heard.wait_for(1)
        assert parse(advert) is not None
    assert await bluez.calls("/org/bluez/hci0") == ["RegisterMonitor", "UnregisterMonitor"]
    assert scanner.or_patterns == list(BEACON_OR_PATTERNS)


def test_passive_scanning_without_patterns_is_refused() -> None:
    with pytest.raises(ValueError, match="or-pattern"):
        ScannerReceiver("hci0", "z", Heard(), scanning_mode="passive", or_patterns=())


async def test_a_removed_adapter_takes_the_receiver_down_until_it_returns(
        bluez: FakeBlueZ) -> None:
    heard = Heard()
    async with receiver(heard) as scanner:
        await in_state(scanner, "scanning")
        path = await bluez.add_device("4A:00:00:00:00:07", rssi=-60,
                                      manufacturer_data=ibeacon(SHOP_UUID, 9, 9))
        await heard.wait_for(1)

        await bluez.remove_adapter("hci0")
        await in_state(scanner, "down")
        assert scanner.health.last_error == "adapter removed"
        assert scanner.health.outages == 1
        # While the adapter is away nothing is heard (bluetoothd's signal order puts this
        # update before the adapter's return, so it would show up below if delivered).
        await bluez.update_device(path, rssi=-99)

        await bluez.add_adapter("hci0")
        await in_state(scanner, "scanning")
        assert scanner.health.restarts == 1
        assert await bluez.calls("/org/bluez/hci0") == ["SetDiscoveryFilter", "StartDiscovery"]
        await bluez.update_device(path, rssi=-55)
        adverts = await heard.wait_for(2)
    assert [a.rssi for a in adverts] == [-60, -55]
    assert scanner.health.adverts == 2
    assert scanner.health.outages == 1


async def test_a_bluetoothd_restart_is_survived(bluez: FakeBlueZ) -> None:
    heard = Heard()
    async with receiver(heard) as scanner:
        await in_state(scanner, "scanning")
        await bluez.add_device("4A:00:00:00:00:08", rssi=-60,
                               manufacturer_data=ibeacon(SHOP_UUID, 1, 1))
        await heard.wait_for(1)

        await bluez.stop_bluez()
        await in_state(scanner, "down")
        assert scanner.health.last_error == "bluetoothd left the bus"
        await bluez.start_bluez()  # a new daemon, at first without the adapter
        await bluez.add_adapter("hci0")
        await in_state(scanner, "scanning")
        await bluez.add_device("4A:00:00:00:00:08", rssi=-57,
                               manufacturer_data=ibeacon(SHOP_UUID, 1, 1))
        adverts = await heard.wait_for(2)
    assert [a.rssi for a in adverts] == [-60, -57]
    assert (scanner.health.outages, scanner.health.restarts) == (1, 1)


async def test_a_missing_adapter_is_retried_and_logged_once(
        bluez: FakeBlueZ, caplog: pytest.LogCaptureFixture) -> None:
    heard = Heard()
    scanner = ScannerReceiver("hci1", "store-7", heard, retry_first_s=0.01, retry_max_s=0.02)
    async with scanner:
        await in_state(scanner, "down")
        async with asyncio.timeout(WAIT_S):
            while scanner.health.failed_starts < 5:  # noqa: ASYNC110 - retries to count
                await asyncio.sleep(0.01)
        assert scanner.health.state == "down"
        await bluez.add_adapter("hci1")
        await in_state(scanner, "scanning")
        await bluez.add_device("4A:00:00:00:00:09", adapter="hci1", rssi=-61,
                               manufacturer_data=ibeacon(SHOP_UUID, 2, 2))
        [advert] = await heard.wait_for(1)
    assert advert.rssi == -61
    downs = [r for r in caplog.records if "down" in r.getMessage()
             and r.name == "devices.ble.transport" and r.levelname == "WARNING"]
    assert len(downs) == 1
    assert scanner.health.outages == 1


async def test_adverts_through_the_pipeline_make_an_arrival(bluez: FakeBlueZ) -> None:
    start = 10 * 1024 + 100.0  # inside one EID window
    key = MemberKey("gold", identity_key=bytes.fromhex("0102030405060708090a111213141516"))
    resolver = EidResolver()
    resolver.upsert_many([key], start)
    pipeline = Pipeline(Identifier(resolver, mall_uuid=MALL_UUID), ProximityTracker())
    events: list[Event] = []
    clock = Ticker(start, step=0.5)

    def feed(advertisement: Advertisement, zone: str, at: float) -> None:
        events.extend(pipeline.feed(advertisement, zone, at))

    eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(start))
    async with ScannerReceiver("hci0", "entrance-a", feed, clock=clock) as scanner:
        await in_state(scanner, "scanning")
        path = await bluez.add_device("7D:00:00:00:00:0A", rssi=-90,
                                      service_data=eid_frame(eid))
        for rssi in (-88, -64, -62):
            await bluez.update_device(path, rssi=rssi)
        async with asyncio.timeout(WAIT_S):
            while scanner.health.adverts < 4:  # noqa: ASYNC110 - bleak calls back, no event
                await asyncio.sleep(0.01)
        assert events == []  # a passer-by so far: two strong sightings of three
        await bluez.update_device(path, rssi=-63)
        async with asyncio.timeout(WAIT_S):
            while not events:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    [arrival] = events
    assert isinstance(arrival, Arrival)
    assert (arrival.member_id, arrival.zone) == ("gold", "entrance-a")
    assert arrival.at == scanner.health.last_advert_at
    assert pipeline.parse_stats.parsed == {"EddystoneEID": 5}


def test_advertisement_of_copies_bleak_fields() -> None:
    data = AdvertisementData(local_name="x", manufacturer_data={76: b"\x02\x15"},
                             service_data={EDDYSTONE_SERVICE_UUID: b"\x10"},
                             service_uuids=[EDDYSTONE_SERVICE_UUID], tx_power=-7, rssi=-42,
                             platform_data=())
    assert advertisement_of(data) == Advertisement(
        manufacturer_data={76: b"\x02\x15"}, service_data={EDDYSTONE_SERVICE_UUID: b"\x10"},
        service_uuids=(EDDYSTONE_SERVICE_UUID,), local_name="x", rssi=-42, tx_power=-7)


def test_restart_waits_double_to_the_cap_with_full_jitter() -> None:
    highest = restart_backoff(rand=lambda low, high: high)
    assert [highest.next_delay() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert (const.SCANNER_RETRY_FIRST_S, const.SCANNER_RETRY_MAX_S) == (1.0, 30.0)
    for _ in range(10_000):
        highest.next_delay()
    assert highest.next_delay() == 30.0
    lowest = restart_backoff(1.0, 30.0, rand=lambda low, high: low)
    assert lowest.next_delay() == 0.0  # full jitter: from zero up to the doubling cap
