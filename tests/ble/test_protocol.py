"""Beacon frames: every public vector parses exactly; bad payloads give None and are counted."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from bleak.backends.scanner import AdvertisementData
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.ble.const import APPLE_COMPANY_ID, EDDYSTONE_SERVICE_UUID
from devices.ble.protocol import (
    Advertisement,
    AltBeacon,
    EddystoneEID,
    EddystoneETLM,
    EddystoneTLM,
    EddystoneUID,
    EddystoneURL,
    IBeacon,
    ParseStats,
    advertisement_from_ad,
    parse,
    uuid16,
)
from tests.scale import examples

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "vectors.json").read_text())
BLUECHARM = bytes.fromhex(VECTORS["ibeacon"][0]["mfr"])


def advertisement_of(vector: dict[str, Any], rssi: int = -60) -> Advertisement:
    if "raw" in vector:
        return advertisement_from_ad(bytes.fromhex(vector["raw"]), rssi=rssi)
    return Advertisement(manufacturer_data={vector["company_id"]: bytes.fromhex(vector["mfr"])},
                         rssi=rssi)


@pytest.mark.parametrize("vector", VECTORS["ibeacon"], ids=lambda v: v["source"][:30])
def test_ibeacon_vectors(vector: dict[str, Any]) -> None:
    stats = ParseStats()
    sighting = parse(advertisement_of(vector), stats)
    assert sighting is not None
    expect = vector["expect"]
    assert sighting.frame == IBeacon(uuid=uuid.UUID(expect["uuid"]), major=expect["major"],
                                     minor=expect["minor"], power_1m=expect["power"])
    assert sighting.rssi == -60
    assert sighting.power_1m == expect["power"]
    assert sighting.identity == f"ibeacon:{expect['uuid']}:{expect['major']}:{expect['minor']}"
    assert stats.parsed == {"IBeacon": 1}
    assert not stats.rejected


def test_altbeacon_vector() -> None:
    vector = VECTORS["altbeacon"][0]
    sighting = parse(advertisement_of(vector))
    assert sighting is not None
    frame = sighting.frame
    assert isinstance(frame, AltBeacon)
    expect = vector["expect"]
    assert frame.company_id == expect["company_id"]
    assert frame.id1 == uuid.UUID(expect["id1"])
    assert (frame.id2, frame.id3) == (expect["id2"], expect["id3"])
    assert frame.ref_rssi_1m == expect["ref_rssi"]
    assert frame.reserved == expect["mfg_reserved"]
    assert sighting.power_1m == -59


def eddystone(frame: str) -> dict[str, Any]:
    return next(v for v in VECTORS["eddystone"] if v["frame"] == frame)


def test_eddystone_uid_vector() -> None:
    vector = eddystone("uid")
    advertisement = advertisement_of(vector)
    assert advertisement.service_uuids == (EDDYSTONE_SERVICE_UUID,)
    sighting = parse(advertisement)
    assert sighting is not None
    expect = vector["expect"]
    assert sighting.frame == EddystoneUID(namespace=bytes.fromhex(expect["namespace"]),
                                          instance=bytes.fromhex(expect["instance"]),
                                          tx_power_0m=expect["tx_power_0m"])
    assert sighting.power_1m == expect["tx_power_0m"] - 41
    assert sighting.identity == f"eddystone-uid:{expect['namespace']}:{expect['instance']}"


def test_eddystone_url_vector() -> None:
    vector = eddystone("url")
    sighting = parse(advertisement_of(vector))
    assert sighting is not None
    assert sighting.frame == EddystoneURL(url=vector["expect"]["url"],
                                          tx_power_0m=vector["expect"]["tx_power_0m"])


def test_eddystone_tlm_vector() -> None:
    vector = eddystone("tlm")
    sighting = parse(advertisement_of(vector))
    assert sighting is not None
    expect = vector["expect"]
    assert sighting.frame == EddystoneTLM(voltage_mv=expect["voltage_mv"],
                                          temperature_c=expect["temperature_c"],
                                          adv_count=expect["adv_count"],
                                          seconds_tenths=expect["seconds_tenths"])
    assert sighting.identity is None
    assert sighting.power_1m is None


def service(data: bytes, rssi: int = -70) -> Advertisement:
    return Advertisement(service_data={EDDYSTONE_SERVICE_UUID: data}, rssi=rssi)


def test_eddystone_eid_frame() -> None:
    eid = bytes.fromhex(VECTORS["eddystone_eid"]["vectors"][0]["eid"])
    sighting = parse(service(b"\x30\xee" + eid))
    assert sighting is not None
    assert sighting.frame == EddystoneEID(eid=eid, tx_power_0m=-18)
    assert sighting.identity == f"eddystone-eid:{eid.hex()}"
    assert sighting.power_1m == -59


def test_encrypted_tlm_is_kept_opaque() -> None:
    data = b"\x20\x01" + bytes(range(12)) + b"\x12\x34\xab\xcd"
    sighting = parse(service(data))
    assert sighting is not None
    assert sighting.frame == EddystoneETLM(ciphertext=bytes(range(12)), salt=0x1234, check=0xABCD)


def test_tlm_without_temperature_sensor_and_below_zero() -> None:
    base = b"\x20\x00\x0b\xb8"
    tail = bytes(8)
    no_sensor = parse(service(base + b"\x80\x00" + tail))
    frozen = parse(service(base + b"\xff\x80" + tail))
    assert no_sensor is not None and isinstance(no_sensor.frame, EddystoneTLM)
    assert no_sensor.frame.temperature_c is None
    assert frozen is not None and isinstance(frozen.frame, EddystoneTLM)
    assert frozen.frame.temperature_c == -0.5


def test_url_expansions_and_schemes() -> None:
    sighting = parse(service(b"\x10\x00\x00mall\x07x\x0d"))
    assert sighting is not None
    assert sighting.frame == EddystoneURL(url="http://www.mall.comx.gov", tx_power_0m=0)


def test_legacy_uid_without_reserved_bytes() -> None:
    sighting = parse(service(b"\x00\xe3" + bytes(10) + b"\x00\x00\x00\x00\x00\x07"))
    assert sighting is not None
    assert isinstance(sighting.frame, EddystoneUID)
    assert sighting.frame.instance == bytes(5) + b"\x07"


@pytest.mark.parametrize(("advertisement", "reason"), [
    (Advertisement(), "no_beacon_data"),
    (Advertisement(manufacturer_data={APPLE_COMPANY_ID: b"\x10\x05\x01\x18"}), "no_beacon_data"),
    (Advertisement(manufacturer_data={APPLE_COMPANY_ID: BLUECHARM[:18]}), "truncated"),
    (Advertisement(manufacturer_data={APPLE_COMPANY_ID: BLUECHARM[:22]}), "truncated"),
    (Advertisement(manufacturer_data={0x0059: BLUECHARM}), "wrong_company"),
    (Advertisement(manufacturer_data={0x0118: b"\xbe\xac" + bytes(10)}), "truncated"),
    (service(b""), "truncated"),
    (service(b"\x00\xe3" + bytes(15)), "truncated"),
    (service(b"\x10\xf8"), "truncated"),
    (service(b"\x10\xf8\x04abc"), "bad_url"),
    (service(b"\x10\xf8\x03ab c"), "bad_url"),
    (service(b"\x10\xf8\x03ab\x0e"), "bad_url"),
    (service(b"\x20"), "truncated"),
    (service(b"\x20\x00" + bytes(11)), "truncated"),
    (service(b"\x20\x01" + bytes(15)), "truncated"),
    (service(b"\x20\x02" + bytes(12)), "unknown_version"),
    (service(b"\x30\xee" + bytes(7)), "truncated"),
    (service(b"\x40\xee" + bytes(8)), "unknown_frame"),
])
def test_bad_payloads_give_none_and_are_counted(advertisement: Advertisement, reason: str) -> None:
    stats = ParseStats()
    assert parse(advertisement, stats) is None
    assert stats.rejected == {reason: 1}
    assert not stats.parsed


def test_identity_does_not_depend_on_rssi_or_other_fields() -> None:
    near = parse(Advertisement(manufacturer_data={APPLE_COMPANY_ID: BLUECHARM}, rssi=-40,
                               local_name="phone A"))
    far = parse(Advertisement(manufacturer_data={APPLE_COMPANY_ID: BLUECHARM, 0x0006: b"\x01"},
                              rssi=-90, tx_power=4))
    assert near is not None and far is not None
    assert near.identity == far.identity


def test_raw_ad_fields() -> None:
    raw = (b"\x02\x01\x06" + b"\x05\x09mall" + b"\x02\x0a\xf4"
           + b"\x11\x07" + uuid.UUID("12345678-1234-5678-1234-567812345678").bytes[::-1]
           + b"\x15\x21" + uuid.UUID("87654321-4321-8765-4321-876543218765").bytes[::-1]
           + b"\x01\x02\x03\x04"
           + b"\x09\xff\x01")  # runs past the end: dropped
    advertisement = advertisement_from_ad(raw, rssi=-55)
    assert advertisement.local_name == "mall"
    assert advertisement.tx_power == -12
    assert advertisement.service_uuids == ("12345678-1234-5678-1234-567812345678",)
    assert advertisement.service_data == {
        "87654321-4321-8765-4321-876543218765": b"\x01\x02\x03\x04"}
    assert advertisement.manufacturer_data == {}
    assert uuid16(0xFEAA) == EDDYSTONE_SERVICE_UUID


payloads = st.binary(max_size=40)
prefixed = st.builds(lambda prefix, tail: prefix + tail,
                     st.sampled_from([b"", b"\x02\x15", b"\xbe\xac", b"\x00", b"\x10", b"\x20\x00",
                                      b"\x20\x01", b"\x30"]),
                     payloads)
advertisements = st.builds(
    Advertisement,
    manufacturer_data=st.dictionaries(st.sampled_from([APPLE_COMPANY_ID, 0x0118, 0x0059]),
                                      prefixed, max_size=3),
    service_data=st.dictionaries(st.sampled_from([EDDYSTONE_SERVICE_UUID, uuid16(0xFE9F)]),
                                 prefixed, max_size=2),
    rssi=st.integers(-127, 20))


@settings(max_examples=examples(400), deadline=None)
@given(advertisements)
def test_parse_never_raises_and_counts_everything(advertisement: Advertisement) -> None:
    stats = ParseStats()
    sighting = parse(advertisement, stats)
    assert stats.total == 1
    if sighting is None:
        assert stats.rejected.total() == 1
    else:
        assert stats.parsed == {type(sighting.frame).__name__: 1}
        assert sighting.rssi == advertisement.rssi


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=62), st.integers(-127, 20))
def test_raw_advertising_data_never_raises(raw: bytes, rssi: int) -> None:
    stats = ParseStats()
    parse(advertisement_from_ad(raw, rssi=rssi), stats)
    assert stats.total == 1


def test_the_fields_are_bleaks_so_a_scanner_callback_copies_them_by_name() -> None:
    ours = set(Advertisement.__dataclass_fields__)
    assert ours <= set(AdvertisementData._fields)
    data = AdvertisementData(local_name=None, manufacturer_data={APPLE_COMPANY_ID: BLUECHARM},
                             service_data={}, service_uuids=[], tx_power=None, rssi=-61,
                             platform_data=())
    copied = Advertisement(manufacturer_data=data.manufacturer_data,
                           service_data=data.service_data,
                           service_uuids=tuple(data.service_uuids), local_name=data.local_name,
                           rssi=data.rssi, tx_power=data.tx_power)
    sighting = parse(copied)
    assert sighting is not None
    assert sighting.rssi == -61
    assert isinstance(sighting.frame, IBeacon)
