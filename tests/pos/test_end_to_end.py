"""The whole gateway app with a POS port on a real pty and the simulator on the other end.

Mixed receipts (sales with and without member codes, refunds, copies and reprints,
kitchen tickets and shift reports, malformed receipts, line noise, resends): the points
credited must be exactly what the loyalty rules give for the sales and refunds, once each,
and the dead letters exactly the malformed receipts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web

from devices.pos import sim
from devices.pos.metrics import pos_families
from gateway.app import create_app
from gateway.app.keys import LEDGER, POS
from gateway.loyalty import Entry, EntryKind, Refund, Sale, SaleLine, fold, refund_entries
from gateway.loyalty.earn import sale_entries
from gateway.loyalty.fold import qualifying_of
from gateway.loyalty.tier_review import Standing, tier_of, upgrade_after
from gateway.settings import Settings
from tests.pos.helpers import RULES, template_settings
from tests.pos.ptys import SOCAT, pty_pair

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
MEMBERS = {f"M{i:08d}": (f"A{i}", RULES.tiers.tiers[i % 4].code) for i in range(1, 21)}
WAIT_S = float(os.environ.get("POS_E2E_WAIT", "120"))


def settings_for(tmp_path: Path, port: Path, mode: str) -> Settings:
    return Settings.model_validate_json(json.dumps({
        "site": {"mall_id": "test-mall", "gateway_id": "gw-test"},
        "store": {"path": str(tmp_path / "gw.db")},
        "pos": {"ports": [{"path": str(port), "store_id": "S01", "pos_id": "P1",
                           "mode": mode, "baudrate": 115200}],
                "templates": [template_settings().model_dump()], "idle_gap_s": 2.0},
    }))


def add_members(db: Path) -> None:
    conn = sqlite3.connect(db, timeout=30)
    try:
        with conn:
            for member, (account, tier) in MEMBERS.items():
                conn.execute("INSERT INTO accounts (id, updated_at) VALUES (?, '2026-01-01')",
                             (account,))
                conn.execute("INSERT INTO members (id, account_id, tier, updated_at) VALUES "
                             "(?, ?, ?, '2026-01-01')", (member, account, tier))
    finally:
        conn.close()


def expected_entries(receipts: list[sim.SimReceipt],
                     spent: dict[int, int] | None = None) -> list[Entry]:
    """What the loyalty rules credit for the sales and refunds of a scenario, by hand.

    Points paid: `spent` by receipt, as the tills' holds allowed them (framed, jsonl);
    without it (printed receipts) what the member had before the sale, the rest flagged."""
    tz = RULES.tz
    tiers = {member: Standing(tier) for member, (_, tier) in MEMBERS.items()}
    earned: dict[int, tuple[Sale, list[Entry]]] = {}
    out: list[Entry] = []

    def upgrade(member: str, account: str, new: list[Entry]) -> None:
        """Tiers are live: a sale or refund that reaches a higher tier upgrades at once."""
        stream = qualifying_of([e for e in out if e.account_id == account])
        for entry in new:
            if entry.qual_fen:
                change = upgrade_after(tiers[member], stream, RULES, member_id=member,
                                       trigger=entry)
                if change is not None:
                    tiers[member] = change.standing

    for r in receipts:
        p = r.printout
        if r.kind == "sale" and p is not None and r.member:
            account, _ = MEMBERS[r.member]
            at = p.occurred_at.replace(tzinfo=tz)
            if spent is not None:
                used = spent.get(r.index, 0)
            else:
                had = fold([e for e in out if e.account_id == account], datetime.now(UTC))
                used = min(p.points_used, max(0, had.available))
            paid = p.points_paid_fen if used == p.points_used else used
            sale = Sale(store_id="S01", pos_id="P1", receipt_no=p.receipt_no,
                        business_date=at.date(), occurred_at=at, total_fen=p.total_fen,
                        points_used=used, points_paid_fen=paid,
                        lines=tuple(SaleLine(a) for _, a in p.items))
            if spent is None and used != p.points_used:  # earn on what the receipt says
                sale = dataclasses.replace(sale, points_used=p.points_used,
                                           points_paid_fen=p.points_paid_fen)
            entries = sale_entries(sale, account_id=account, member_id=r.member,
                                   tier=tier_of(RULES, tiers[r.member].tier), rules=RULES)
            if spent is None and used != p.points_used:
                entries = [e for e in entries if e.kind is not EntryKind.BURN] + [
                    dataclasses.replace(e, points=-used) for e in entries
                    if e.kind is EntryKind.BURN and used]
            earned[r.index] = (sale, entries)
            out += entries
            upgrade(r.member, account, entries)
        elif r.kind == "refund" and p is not None and r.original in earned:
            sale, entries = earned[r.original]
            at = p.occurred_at.replace(tzinfo=tz)
            refunded = refund_entries(
                Refund(store_id="S01", pos_id="P1", refund_no=p.receipt_no,
                       business_date=at.date(), occurred_at=at, refund_fen=p.total_fen),
                sale_total_fen=sale.total_fen,
                earn=next(e for e in entries if e.kind is EntryKind.EARN),
                burn=next((e for e in entries if e.kind is EntryKind.BURN), None),
                prior_refunded_fen=0, rules=RULES)
            out += refunded
            upgrade(entries[0].member_id or "", entries[0].account_id, refunded)
    return out


def count(db: Path, sql: str) -> int:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while not condition():  # noqa: ASYNC110 - polls the database
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(("mode", "n"), [("escpos", 1000), ("framed", 300), ("jsonl", 300)])
async def test_mixed_receipts_credit_exactly_the_expected_points(
        tmp_path: Path, mode: str, n: int) -> None:
    start = (datetime.now(RULES.tz) - timedelta(hours=3)).replace(tzinfo=None, microsecond=0)
    receipts = sim.scenario(n, seed=7, start=start, members=list(MEMBERS))
    kinds = [r.kind for r in receipts]
    assert {"sale", "unclaimed", "refund", "copy", "non_sale", "malformed"} <= set(kinds)
    db = tmp_path / "gw.db"
    async with pty_pair(tmp_path) as pair:
        app = create_app(settings_for(tmp_path, pair.gateway, mode))
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            add_members(db)
            # Bytes sent before the gateway opened its end are gone (pyserial flushes the
            # input on open), as on a real line: start the POS once the port is up.
            await until(lambda: bool(app[POS].states()[0]["up"]))
            report = await sim.run(str(pair.pos), cast(sim.Mode, mode), receipts, rate=0,
                                   seed=3, noise=0.05, lose_ack=0.05, authorize=True)
            await until(lambda: count(db, "SELECT count(*) FROM pos_captures "
                                          "WHERE status != 'new'") >= n)
            ledger = app[LEDGER]
            expected = expected_entries(receipts,
                                        None if mode == "escpos" else report.spent)
            as_of = datetime.now(UTC)
            for member, (account, _) in MEMBERS.items():
                mine = [e for e in expected if e.account_id == account]
                want = fold(mine, as_of).available
                balance = await ledger.balance(account, as_of)
                assert balance.available == want, f"{member}: {balance.available} != {want}"
                assert balance.debt == 0, member
            assert sum(e.points for e in expected if e.kind is EntryKind.EARN) > 0
            assert count(db, "SELECT count(*) FROM dead_letters WHERE source = 'pos'") == (
                kinds.count("malformed"))
            # Points printed beyond what the member had: kept for review, one letter each.
            assert count(db, "SELECT count(*) FROM dead_letters WHERE source = 'pos_review' "
                             "AND error_code = 'needs_review'") == (
                app[POS].pipeline.stats.flagged_receipts)
            assert count(db, "SELECT count(*) FROM receipts WHERE kind = 'sale'") == (
                kinds.count("sale") + kinds.count("unclaimed"))
            assert count(db, "SELECT count(*) FROM receipts WHERE member_id IS NULL AND "
                             "kind = 'sale'") == kinds.count("unclaimed")
            assert count(db, "SELECT count(*) FROM receipts WHERE kind = 'refund'") == (
                kinds.count("refund"))
            # Every sale's points are in the ledger once: one EARN per credited sale.
            assert count(db, "SELECT count(*) FROM ledger WHERE kind = 'EARN'") == (
                kinds.count("sale"))
            state = app[POS].states()[0]
            assert state["up"]
            families = {m.name: m for m in pos_families(app[POS])}
            dead = sum(x.value for x in families["mallgate_pos_captures"].samples
                       if x.labels.get("outcome") == "dead")
            assert dead == kinds.count("malformed")
            if mode == "escpos":  # every byte of the line is kept, noise with its receipt
                assert state["bytes_in"] == count(
                    db, "SELECT coalesce(sum(length(raw)), 0) FROM pos_captures")
            else:
                holds = report.holds
                assert report.acked == (n + report.resends + holds.granted + holds.refused
                                        + holds.voided)
                assert holds.granted and holds.captured and holds.sales_refused == 0
        finally:
            await runner.cleanup()

