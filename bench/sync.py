"""Sync with central: push throughput, initial snapshot pull, and the gateway's memory.

    python bench/sync.py [--quick]

- push: outbox events per second drained to central (the real `mallgate central serve`
  process on SQLite, over loopback) from a backlog recorded while central was away. The
  baseline is the rate the same gateway records those events locally (the edge's own
  ceiling: central cannot be fed faster than the edge produces).
- snapshot: members per second of the initial snapshot pull (download, decompress, parse
  and apply to the gateway's store), beside the rate of only downloading and parsing the
  same snapshot; the target, 25,000 rows/s, is anchored on PowerSync's published 27,600
  rows/s desktop initial sync. Peak RSS of the gateway process during it.

Each gateway side runs in its own process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import emit

from cloud_api.client import CentralClient
from cloud_api.server.codec import view_json
from cloud_api.server.ids import hash_token
from cloud_api.server.members import edge_view
from cloud_api.server.sqlite_store import create_schema
from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind, LoyaltyRules
from gateway.loyalty.hlc import HybridClock
from gateway.settings.sync import SyncSettings
from gateway.store import Reader, Writer
from sync.engine import SyncEngine

BENCH = "sync"
MALL, GATEWAY, TOKEN = "bench-mall", "gw-bench", "mgt_bench-token"
CLI = [sys.executable, "-c", "from gateway.cli import main; main()"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
QUICK = {"push": 5_000, "members": 20_000}
FULL = {"push": 100_000, "members": 1_000_000}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed_central(db: Path, members: int) -> None:
    """Central's database with a gateway token and `members` members, written directly."""
    conn = sqlite3.connect(db, isolation_level=None)
    create_schema(conn)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO tokens VALUES (?, ?, 'gateway', ?, '')",
                 (hash_token(TOKEN), MALL, GATEWAY))
    conn.execute("INSERT INTO malls (mall_id, seq) VALUES (?, 1)", (MALL,))
    profile_data = {"name": "会员", "tier": "silver", "tags": ["loyal"]}
    profile = json.dumps(profile_data)
    conn.executemany(
        "INSERT INTO members (mall_id, member_id, account_id, profile, edge_view, version, "
        "updated_at) VALUES (?, ?, ?, ?, ?, 1, '')",
        ((MALL, f"M{n:07d}", f"A{n:07d}", profile,
          view_json(edge_view(f"M{n:07d}", f"A{n:07d}",
                              {**profile_data, "identifiers": [
                                  {"kind": "card", "value": f"C{n:07d}"}]}, 1)))
         for n in range(members)))
    conn.execute("COMMIT")
    conn.close()


@contextmanager
def central_server(db: Path, port: int) -> Iterator[None]:
    process = subprocess.Popen(  # noqa: S603 - our own CLI with our own arguments
        [*CLI, "central", "serve", "--db", str(db), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(30)


def entries(n: int) -> list[Entry]:
    return [Entry(kind=EntryKind.EARN, points=1 + i % 50, account_id=f"A{i % 5000:07d}",
                  member_id=f"M{i % 5000:07d}", source_type="pos.sale",
                  source_key=f"S01:P1:{i}:2026-01-01", reason="Purchase",
                  effective_at=T0 + timedelta(seconds=i), rule_version="bench")
            for i in range(n)]


async def edge(db: Path, url: str, phase: str, count: int) -> dict[str, float]:
    settings = SyncSettings()
    clock = HybridClock(GATEWAY)
    async with Writer(db) as writer, Reader(db) as reader, \
            CentralClient(url, TOKEN, timeout_s=60) as client:
        engine = SyncEngine(client, writer, reader, gateway_id=GATEWAY, settings=settings,
                            clock=clock)
        if phase == "push":
            ledger = Ledger(writer, reader, site=GATEWAY, clock=clock, rules=LoyaltyRules())
            batch = entries(count)
            started = time.perf_counter()
            for i in range(0, count, 500):
                await ledger.record_many(batch[i:i + 500])
            record_s = time.perf_counter() - started
            started = time.perf_counter()
            await engine.push()  # what the push loop does with a backlog
            push_s = time.perf_counter() - started
            left = await reader.run(lambda c: c.execute("SELECT count(*) FROM outbox")
                                    .fetchone()[0])
            assert left == 0, f"{left} events left in the outbox"
            return {"push_rate": count / push_s, "record_rate": count / record_s}
        started = time.perf_counter()  # the ceiling: download, decompress and parse only
        streamed = 0
        async for _ in client.snapshot(GATEWAY):
            streamed += 1
        stream_s = time.perf_counter() - started
        started = time.perf_counter()
        await engine.resync()
        took = time.perf_counter() - started
        applied = await reader.run(lambda c: c.execute("SELECT count(*) FROM members")
                                   .fetchone()[0])
        assert applied == count, f"{applied} of {count} members applied"
        return {"rows_per_s": count / took, "seconds": took, "stream_rows_per_s": count / stream_s,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_edge(db: Path, url: str, phase: str, count: int) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603 - this script with our own arguments
        [sys.executable, __file__, "--edge", phase, str(db), url, str(count)],
        check=False, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"the gateway side failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--edge", nargs=4, metavar=("PHASE", "DB", "URL", "COUNT"))
    args = parser.parse_args()
    if args.edge:
        phase, db, url, count = args.edge
        print(json.dumps(asyncio.run(edge(Path(db), url, phase, int(count)))))
        return
    plan = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="mallgate-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        seed_central(root / "central.db", plan["members"])
        with central_server(root / "central.db", port):
            url = f"http://127.0.0.1:{port}"
            pushed = run_edge(root / "push.db", url, "push", plan["push"])
            emit(BENCH, "push_events_per_s", pushed["push_rate"], unit="events/s",
                 target=">= 5000", baseline=pushed["record_rate"])
            snap = run_edge(root / "snap.db", url, "snapshot", plan["members"])
            emit(BENCH, f"snapshot_{plan['members']}_members_rows_per_s", snap["rows_per_s"],
                 unit="rows/s", target=">= 25000", baseline=snap["stream_rows_per_s"])
            emit(BENCH, f"snapshot_{plan['members']}_members_seconds", snap["seconds"],
                 unit="s", target="<= 40" if not args.quick else None, baseline=None)
            emit(BENCH, "snapshot_peak_rss", snap["peak_rss_mb"], unit="MB",
                 target="<= 150", baseline=None)


if __name__ == "__main__":
    main()
