"""Durable write throughput of the group-commit writer, against one commit per event.

    python bench/store_writer.py [--quick] [--dir PATH]

Prints one JSON line per metric. Both measurements use synchronous=FULL on the same
disk in the same run, so the baseline shows what group commit buys on this machine.
Pass --dir to measure the disk the gateway will actually use.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchlib import emit

from gateway.store import Writer, migrate, open_writer

BENCH = "store_writer"
# A sale event as the outbox would hold it (~300 bytes of JSON).
PAYLOAD = json.dumps(
    {
        "store": "S017",
        "pos": "P03",
        "receipt_no": "000123456",
        "business_date": "2024-05-01",
        "member": "m-4f1c2a9e",
        "total_fen": 128_800,
        "lines": [{"sku": f"SKU-{n:05d}", "qty": 1, "amount_fen": 32_200} for n in range(4)],
    }
)
INSERT_EVENT = (
    "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
    "VALUES (?, 'sale', 'acct-1', ?, '2024-05-01T10:00:00Z')"
)


@dataclass(frozen=True)
class Plan:
    producers: int
    events: int  # through the group-commit writer, per repetition
    repetitions: int  # throughput is the median over these, each on a fresh file
    baseline_events: int  # one commit each; capped by baseline_max_s on slow disks
    baseline_max_s: float


QUICK = Plan(producers=32, events=5_000, repetitions=1, baseline_events=500, baseline_max_s=1.0)
FULL = Plan(producers=64, events=100_000, repetitions=3, baseline_events=5_000, baseline_max_s=8.0)


@dataclass(frozen=True)
class GroupCommitResult:
    events_per_s: float
    latencies_ms: list[float]
    mean_batch_size: float


def insert_event(event_id: str) -> Callable[[sqlite3.Connection], None]:
    def op(conn: sqlite3.Connection) -> None:
        conn.execute(INSERT_EVENT, (event_id, PAYLOAD))

    return op


async def measure_group_commit(path: Path, plan: Plan) -> GroupCommitResult:
    latencies_ms: list[float] = []
    per_producer = plan.events // plan.producers

    async with Writer(path) as writer:

        async def producer(p: int) -> None:
            for i in range(per_producer):
                started = time.perf_counter()
                await writer.submit(insert_event(f"g-{p}-{i}"))
                latencies_ms.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for p in range(plan.producers):
                group.create_task(producer(p))
        elapsed = time.perf_counter() - started
        stats = writer.stats

    return GroupCommitResult(
        events_per_s=len(latencies_ms) / elapsed,
        latencies_ms=latencies_ms,
        mean_batch_size=stats.ops / stats.batches,
    )


def measure_one_commit_per_event(path: Path, plan: Plan) -> float:
    conn = open_writer(path)
    try:
        migrate(conn)
        written = 0
        started = time.perf_counter()
        deadline = started + plan.baseline_max_s
        while written < plan.baseline_events and time.perf_counter() < deadline:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT_EVENT, (f"b-{written}", PAYLOAD))
            conn.execute("COMMIT")
            written += 1
        return written / (time.perf_counter() - started)
    finally:
        conn.close()


def report(metric: str, value: float, unit: str, target: str, baseline: float | None) -> None:
    emit(BENCH, metric, value, unit=unit, target=target, baseline=baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run for CI (a few seconds)")
    parser.add_argument("--dir", type=Path, default=None, help="directory on the disk to test")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL

    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=args.dir) as tmp:
        baseline = measure_one_commit_per_event(Path(tmp) / "per_event.db", plan)
        runs = [
            asyncio.run(measure_group_commit(Path(tmp) / f"grouped-{n}.db", plan))
            for n in range(plan.repetitions)
        ]

    latencies_ms = [latency for run in runs for latency in run.latencies_ms]
    percentiles = statistics.quantiles(latencies_ms, n=100)
    events_per_s = statistics.median(run.events_per_s for run in runs)
    mean_batch_size = statistics.fmean(run.mean_batch_size for run in runs)
    report("durable_events_per_s", events_per_s, "events/s", ">= 5000", baseline)
    report("producer_latency_p50_ms", percentiles[49], "ms", "<= 5", None)
    report("producer_latency_p99_ms", percentiles[98], "ms", "<= 20", None)
    report("mean_batch_size", mean_batch_size, "events/commit", ">= 2", 1.0)


if __name__ == "__main__":
    main()
