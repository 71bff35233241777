"""Child process of the till coupon crash test: authorizes and captures coupons until
killed, the way tills resend after a restart.

Usage: python coupon_crash_child.py DB_PATH PREFIX _

For coupon i it issues the coupon (idempotent by its source), authorizes it (request
`a{i}`), prints `authorized i HOLD` once the reply is back, posts the sale naming the hold
and the coupon (receipt `R{i}`), and prints `captured i` once that is committed. Every run
starts again from coupon 0, as tills resend what they were not answered: a resend must get
the first answer and use nothing twice. The parent SIGKILLs it at varied moments.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from datetime import UTC, datetime
from functools import partial

from gateway.coupons import CouponIssuer
from gateway.holds import AuthorizeRequest
from gateway.holds.service import Holds
from gateway.ledger import Ledger
from gateway.loyalty import Campaign, CouponKind, CouponTerms, LoyaltyRules
from gateway.loyalty.hlc import HybridClock
from gateway.receipts import ReceiptPipeline
from gateway.settings import Settings
from gateway.store import Reader, Writer

MALL, MEMBER, ACCOUNT = "crash-mall", "M-crash", "A-crash"
CAMPAIGN = Campaign(campaign_id="crash", mall=MALL, valid_days=30, per_member_limit=None,
                    terms=CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=300))


def seed(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT OR IGNORE INTO accounts (id, updated_at) VALUES (?, '2026-01-01')",
                 (ACCOUNT,))
    conn.execute("INSERT OR IGNORE INTO members (id, account_id, tier, updated_at) "
                 "VALUES (?, ?, 'normal', '2026-01-01')", (MEMBER, ACCOUNT))


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(path: str) -> None:
    settings = Settings.model_validate_json(json.dumps(
        {"site": {"mall_id": MALL, "gateway_id": "gw-crash"}, "store": {"path": path}}))
    from gateway.app.pos import receipt_parser  # noqa: PLC0415 - the app's own parser

    issuer = CouponIssuer(mall=MALL, site="gw-crash", key=b"crash key")
    async with Writer(path) as writer, Reader(path) as reader:
        ledger = Ledger(writer, reader, site="gw-crash", clock=HybridClock("gw-crash"),
                        rules=LoyaltyRules())
        pipeline = ReceiptPipeline(ledger, receipt_parser(settings), reader=reader)
        holds = Holds(ledger, central_online=lambda: True, expiry_s=3600, mall=MALL,
                      site="gw-crash")
        await writer.submit(seed)
        i = 0
        while True:
            now = datetime.now(UTC)
            coupon = await writer.submit(partial(
                issuer.issue_in, campaign=CAMPAIGN, member_id=MEMBER, source_key=f"c{i}",
                now=now))
            reply = await holds.authorize(AuthorizeRequest(
                store_id="S01", pos_id="P1", request_id=f"a{i}", member_code=MEMBER,
                total_fen=1000, points=0, coupon_codes=(coupon.code,)))
            if reply["status"] != "granted":
                raise SystemExit(f"authorize a{i} refused: {reply}")
            say(f"authorized {i} {reply['hold_id']}")
            sale = {"receipt_no": f"R{i}", "occurred_at": now.isoformat(), "total_fen": 700,
                    "member_code": MEMBER, "hold_id": reply["hold_id"],
                    "coupon_codes": [coupon.code]}
            outcome = await pipeline.ingest(store_id="S01", pos_id="P1", mode="http",
                                            raw=json.dumps(sale).encode())
            if outcome.status not in ("sale", "duplicate"):
                raise SystemExit(f"sale R{i}: {outcome}")
            say(f"captured {i}")
            i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
