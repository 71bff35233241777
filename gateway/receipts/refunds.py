"""A refund's original sale: found on any till of the store, or waited for.

Tills of one store share their receipt numbers' meaning: a customer brings back on till P2
what was bought on P1, days later. So a refund looks for its original by store and
original receipt number on every till, within `[pos] refund_window_days` before the
refund's business date (the refund's own till first when two tills reuse a number).

A refund whose original is not found is never silently unlinked: its receipt is stored,
a review dead letter says why, and a `pending_refunds` row waits for the sale. A sale
that arrives later (its till was offline, its port down) applies every refund held for
it in its own transaction, once: the row is marked applied, the letter resolved, and the
reversal entries are keyed by the refund like any other.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from gateway.deadletters import keep
from gateway.loyalty import Entry, EntryKind, LoyaltyRules, Refund, refund_entries
from gateway.loyalty.earn import SALE_SOURCE
from gateway.receipts.rows import ledger_entry, receipt_row, refunds_of
from gateway.receipts.spend import REVIEW_SOURCE

UNMATCHED_CODE = "refund_unmatched"


@dataclass(frozen=True, slots=True)
class Original:
    """The sale a refund returns goods of, with what earlier refunds took back."""

    key: str
    member_id: str | None
    total_fen: int
    earn: Entry | None
    burn: Entry | None
    prior_refunded_fen: int


def find_original(conn: sqlite3.Connection, *, store_id: str, pos_id: str, original_no: str,
                  business_date: date, window_days: int) -> Original | None:
    """The sale `original_no` of the store on any till, at most `window_days` before."""
    row = receipt_row(
        conn, "store_id = ? AND receipt_no = ? AND kind = 'sale' AND business_date "
        "BETWEEN ? AND ? ORDER BY pos_id = ? DESC, business_date DESC, id DESC LIMIT 1",
        (store_id, original_no, (business_date - timedelta(days=window_days)).isoformat(),
         business_date.isoformat(), pos_id))
    if row is None:
        return None
    parsed = json.loads(row["parsed"])
    key = str(parsed.get("key", ""))
    prior = sum(int(r["parsed"]["total_fen"]) for r in refunds_of(conn, key))
    return Original(key, row["member_id"], int(parsed["total_fen"]),
                    ledger_entry(conn, SALE_SOURCE, key, EntryKind.EARN),
                    ledger_entry(conn, SALE_SOURCE, key, EntryKind.BURN), prior)


def reversal(refund: Refund, original: Original, rules: LoyaltyRules) -> list[Entry]:
    """What the refund takes back of its original (nothing if no member earned it yet:
    a claim at a kiosk applies the linked refunds with the sale)."""
    if original.member_id is None:
        return []
    return refund_entries(refund, sale_total_fen=original.total_fen, earn=original.earn,
                          burn=original.burn, prior_refunded_fen=original.prior_refunded_fen,
                          rules=rules)


def hold_for_review(conn: sqlite3.Connection, *, capture_id: int, raw: bytes, store_id: str,
                    pos_id: str, receipt_no: str, original_no: str | None,
                    business_date: date, window_days: int, at: str) -> int:
    """Keep an unlinked refund for review (in the refund's transaction, after its receipt
    row) and, when it names its original, wait for that sale. Returns the letter's id."""
    if original_no:
        why = (f"original receipt {original_no} not found on any till of store {store_id} "
               f"within {window_days} days; applied if that sale arrives")
    else:
        why = "the refund names no original receipt; link it by hand"
    letter = keep(conn, source=REVIEW_SOURCE, raw=raw, code=UNMATCHED_CODE,
                  error=f"refund {receipt_no} of {store_id}/{pos_id}: {why}", at=at,
                  context={"capture_id": capture_id, "store_id": store_id, "pos_id": pos_id,
                           "receipt_no": receipt_no, "original_no": original_no})
    if original_no:
        (receipt_id,) = conn.execute("SELECT receipt_id FROM pos_captures WHERE id = ?",
                                     (capture_id,)).fetchone()
        conn.execute("INSERT INTO pending_refunds (receipt_id, store_id, original_no, "
                     "business_date, dead_letter_id) VALUES (?, ?, ?, ?, ?)",
                     (receipt_id, store_id, original_no, business_date.isoformat(), letter))
    return letter


def apply_held(conn: sqlite3.Connection, *, store_id: str, receipt_no: str,
               business_date: date, sale_key: str, total_fen: int, member_id: str | None,
               entries: list[Entry], window_days: int, rules: LoyaltyRules,
               at: str) -> tuple[list[str], list[Entry]]:
    """Refunds held for a sale that has just been stored, applied in its transaction:
    their receipt numbers and the reversal entries (after the sale's own `entries`)."""
    rows = conn.execute(
        "SELECT p.receipt_id, r.pos_id, r.receipt_no, r.business_date, r.parsed, "
        "p.dead_letter_id FROM pending_refunds p JOIN receipts r ON r.id = p.receipt_id "
        "WHERE p.store_id = ? AND p.original_no = ? AND p.applied_at IS NULL "
        "AND p.business_date BETWEEN ? AND ? ORDER BY p.receipt_id",
        (store_id, receipt_no, business_date.isoformat(),
         (business_date + timedelta(days=window_days)).isoformat())).fetchall()
    earn = next((e for e in entries if e.kind is EntryKind.EARN), None)
    burn = next((e for e in entries if e.kind is EntryKind.BURN), None)
    applied: list[str] = []
    out: list[Entry] = []
    prior = 0
    for receipt_id, pos_id, refund_no, refund_date, parsed_text, letter in rows:
        parsed: dict[str, Any] = json.loads(parsed_text)
        fen = int(parsed["total_fen"])
        if member_id is not None and fen > 0:
            out += refund_entries(
                Refund(store_id=store_id, pos_id=pos_id, refund_no=refund_no,
                       business_date=date.fromisoformat(refund_date),
                       occurred_at=datetime.fromisoformat(parsed["occurred_at"]),
                       refund_fen=fen),
                sale_total_fen=total_fen, earn=earn, burn=burn, prior_refunded_fen=prior,
                rules=rules)
        prior += fen
        conn.execute("UPDATE receipts SET member_id = ?, parsed = json_set(parsed, "
                     "'$.original_key', ?) WHERE id = ?", (member_id, sale_key, receipt_id))
        conn.execute("UPDATE pending_refunds SET applied_at = ?, sale_key = ? "
                     "WHERE receipt_id = ?", (at, sale_key, receipt_id))
        if letter is not None:
            conn.execute("UPDATE dead_letters SET replayed_at = ?, replay_result = ? "
                         "WHERE id = ? AND replayed_at IS NULL",
                         (at, f"applied to {sale_key}", letter))
        applied.append(refund_no)
    return applied, out
