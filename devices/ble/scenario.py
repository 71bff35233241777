"""A mall's visitors as remote BLE receivers hear them: a pure, seeded, replayable scenario.

`Scenario` plans visits (demo members and strangers walking through zones, lingering in
some and walking past others) and yields, in time order, what every receiver heard
(`Heard`: raw advertising data, RSSI, time) and the batches the receivers send (`Batch`).
Nothing here reads a clock or touches a socket: the same seed and start give the same
adverts, so a test replays a scenario exactly. `devices.ble.sim` publishes it over MQTT.

The radio model, each number a named constant below: log-distance path loss from the
phone's power at 1 m, Gaussian noise, occasional deep fades (a body between phone and
receiver) and missed adverts; phones advertise every 100 ms to 1 s; half the members'
phones send Eddystone-EID, the other half (iPhones) the iBeacon token under the mall UUID;
EIDs rotate with their window and the advertiser's address every ~15 minutes.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from devices.ble.demo import DEMO_MALL_UUID
from devices.ble.eid import KEY_LENGTH, MemberKey, ephemeral_id, ibeacon_token
from devices.ble.remote import MAX_ADVERTS, MAX_AGE_MS, RSSI_MAX_DBM, RSSI_MIN_DBM, RemoteAdvert

# --- radio model ------------------------------------------------------------------------

# A phone's advert heard at 1 m reads about -59 dBm (the iBeacon "measured power" Apple
# recommends calibrating to); Eddystone quotes 0 m, 41 dB stronger.
POWER_1M_DBM = -59
TX_POWER_0M_DBM = POWER_1M_DBM + 41
# Indoor log-distance path loss exponent: 2 in free space, 2-3 in an open mall hall.
PATH_LOSS_EXPONENT = 2.2
# Standard deviation of the per-advert noise (multipath, antenna orientation).
NOISE_SIGMA_DB = 4.0
# Now and then a body or a shelf sits between phone and receiver: a deep fade.
FADE_RATE = 0.05
FADE_DB = (15.0, 25.0)
# A constant loss per visitor: the phone in a hand, a bag or a back pocket.
BODY_LOSS_DB = (0.0, 4.0)
# Receivers miss adverts: scan duty cycle, radio collisions, Wi-Fi coexistence on ESP32.
MISS_RATE = 0.25
# Phones advertise every 100 ms (foreground, low latency) to 1 s (background).
ADV_INTERVAL_S = (0.1, 1.0)
# The Bluetooth spec adds 0-10 ms of random delay to every advertising event.
ADV_DELAY_S = 0.01
# Phones change their resolvable private address about every 15 minutes.
MAC_ROTATION_S = 15 * 60.0

# --- visitors ---------------------------------------------------------------------------

# A member who stops (at the entrance, at a kiosk, in the atrium) stays this long, this
# close to a receiver of the zone.
LINGER_S = (20.0, 90.0)
LINGER_DISTANCE_M = (0.8, 2.5)
# How far a lingering visitor drifts between two adverts.
DRIFT_M = 0.1
# Someone walking past a zone is in range for a few seconds and heard once or twice.
PASS_S = (2.0, 5.0)
PASS_DISTANCE_M = (3.0, 8.0)
PASS_SIGHTINGS = (1, 2)
# Walking from one zone to the next: out of range of every receiver.
WALK_S = (5.0, 20.0)
MAX_LEGS = 3
# A receiver of another zone now and then catches a lingering visitor from far away.
BLEED_RATE = 0.05
BLEED_DISTANCE_M = (15.0, 30.0)
# A member who left comes back no sooner than this: a new visit, not the same one.
REVISIT_GAP_S = 60.0

# --- receivers --------------------------------------------------------------------------

# Receivers send what they heard every 200-500 ms (ESPresense-style nodes).
BATCH_INTERVAL_S = (0.2, 0.5)
# Phones, watches and headphones that are no beacon at all, per receiver per second.
NOISE_PER_S = 1.0
NOISE_RSSI_DBM = (-95.0, -60.0)

Mode = Literal["linger", "pass"]
Kind = Literal["linger", "pass", "bleed", "noise"]
FrameKind = Literal["eid", "ibeacon"]

_FLAGS = bytes([0x02, 0x01, 0x06])
_EDDYSTONE_UUIDS = bytes([0x03, 0x03, 0xAA, 0xFE])


def eid_ad(eid: bytes, tx_power_0m: int = TX_POWER_0M_DBM) -> bytes:
    """Raw advertising data of an Eddystone-EID frame, as an Android phone sends it."""
    return (_FLAGS + _EDDYSTONE_UUIDS + bytes([0x0D, 0x16, 0xAA, 0xFE, 0x30, tx_power_0m & 0xFF])
            + eid)


def ibeacon_ad(mall_uuid: uuid.UUID, major: int, minor: int,
               power_1m: int = POWER_1M_DBM) -> bytes:
    """Raw advertising data of an iBeacon frame, as an iPhone mini-program sends it."""
    return (_FLAGS + bytes([0x1A, 0xFF, 0x4C, 0x00, 0x02, 0x15]) + mall_uuid.bytes
            + major.to_bytes(2, "big") + minor.to_bytes(2, "big") + bytes([power_1m & 0xFF]))


def _noise_ad(rng: random.Random) -> bytes:
    """An advert that carries no beacon: Apple "nearby" frames, a vendor's gadget."""
    if rng.random() < 0.6:
        return bytes([0x02, 0x01, 0x1A, 0x0A, 0xFF, 0x4C, 0x00, 0x10, 0x05]) + rng.randbytes(5)
    return _FLAGS + bytes([0x09, 0xFF, 0x75, 0x00, 0x01]) + rng.randbytes(6)


