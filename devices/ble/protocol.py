"""Beacon frames, sans-io: an advertisement's fields in, one typed `Sighting` (or None) out.

`Advertisement` mirrors the fields of bleak's `AdvertisementData` (manufacturer data keyed
by company id with the id stripped, service data keyed by 128-bit UUID string), so a
scanner callback, a remote receiver's MQTT message and a test all feed the same function.
Identities come from the payload, never from the MAC address: phones rotate their address.

Nothing here raises on bad input: a payload that is not a beacon, is truncated, sits under
the wrong company id or is garbage gives None, and the reason is counted in `ParseStats`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from devices.ble.const import APPLE_COMPANY_ID, EDDYSTONE_0M_TO_1M_DB, EDDYSTONE_SERVICE_UUID

IBEACON_PREFIX = b"\x02\x15"
IBEACON_LENGTH = 23  # prefix 2 + uuid 16 + major 2 + minor 2 + power 1
ALTBEACON_PREFIX = b"\xbe\xac"
ALTBEACON_LENGTH = 24  # code 2 + id 20 + reference rssi 1 + reserved 1

EDDYSTONE_UID = 0x00
EDDYSTONE_URL = 0x10
EDDYSTONE_TLM = 0x20
EDDYSTONE_EID = 0x30
UID_LENGTH_LEGACY = 18  # type, power, namespace 10, instance 6 (without the RFU bytes)
URL_MIN_LENGTH = 3  # type, power, scheme
URL_MAX_LENGTH = 20  # ... and at most 17 encoded bytes
TLM_LENGTH = 14  # type, version, battery 2, temperature 2, adverts 4, uptime 4
ETLM_LENGTH = 18  # type, version, ciphertext 12, salt 2, check 2
EID_LENGTH = 10  # type, power, ephemeral id 8
TLM_PLAIN = 0x00
TLM_ENCRYPTED = 0x01
TLM_NO_TEMPERATURE = 0x8000

URL_SCHEMES = ("http://www.", "https://www.", "http://", "https://")
URL_EXPANSIONS = (".com/", ".org/", ".edu/", ".net/", ".info/", ".biz/", ".gov/",
                  ".com", ".org", ".edu", ".net", ".info", ".biz", ".gov")
_URL_PRINTABLE_MIN = 0x21
_URL_PRINTABLE_MAX = 0x7E

RejectReason = Literal[
    "no_beacon_data",  # nothing beacon-like: phones, headphones, Apple continuity frames
    "truncated",  # a beacon prefix with too few bytes
    "wrong_company",  # iBeacon bytes under a company id other than Apple's
    "unknown_frame",  # an Eddystone frame type the spec does not define
    "bad_url",  # an Eddystone-URL with a bad scheme or a byte outside the encoding
    "unknown_version",  # an Eddystone-TLM version the spec does not define
]


@dataclass(frozen=True, slots=True)
class Advertisement:
    """The fields of one received advertisement, as bleak's `AdvertisementData` holds them."""

    manufacturer_data: Mapping[int, bytes] = field(default_factory=dict)
    service_data: Mapping[str, bytes] = field(default_factory=dict)
    service_uuids: tuple[str, ...] = ()
    local_name: str | None = None
    rssi: int = -127
    tx_power: int | None = None


@dataclass(frozen=True, slots=True)
class IBeacon:
    uuid: uuid.UUID
    major: int
    minor: int
    power_1m: int


@dataclass(frozen=True, slots=True)
class AltBeacon:
    company_id: int
    beacon_id: bytes  # 20 bytes; by convention id1 (16) + id2 (2) + id3 (2)
    ref_rssi_1m: int
    reserved: int

    @property
    def id1(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.beacon_id[:16])

    @property
    def id2(self) -> int:
        return int.from_bytes(self.beacon_id[16:18], "big")

    @property
    def id3(self) -> int:
        return int.from_bytes(self.beacon_id[18:20], "big")


@dataclass(frozen=True, slots=True)
class EddystoneUID:
    namespace: bytes  # 10 bytes
    instance: bytes  # 6 bytes
    tx_power_0m: int


@dataclass(frozen=True, slots=True)
class EddystoneURL:
    url: str
    tx_power_0m: int


@dataclass(frozen=True, slots=True)
class EddystoneTLM:
    """Plain telemetry (version 0). `temperature_c` is None when the beacon has no sensor."""

    voltage_mv: int
    temperature_c: float | None
    adv_count: int
    seconds_tenths: int


@dataclass(frozen=True, slots=True)
class EddystoneETLM:
    """Encrypted telemetry (version 1), kept opaque: only the beacon's identity key opens it."""

    ciphertext: bytes
    salt: int
    check: int


@dataclass(frozen=True, slots=True)
class EddystoneEID:
    eid: bytes  # 8 bytes, rotating
    tx_power_0m: int


