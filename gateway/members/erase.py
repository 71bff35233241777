"""Erasing a member at the edge: central's tombstone purges their personal data here.

The purge reaches past the member tables, to every edge row that names the member
(coupons, offer showings, claimed receipts), so one function says what an erasure removes.
The ledger stays: it is keyed by account and holds no personal data.
"""

from __future__ import annotations

import sqlite3


def erase_member(conn: sqlite3.Connection, member_id: str) -> bool:
    """Purge a member's personal data from every edge table, in the caller's transaction;
    whether the edge had the member."""
    conn.execute("DELETE FROM member_identifiers WHERE member_id = ?", (member_id,))
    conn.execute("DELETE FROM coupons WHERE member_id = ?", (member_id,))
    conn.execute("DELETE FROM offer_deliveries WHERE member_id = ?", (member_id,))
    conn.execute("UPDATE receipts SET member_id = NULL WHERE member_id = ?", (member_id,))
    return conn.execute("DELETE FROM members WHERE id = ?", (member_id,)).rowcount > 0
