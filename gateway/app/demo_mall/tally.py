"""What the demo counts: the live line, the report, and the loss check.

`lost` is the demo's proof of "durable before acknowledged": every receipt a till got an
ACK for, and every kiosk reply that moved points, must be in the gateway's store or at
central after the final sync drain.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cloud_api.client import CentralClient
from devices.ble.sim import PublishStats
from devices.pos.sim import SimReceipt
from gateway.app.demo_mall.central import central_entries
from gateway.app.demo_mall.kiosk import KioskTally
from gateway.app.demo_mall.layout import PosLine
from gateway.app.demo_mall.pos import TillTally, printout_no
from gateway.app.keys import BLE, PARTS, READER, SYNC
from gateway.loyalty.activities import CHECKIN_SOURCE
from gateway.loyalty.earn import SALE_SOURCE
from gateway.parts import PartState
from gateway.receipts.pipeline import DEAD_LETTER_SOURCE


@dataclass(slots=True)
class Tallies:
    """What the simulators know: sent, acknowledged, answered."""

    tills: dict[PosLine, TillTally] = field(default_factory=dict)
    kiosk: KioskTally = field(default_factory=KioskTally)
    ble: PublishStats = field(default_factory=PublishStats)

    @property
    def receipts_sent(self) -> int:
        return sum(t.sent for t in self.tills.values())

    @property
    def sales_sent(self) -> int:
        return sum(t.sales for t in self.tills.values())


@dataclass(frozen=True, slots=True)
class StoreCounts:
    credited: int
    duplicates: int
    dead_letters: int
    pending: int


def _store_counts(conn: sqlite3.Connection) -> StoreCounts:
    def one(sql: str, *args: object) -> int:
        return int(conn.execute(sql, args).fetchone()[0] or 0)
    return StoreCounts(
        credited=one("SELECT count(DISTINCT source_key) FROM ledger WHERE source_type = ? "
                     "AND kind = 'EARN'", SALE_SOURCE),
        duplicates=one("SELECT sum(duplicates) FROM receipts"),
        dead_letters=one("SELECT count(*) FROM dead_letters WHERE source = ?",
                         DEAD_LETTER_SOURCE),
        pending=one("SELECT count(*) FROM outbox"))


async def store_counts(app: web.Application) -> StoreCounts:
    return await app[READER].run(_store_counts)


def _sync(app: web.Application) -> tuple[int, int]:
    """Events pushed to central (with any verdict) and those central has (acked)."""
    engine = app.get(SYNC)
    if engine is None:
        return 0, 0
    c = engine.counters
    acked = c["pushed"] + c["duplicates"]
    return acked + c["rejected"] + c["unsettled"], acked


def _parts(app: web.Application) -> tuple[int, int]:
    statuses = app[PARTS].statuses()
    return sum(s.state is PartState.UP for s in statuses), len(statuses)


def _ble(app: web.Application) -> tuple[int, int]:
    service = app.get(BLE)
    return (service.stats.arrivals, service.stats.shows_published) if service else (0, 0)


async def live_line(app: web.Application, tallies: Tallies, elapsed_s: float) -> str:
    counts = await store_counts(app)
    _, acked = _sync(app)
    arrivals, offers = _ble(app)
    up, parts = _parts(app)
    k = tallies.kiosk
    return (f"[{elapsed_s:5.0f}s] receipts {tallies.receipts_sent} sent, {counts.credited} "
            f"credited | kiosk {k.replies} replies, {k.errors} errors | ble {arrivals} "
            f"arrivals, {offers} offers | sync {acked} synced, {counts.pending} pending | "
            f"parts {up}/{parts} up")


async def report(app: web.Application, tallies: Tallies, admin: CentralClient,
                 members: int) -> dict[str, Any]:
    """The run's summary, in the shape `--report` writes."""
    counts = await store_counts(app)
    pushed, acked = _sync(app)
    arrivals, offers = _ble(app)
    k = tallies.kiosk
    return {
        "receipts": {"sent": tallies.receipts_sent, "credited": counts.credited,
                     "duplicates": counts.duplicates, "dead_letters": counts.dead_letters},
        "kiosk": {"requests": k.requests, "replies": k.replies, "errors": k.errors},
        "ble": {"arrivals": arrivals, "offers_shown": offers},
        "sync": {"pushed": pushed, "acked": acked, "pending": counts.pending},
        "lost": await lost(app, tallies, admin, members),
    }


@dataclass(slots=True)
class Kept:
    """What one side (the gateway's store or central) holds, as the loss check needs it."""

    entry_ids: set[str] = field(default_factory=set)
    sources: set[tuple[str, str]] = field(default_factory=set)  # (source_type, source_key)

    def add(self, entry_id: str, source_type: str, source_key: str) -> None:
        self.entry_ids.add(entry_id)
        self.sources.add((source_type, source_key))

    def has_sale(self, line: PosLine, number: str) -> bool:
        prefix = f"{line.store_id}:{line.pos_id}:{number}:"
        return any(kind == SALE_SOURCE and key.startswith(prefix)
                   for kind, key in self.sources)


def _gateway_kept(conn: sqlite3.Connection) -> Kept:
    kept = Kept()
    for row in conn.execute("SELECT entry_id, source_type, source_key FROM ledger"):
        kept.add(*row)
    return kept


def _captured(conn: sqlite3.Connection, line: PosLine, number: str) -> bool:
    """A capture of the line holding the receipt's number (acknowledged protocols commit
    the raw message with what it produced, before the ACK)."""
    return conn.execute(
        "SELECT 1 FROM pos_captures WHERE store_id = ? AND pos_id = ? AND "
        "instr(CAST(raw AS TEXT), ?) > 0 LIMIT 1",
        (line.store_id, line.pos_id, number)).fetchone() is not None


async def lost(app: web.Application, tallies: Tallies, admin: CentralClient,
               members: int) -> int:
    """Acknowledged events found neither in the gateway's store nor at central."""
    reader = app[READER]
    gateway = await reader.run(_gateway_kept)
    central = Kept()
    for entry in await central_entries(admin, members):
        central.add(entry["entry_id"], entry["source_type"], entry["source_key"])
    missing = 0
    for line, till in tallies.tills.items():
        for receipt in till.acked:
            missing += not await _receipt_kept(reader.run, line, receipt, gateway, central)
    for op, data in tallies.kiosk.moved:
        if op == "redeem":
            entry_id = data["redemption_id"]
            missing += entry_id not in gateway.entry_ids and entry_id not in central.entry_ids
        else:
            source = (CHECKIN_SOURCE, f"{data['member_id']}:{data['date']}")
            missing += source not in gateway.sources and source not in central.sources
    return missing


async def _receipt_kept(run: Any, line: PosLine, receipt: SimReceipt, gateway: Kept,
                        central: Kept) -> bool:
    number = printout_no(receipt)
    if receipt.kind == "sale":  # a member's sale: its points, at one end or the other
        return gateway.has_sale(line, number) or central.has_sale(line, number)
    return bool(await run(lambda conn: _captured(conn, line, number)))