Frame = (IBeacon | AltBeacon | EddystoneUID | EddystoneURL | EddystoneTLM | EddystoneETLM
         | EddystoneEID)


@dataclass(frozen=True, slots=True)
class Sighting:
    """One beacon frame heard at `rssi` dBm."""

    frame: Frame
    rssi: int

    @property
    def identity(self) -> str | None:
        """A stable key built from the payload; None for telemetry, which names nobody."""
        return frame_identity(self.frame)

    @property
    def power_1m(self) -> int | None:
        """The advertised signal strength at 1 m, whatever the frame's own reference."""
        frame = self.frame
        if isinstance(frame, IBeacon):
            return frame.power_1m
        if isinstance(frame, AltBeacon):
            return frame.ref_rssi_1m
        if isinstance(frame, EddystoneUID | EddystoneURL | EddystoneEID):
            return frame.tx_power_0m + EDDYSTONE_0M_TO_1M_DB
        return None


def frame_identity(frame: Frame) -> str | None:
    if isinstance(frame, IBeacon):
        return f"ibeacon:{frame.uuid}:{frame.major}:{frame.minor}"
    if isinstance(frame, AltBeacon):
        return f"altbeacon:{frame.company_id}:{frame.beacon_id.hex()}"
    if isinstance(frame, EddystoneUID):
        return f"eddystone-uid:{frame.namespace.hex()}:{frame.instance.hex()}"
    if isinstance(frame, EddystoneURL):
        return f"eddystone-url:{frame.url}"
    if isinstance(frame, EddystoneEID):
        return f"eddystone-eid:{frame.eid.hex()}"
    return None


@dataclass(slots=True)
class ParseStats:
    """How many advertisements gave which frame, and why the others gave none."""

    parsed: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return self.parsed.total() + self.rejected.total()


