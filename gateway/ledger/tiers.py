"""The tier check after qualifying entries: an upgrade applies in the entries' transaction.

Called inside the writer op that recorded a sale or refund, so the upgrade commits (or
rolls back) with the entries that earned it, and the next sale of the member, a later op,
earns at the new tier's multiplier. Offline as online: central confirms it later.

Cost: the window's spend is summed by SQLite over a range of the `(account_id,
effective_at)` index, never by decoding the account's past. Only refunds need more: the
fold caps what a refund takes back at what its sale counted, so each refunded sale in the
window is read with all its refunds and replayed by `qualifying_of`, the fold's own rule.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from gateway.ledger.codec import COLUMNS, tuple_to_entry
from gateway.ledger.service import Ledger, Recorded
from gateway.loyalty.calendar import add_months
from gateway.loyalty.fold import qualifying_of
from gateway.loyalty.tier_review import TierChange, upgrade_for_spend, window_spend
from gateway.loyalty.wire import to_text
from gateway.members.provisional import former_ids
from gateway.members.tiers import record_upgrade, standing_of

_PLAIN_SPEND = (
    "SELECT coalesce(sum(qual_fen), 0) FROM ledger WHERE account_id = ? AND member_id IN "
    "(SELECT value FROM json_each(?)) AND effective_at > ? AND effective_at <= ? "
    "AND kind IN ('EARN', 'QUAL_SPEND') AND qual_fen != 0 "
    "AND entry_id NOT IN (SELECT value FROM json_each(?))")
_REFUNDS = (
    f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE entry_id IN (SELECT value FROM "
    "json_each(?)) OR (account_id = ? AND kind = 'REVERSE' AND ref_entry_id IN "
    "(SELECT value FROM json_each(?)))")
_REFUNDED = (
    "SELECT DISTINCT ref_entry_id FROM ledger WHERE account_id = ? AND effective_at > ? "
    "AND effective_at <= ? AND kind = 'REVERSE' AND ref_entry_id IS NOT NULL")


def upgrade_tiers_in(ledger: Ledger, conn: sqlite3.Connection,
                     recorded: Sequence[Recorded]) -> list[TierChange]:
    """Re-evaluate the tier of each member whose qualifying spend `recorded` (entries just
    inserted in this writer op) changed; returns the upgrades applied."""
    changes: list[TierChange] = []
    recorded_at = to_text(ledger.now()) or ""
    for result in recorded:
        entry = result.entry
        if result.duplicate or not entry.qual_fen or entry.member_id is None:
            continue
        standing = standing_of(conn, entry.member_id)
        if standing is None:
            continue
        spend = window_spend_in(conn, ledger, entry.account_id, entry.member_id,
                                entry.effective_at)
        change = upgrade_for_spend(standing, spend, ledger.rules, member_id=entry.member_id,
                                   trigger=entry)
        if change is not None and record_upgrade(conn, change, account_id=entry.account_id,
                                                 recorded_at=recorded_at):
            changes.append(change)
    return changes


def window_spend_in(conn: sqlite3.Connection, ledger: Ledger, account_id: str,
                    member_id: str, at: datetime) -> int:
    """The member's qualifying spend in the rolling window ending at `at`, as the fold
    counts it (`window_spend` over `fold(...).qualifying`), the spend recorded under the
    member's provisional id before central confirmed it included."""
    rules = ledger.rules
    start = to_text(add_months(at, -rules.tiers.window_months, rules.tz)) or ""
    end = to_text(at) or ""
    known_as = former_ids(conn, member_id)
    refunded = json.dumps([row[0] for row in conn.execute(_REFUNDED, (account_id, start,
                                                                      end))])
    # Sales with refunds are left out here and counted with their refunds below.
    spend = int(conn.execute(_PLAIN_SPEND, (account_id, json.dumps([member_id, *known_as]),
                                            start, end, refunded)).fetchone()[0])
    if refunded != "[]":
        rows = conn.execute(_REFUNDS, (refunded, account_id, refunded))
        stream = qualifying_of(tuple_to_entry(row) for row in rows)
        spend += window_spend(stream, rules, at, member_id, known_as=known_as)
    return spend
