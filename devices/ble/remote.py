"""Remote BLE receivers over MQTT, sans-io: topics, batches in and out, receiver status.

A remote receiver (e.g. an ESP32 node) publishes what it heard as batches of raw
advertising data on `lty/v1/{site}/receiver/{rid}/adv`. `decode_batch` checks a batch
against the contract (`asyncapi.yaml` next to this module, compiled by the shared MQTT
layer's `Contract`), splits every advert into bleak's fields with `advertisement_from_ad` and stamps
it with the gateway's receive time minus the advert's age: receivers need no clock.

Nothing here touches a socket or the event loop; a bad batch raises `ReceiverPayloadError`
(a `PayloadError` of the MQTT layer, with its code and reason).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from jsonschema.exceptions import ValidationError

from devices.ble.protocol import Advertisement, advertisement_from_ad
from devices.mqtt.contract import Contract, PayloadError, PayloadErrorCode, encode
from devices.mqtt.topics import SLUG, site_base, slug

# --- contract limits (asserted equal to asyncapi.yaml by the tests) ---------------------

# The broker's max_packet_size is 16 KiB; a full batch of 64 longest adverts with MACs is
# about 13 KiB, so a bigger payload is refused before it is parsed.
MAX_BATCH_BYTES = 16 * 1024
# Adverts per batch: an ESP32 sending every 200-500 ms in a crowded entrance hears 20-40.
MAX_ADVERTS = 64
# Legacy advertising data is at most 31 bytes, 62 with the scan response appended; the
# shortest useful structure (length, type, one byte) is 2 bytes with an empty value.
AD_MIN_BYTES = 2
AD_MAX_BYTES = 62
RSSI_MIN_DBM = -127
RSSI_MAX_DBM = 20
# A receiver holding an advert longer than a minute has lost the link; what it heard is
# history, not presence.
MAX_AGE_MS = 60_000

BATCH_SCHEMA = "#/components/schemas/AdvertBatch"
STATUS_SCHEMA = "#/components/schemas/Status"

MAX_SEQ = 2**53 - 1

_HEX = re.compile(r"^[0-9a-fA-F]*$")
# The contract's patterns, matched whole (the schema's `$` would also allow a final newline,
# so these are, if anything, stricter).
_AD = re.compile(r"(?:[0-9a-fA-F]{2})+")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})",
                        re.ASCII)
_TIMESTAMP_MAX = 40
_BATCH_KEYS = frozenset({"v", "ts", "seq", "adverts"})
_ADVERT_KEYS = frozenset({"ad", "rssi", "age_ms", "mac"})
_ADVERT_REQUIRED = frozenset({"ad", "rssi", "age_ms"})

ReceiverTopicKind = Literal["adv", "status"]


class ReceiverPayloadError(PayloadError):
    """A receiver's message that cannot be used: not JSON, not the schema, too big."""

    def __init__(self, code: PayloadErrorCode, msg: str, *, rid: str) -> None:
        super().__init__(code, msg)
        self.rid = rid


@dataclass(frozen=True, slots=True)
class ReceiverBatch:
    """One decoded batch: each advert with the time it was heard, by the gateway's clock."""

    rid: str
    seq: int
    ts: str  # the receiver's send time, informational
    sightings: list[tuple[Advertisement, float]]


@dataclass(frozen=True, slots=True)
class ReceiverStatus:
    rid: str
    online: bool
    boot: int | None
    version: str | None


@dataclass(frozen=True, slots=True)
class RemoteAdvert:
    """One advert as a receiver forwards it (what `encode_batch` writes)."""

    ad: bytes
    rssi: int
    age_ms: int
    mac: str | None = None


class ReceiverTopics:
    """The receiver part of one mall's topic tree."""

    def __init__(self, site: str) -> None:
        self.base = f"{site_base(site)}/receiver"
        self.site = site

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """What the gateway subscribes to: every receiver's batches and status."""
        return (f"{self.base}/+/adv", f"{self.base}/+/status")

    def receiver(self, rid: str) -> str:
        return f"{self.base}/{slug(rid, 'receiver id')}"

    def adv(self, rid: str) -> str:
        return f"{self.receiver(rid)}/adv"

    def status(self, rid: str) -> str:
        return f"{self.receiver(rid)}/status"

    def parse(self, topic: str) -> tuple[str, ReceiverTopicKind] | None:
        """(receiver id, "adv" or "status") for a receiver topic, else None."""
        head, _, rest = topic.partition(self.base + "/")
        if head or not rest:
            return None
        rid, _, kind = rest.partition("/")
        if not SLUG.match(rid):
            return None
        if kind == "adv":
            return rid, "adv"
        if kind == "status":
            return rid, "status"
        return None


@cache
def default_receiver_contract() -> Contract:
    text = resources.files("devices.ble").joinpath("asyncapi.yaml").read_text("utf-8")
    return Contract.from_yaml(text)