class _Rejected(Exception):
    """Internal control flow: caught in parse(), never escapes it."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason)
        self.reason = reason


def parse(advertisement: Advertisement, stats: ParseStats | None = None) -> Sighting | None:
    """The beacon frame in `advertisement`, or None with the reason counted in `stats`.

    Eddystone service data is looked at first, then Apple's iBeacon, then AltBeacon under
    any company id: one advertisement carries one beacon frame.
    """
    try:
        frame = _frame_of(advertisement)
    except _Rejected as rejected:
        if stats is not None:
            stats.rejected[rejected.reason] += 1
        return None
    if stats is not None:
        stats.parsed[type(frame).__name__] += 1
    return Sighting(frame=frame, rssi=advertisement.rssi)


def _frame_of(advertisement: Advertisement) -> Frame:
    eddystone = advertisement.service_data.get(EDDYSTONE_SERVICE_UUID)
    if eddystone is not None:
        return parse_eddystone(eddystone)
    apple = advertisement.manufacturer_data.get(APPLE_COMPANY_ID)
    if apple is not None and apple[:2] == IBEACON_PREFIX:
        return parse_ibeacon(apple)
    truncated = False
    for company_id, data in advertisement.manufacturer_data.items():
        if data[:2] == ALTBEACON_PREFIX:
            if len(data) >= ALTBEACON_LENGTH:
                return parse_altbeacon(company_id, data)
            truncated = True
        elif data[:2] == IBEACON_PREFIX and len(data) == IBEACON_LENGTH:
            raise _Rejected("wrong_company")
    raise _Rejected("truncated" if truncated else "no_beacon_data")


def parse_ibeacon(data: bytes) -> IBeacon:
    if len(data) < IBEACON_LENGTH:
        raise _Rejected("truncated")
    return IBeacon(uuid=uuid.UUID(bytes=data[2:18]),
                   major=int.from_bytes(data[18:20], "big"),
                   minor=int.from_bytes(data[20:22], "big"),
                   power_1m=_int8(data[22]))


def parse_altbeacon(company_id: int, data: bytes) -> AltBeacon:
    return AltBeacon(company_id=company_id, beacon_id=bytes(data[2:22]),
                     ref_rssi_1m=_int8(data[22]), reserved=data[23])


def parse_eddystone(data: bytes) -> Frame:
    if not data:
        raise _Rejected("truncated")
    kind = data[0]
    if kind == EDDYSTONE_UID:
        if len(data) < UID_LENGTH_LEGACY:
            raise _Rejected("truncated")
        return EddystoneUID(namespace=bytes(data[2:12]), instance=bytes(data[12:18]),
                            tx_power_0m=_int8(data[1]))
    if kind == EDDYSTONE_URL:
        if len(data) < URL_MIN_LENGTH:
            raise _Rejected("truncated")
        return EddystoneURL(url=_decode_url(data[2], data[3:URL_MAX_LENGTH]),
                            tx_power_0m=_int8(data[1]))
    if kind == EDDYSTONE_TLM:
        return _parse_tlm(data)
    if kind == EDDYSTONE_EID:
        if len(data) < EID_LENGTH:
            raise _Rejected("truncated")
        return EddystoneEID(eid=bytes(data[2:10]), tx_power_0m=_int8(data[1]))
    raise _Rejected("unknown_frame")


def _parse_tlm(data: bytes) -> EddystoneTLM | EddystoneETLM:
    if len(data) < 2:
        raise _Rejected("truncated")
    version = data[1]
    if version == TLM_PLAIN:
        if len(data) < TLM_LENGTH:
            raise _Rejected("truncated")
        raw_temperature = int.from_bytes(data[4:6], "big")
        temperature = (None if raw_temperature == TLM_NO_TEMPERATURE
                       else int.from_bytes(data[4:6], "big", signed=True) / 256)
        return EddystoneTLM(voltage_mv=int.from_bytes(data[2:4], "big"),
                            temperature_c=temperature,
                            adv_count=int.from_bytes(data[6:10], "big"),
                            seconds_tenths=int.from_bytes(data[10:14], "big"))
    if version == TLM_ENCRYPTED:
        if len(data) < ETLM_LENGTH:
            raise _Rejected("truncated")
        return EddystoneETLM(ciphertext=bytes(data[2:14]),
                             salt=int.from_bytes(data[14:16], "big"),
                             check=int.from_bytes(data[16:18], "big"))
    raise _Rejected("unknown_version")


def _decode_url(scheme: int, encoded: bytes) -> str:
    if scheme >= len(URL_SCHEMES):
        raise _Rejected("bad_url")
    parts = [URL_SCHEMES[scheme]]
    for byte in encoded:
        if byte < len(URL_EXPANSIONS):
            parts.append(URL_EXPANSIONS[byte])
        elif _URL_PRINTABLE_MIN <= byte <= _URL_PRINTABLE_MAX:
            parts.append(chr(byte))
        else:
            raise _Rejected("bad_url")
    return "".join(parts)


def _int8(byte: int) -> int:
    return byte - 256 if byte > 127 else byte


# --- raw advertising data ---------------------------------------------------------------

AD_SERVICE_UUIDS_16 = (0x02, 0x03)
AD_SERVICE_UUIDS_128 = (0x06, 0x07)
AD_LOCAL_NAME = (0x08, 0x09)
AD_TX_POWER = 0x0A
AD_SERVICE_DATA_16 = 0x16
AD_SERVICE_DATA_128 = 0x21
AD_MANUFACTURER_DATA = 0xFF
_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"


def uuid16(short: int) -> str:
    """The 128-bit UUID string bleak uses for a 16-bit SIG UUID."""
    return f"0000{short:04x}{_BASE_UUID_TAIL}"


def advertisement_from_ad(raw: bytes, *, rssi: int = -127) -> Advertisement:
    """Split raw advertising data (length, type, value structures) into bleak's fields.

    Remote receivers forward the raw bytes; this gives them the same shape a local scanner
    delivers. A structure running past the end is dropped, as BlueZ drops it.
    """
    manufacturer: dict[int, bytes] = {}
    service: dict[str, bytes] = {}
    uuids: list[str] = []
    name: str | None = None
    tx_power: int | None = None
    offset = 0
    while offset < len(raw):
        length = raw[offset]
        if length == 0 or offset + 1 + length > len(raw):
            break
        kind, value = raw[offset + 1], raw[offset + 2:offset + 1 + length]
        offset += 1 + length
        if kind == AD_MANUFACTURER_DATA and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
        elif kind == AD_SERVICE_DATA_16 and len(value) >= 2:
            service[uuid16(int.from_bytes(value[:2], "little"))] = bytes(value[2:])
        elif kind == AD_SERVICE_DATA_128 and len(value) >= 16:
            service[str(uuid.UUID(bytes=bytes(value[15::-1])))] = bytes(value[16:])
        elif kind in AD_SERVICE_UUIDS_16:
            uuids += [uuid16(int.from_bytes(value[i:i + 2], "little"))
                      for i in range(0, len(value) - 1, 2)]
        elif kind in AD_SERVICE_UUIDS_128:
            uuids += [str(uuid.UUID(bytes=bytes(value[i:i + 16][::-1])))
                      for i in range(0, len(value) - 15, 16)]
        elif kind in AD_LOCAL_NAME:
            name = value.decode("utf-8", errors="replace")
        elif kind == AD_TX_POWER and len(value) == 1:
            tx_power = _int8(value[0])
    return Advertisement(manufacturer_data=manufacturer, service_data=service,
                         service_uuids=tuple(uuids), local_name=name, rssi=rssi,
                         tx_power=tx_power)
