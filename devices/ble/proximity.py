"""Arrivals and exits per (member, zone) from RSSI sightings, pure and driven by timestamps.

Every call carries its own time (`at`, `now`, in seconds), so the same code runs behind a
live scanner and in a test that replays a trace with a controllable clock.

- Smoothing: the median of the readings inside Tukey's fences (median / interquartile
  range), so a reflection or a body-blocked fade does not move the level.
- Enter: on a reading at or above the enter threshold, when the dwell time holds at least
  N such readings and its smoothed level is at or above the threshold too. One or two
  readings never enter: that is someone walking past.
- Exit: the smoothed level over the window falls below enter - hysteresis (checked at most
  once a second), or nothing is heard for several observed advertising intervals
  (bounded both ways). Readings are dropped on exit: coming back needs fresh ones.
"""

from __future__ import annotations

import bisect
import statistics
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from devices.ble import const


@dataclass(frozen=True, slots=True)
class ProximityConfig:
    """The thresholds of one zone; the defaults and their reasons are in `const`."""

    enter_rssi_dbm: float = const.ENTER_RSSI_DBM
    exit_hysteresis_db: float = const.EXIT_HYSTERESIS_DB
    enter_min_sightings: int = const.ENTER_MIN_SIGHTINGS
    enter_dwell_s: float = const.ENTER_DWELL_S
    window_s: float = const.SMOOTHING_WINDOW_S
    iqr_fence_k: float = const.IQR_FENCE_K
    exit_min_sightings: int = const.EXIT_MIN_SIGHTINGS
    exit_check_interval_s: float = const.EXIT_CHECK_INTERVAL_S
    absence_intervals: float = const.ABSENCE_INTERVALS
    absence_min_s: float = const.ABSENCE_MIN_S
    absence_max_s: float = const.ABSENCE_MAX_S
    interval_samples: int = const.INTERVAL_SAMPLES
    max_samples: int = const.MAX_SAMPLES

    def __post_init__(self) -> None:
        if self.enter_min_sightings < 1 or self.exit_min_sightings < 1:
            raise ValueError("sighting counts must be at least 1")
        if self.exit_hysteresis_db < 0:
            raise ValueError("exit_hysteresis_db must not be negative")
        if not 0 < self.enter_dwell_s <= self.window_s:
            raise ValueError("enter_dwell_s must be positive and at most window_s")
        if not 0 < self.absence_min_s <= self.absence_max_s:
            raise ValueError("absence_min_s must be positive and at most absence_max_s")

    @property
    def exit_rssi_dbm(self) -> float:
        return self.enter_rssi_dbm - self.exit_hysteresis_db


@dataclass(frozen=True, slots=True)
class Arrival:
    member_id: str
    zone: str
    at: float
    rssi: float  # the smoothed level that let the member in


ExitReason = Literal["weak_signal", "absent"]


@dataclass(frozen=True, slots=True)
class Exit:
    member_id: str
    zone: str
    at: float
    reason: ExitReason
    last_seen: float


Event = Arrival | Exit


