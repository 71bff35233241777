"""A ledger on a temporary store with members, and the pipeline of the simulated stores."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from devices.pos.printouts import DEFAULT_TEMPLATE
from devices.pos.reading import CaptureReader
from gateway.ledger import Ledger
from gateway.loyalty import LoyaltyRules, Plausibility
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.limits import DEFAULT_LIMITS
from gateway.receipts import ReceiptPipeline
from gateway.settings.pos import PosPort, PosSettings, ReceiptTemplate
from gateway.store import Reader, Writer

RULES = LoyaltyRules()
MEMBERS = {"M12345678": ("A1", "normal"), "M87654321": ("A2", "gold"),
           "M00000003": ("A3", "normal")}


def template_settings(store_id: str = "S01") -> ReceiptTemplate:
    t = DEFAULT_TEMPLATE
    return ReceiptTemplate(
        store_id=store_id, **t["fields"], item=t["item"],
        refund_marker=t["markers"]["refund"], copy_marker=t["markers"]["copy"],
        non_sale_marker=t["markers"]["non_sale"])


def pos_settings(ports: tuple[PosPort, ...] = ()) -> PosSettings:
    ports = ports or (PosPort(path="/dev/null", store_id="S01", pos_id="P1"),)
    stores = sorted({p.store_id for p in ports})
    return PosSettings(ports=ports, templates=tuple(template_settings(s) for s in stores))


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def add_members(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        with conn:
            for member, (account, tier) in MEMBERS.items():
                conn.execute("INSERT OR IGNORE INTO accounts (id, updated_at) "
                             "VALUES (?, '2026-01-01')", (account,))
                conn.execute("INSERT OR IGNORE INTO members (id, account_id, tier, updated_at) "
                             "VALUES (?, ?, ?, '2026-01-01')", (member, account, tier))
    finally:
        conn.close()


@asynccontextmanager
async def open_pipeline(path: Path, clock: Clock, settings: PosSettings | None = None,
                        *, limits: Plausibility = DEFAULT_LIMITS,
                        ) -> AsyncIterator[ReceiptPipeline]:
    async with Writer(path) as writer, Reader(path) as reader:
        add_members(path)
        ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                        now=clock, limits=limits)
        yield ReceiptPipeline(ledger, CaptureReader(settings or pos_settings(), RULES.tz),
                              reader=reader)


def rows(path: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()
