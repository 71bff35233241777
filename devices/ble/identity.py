"""Which member a beacon frame names: rotating EIDs, iBeacon tokens, legacy static ids."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from devices.ble.const import DEFAULT_ROTATION_EXPONENT
from devices.ble.eid import EidResolver, IdentityKeyError, MemberKey
from devices.ble.protocol import EddystoneEID, IBeacon, Sighting

Via = Literal["eid", "ibeacon_token", "static"]


@dataclass(frozen=True, slots=True)
class Match:
    """A sighting attributed to a member. `trackable` marks a static id: anyone with a
    scanner can follow it, so the dashboard shows it as such."""

    member_id: str
    via: Via
    trackable: bool


@dataclass(slots=True)
class IdentifyStats:
    matched: Counter[str] = field(default_factory=Counter)
    unknown: int = 0  # beacon frames that name no member: shop beacons, other malls' phones


class Identifier:
    """Resolves sightings to members.

    - Eddystone-EID: through the resolver's table (window +/- margin).
    - iBeacon under the mall's UUID: major/minor carry the member's 32-bit EID token.
    - Any other frame: looked up by its payload identity among the legacy static ids
      (`Sighting.identity`, e.g. "ibeacon:<uuid>:<major>:<minor>").
    """

    def __init__(self, resolver: EidResolver, *, mall_uuid: uuid.UUID | None = None,
                 static_ids: Mapping[str, str] | None = None) -> None:
        self.resolver = resolver
        self.mall_uuid = mall_uuid
        self.static_ids = dict(static_ids or {})
        self.stats = IdentifyStats()

    def identify(self, sighting: Sighting) -> Match | None:
        match = self._match(sighting)
        if match is None:
            self.stats.unknown += 1
        else:
            self.stats.matched[match.via] += 1
        return match

    def _match(self, sighting: Sighting) -> Match | None:
        frame = sighting.frame
        if isinstance(frame, EddystoneEID):
            member_id = self.resolver.resolve_eid(frame.eid)
            return None if member_id is None else Match(member_id, "eid", trackable=False)
        if isinstance(frame, IBeacon) and frame.uuid == self.mall_uuid:
            member_id = self.resolver.resolve_token(frame.major, frame.minor)
            return (None if member_id is None
                    else Match(member_id, "ibeacon_token", trackable=False))
        identity = sighting.identity
        member_id = None if identity is None else self.static_ids.get(identity)
        return None if member_id is None else Match(member_id, "static", trackable=True)


# -- how central provisions a member's beacon identity ----------------------------------
#
# A `ble_key` member identifier (synced from central) is one of:
#   eid:<identity key, 32 hex digits>:<rotation exponent>[:<clock offset s>]
#       a phone app or BLE card sending Eddystone-EID (or the iBeacon token derived from it);
#   static:<frame identity>
#       a legacy member card with a fixed id, e.g. static:ibeacon:<uuid>:<major>:<minor>;
#       anyone with a scanner can follow it, so it is flagged as trackable.

BleKey = MemberKey | tuple[str, str]  # an EID key, or (static frame identity, member id)


def ble_key_value(key: MemberKey) -> str:
    """The `ble_key` identifier value that provisions `key`."""
    value = f"eid:{key.identity_key.hex()}:{key.rotation_exponent}"
    return value + (f":{key.clock_offset_s}" if key.clock_offset_s else "")


def parse_ble_key(member_id: str, value: str) -> BleKey:
    """The key a `ble_key` identifier value provisions; `IdentityKeyError` names what is
    wrong with a malformed one."""
    kind, _, rest = value.partition(":")
    if kind == "static" and rest:
        return rest, member_id
    if kind != "eid":
        raise IdentityKeyError(f"ble_key must start with 'eid:' or 'static:', got {value[:40]!r}",
                               member_id=member_id)
    parts = rest.split(":")
    if not 1 <= len(parts) <= 3:
        raise IdentityKeyError("ble_key eid: wants key[:exponent[:offset]]",
                               member_id=member_id)
    try:
        identity_key = bytes.fromhex(parts[0])
        exponent = int(parts[1]) if len(parts) > 1 else DEFAULT_ROTATION_EXPONENT
        offset = int(parts[2]) if len(parts) > 2 else 0
    except ValueError:
        raise IdentityKeyError("ble_key eid: key must be hex, exponent and offset integers",
                               member_id=member_id) from None
    return MemberKey(member_id, identity_key=identity_key, rotation_exponent=exponent,
                     clock_offset_s=offset)