def _load(rid: str, payload: bytes, what: str, max_bytes: int) -> Any:
    if len(payload) > max_bytes:
        raise ReceiverPayloadError("payload_too_large", f"{what} of {len(payload)} bytes is "
                                   f"over the limit of {max_bytes}", rid=rid)
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ReceiverPayloadError("invalid_payload", f"{what} is not UTF-8 JSON: {exc}"[:200],
                                   rid=rid) from None


def _check(contract: Contract, rid: str, schema: str, message: object) -> None:
    error: ValidationError | None = next(
        iter(contract.validator(schema).iter_errors(message)), None)
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path) or "(message)"
    value = error.instance
    if error.validator == "pattern" and where.endswith("/ad") and isinstance(value, str):
        reason = ("not hex digits" if not _HEX.match(value)
                  else f"an odd number ({len(value)}) of hex digits")
        raise ReceiverPayloadError("invalid_payload", f"{where}: {reason}", rid=rid)
    raise ReceiverPayloadError("invalid_payload", f"{where}: {error.message}"[:400], rid=rid)


def _plainly_valid(message: object) -> bool:
    """True only for batches the contract accepts, checked in plain Python.

    Batches are the gateway's busiest input and a full JSON Schema pass costs about 100 us
    per advert; this check costs a few. It may say False to a batch the schema accepts
    (then the schema decides), never True to one it refuses: the tests hold it to that.
    """
    if type(message) is not dict or message.keys() != _BATCH_KEYS:
        return False
    v, ts, seq, adverts = message["v"], message["ts"], message["seq"], message["adverts"]
    if not (type(v) is int and v == 1 and type(seq) is int and 0 <= seq <= MAX_SEQ
            and type(ts) is str and len(ts) <= _TIMESTAMP_MAX and _TIMESTAMP.fullmatch(ts)
            and type(adverts) is list and 1 <= len(adverts) <= MAX_ADVERTS):
        return False
    for advert in adverts:
        if (type(advert) is not dict or not _ADVERT_REQUIRED <= advert.keys() <= _ADVERT_KEYS):
            return False
        ad, rssi, age = advert["ad"], advert["rssi"], advert["age_ms"]
        mac = advert.get("mac", "00:00:00:00:00:00")
        if not (type(ad) is str and 2 * AD_MIN_BYTES <= len(ad) <= 2 * AD_MAX_BYTES
                and _AD.fullmatch(ad) and type(rssi) is int
                and RSSI_MIN_DBM <= rssi <= RSSI_MAX_DBM
                and type(age) is int and 0 <= age <= MAX_AGE_MS
                and type(mac) is str and _MAC.fullmatch(mac)):
            return False
    return True


def decode_batch(contract: Contract, rid: str, payload: bytes, *, received_at: float,
                 max_bytes: int = MAX_BATCH_BYTES) -> ReceiverBatch:
    """A validated batch from receiver `rid`, each advert stamped `received_at - age`.

    `received_at` is the gateway's clock (Unix seconds) when the message arrived. A batch
    that breaks the contract is refused whole: `ReceiverPayloadError` with the reason.
    """
    message = _load(rid, payload, "batch", max_bytes)
    if not _plainly_valid(message):
        _check(contract, rid, BATCH_SCHEMA, message)
    # JSON Schema counts 3.0 as an integer: int() keeps the types what they say.
    sightings = [
        (advertisement_from_ad(bytes.fromhex(advert["ad"]), rssi=int(advert["rssi"])),
         received_at - int(advert["age_ms"]) / 1000)
        for advert in message["adverts"]]
    return ReceiverBatch(rid=rid, seq=int(message["seq"]), ts=message["ts"],
                         sightings=sightings)


def decode_receiver_status(contract: Contract, rid: str, payload: bytes) -> ReceiverStatus:
    """A receiver's retained birth or Will; an empty payload is a cleared retained status."""
    if not payload:
        return ReceiverStatus(rid, online=False, boot=None, version=None)
    message = _load(rid, payload, "status", MAX_BATCH_BYTES)
    _check(contract, rid, STATUS_SCHEMA, message)
    return ReceiverStatus(rid, online=message["online"], boot=message.get("boot"),
                          version=message.get("version"))


def encode_batch(seq: int, adverts: Sequence[RemoteAdvert], *, ts: str) -> bytes:
    """A batch as a receiver publishes it (the simulator and tests use this)."""
    items: list[dict[str, Any]] = []
    for advert in adverts:
        item: dict[str, Any] = {"ad": advert.ad.hex(), "rssi": advert.rssi,
                                "age_ms": advert.age_ms}
        if advert.mac is not None:
            item["mac"] = advert.mac
        items.append(item)
    return encode({"v": 1, "ts": ts, "seq": seq, "adverts": items})


def encode_receiver_status(online: bool, *, boot: int | None = None, ts: str | None = None,
                           version: str | None = None) -> bytes:
    message: dict[str, Any] = {"online": online}
    if boot is not None:
        message["boot"] = boot
    if ts is not None:
        message["ts"] = ts
    if version is not None:
        message["version"] = version
    return encode(message)
