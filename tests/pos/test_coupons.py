"""Coupons at the till: authorized with the basket, redeemed once by the sale, released by
a void or by the hold's expiry; through the whole app with its POS ports on real ptys."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.app.keys import CENTRAL, LEDGER, METRICS, WRITER
from gateway.coupons import CouponIssuer
from gateway.demo import demo_ids
from gateway.loyalty import GROUP_WIDE, Campaign, CouponKind, CouponTerms, new_code
from tests.pos.ptys import SOCAT
from tests.pos.tills import (
    MEMBER,
    Clock,
    add_member,
    count,
    gateway_and_till,
    gateway_and_tills,
    give_points,
    sale,
)

pytestmark = pytest.mark.skipif(SOCAT is None, reason="socat is not installed")
MALL = "test-mall"
ROOT = str(Path(__file__).resolve().parents[2])
LINES = [{"name": "拿铁(大杯)", "amount_fen": 3200, "category": "food", "sku": "LATTE",
          "quantity": 2},
         {"name": "香薰蜡烛", "amount_fen": 3250, "category": "home"}]
KINDS = {
    "spend_x_get_y": (CouponTerms(kind=CouponKind.SPEND_X_GET_Y, threshold_fen=5000,
                                  off_fen=800), 800),
    "percentage": (CouponTerms(kind=CouponKind.PERCENTAGE, percent=20, cap_fen=1000,
                               categories=("food",)), 640),
    "cash_voucher": (CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500), 500),
    "free_item": (CouponTerms(kind=CouponKind.FREE_ITEM, sku="LATTE"), 1600),
}


async def give_coupon(app: web.Application, terms: CouponTerms, *, key: str = "c1",
                      mall: str = MALL, days: int = 7, member: str = MEMBER) -> str:
    """A coupon of `terms` issued to the member, as a campaign issues it; its code."""
    issuer = CouponIssuer(mall=MALL, site="gw-test", key=b"test coupon key")
    campaign = Campaign(campaign_id="camp", mall=mall, terms=terms, valid_days=days,
                        per_member_limit=None)
    ledger = app[LEDGER]
    coupon = await app[WRITER].submit(lambda conn: issuer.issue_in(
        conn, campaign, member_id=member, source_key=key, now=ledger.now()))
    return coupon.code


def authorize(request_id: str, codes: list[str], *, points: int = 0,
              total: int = 6450) -> dict[str, Any]:
    return {"type": "authorize", "request_id": request_id, "member_code": MEMBER,
            "total_fen": total, "points": points, "coupon_codes": codes, "lines": LINES}


def status(db: Path, code: str) -> str:
    import sqlite3  # noqa: PLC0415 - only this helper reads the store directly

    conn = sqlite3.connect(db, timeout=30)
    try:
        return str(conn.execute("SELECT status FROM coupons WHERE code = ?",
                                (code,)).fetchone()[0])
    finally:
        conn.close()


def redeemed(db: Path) -> int:
    return count(db, "SELECT count(*) FROM coupon_facts WHERE kind = 'redeemed'")


@pytest.mark.parametrize("mode", ["framed", "jsonl"])
@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_each_kind_is_authorized_then_redeemed_once_by_the_sale(
        tmp_path: Path, mode: str, kind: str) -> None:
    terms, worth = KINDS[kind]
    async with gateway_and_till(tmp_path, mode) as (app, till):
        code = await give_coupon(app, terms)
        granted = (await till.send(authorize("pay-1", [code]))).body
        assert granted is not None and granted["status"] == "granted", granted
        assert granted["discount_fen"] == worth and granted["points"] == 0
        [coupon] = granted["coupons"]
        assert coupon["discount_fen"] == worth and coupon["code"].replace("-", "") == code
        db = tmp_path / "gw.db"
        assert status(db, code) == "held"
        # The till lost the reply and asks again: the same answer, held once.
        assert (await till.send(authorize("pay-1", [code]))).body == granted
        paid = await till.send(sale("R-1", hold=granted["hold_id"]) | {"coupon_codes": [code]})
        assert paid.ok, paid.body
        assert (await till.send(sale("R-1", hold=granted["hold_id"])
                                | {"coupon_codes": [code]}, same_seq=True)).ok
        assert status(db, code) == "redeemed" and redeemed(db) == 1
        again = (await till.send(authorize("pay-2", [code]))).body
        assert again is not None and again["error"] == "already_redeemed"


async def test_coupons_and_points_together_pay_no_more_than_the_basket(
        tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "jsonl") as (app, till):
        await give_points(app, 5000)
        code = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=6000))
        granted = (await till.send(authorize("pay-1", [code], points=1000))).body
        assert granted is not None and granted["status"] == "granted"
        # 6,450 fen less the 6,000 voucher leaves 450 fen for points (1 fen each).
        assert (granted["discount_fen"], granted["points"]) == (6000, 450)
        paid = await till.send(sale("R-1", points=450, hold=granted["hold_id"])
                               | {"coupon_codes": [code]})
        assert paid.ok, paid.body
        db = tmp_path / "gw.db"
        assert redeemed(db) == 1
        assert count(db, "SELECT -sum(points) FROM ledger WHERE kind = 'BURN'") == 450


async def test_refusals_name_why(tmp_path: Path) -> None:
    clock = Clock()
    async with gateway_and_till(tmp_path, "jsonl", clock) as (app, till):
        minimum = await give_coupon(app, CouponTerms(
            kind=CouponKind.SPEND_X_GET_Y, threshold_fen=10_000, off_fen=1000), key="min")
        other_mall = await give_coupon(app, CouponTerms(
            kind=CouponKind.CASH_VOUCHER, off_fen=100), key="other", mall="other-mall")
        group = await give_coupon(app, CouponTerms(
            kind=CouponKind.CASH_VOUCHER, off_fen=100), key="group", mall=GROUP_WIDE)
        short = await give_coupon(app, CouponTerms(
            kind=CouponKind.CASH_VOUCHER, off_fen=100), key="short", days=1)
        typo = minimum[:5] + ("A" if minimum[5] != "A" else "B") + minimum[6:]

        async def refused(codes: list[str], request_id: str) -> str:
            reply = (await till.send(authorize(request_id, codes))).body
            assert reply is not None and reply["status"] == "refused", reply
            return str(reply["error"])

        assert await refused([minimum], "r1") == "below_minimum_spend"
        assert await refused([other_mall], "r2") == "not_this_mall"
        assert await refused([typo], "r3") == "coupon_code_mistyped"
        assert await refused([new_code(b"forger", MALL)], "r4") == "coupon_unknown"
        # A refused authorize holds nothing, not even the coupons that passed.
        assert await refused([short, minimum], "r5") == "below_minimum_spend"
        assert status(tmp_path / "gw.db", short) == "issued"
        app[CENTRAL].configured = True  # central configured and not heard from: offline
        assert await refused([group], "r6") == "needs_online"
        app[CENTRAL].configured = False
        # Online too: a group-wide coupon is redeemed through central, never by a gateway.
        assert await refused([group], "r6b") == "redeem_at_central"
        clock.now += timedelta(days=1)
        assert await refused([short], "r7") == "expired"
        text = app[METRICS].render().decode()
        assert 'mallgate_pos_coupon_refusals_total{code="below_minimum_spend"} 2.0' in text
        assert 'mallgate_pos_coupon_refusals_total{code="coupon_code_mistyped"} 1.0' in text


async def test_a_void_and_an_expired_hold_release_the_coupon(tmp_path: Path) -> None:
    clock = Clock()
    async with gateway_and_till(tmp_path, "jsonl", clock) as (app, till):
        code = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
        first = (await till.send(authorize("pay-1", [code]))).body
        assert first is not None and first["status"] == "granted"
        held = (await till.send(authorize("pay-2", [code]))).body
        assert held is not None and held["error"] == "already_held"
        voided = (await till.send({"type": "void", "hold_id": first["hold_id"]})).body
        assert voided is not None and voided["status"] == "voided"
        db = tmp_path / "gw.db"
        assert status(db, code) == "issued"
        second = (await till.send(authorize("pay-3", [code]))).body
        assert second is not None and second["status"] == "granted"
        clock.now += timedelta(seconds=121)  # past the hold's expiry (pos.hold_s = 120)
        third = (await till.send(authorize("pay-4", [code]))).body
        assert third is not None and third["status"] == "granted"
        late = await till.send(sale("R-1", hold=second["hold_id"]) | {"coupon_codes": [code]})
        assert not late.ok and late.body is not None and late.body["error"] == "hold_expired"
        assert redeemed(db) == 0


async def test_a_sale_spending_a_coupon_without_its_hold_is_refused_and_kept(
        tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "framed") as (app, till):
        code = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
        other = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500),
                                  key="c2")
        unheld = await till.send(sale("R-1") | {"coupon_codes": [code]})
        assert not unheld.ok and unheld.body is not None
        assert unheld.body["error"] == "hold_required"
        granted = (await till.send(authorize("pay-1", [code]))).body
        assert granted is not None
        wrong = await till.send(sale("R-2", hold=granted["hold_id"])
                                | {"coupon_codes": [other]})
        assert not wrong.ok and wrong.body is not None
        assert wrong.body["error"] == "coupon_not_held"
        db = tmp_path / "gw.db"
        assert count(db, "SELECT count(*) FROM dead_letters WHERE error_code IN "
                         "('hold_required', 'coupon_not_held')") == 2
        assert redeemed(db) == 0 and count(db, "SELECT count(*) FROM receipts") == 0


@pytest.mark.parametrize("mode", ["framed", "jsonl"])
async def test_two_tills_racing_for_one_coupon_one_wins(tmp_path: Path, mode: str) -> None:
    async with gateway_and_tills(tmp_path, mode, ("P1", "P2")) as (app, tills):
        code = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
        replies = await asyncio.gather(*(till.send(authorize(f"race-{pos}", [code]))
                                         for pos, till in tills.items()))
        bodies = [reply.body for reply in replies]
        assert sorted(str(b and b["status"]) for b in bodies) == ["granted", "refused"]
        loser = next(b for b in bodies if b and b["status"] == "refused")
        assert loser["error"] == "already_held"


@pytest.mark.parametrize("restores", [True, False])
async def test_refunding_the_sale_restores_its_coupon_when_set(tmp_path: Path,
                                                                restores: bool) -> None:
    async with gateway_and_till(tmp_path, "jsonl",
                                refund_restores_coupons=restores) as (app, till):
        code = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
        granted = (await till.send(authorize("pay-1", [code]))).body
        assert granted is not None
        paid = await till.send(sale("R-1", total=5950, hold=granted["hold_id"])
                               | {"coupon_codes": [code]})
        assert paid.ok
        refund = {"kind": "refund", "receipt_no": "F-1", "original_no": "R-1",
                  "occurred_at": "2026-11-22T15:00:00+08:00", "total_fen": 5950,
                  "member_code": MEMBER}
        assert (await till.send(refund)).ok
        assert (await till.send(refund)).ok  # resent: restores nothing more
        db = tmp_path / "gw.db"
        assert status(db, code) == ("issued" if restores else "redeemed")
        assert count(db, "SELECT count(*) FROM coupon_facts WHERE kind = 'restored'") == (
            1 if restores else 0)
        again = (await till.send(authorize("pay-2", [code]))).body
        assert again is not None
        assert again["status"] == ("granted" if restores else "refused"), again


async def test_sim_pos_tills_take_coupons_off_their_members_sales(tmp_path: Path) -> None:
    async with gateway_and_till(tmp_path, "jsonl") as (app, till):
        till.writer.close()  # the simulator takes the POS end
        db = tmp_path / "gw.db"
        given = []
        for i in range(1, 4):
            member = demo_ids(i)[2]
            add_member(db, member, f"A{i}")
            code = await give_coupon(app, CouponTerms(kind=CouponKind.CASH_VOUCHER,
                                                      off_fen=100), key=f"sim{i}",
                                     member=member)
            given += ["--coupon", f"{member}={code}"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from gateway.cli import main; main()", "sim", "pos",
            "--port", str(tmp_path / "pos-pos"), "--format", "jsonl", "--rate", "0",
            "--count", "120", "--members", "3", "--baudrate", "115200", "--seed", "4",
            "--authorize", *given, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT})
        async with asyncio.timeout(120):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        summary = json.loads(out.decode().splitlines()[0])
        coupons, holds = summary["coupons"], summary["holds"]
        assert coupons["offered"] >= 3 and coupons["redeemed"] >= 1, summary
        assert holds["sales_refused"] == 0, summary
        # What the till says it redeemed is what the gateway recorded, once each.
        assert count(db, "SELECT count(*) FROM coupon_facts WHERE kind = 'redeemed'") == (
            coupons["redeemed"])
