"""The pure path from one received advertisement to arrivals and exits.

A receiver (a local scanner callback or a remote node's message) calls `feed` with the
advertisement, the zone it was heard in and the time; a periodic `tick` turns EID windows
and expires silent members. No I/O and no clock of its own.
"""

from __future__ import annotations

from devices.ble.identity import Identifier, Match
from devices.ble.protocol import Advertisement, ParseStats, parse
from devices.ble.proximity import Event, Exit, ProximityTracker


class Pipeline:
    def __init__(self, identifier: Identifier, tracker: ProximityTracker) -> None:
        self.identifier = identifier
        self.tracker = tracker
        self.parse_stats = ParseStats()
        # How the member of the last fed sighting was recognised (read right after `feed`
        # by a caller that records arrivals with it).
        self.last_match: Match | None = None

    def feed(self, advertisement: Advertisement, zone: str, at: float) -> list[Event]:
        self.last_match = None
        sighting = parse(advertisement, self.parse_stats)
        if sighting is None:
            return []
        match = self.last_match = self.identifier.identify(sighting)
        if match is None:
            return []
        return self.tracker.observe(match.member_id, zone, sighting.rssi, at)

    def tick(self, now: float) -> list[Exit]:
        """Turn EID windows that ended and report members gone silent; call every second
        or so (and before feeding sightings after a long pause)."""
        self.identifier.resolver.advance(now)
        return self.tracker.expire(now)
