"""BLE proximity on one core: the pure path and the EID table.

    python bench/ble.py [--quick]

- throughput: advertisements per second through parse -> resolve -> track (the pure
  pipeline a scanner callback feeds), for 2,000 members walking between 20 zones among
  strangers and non-beacon adverts. Target >= 50,000/s.
- eid_turn: the time one EID window turn takes to bring the resolver table up to date for
  200,000 BLE-enabled members (the worst of 10 consecutive turns, which includes a
  temporary-key change). Target <= 5 s. --quick measures 20,000 members and multiplies by
  10 (the work is linear in members), saying so in the metric name.
- eid_build: loading the same members' keys into an empty table (a gateway start), for
  reference; eid_table_bytes_per_member: the memory the table holds per member.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
import uuid

from benchlib import emit

from devices.ble.const import APPLE_COMPANY_ID, EDDYSTONE_SERVICE_UUID
from devices.ble.eid import EidResolver, MemberKey, ephemeral_id, ibeacon_token
from devices.ble.identity import Identifier
from devices.ble.pipeline import Pipeline
from devices.ble.protocol import Advertisement
from devices.ble.proximity import ProximityTracker

BENCH = "ble"
MALL_UUID = uuid.UUID("6d616c6c-6761-7465-0000-000000000001")
START = 1_000_000_000  # a Unix time well inside one temporary-key period


def member_keys(count: int, rng: random.Random) -> list[MemberKey]:
    return [MemberKey(f"m{i}", identity_key=rng.randbytes(16)) for i in range(count)]


def adverts(keys: list[MemberKey], count: int, rng: random.Random
            ) -> list[tuple[Advertisement, str, float]]:
    """Members move between zones (half Eddystone-EID, half iBeacon token), 20 % strangers'
    EIDs and 10 % adverts that are no beacon at all, one advert every 100 us."""
    zones = [f"zone-{z}" for z in range(20)]
    where = {key.member_id: rng.choice(zones) for key in keys}
    out: list[tuple[Advertisement, str, float]] = []
    for i in range(count):
        at = START + i * 0.0001
        roll = rng.random()
        rssi = round(rng.gauss(-68, 6))
        if roll < 0.1:
            out.append((Advertisement(manufacturer_data={0x0006: rng.randbytes(20)},
                                      rssi=rssi), rng.choice(zones), at))
            continue
        key = rng.choice(keys)
        zone = where[key.member_id]
        if rng.random() < 0.01:
            zone = where[key.member_id] = rng.choice(zones)
        eid = ephemeral_id(key.identity_key, key.rotation_exponent, key.counter_at(at))
        if roll < 0.3:
            eid = rng.randbytes(8)  # a stranger
        if rng.random() < 0.5:
            data = {EDDYSTONE_SERVICE_UUID: b"\x30\xee" + eid}
            out.append((Advertisement(service_data=data, rssi=rssi), zone, at))
        else:
            major, minor = ibeacon_token(eid)
            payload = (b"\x02\x15" + MALL_UUID.bytes + major.to_bytes(2, "big")
                       + minor.to_bytes(2, "big") + b"\xc5")
            out.append((Advertisement(manufacturer_data={APPLE_COMPANY_ID: payload},
                                      rssi=rssi), zone, at))
    return out


def throughput(count: int) -> None:
    rng = random.Random(1)
    keys = member_keys(2000, rng)
    resolver = EidResolver()
    resolver.upsert_many(keys, START)
    pipeline = Pipeline(Identifier(resolver, mall_uuid=MALL_UUID), ProximityTracker())
    workload = adverts(keys, count, rng)
    began = time.perf_counter()
    for advert, zone, at in workload:
        pipeline.feed(advert, zone, at)
    elapsed = time.perf_counter() - began
    assert pipeline.identifier.stats.matched.total() > count // 2
    emit(BENCH, "adverts_parsed_resolved_tracked_per_s", count / elapsed, unit="adverts/s",
         target=">= 50000", baseline=None)


def eid_table(members: int, scale: int) -> None:
    rng = random.Random(2)
    keys = member_keys(members, rng)
    period = 1 << keys[0].rotation_exponent
    # the next temporary key starts at the next multiple of 65,536 s: end the run past it
    tk_change = ((START >> 16) + 1) << 16
    first = tk_change - 5 * period
    resolver = EidResolver()
    began = time.perf_counter()
    resolver.upsert_many(keys, first - period)
    build = time.perf_counter() - began
    turns: list[float] = []
    for step in range(10):
        now = first + step * period
        began = time.perf_counter()
        updated = resolver.advance(now)
        turns.append(time.perf_counter() - began)
        assert updated == members, (updated, members)
    # --quick measures fewer members and scales linearly; the metric name says so
    name = "200k" if scale == 1 else f"200k_scaled_from_{members // 1000}k"
    emit(BENCH, f"eid_turn_worst_seconds_{name}", max(turns) * scale, unit="s",
         target="<= 5", baseline=None)
    emit(BENCH, f"eid_build_seconds_{name}", build * scale, unit="s", target=None,
         baseline=None)


def eid_memory(members: int) -> None:
    """Memory the resolver holds per member (measured on a small table, it is linear)."""
    keys = member_keys(members, random.Random(3))
    tracemalloc.start()
    resolver = EidResolver()
    resolver.upsert_many(keys, START)
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    emit(BENCH, "eid_table_bytes_per_member", used / len(resolver), unit="bytes", target=None,
         baseline=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short run for CI")
    args = parser.parse_args()
    throughput(100_000 if args.quick else 500_000)
    if args.quick:
        eid_table(20_000, scale=10)
    else:
        eid_table(200_000, scale=1)
    eid_memory(5_000)


if __name__ == "__main__":
    main()
