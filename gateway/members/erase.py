"""Erasing a member at the edge: central's tombstone purges their personal data here.

The purge reaches past the member tables, to every edge row that names the member, so one
function says what an erasure removes:

- the member, their identifiers, coupons and offer showings;
- the stored kiosk replies that name them (a retry is answered afresh: no such member);
- the dead letters that name them by id or by a card or QR code (whole words, in the raw
  input, the error or the context);
- their receipts stay as sales (the figures, for refunds and the mall's totals) but lose
  the member: no member id, no member code in the parsed fields, and no raw bytes, in the
  receipt or in any POS capture of it. A capture not tied to a receipt (a copy, a reprint,
  an unreadable print) whose bytes carry one of the member's codes loses its bytes too.

The ledger stays: it is keyed by account and holds no personal data.
"""

from __future__ import annotations

import json
import sqlite3

from gateway.deadletters import forget_letters_naming, mentions
from gateway.operations.stored import forget_replies_of

# Identifiers a member shows on paper or at a kiosk (a receipt's member code is a card or
# a QR code); phone hashes and beacon keys never appear in input as written.
_SHOWN_KINDS = ("card", "qr_token")


def erase_member(conn: sqlite3.Connection, member_id: str) -> bool:
    """Purge a member's personal data from every edge table, in the caller's transaction;
    whether the edge had the member."""
    codes = [row[0] for row in conn.execute(
        f"SELECT value FROM member_identifiers WHERE member_id = ? AND kind IN "
        f"({', '.join('?' * len(_SHOWN_KINDS))})", (member_id, *_SHOWN_KINDS))]
    forget_replies_of(conn, member_id)
    forget_letters_naming(conn, [member_id, *codes])
    _unlink_receipts(conn, member_id, codes)
    conn.execute("DELETE FROM member_identifiers WHERE member_id = ?", (member_id,))
    conn.execute("DELETE FROM coupon_facts WHERE coupon_id IN "
                 "(SELECT id FROM coupons WHERE member_id = ?)", (member_id,))
    conn.execute("DELETE FROM coupons WHERE member_id = ?", (member_id,))
    conn.execute("DELETE FROM offer_deliveries WHERE member_id = ?", (member_id,))
    conn.execute("DELETE FROM tier_changes WHERE member_id = ?", (member_id,))
    return conn.execute("DELETE FROM members WHERE id = ?", (member_id,)).rowcount > 0


def _unlink_receipts(conn: sqlite3.Connection, member_id: str, codes: list[str]) -> None:
    receipts = [row[0] for row in conn.execute(
        "SELECT id FROM receipts WHERE member_id = ? OR parsed ->> '$.member_code' IN "
        "(SELECT value FROM json_each(?))", (member_id, json.dumps(codes)))]
    for i in range(0, len(receipts), 500):
        chunk = receipts[i:i + 500]
        ids = ", ".join("?" * len(chunk))
        conn.execute(f"UPDATE receipts SET member_id = NULL, raw = x'', "
                     f"parsed = json_set(parsed, '$.member_code', NULL) WHERE id IN ({ids})",
                     chunk)
        conn.execute(f"UPDATE pos_captures SET raw = x'' WHERE receipt_id IN ({ids})", chunk)
    if not codes:
        return
    # Captures of no receipt: instr narrows the scan, the whole-word check is done here.
    where = " OR ".join("instr(raw, ?)" for _ in codes)
    loose = [row[0] for row in conn.execute(
        f"SELECT id, raw FROM pos_captures WHERE receipt_id IS NULL AND status != 'new' "
        f"AND ({where})", [code.encode() for code in codes]) if mentions(row[1], codes)]
    conn.executemany("UPDATE pos_captures SET raw = x'' WHERE id = ?", [(i,) for i in loose])