@dataclass(frozen=True, slots=True)
class SimReceiver:
    rid: str
    zone: str


@dataclass(frozen=True, slots=True)
class Leg:
    zone: str
    mode: Mode
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Visit:
    """One visitor's walk through the mall: a member (with `member_id`) or a stranger."""

    index: int
    key: MemberKey
    member_id: str | None
    frame: FrameKind
    interval_s: float
    body_loss_db: float
    legs: tuple[Leg, ...]
    seed: int  # drives this visit's adverts, independent of the other visits

    @property
    def start(self) -> float:
        return self.legs[0].start

    @property
    def end(self) -> float:
        return self.legs[-1].end


@dataclass(frozen=True, slots=True)
class Heard:
    """One advert one receiver heard. `visit` is None for non-beacon noise."""

    at: float
    rid: str
    ad: bytes
    rssi: int
    mac: str
    visit: int | None
    kind: Kind


@dataclass(frozen=True, slots=True)
class Batch:
    """What receiver `rid` publishes at `send_at`."""

    send_at: float
    rid: str
    seq: int
    heard: tuple[Heard, ...]

    @property
    def adverts(self) -> tuple[RemoteAdvert, ...]:
        return tuple(RemoteAdvert(ad=h.ad, rssi=h.rssi, mac=h.mac,
                                  age_ms=min(MAX_AGE_MS, round((self.send_at - h.at) * 1000)))
                     for h in self.heard)


@dataclass(frozen=True, slots=True)
class ScenarioConfig:
    """Who walks where. `duration_s` bounds the run (visits are planned to end inside it);
    `count` instead plans that many visits and runs until the last one has left."""

    receivers: tuple[SimReceiver, ...]
    members: tuple[MemberKey, ...]
    mall_uuid: uuid.UUID = DEMO_MALL_UUID
    rate_per_min: float = 6.0
    duration_s: float | None = None
    count: int | None = None
    stranger_share: float = 0.3
    linger_share: float = 0.6
    noise_per_s: float = NOISE_PER_S

    def __post_init__(self) -> None:
        if not self.receivers:
            raise ValueError("a scenario needs at least one receiver")
        if len({r.rid for r in self.receivers}) != len(self.receivers):
            raise ValueError("receiver ids must be unique")
        if self.rate_per_min <= 0:
            raise ValueError("rate_per_min must be positive")
        if (self.duration_s is None) == (self.count is None):
            raise ValueError("give exactly one of duration_s and count")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration_s must be positive")
        if self.count is not None and self.count < 1:
            raise ValueError("count must be at least 1")
        for name in ("stranger_share", "linger_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be within 0..1")
        if self.noise_per_s < 0:
            raise ValueError("noise_per_s must not be negative")

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.zone for r in self.receivers))