def robust_rssi(values: Iterable[float], fence_k: float = const.IQR_FENCE_K) -> float:
    """The median of `values` after dropping those outside [Q1 - k*IQR, Q3 + k*IQR].

    Quartiles by nearest rank on the sorted readings: the inliers are then one slice of
    the sorted list, which keeps this cheap enough to run on every sighting.
    """
    ordered = sorted(values)
    count = len(ordered)
    if count == 0:
        raise ValueError("robust_rssi needs at least one reading")
    q1, q3 = ordered[count // 4], ordered[(3 * count) // 4]
    spread = fence_k * (q3 - q1)
    low = bisect.bisect_left(ordered, q1 - spread)
    high = bisect.bisect_right(ordered, q3 + spread)
    return _median(ordered[low:high])


def _median(ordered: Sequence[float]) -> float:
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(slots=True)
class _Track:
    samples: deque[tuple[float, float]] = field(default_factory=deque)  # (at, rssi), sorted
    gaps: deque[float] = field(default_factory=deque)
    inside: bool = False
    last_seen: float = float("-inf")
    exit_checked: float = float("-inf")


class ProximityTracker:
    """Arrival/exit state for every (member, zone) heard recently."""

    def __init__(self, config: ProximityConfig | None = None,
                 zones: Mapping[str, ProximityConfig] | None = None) -> None:
        self.config = config or ProximityConfig()
        self.zones = dict(zones or {})
        self._tracks: dict[tuple[str, str], _Track] = {}

    def config_for(self, zone: str) -> ProximityConfig:
        return self.zones.get(zone, self.config)

    def present(self) -> set[tuple[str, str]]:
        """The (member, zone) pairs currently inside."""
        return {pair for pair, track in self._tracks.items() if track.inside}

    def __len__(self) -> int:
        """How many (member, zone) pairs are tracked (memory in use)."""
        return len(self._tracks)

    def absence_timeout(self, member_id: str, zone: str) -> float:
        """Silence after which the member counts as gone from the zone."""
        config = self.config_for(zone)
        track = self._tracks.get((member_id, zone))
        if track is None or not track.gaps:
            return config.absence_min_s
        interval = statistics.median(track.gaps)
        return min(config.absence_max_s,
                   max(config.absence_min_s, config.absence_intervals * interval))

    def observe(self, member_id: str, zone: str, rssi: float, at: float) -> list[Event]:
        """Feed one sighting; returns the events it causes (at most an exit then an arrival)."""
        config = self.config_for(zone)
        pair = (member_id, zone)
        track = self._tracks.get(pair)
        if track is None:
            track = self._tracks[pair] = _Track(gaps=deque(maxlen=config.interval_samples))
        events: list[Event] = []
        if (track.inside and at - track.last_seen > config.absence_min_s
                and at - track.last_seen > self.absence_timeout(member_id, zone)):
            events.append(self._leave(pair, track, at, "absent"))
        if track.samples and at >= track.last_seen:
            track.gaps.append(at - track.last_seen)
        if not track.samples or at >= track.samples[-1][0]:
            track.samples.append((at, rssi))
        else:  # a late report from a remote receiver
            bisect.insort(track.samples, (at, rssi))
        track.last_seen = max(track.last_seen, at)
        self._prune(track, config)
        event = self._decide(pair, track, config, rssi)
        if event is not None:
            events.append(event)
        return events

    def expire(self, now: float) -> list[Exit]:
        """Exits for members silent past their absence timeout; forgets idle pairs."""
        exits: list[Exit] = []
        for pair in list(self._tracks):
            track = self._tracks[pair]
            config = self.config_for(pair[1])
            if track.inside:
                if now - track.last_seen > self.absence_timeout(*pair):
                    exits.append(self._leave(pair, track, now, "absent"))
                    del self._tracks[pair]
            elif now - track.last_seen > config.window_s:
                del self._tracks[pair]
        return exits

    def observe_many(self, sightings: Iterable[tuple[str, str, float, float]]) -> list[Event]:
        events: list[Event] = []
        for member_id, zone, rssi, at in sightings:
            events += self.observe(member_id, zone, rssi, at)
        return events

    def _prune(self, track: _Track, config: ProximityConfig) -> None:
        horizon = track.last_seen - config.window_s
        samples = track.samples
        while samples and (samples[0][0] < horizon or len(samples) > config.max_samples):
            samples.popleft()

    def _decide(self, pair: tuple[str, str], track: _Track, config: ProximityConfig,
                rssi: float) -> Event | None:
        if track.inside:
            return self._check_exit(pair, track, config)
        if rssi < config.enter_rssi_dbm:
            return None  # arrivals are decided on a strong reading
        return self._check_enter(pair, track, config)

    def _check_exit(self, pair: tuple[str, str], track: _Track,
                    config: ProximityConfig) -> Exit | None:
        if (len(track.samples) < config.exit_min_sightings
                or track.last_seen - track.exit_checked < config.exit_check_interval_s):
            return None
        track.exit_checked = track.last_seen
        level = robust_rssi([reading for _, reading in track.samples], config.iqr_fence_k)
        if level < config.exit_rssi_dbm:
            return self._leave(pair, track, track.last_seen, "weak_signal")
        return None

    def _check_enter(self, pair: tuple[str, str], track: _Track,
                     config: ProximityConfig) -> Arrival | None:
        since = track.last_seen - config.enter_dwell_s
        dwell = [reading for at, reading in track.samples if at >= since]
        strong = sum(1 for reading in dwell if reading >= config.enter_rssi_dbm)
        if strong < config.enter_min_sightings:
            return None
        level = robust_rssi(dwell, config.iqr_fence_k)
        if level < config.enter_rssi_dbm:
            return None
        track.inside = True
        track.exit_checked = track.last_seen
        return Arrival(member_id=pair[0], zone=pair[1], at=track.last_seen, rssi=level)

    def _leave(self, pair: tuple[str, str], track: _Track, at: float,
               reason: ExitReason) -> Exit:
        """Out of the zone; the readings that led here are dropped so that re-entering
        needs fresh ones."""
        track.inside = False
        track.samples.clear()
        return Exit(member_id=pair[0], zone=pair[1], at=at, reason=reason,
                    last_seen=track.last_seen)
