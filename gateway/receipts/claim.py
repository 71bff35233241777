"""Claiming an unclaimed sale at a kiosk: the member scans the receipt within N days."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from gateway.ledger import Ledger, Recorded
from gateway.ledger.tiers import upgrade_tiers_in
from gateway.loyalty import Entry, EntryKind, Refund, Sale, refund_entries, sale_entries
from gateway.loyalty.calendar import local_date
from gateway.loyalty.earn import SALE_SOURCE
from gateway.loyalty.rules import Tier
from gateway.receipts.lines import stored_sale_lines
from gateway.receipts.model import ReceiptKind, sale_key
from gateway.receipts.rows import ledger_entry, receipt_row, refunds_of, utc_text
from gateway.receipts.spend import flag_for_review, printed_spend, settle_unclaimed_review


class ReceiptClaimError(Exception):
    code = "receipt_claim_error"


class ReceiptNotFound(ReceiptClaimError):
    code = "receipt_not_found"


class ReceiptAlreadyClaimed(ReceiptClaimError):
    code = "receipt_already_claimed"


class ReceiptClaimExpired(ReceiptClaimError):
    code = "receipt_claim_expired"


@dataclass(frozen=True, slots=True)
class ClaimResult:
    points: int  # points the sale earned the member
    duplicate: bool  # the same member had already claimed it: this is the first result


def claim_deadline(business_date: date, claim_days: int) -> date:
    """The last local day on which a receipt of `business_date` can be claimed."""
    return business_date + timedelta(days=claim_days)


def _sale_of(row: dict[str, Any], parsed: dict[str, Any]) -> Sale:
    return Sale(
        store_id=row["store_id"], pos_id=row["pos_id"], receipt_no=row["receipt_no"],
        business_date=date.fromisoformat(row["business_date"]),
        occurred_at=datetime.fromisoformat(parsed["occurred_at"]),
        total_fen=int(parsed["total_fen"]), points_paid_fen=int(parsed["points_paid_fen"]),
        points_used=int(parsed["points_used"]),
        lines=stored_sale_lines(parsed.get("lines", [])),
    )


async def claim_receipt(
    ledger: Ledger, *, store_id: str, pos_id: str, receipt_no: str, business_date: date,
    member_id: str, account_id: str, tier: Tier, now: datetime, claim_days: int,
    online: bool = True,
) -> ClaimResult:
    """Credit an unclaimed sale to a member who scanned its receipt at a kiosk.

    Idempotent: the same member claiming again gets the first result (`duplicate=True`);
    another member gets `ReceiptAlreadyClaimed`. Refunds already recorded against the sale
    are applied with it, so a claim never credits what was returned. Points the receipt
    printed as used are applied only within the member's points (less open holds) and,
    `online` False (central unreachable), the offline allowance; the rest is flagged for
    review, never a silent debt.
    """
    key = sale_key(store_id, pos_id, receipt_no, business_date)

    def load(conn: sqlite3.Connection) -> tuple[dict[str, Any] | None, Entry | None]:
        row = receipt_row(conn, "store_id = ? AND pos_id = ? AND receipt_no = ? AND "
                           "business_date = ?", (store_id, pos_id, receipt_no,
                                                 business_date.isoformat()))
        earn = ledger_entry(conn, SALE_SOURCE, key, EntryKind.EARN)
        return row, earn

    _, (row, earn) = await ledger.record_with([], lambda conn, _: load(conn))
    if row is None or row["kind"] != ReceiptKind.SALE.value or row["parse_status"] != "parsed":
        raise ReceiptNotFound(f"no sale {key}")
    if row["member_id"] is not None:
        if row["member_id"] == member_id:
            return ClaimResult(earn.points if earn else 0, duplicate=True)
        raise ReceiptAlreadyClaimed(f"sale {key} is claimed by another member")
    if local_date(now, ledger.rules.tz) > claim_deadline(business_date, claim_days):
        raise ReceiptClaimExpired(f"sale {key} is older than {claim_days} days")
    sale = _sale_of(row, json.loads(row["parsed"]))
    # The rules in force when the sale was rung up, not when it is claimed.
    sale_side = sale_entries(sale, account_id=account_id, member_id=member_id, tier=tier,
                             rules=ledger.rules_at(sale.occurred_at), actor="kiosk")
    claimed_at = utc_text(now)

    def claim(conn: sqlite3.Connection, _: list[Recorded]) -> list[Recorded]:
        done = conn.execute("UPDATE receipts SET member_id = ?, claimed_at = ? "
                            "WHERE id = ? AND member_id IS NULL",
                            (member_id, claimed_at, row["id"])).rowcount
        if not done:
            owner = conn.execute("SELECT member_id FROM receipts WHERE id = ?",
                                 (row["id"],)).fetchone()
            if owner is None or owner[0] != member_id:
                raise ReceiptAlreadyClaimed(f"sale {key} is claimed by another member")
            return []  # the same member's claim committed meanwhile: nothing more
        # Points printed as used: the member pays what they can, the rest goes to review
        # (the same rule as a printed receipt whose member is known at the till).
        entries = sale_side
        if sale.points_used:
            printed = printed_spend(ledger, conn, account_id=account_id, entries=sale_side,
                                    points_used=sale.points_used, online=online, now=now)
            entries = printed.entries
            settle_unclaimed_review(conn, store_id=store_id, pos_id=pos_id,
                                    receipt_no=receipt_no, at=claimed_at,
                                    result=f"claimed by {member_id}")
            if printed.flagged:
                (raw,) = conn.execute("SELECT raw FROM receipts WHERE id = ?",
                                      (row["id"],)).fetchone()
                flag_for_review(conn, raw=raw, at=claimed_at, capture_id=None,
                                store_id=store_id, pos_id=pos_id, receipt_no=receipt_no,
                                member_id=member_id, points_used=sale.points_used,
                                flagged=printed.flagged)
        entries = entries + _reversals(entries, sale.total_fen, refunds_of(conn, key), ledger)
        recorded = ledger.insert_in(conn, entries, now)
        upgrade_tiers_in(ledger, conn, recorded)  # a claimed sale counts towards tiers too
        return recorded

    _, recorded = await ledger.record_with([], claim)
    ledger.count(recorded)
    if not recorded:  # the first claim's result
        _, earn = await ledger.record_with([], lambda conn, _: ledger_entry(
            conn, SALE_SOURCE, key, EntryKind.EARN))
        return ClaimResult(earn.points if earn else 0, duplicate=True)
    points = next((r.entry.points for r in recorded if r.entry.kind is EntryKind.EARN), 0)
    return ClaimResult(points, duplicate=all(r.duplicate for r in recorded))


def _reversals(sale_side: list[Entry], total_fen: int, refunds: list[dict[str, Any]],
               ledger: Ledger) -> list[Entry]:
    earn = next((e for e in sale_side if e.kind is EntryKind.EARN), None)
    burn = next((e for e in sale_side if e.kind is EntryKind.BURN), None)
    out: list[Entry] = []
    prior = 0
    for refund in refunds:
        parsed = refund["parsed"]
        out += refund_entries(
            Refund(store_id=refund["store_id"], pos_id=refund["pos_id"],
                   refund_no=refund["receipt_no"],
                   business_date=date.fromisoformat(refund["business_date"]),
                   occurred_at=datetime.fromisoformat(parsed["occurred_at"]),
                   refund_fen=int(parsed["total_fen"])),
            sale_total_fen=total_fen, earn=earn, burn=burn, prior_refunded_fen=prior,
            rules=ledger.rules, actor="kiosk")
        prior += int(parsed["total_fen"])
    return out
