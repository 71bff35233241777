"""Points paid at the till: authorized first, applied once, never a silent debt.

Through the whole app with its POS port on a real pty, the test playing the till.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devices.kiosk.protocol import REPLIES
from devices.pos.printouts import Printout
from gateway.app.keys import CENTRAL, LEDGER, POS, READER, WRITER
from gateway.demo import demo_ids
from gateway.loyalty.wire import to_text
from gateway.members import IdentityKeys
from gateway.operations.model import OperationRequest
from gateway.operations.service import Operations
from tests.pos.helpers import RULES
from tests.pos.ptys import SOCAT
from tests.pos.tills import (
    ACCOUNT,
    MEMBER,
    Clock,
    add_member,
    available,
    count,
    gateway_and_till,
    give_points,
    sale,
)

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.mark.parametrize("mode", ["framed", "jsonl"])
async def test_a_member_with_55_points_cannot_pay_5000_without_a_hold(
        tmp_path: Path, mode: str) -> None:
    async with gateway_and_till(tmp_path, mode) as (app, till):
        await give_points(app, 55)
        reply = await till.send(sale("R-1", total=6450, points=5000))
        assert not reply.ok
        assert reply.body is not None and reply.body["error"] == "hold_required"
        assert await available(app) == 55
        db = tmp_path / "gw.db"
        assert count(db, "SELECT count(*) FROM ledger WHERE kind = 'BURN'") == 0
        assert count(db, "SELECT count(*) FROM dead_letters WHERE error_code = "
                         "'hold_required'") == 1


def authorize(request_id: str, points: int, *, total: int = 6450,
              member: str = MEMBER) -> dict[str, object]:
    return {"type": "authorize", "request_id": request_id, "member_code": member,
            "total_fen": total, "points": points, "coupon_codes": [],
            "lines": [{"name": "拿铁(大杯)", "amount_fen": 3200, "category": "food"},
                      {"name": "香薰蜡烛", "amount_fen": 3250, "category": "home"}]}


def burns(db: Path) -> int:
    return count(db, "SELECT coalesce(sum(points), 0) FROM ledger WHERE kind = 'BURN'")


@pytest.mark.parametrize("mode", ["framed", "jsonl"])
async def test_authorize_then_capture_spends_the_hold_once(tmp_path: Path, mode: str) -> None:
    clock = Clock()
    async with gateway_and_till(tmp_path, mode, clock) as (app, till):
        await give_points(app, 500)
        granted = await till.send(authorize("pay-1", 300))
        assert granted.ok and granted.body is not None
        body = granted.body
        assert body["status"] == "granted" and body["points"] == 300
        assert body["value_fen"] == 300 and body["tier"] == "normal"
        assert body["available"] == 200 and body["coupons"] == []
        assert body["expires_at"] == to_text(clock.now + timedelta(seconds=120))
        hold = body["hold_id"]
        # The till lost the reply and asks again: the same hold, nothing reserved twice.
        again = await till.send(authorize("pay-1", 300))
        assert again.body == body
        assert await available(app) == 500  # reserved, not yet spent
        paid = await till.send(sale("R-1", points=300, hold=hold))
        assert paid.ok and paid.body is None
        db = tmp_path / "gw.db"
        assert burns(db) == -300
        # Resent with the same seq (ACK lost), then as a new message: applied once.
        assert (await till.send(sale("R-1", points=300, hold=hold), same_seq=True)).ok
        assert (await till.send(sale("R-1", points=300, hold=hold))).ok
        assert burns(db) == -300
        # Another receipt cannot spend the same hold.
        other = await till.send(sale("R-2", points=100, hold=hold))
        assert not other.ok and other.body is not None
        assert other.body["error"] == "hold_captured"
        assert burns(db) == -300
        earned = count(db, "SELECT points FROM ledger WHERE kind = 'EARN'")
        assert await available(app) == 200 + earned


@pytest.mark.parametrize("mode", ["framed", "jsonl"])
async def test_a_sale_beyond_its_hold_or_on_an_unknown_hold_is_refused(
        tmp_path: Path, mode: str) -> None:
    async with gateway_and_till(tmp_path, mode) as (app, till):
        await give_points(app, 500)
        hold = (await till.send(authorize("pay-1", 200))).body
        assert hold is not None
        over = await till.send(sale("R-1", points=201, hold=hold["hold_id"]))
        assert not over.ok and over.body is not None and over.body["error"] == "exceeds_hold"
        unknown = await till.send(sale("R-2", points=10, hold="Hnope"))
        assert not unknown.ok and unknown.body is not None
        assert unknown.body["error"] == "unknown_hold"
        db = tmp_path / "gw.db"
        assert burns(db) == 0 and await available(app) == 500
        assert count(db, "SELECT count(*) FROM dead_letters WHERE source = 'pos'") == 2
        assert count(db, "SELECT count(*) FROM receipts") == 0


async def test_a_void_releases_the_points(tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "jsonl") as (app, till):
        await give_points(app, 500)
        first = (await till.send(authorize("pay-1", 400))).body
        assert first is not None and first["points"] == 400
        # Reserved points count as spent: a second till request gets what is left.
        second = (await till.send(authorize("pay-2", 400))).body
        assert second is not None and second["points"] == 100
        voided = (await till.send({"type": "void", "hold_id": first["hold_id"]})).body
        assert voided == {"type": "void", "hold_id": first["hold_id"], "status": "voided"}
        again = (await till.send({"type": "void", "hold_id": first["hold_id"]})).body
        assert again is not None and again["status"] == "voided"
        third = (await till.send(authorize("pay-3", 400))).body
        assert third is not None and third["points"] == 400
        late = await till.send(sale("R-1", points=400, hold=first["hold_id"]))
        assert not late.ok and late.body is not None and late.body["error"] == "hold_voided"
        assert burns(tmp_path / "gw.db") == 0


async def test_an_expired_hold_releases_itself(tmp_path: Path) -> None:
    clock = Clock()
    async with gateway_and_till(tmp_path, "framed", clock) as (app, till):
        await give_points(app, 500)
        hold = (await till.send(authorize("pay-1", 500))).body
        assert hold is not None and hold["points"] == 500
        refused = (await till.send(authorize("pay-2", 100))).body
        assert refused is not None and refused["error"] == "insufficient_points"
        clock.now += timedelta(seconds=121)
        later = (await till.send(authorize("pay-3", 100))).body
        assert later is not None and later["status"] == "granted" and later["points"] == 100
        late = await till.send(sale("R-1", points=500, hold=hold["hold_id"]))
        assert not late.ok and late.body is not None and late.body["error"] == "hold_expired"
        assert burns(tmp_path / "gw.db") == 0


async def test_offline_a_till_gets_no_more_than_the_allowance(tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "jsonl") as (app, till):
        await give_points(app, 500)
        # Central configured and not heard from: offline rules apply.
        app[CENTRAL].configured = True
        nothing = (await till.send(authorize("pay-0", 100))).body
        assert nothing is not None and nothing["error"] == "offline_limit"
        conn = sqlite3.connect(tmp_path / "gw.db", timeout=30)
        with conn:
            conn.execute("INSERT INTO offline_allowances (account_id, points, granted_seq, "
                         "granted_at) VALUES (?, 150, 0, '2026-01-01')", (ACCOUNT,))
        conn.close()
        first = (await till.send(authorize("pay-1", 100))).body
        assert first is not None and first["points"] == 100
        second = (await till.send(authorize("pay-2", 100))).body
        assert second is not None and second["points"] == 50
        third = (await till.send(authorize("pay-3", 100))).body
        assert third is not None and third["error"] == "offline_limit"
        assert (await till.send(sale("R-1", points=100, hold=first["hold_id"]))).ok
        assert burns(tmp_path / "gw.db") == -100


async def test_a_kiosk_redemption_sees_reserved_points_as_spent(tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "framed") as (app, till):
        await give_points(app, 500)
        ops = Operations(ledger=app[LEDGER], reader=app[READER], writer=app[WRITER],
                         keys=IdentityKeys(None, None, 30), replies=REPLIES,
                         central_online=app[CENTRAL].online, claim_days=7, sessions=None,
                         site="gw-test")
        hold = (await till.send(authorize("pay-1", 400))).body
        assert hold is not None and hold["points"] == 400

        def redeem(request_id: str, points: int) -> OperationRequest:
            return OperationRequest(op="redeem", key=f"k1/{request_id}", id=request_id,
                                    kiosk="k1", data={"member_id": MEMBER, "points": points,
                                                      "kind": "gift", "item": "G1"})

        refused, _ = await ops.handle(redeem("r1", 200))
        assert refused["status"] == "error"
        assert refused["error"]["code"] == "insufficient_points"
        assert refused["data"]["available"] == 100
        ok, _ = await ops.handle(redeem("r2", 100))
        assert ok["status"] == "ok"
        # The hold is still good for its 400 points.
        assert (await till.send(sale("R-1", points=400, hold=hold["hold_id"]))).ok
        assert await available(app) >= 0
        assert burns(tmp_path / "gw.db") == -500


async def test_a_kiosk_balance_shows_the_points_tills_hold(tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "framed") as (app, till):
        await give_points(app, 500)
        ops = Operations(ledger=app[LEDGER], reader=app[READER], writer=app[WRITER],
                         keys=IdentityKeys(None, None, 30), replies=REPLIES,
                         central_online=app[CENTRAL].online, claim_days=7, sessions=None,
                         site="gw-test")
        hold = (await till.send(authorize("pay-1", 400))).body
        assert hold is not None and hold["points"] == 400
        balance, _ = await ops.handle(OperationRequest(
            op="balance.query", key="k1/b1", id="b1", kiosk="k1",
            data={"member_id": MEMBER}))
        assert balance["status"] == "ok"
        assert (balance["data"]["available"], balance["data"]["held"]) == (100, 400)
        conn = sqlite3.connect(tmp_path / "gw.db", timeout=30)
        with conn:
            conn.execute("INSERT INTO member_identifiers (kind, value, member_id) "
                         "VALUES ('card', 'C0055', ?)", (MEMBER,))
        conn.close()
        member, _ = await ops.handle(OperationRequest(
            op="member.identify", key="k1/i1", id="i1", kiosk="k1",
            data={"by": "card", "value": "C0055"}))
        assert member["status"] == "ok"
        assert (member["data"]["available"], member["data"]["held"]) == (100, 400)
        # Once the sale spends the hold, nothing is held and the burn is in the balance.
        assert (await till.send(sale("R-1", points=400, hold=hold["hold_id"]))).ok
        after, _ = await ops.handle(OperationRequest(
            op="balance.query", key="k1/b2", id="b2", kiosk="k1",
            data={"member_id": MEMBER}))
        assert after["data"]["held"] == 0
        assert after["data"]["available"] == await available(app)


async def test_escpos_points_beyond_the_balance_are_flagged_for_review(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with gateway_and_till(tmp_path, "escpos") as (app, till):
        await give_points(app, 55)
        at = datetime.now(RULES.tz).replace(tzinfo=None, microsecond=0)
        printout = Printout("万达广场 星巴克", "E-1", at, (("羽绒服", 89900),),
                            member_code=MEMBER, points_used=5000, points_paid_fen=5000)
        till.writer.write(printout.escpos())
        await till.writer.drain()
        db = tmp_path / "gw.db"
        async with asyncio.timeout(10):
            while not count(db, "SELECT count(*) FROM receipts"):  # noqa: ASYNC110 - polls
                await asyncio.sleep(0.05)
        assert burns(db) == -55
        assert count(db, "SELECT count(*) FROM dead_letters WHERE source = 'pos_review' "
                         "AND error_code = 'needs_review'") == 1
        stats = app[POS].pipeline.stats
        assert (stats.flagged_receipts, stats.flagged_points) == (1, 4945)
        balance = await app[LEDGER].balance(ACCOUNT)
        assert balance.debt == 0 and balance.available >= 0
        assert any(r.levelname == "WARNING" and "review" in r.getMessage()
                   for r in caplog.records)


async def test_sim_pos_tills_authorize_and_report_their_holds(tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "jsonl") as (app, till):
        till.writer.close()  # the simulator takes the POS end
        db = tmp_path / "gw.db"
        for i in range(1, 6):  # the cards `sim pos` prints: the demo members'
            add_member(db, demo_ids(i)[2], f"A{i}")
            if i == 1:  # one member starts with points; the others have what they earn
                await give_points(app, 3000, key=f"g{i}", account=f"A{i}",
                                  member=demo_ids(i)[2])
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from gateway.cli import main; main()", "sim", "pos",
            "--port", str(tmp_path / "pos-pos"), "--format", "jsonl", "--rate", "0",
            "--count", "400", "--members", "5", "--baudrate", "115200", "--seed", "4",
            "--authorize", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": ROOT})
        async with asyncio.timeout(120):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        holds = json.loads(out.decode().splitlines()[0])["holds"]
        assert holds["granted"] > 0 and holds["refused"] > 0 and holds["captured"] > 0, holds
        assert holds["sales_refused"] == 0
        assert set(holds) == {"granted", "refused", "captured", "voided", "expired",
                              "sales_refused"}
        for i in range(1, 6):
            balance = await app[LEDGER].balance(f"A{i}")
            assert balance.debt == 0 and balance.available >= 0
