"""Holds inside a writer transaction: what they reserve, and the one capture of each.

A granted hold's state is derived from its row and the clock, so nothing has to run for
a hold to expire: open (reserving its points) until it is captured, voided or past
`expires_at`, whichever comes first.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gateway.holds.model import HoldRefused


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: str
    store_id: str
    pos_id: str
    account_id: str | None
    member_id: str | None
    decision: str
    points: int
    expires_at: str
    captured_at: str | None
    capture_key: str | None
    voided_at: str | None

    def state(self, now: str) -> str:
        """refused | captured | voided | expired | open, as of `now` (the store's UTC text)."""
        if self.decision != "granted":
            return "refused"
        if self.captured_at is not None:
            return "captured"
        if self.voided_at is not None:
            return "voided"
        return "expired" if self.expires_at <= now else "open"


_COLUMNS = ("id, store_id, pos_id, account_id, member_id, decision, points, expires_at, "
            "captured_at, capture_key, voided_at")


def hold_row(conn: sqlite3.Connection, hold_id: str) -> HoldRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM holds WHERE id = ?", (hold_id,)).fetchone()
    return HoldRow(*row) if row else None


def reserved(conn: sqlite3.Connection, account_id: str, now: str) -> int:
    """Points the account's open holds reserve: spent, for every other check."""
    (points,) = conn.execute(
        "SELECT coalesce(sum(points), 0) FROM holds WHERE account_id = ? AND expires_at > ? "
        "AND decision = 'granted' AND captured_at IS NULL AND voided_at IS NULL",
        (account_id, now)).fetchone()
    return int(points)


def capture(conn: sqlite3.Connection, *, hold_id: str, store_id: str, pos_id: str,
            account_id: str, sale_key: str, points: int, now: str) -> None:
    """Spend hold `hold_id` on the sale `sale_key`, or raise why not. Capturing again for
    the same sale changes nothing (its burn is keyed by the sale as well)."""
    hold = hold_row(conn, hold_id)
    if hold is None or hold.decision != "granted":
        raise HoldRefused("unknown_hold", f"no granted hold {hold_id}")
    if (hold.store_id, hold.pos_id) != (store_id, pos_id):
        raise HoldRefused("hold_till", f"hold {hold_id} belongs to another till")
    state = hold.state(now)
    if state == "captured":
        if hold.capture_key == sale_key:
            return
        raise HoldRefused("hold_captured", f"hold {hold_id} was spent by another sale")
    if state == "voided":
        raise HoldRefused("hold_voided", f"hold {hold_id} was voided")
    if state == "expired":
        raise HoldRefused("hold_expired", f"hold {hold_id} expired at {hold.expires_at}")
    if hold.account_id != account_id:
        raise HoldRefused("hold_member", f"hold {hold_id} is another member's")
    if points > hold.points:
        raise HoldRefused("exceeds_hold",
                          f"the sale spends {points} points, hold {hold_id} granted "
                          f"{hold.points}")
    conn.execute("UPDATE holds SET captured_at = ?, capture_key = ?, captured_points = ? "
                 "WHERE id = ?", (now, sale_key, points, hold_id))


def void(conn: sqlite3.Connection, *, hold_id: str, store_id: str, pos_id: str,
         now: str) -> str:
    """Release an open hold; returns its state after (voided, or expired: already free).
    Voiding twice answers `voided` again."""
    hold = hold_row(conn, hold_id)
    if hold is None or hold.decision != "granted":
        raise HoldRefused("unknown_hold", f"no granted hold {hold_id}")
    if (hold.store_id, hold.pos_id) != (store_id, pos_id):
        raise HoldRefused("hold_till", f"hold {hold_id} belongs to another till")
    state = hold.state(now)
    if state == "captured":
        raise HoldRefused("hold_captured", f"hold {hold_id} was spent by a sale")
    if state == "open":
        conn.execute("UPDATE holds SET voided_at = ? WHERE id = ?", (now, hold_id))
        return "voided"
    return state
