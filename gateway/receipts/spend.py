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

from gateway.holds.service import available_after_holds
from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind

# Modes whose POS can authorize before it pays with points (and gets an answer).
ASKING_MODES = frozenset({"framed", "jsonl"})
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
