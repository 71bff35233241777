"""The offline allowance left for an account: escrow granted by central at its last sync."""

from __future__ import annotations

import sqlite3


def allowance_left(conn: sqlite3.Connection, account_id: str, cap: int) -> int | None:
    """What the account may still redeem offline: central's last grant, at most `cap`
    (the rules' `offline_allowance_cap` in force: a cap lowered since the grant applies at
    once), minus the burns central had not counted when it granted it (this site's
    unacknowledged burns, and burns sequenced after the grant). None if central never
    granted one."""
    row = conn.execute("SELECT points, granted_seq FROM offline_allowances "
                       "WHERE account_id = ?", (account_id,)).fetchone()
    if row is None:
        return None
    (pending_burns,) = conn.execute(
        "SELECT coalesce(-sum(l.points), 0) FROM ledger l LEFT JOIN ledger_sync s "
        "ON s.entry_id = l.entry_id WHERE l.account_id = ? AND l.kind = 'BURN' "
        "AND (s.entry_id IS NULL OR s.server_seq > ?)", (account_id, row[1])).fetchone()
    return max(0, min(int(row[0]), cap) - int(pending_burns))