class Scenario:
    """A seeded, replayable mall: the same seed and start give the same adverts."""

    def __init__(self, config: ScenarioConfig, *, seed: int, start: float) -> None:
        self.config = config
        self.seed = seed
        self.start = start
        # filled as `heard()` / `batches()` run: every visit planned so far, in start order
        self.visits: list[Visit] = []

    @property
    def end(self) -> float | None:
        duration = self.config.duration_s
        return None if duration is None else self.start + duration

    # -- planning ----------------------------------------------------------------------

    def plan(self) -> Iterator[Visit]:
        """The visits in start order (lazily: a `count` of visits may span hours)."""
        config = self.config
        rng = random.Random(f"{self.seed}:plan")  # noqa: S311 - a simulation, not security
        zones = config.zones
        free_at: dict[str, float] = {}
        parity = {key.member_id: i % 2 for i, key in enumerate(config.members)}
        t = self.start
        for index in itertools.count():
            if config.count is not None and index >= config.count:
                return
            t += rng.expovariate(config.rate_per_min / 60)
            if self.end is not None and t >= self.end:
                return
            member = None
            if config.members and rng.random() >= config.stranger_share:
                free = [k for k in config.members if free_at.get(k.member_id, -math.inf) <= t]
                member = rng.choice(free) if free else None
            if member is not None:
                key = member
                frame: FrameKind = "eid" if parity[key.member_id] == 0 else "ibeacon"
            else:
                key = MemberKey(f"stranger-{index + 1}", identity_key=rng.randbytes(KEY_LENGTH))
                frame = rng.choice(("eid", "ibeacon"))
            legs = self._route(rng, zones, t)
            visit_seed = rng.getrandbits(64)
            if not legs:
                continue
            if member is not None:
                free_at[member.member_id] = legs[-1].end + REVISIT_GAP_S
            yield Visit(index=index, key=key, member_id=None if member is None else key.member_id,
                        frame=frame, interval_s=rng.uniform(*ADV_INTERVAL_S),
                        body_loss_db=rng.uniform(*BODY_LOSS_DB), legs=tuple(legs),
                        seed=visit_seed)

    def _route(self, rng: random.Random, zones: Sequence[str], t: float) -> list[Leg]:
        """One to three distinct zones, each lingered in or walked past, with walks between."""
        route = rng.sample(list(zones), rng.randint(1, min(MAX_LEGS, len(zones))))
        legs: list[Leg] = []
        for zone in route:
            mode: Mode = "linger" if rng.random() < self.config.linger_share else "pass"
            length = rng.uniform(*(LINGER_S if mode == "linger" else PASS_S))
            if self.end is not None and t + length > self.end:
                break
            legs.append(Leg(zone, mode, t, t + length))
            t += length + rng.uniform(*WALK_S)
        return legs

    # -- what the receivers hear -------------------------------------------------------

    def heard(self) -> Iterator[Heard]:
        """Every advert every receiver heard, in time order."""
        self.visits = []
        visits = self.plan()
        upcoming = next(visits, None)
        order = itertools.count()
        heap: list[tuple[float, int, Heard, Iterator[Heard]]] = []
        live = 0  # visits still advertising

        def push(source: Iterator[Heard]) -> bool:
            item = next(source, None)
            if item is None:
                return False
            heapq.heappush(heap, (item.at, next(order), item, source))
            return True

        noise = self._noise()
        push(noise)
        while True:
            while upcoming is not None and (not heap or upcoming.start <= heap[0][0]):
                self.visits.append(upcoming)
                live += push(self._adverts(upcoming))
                upcoming = next(visits, None)
            if not heap:
                return
            _, _, item, source = heapq.heappop(heap)
            if source is noise:
                if self.end is None and live == 0 and upcoming is None:
                    return  # a `count` run ends when its last visitor has left
                push(noise)
            elif not push(source):
                live -= 1
            yield item

    def _noise(self) -> Iterator[Heard]:
        config = self.config
        if config.noise_per_s <= 0:
            return
        rng = random.Random(f"{self.seed}:noise")  # noqa: S311 - a simulation
        rate = config.noise_per_s * len(config.receivers)
        t = self.start
        while True:
            t += rng.expovariate(rate)
            if self.end is not None and t >= self.end:
                return
            receiver = rng.choice(config.receivers)
            yield Heard(at=t, rid=receiver.rid, ad=_noise_ad(rng),
                        rssi=round(rng.uniform(*NOISE_RSSI_DBM)), mac=_mac(rng.randbytes(6)),
                        visit=None, kind="noise")

    def _adverts(self, visit: Visit) -> Iterator[Heard]:
        rng = random.Random(visit.seed)  # noqa: S311 - a simulation
        frames = _Frames(visit, self.config.mall_uuid, rng.getrandbits(64))
        for leg in visit.legs:
            inside = [r for r in self.config.receivers if r.zone == leg.zone]
            if leg.mode == "pass":
                yield from self._walk_past(rng, visit, leg, inside, frames)
            else:
                yield from self._linger(rng, visit, leg, inside, frames)

    def _walk_past(self, rng: random.Random, visit: Visit, leg: Leg,
                   inside: Sequence[SimReceiver], frames: _Frames) -> Iterator[Heard]:
        times = sorted(rng.uniform(leg.start, leg.end)
                       for _ in range(rng.randint(*PASS_SIGHTINGS)))
        for at in times:
            receiver = rng.choice(inside)
            rssi = _rssi(rng, rng.uniform(*PASS_DISTANCE_M), visit.body_loss_db)
            yield Heard(at=at, rid=receiver.rid, ad=frames.ad(at), rssi=rssi,
                        mac=frames.mac(at), visit=visit.index, kind="pass")

    def _linger(self, rng: random.Random, visit: Visit, leg: Leg,
                inside: Sequence[SimReceiver], frames: _Frames) -> Iterator[Heard]:
        outside = [r for r in self.config.receivers if r.zone != leg.zone]
        low, high = LINGER_DISTANCE_M
        distance = {r.rid: rng.uniform(low, high) for r in inside}
        at = leg.start + rng.uniform(0, visit.interval_s)
        while at < leg.end:
            for receiver in inside:
                d = distance[receiver.rid] = min(high, max(low, distance[receiver.rid]
                                                           + rng.uniform(-DRIFT_M, DRIFT_M)))
                if rng.random() >= MISS_RATE:
                    yield Heard(at=at, rid=receiver.rid, ad=frames.ad(at),
                                rssi=_rssi(rng, d, visit.body_loss_db), mac=frames.mac(at),
                                visit=visit.index, kind="linger")
            for receiver in outside:
                if rng.random() < BLEED_RATE:
                    rssi = _rssi(rng, rng.uniform(*BLEED_DISTANCE_M), visit.body_loss_db)
                    yield Heard(at=at, rid=receiver.rid, ad=frames.ad(at), rssi=rssi,
                                mac=frames.mac(at), visit=visit.index, kind="bleed")
            at += visit.interval_s + rng.uniform(0, ADV_DELAY_S)

    # -- what the receivers send -------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        """Each receiver's batches in send order: every 200-500 ms, what it heard since its
        previous batch (none when it heard nothing), at most MAX_ADVERTS per message."""
        rng = random.Random(f"{self.seed}:batches")  # noqa: S311 - a simulation
        due = [(self.start + rng.uniform(*BATCH_INTERVAL_S), r.rid)
               for r in self.config.receivers]
        heapq.heapify(due)
        pending: dict[str, list[Heard]] = {r.rid: [] for r in self.config.receivers}
        seq = dict.fromkeys(pending, 0)

        def flush(send_at: float, rid: str) -> Iterator[Batch]:
            items, pending[rid] = pending[rid], []
            for first in range(0, len(items), MAX_ADVERTS):
                seq[rid] += 1
                yield Batch(send_at, rid, seq[rid], tuple(items[first:first + MAX_ADVERTS]))

        for item in self.heard():
            while due[0][0] < item.at:
                send_at, rid = heapq.heappop(due)
                yield from flush(send_at, rid)
                heapq.heappush(due, (send_at + rng.uniform(*BATCH_INTERVAL_S), rid))
            pending[item.rid].append(item)
        for send_at, rid in sorted(due):
            yield from flush(send_at, rid)


class _Frames:
    """A visitor's advert payload and address at any instant (cached per EID window)."""

    def __init__(self, visit: Visit, mall_uuid: uuid.UUID, mac_seed: int) -> None:
        self.visit = visit
        self.mall_uuid = mall_uuid
        self.mac_seed = mac_seed
        self.mac_phase = (mac_seed % 1000) / 1000 * MAC_ROTATION_S
        self._window = -1
        self._ad = b""

    def ad(self, at: float) -> bytes:
        key = self.visit.key
        window = key.window_at(at)
        if window != self._window:
            eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(at))
            if self.visit.frame == "eid":
                self._ad = eid_ad(eid)
            else:
                self._ad = ibeacon_ad(self.mall_uuid, *ibeacon_token(eid))
            self._window = window
        return self._ad

    def mac(self, at: float) -> str:
        epoch = math.floor((at + self.mac_phase) / MAC_ROTATION_S)
        digest = hashlib.blake2b(f"{self.mac_seed}:{epoch}".encode(), digest_size=6).digest()
        # the two top bits 01 mark a resolvable private address
        return _mac(bytes([(digest[0] & 0x3F) | 0x40]) + digest[1:])


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02X}" for b in raw)


def _rssi(rng: random.Random, distance_m: float, body_loss_db: float) -> int:
    level = (POWER_1M_DBM - 10 * PATH_LOSS_EXPONENT * math.log10(distance_m) - body_loss_db
             + rng.gauss(0, NOISE_SIGMA_DB))
    if rng.random() < FADE_RATE:
        level -= rng.uniform(*FADE_DB)
    return max(RSSI_MIN_DBM, min(RSSI_MAX_DBM, round(level)))
