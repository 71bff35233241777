"""SIGKILL between a coupon's authorize and its reply, or between its capture and the
ACK: no hold lost, no coupon used twice, and a resend gets the first answer."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from gateway.coupons import facts_of
from gateway.loyalty import CouponStatus, fold_coupon
from tests.scale import rounds
from tests.store.test_crash import run_and_kill

CHILD = Path(__file__).with_name("coupon_crash_child.py")

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")


def test_a_killed_till_exchange_loses_no_hold_and_uses_no_coupon_twice(
        tmp_path: Path) -> None:
    db = tmp_path / "gw.db"
    authorized: dict[int, str] = {}
    captured: set[int] = set()
    # Each run starts from coupon 0 again, so later kill points reach further.
    for round_no, kill_after in enumerate([31 + 97 * n for n in range(rounds(3))]):
        for line in run_and_kill(db, f"r{round_no}", kill_after, tmp_path / "child.err",
                                 child_script=CHILD):
            what, number, *hold = line.split()
            if what == "authorized":
                # A resent authorize gets the same hold as the first time.
                assert authorized.setdefault(int(number), hold[0]) == hold[0]
            else:
                captured.add(int(number))
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            for coupon_no, hold_id in authorized.items():
                assert conn.execute("SELECT decision FROM holds WHERE id = ?",
                                    (hold_id,)).fetchone() == ("granted",), coupon_no
                assert conn.execute("SELECT count(*) FROM coupon_facts WHERE kind = 'held' "
                                    "AND ref = ?", (hold_id,)).fetchone() == (1,)
            sold = {int(no[1:]) for (no,) in conn.execute("SELECT receipt_no FROM receipts")}
            assert captured <= sold  # every acknowledged sale is there
            for (coupon_id,) in conn.execute("SELECT id FROM coupons"):
                facts = facts_of(conn, coupon_id)
                redeemed = [f for f in facts if f.kind.value == "redeemed"]
                assert len(redeemed) <= 1, coupon_id
                state = fold_coupon(facts, as_of=max(f.at for f in facts))
                assert state is not None and state.conflicts == 0
            # A coupon is redeemed exactly when its sale is recorded: one transaction.
            redeemed_holds = {ref for (ref,) in conn.execute(
                "SELECT ref FROM coupon_facts WHERE kind = 'redeemed'")}
            captured_holds = {hold for (hold,) in conn.execute(
                "SELECT id FROM holds WHERE captured_at IS NOT NULL")}
            assert redeemed_holds == captured_holds
            assert len(captured_holds) == len(sold)
            assert all(status == CouponStatus.REDEEMED.value for (status,) in conn.execute(
                "SELECT c.status FROM coupons c JOIN coupon_facts f ON f.coupon_id = c.id "
                "AND f.kind = 'redeemed'"))
        finally:
            conn.close()
    assert captured  # the kills fell after sales, not only before the first
