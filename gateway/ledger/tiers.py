"""The tier check after qualifying entries: an upgrade applies in the entries' transaction.

Called inside the writer op that recorded a sale or refund, so the upgrade commits (or
rolls back) with the entries that earned it, and the next sale of the member, a later op,
earns at the new tier's multiplier. Offline as online: central confirms it later.

Cost: the account's entries come from the ledger's entry cache (decoded once, topped up
with the rows since), and only their qualifying spend is replayed (`qualifying_of`), not
the lots and history of a whole fold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.ledger.service import Ledger, Recorded
from gateway.loyalty.fold import qualifying_of
from gateway.loyalty.tier_review import TierChange, upgrade_after
from gateway.loyalty.wire import to_text
from gateway.members.tiers import record_upgrade, standing_of


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
        entries = [e for e, _ in ledger.entries_in_write(conn, entry.account_id, recorded)]
        change = upgrade_after(standing, qualifying_of(entries), ledger.rules,
                               member_id=entry.member_id, trigger=entry)
        if change is not None and record_upgrade(conn, change, account_id=entry.account_id,
                                                 recorded_at=recorded_at):
            changes.append(change)
    return changes
