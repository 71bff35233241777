"""Which member a beacon frame names: rotating EIDs, iBeacon tokens, legacy static ids."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from devices.ble.eid import EidResolver
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
