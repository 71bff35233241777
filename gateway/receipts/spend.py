"""Points a sale pays with: never more than the member has, never a silent debt.

A till on an acknowledged protocol (framed, jsonl) asks first: its sale names the hold
`authorize` granted, and the sale's burn is applied only by capturing that hold, once, in
the sale's own transaction. A printer tap (escpos) cannot ask: the points printed as used
are applied within the member's available points (less what open holds reserve) and,
while central is offline, within the offline allowance; the rest is flagged for review.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from gateway.deadletters import keep
from gateway.holds.service import available_after_holds
from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind

# Modes whose POS can authorize before it pays with points (and gets an answer).
ASKING_MODES = frozenset({"framed", "jsonl", "http"})
REVIEW_SOURCE = "pos_review"
REVIEW_CODE = "needs_review"


@dataclass(frozen=True, slots=True)
class Printed:
    """What a printed receipt's points payment came to: the entries to record and the
    points printed as used that were not applied (to review)."""

    entries: list[Entry]
    flagged: int


def printed_spend(ledger: Ledger, conn: sqlite3.Connection, *, account_id: str | None,
                  entries: list[Entry], points_used: int, online: bool,
                  now: datetime) -> Printed:
    """Cut the sale's burn to what the account can pay; inside the sale's writer op, so
    the check and the burn are one step."""
    allowed = 0
    if account_id is not None:
        available, allowance = available_after_holds(ledger, conn, account_id, now,
                                                     online=online)
        limits = [points_used, available] + ([] if online else [allowance or 0])
        allowed = max(0, min(limits))
    if allowed == points_used:
        return Printed(entries, 0)
    kept = [e for e in entries if e.kind is not EntryKind.BURN]
    kept += [dataclasses.replace(e, points=-allowed) for e in entries
             if e.kind is EntryKind.BURN and allowed > 0]
    return Printed(kept, points_used - allowed)


def flag_for_review(conn: sqlite3.Connection, *, raw: bytes, at: str, capture_id: int | None,
                    store_id: str, pos_id: str, receipt_no: str, member_id: str | None,
                    points_used: int, flagged: int) -> int:
    """Keep the printed points not applied as a review letter, in the caller's transaction.

    A receipt kept unclaimed flags all its points (no one to pay them); when a member
    claims it, that letter is settled and what the member cannot pay is flagged anew."""
    return keep(conn, source=REVIEW_SOURCE, raw=raw, code=REVIEW_CODE,
                error=f"receipt {receipt_no} printed {points_used} points used; "
                      f"{points_used - flagged} applied, {flagged} beyond the member's "
                      f"points or allowance",
                at=at, context={"capture_id": capture_id, "store_id": store_id,
                                "pos_id": pos_id, "receipt_no": receipt_no,
                                "member_id": member_id, "points_used": points_used,
                                "flagged": flagged})


def settle_unclaimed_review(conn: sqlite3.Connection, *, store_id: str, pos_id: str,
                            receipt_no: str, at: str, result: str) -> None:
    """The review letter of an unclaimed receipt's points, settled by its claim."""
    conn.execute(
        "UPDATE dead_letters SET replayed_at = ?, replay_result = ? WHERE source = ? AND "
        "error_code = ? AND replayed_at IS NULL AND json_extract(context, '$.member_id') "
        "IS NULL AND json_extract(context, '$.store_id') = ? AND "
        "json_extract(context, '$.pos_id') = ? AND json_extract(context, '$.receipt_no') = ?",
        (at, result, REVIEW_SOURCE, REVIEW_CODE, store_id, pos_id, receipt_no))
