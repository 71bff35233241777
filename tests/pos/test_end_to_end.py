"""The whole gateway app with a POS port on a real pty and the simulator on the other end.

Mixed receipts (sales with and without member codes, refunds, copies and reprints,
kitchen tickets and shift reports, malformed receipts, line noise, resends): the points
credited must be exactly what the loyalty rules give for the sales and refunds, once each,
and the dead letters exactly the malformed receipts.
"""

from __future__ import annotations

import asyncio
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


def expected_entries(receipts: list[sim.SimReceipt]) -> list[Entry]:
    """What the loyalty rules credit for the sales and refunds of a scenario, by hand."""
    tz = RULES.tz
    tiers = {t.code: t for t in RULES.tiers.tiers}
    earned: dict[int, tuple[Sale, list[Entry]]] = {}
    out: list[Entry] = []
    for r in receipts:
        p = r.printout
        if r.kind == "sale" and p is not None and r.member:
            account, tier = MEMBERS[r.member]
            at = p.occurred_at.replace(tzinfo=tz)
            sale = Sale(store_id="S01", pos_id="P1", receipt_no=p.receipt_no,
                        business_date=at.date(), occurred_at=at, total_fen=p.total_fen,
                        points_used=p.points_used, points_paid_fen=p.points_paid_fen,
                        lines=tuple(SaleLine(a) for _, a in p.items))
            entries = sale_entries(sale, account_id=account, member_id=r.member,
                                   tier=tiers[tier], rules=RULES)
            earned[r.index] = (sale, entries)
            out += entries
        elif r.kind == "refund" and p is not None and r.original in earned:
            sale, entries = earned[r.original]
            at = p.occurred_at.replace(tzinfo=tz)
            out += refund_entries(
                Refund(store_id="S01", pos_id="P1", refund_no=p.receipt_no,
                       business_date=at.date(), occurred_at=at, refund_fen=p.total_fen),
                sale_total_fen=sale.total_fen,
                earn=next(e for e in entries if e.kind is EntryKind.EARN),
                burn=next((e for e in entries if e.kind is EntryKind.BURN), None),
                prior_refunded_fen=0, rules=RULES)
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
                                   seed=3, noise=0.05, lose_ack=0.05)
            await until(lambda: count(db, "SELECT count(*) FROM pos_captures "
                                          "WHERE status != 'new'") >= n)
            ledger = app[LEDGER]
            expected = expected_entries(receipts)
            as_of = datetime.now(UTC)
            for member, (account, _) in MEMBERS.items():
                mine = [e for e in expected if e.account_id == account]
                want = fold(mine, as_of).available
                got = (await ledger.balance(account, as_of)).available
                assert got == want, f"{member}: {got} != {want}"
            assert sum(e.points for e in expected if e.kind is EntryKind.EARN) > 0
            assert count(db, "SELECT count(*) FROM dead_letters") == kinds.count("malformed")
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
                assert report.acked == n + report.resends
        finally:
            await runner.cleanup()

