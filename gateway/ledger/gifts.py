"""The birthday gift at the edge: given on the member's first interaction in the window.

A kiosk's identify or balance query, or a POS sale with the member, is an interaction.
The gift is `birthday_entry` (`birthday`, `member:year`): the same id central's birthday
job gives it, so whichever site is first records it, and the other's copy is a duplicate
when the two meet through sync. Offline as online.

Cost on the hot paths: two point lookups (the member's birthday by primary key, the
gift's entry id by primary key), and a write only when a gift is due.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from gateway.ledger.service import Ledger, Recorded
from gateway.loyalty import Entry, LoyaltyRules, birthday_entry
from gateway.members.lookup import birthday_of

_HAS_ENTRY = "SELECT 1 FROM ledger WHERE entry_id = ?"


def birthday_gift_due(conn: sqlite3.Connection, rules: LoyaltyRules, *, member_id: str,
                      account_id: str, at: datetime, actor: str) -> Entry | None:
    """The member's birthday gift if `at` is in its window and this ledger has none for
    the year yet, else None."""
    birthday = birthday_of(conn, member_id)
    if birthday is None:
        return None
    gift = birthday_entry(account_id=account_id, member_id=member_id,
                          birth_month=birthday[0], birth_day=birthday[1], at=at,
                          rules=rules, actor=actor)
    if gift is None or conn.execute(_HAS_ENTRY, (gift.entry_id,)).fetchone() is not None:
        return None
    return gift


def give_birthday_gift_in(ledger: Ledger, conn: sqlite3.Connection, *, member_id: str,
                          account_id: str, at: datetime, actor: str) -> list[Recorded]:
    """Inside the caller's writer op: record the birthday gift if it is due; the caller
    passes the result to `ledger.count` once the op has committed."""
    gift = birthday_gift_due(conn, ledger.rules, member_id=member_id, account_id=account_id,
                             at=at, actor=actor)
    return ledger.insert_in(conn, [gift], at) if gift is not None else []
