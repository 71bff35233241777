"""Members' tiers at the edge: the standing read for a tier check, upgrades written as facts.

An upgrade made here is provisional: the member's tier changes at once (the next sale earns
at it), `tier_provisional_at` marks it until central has decided on the tier since, and the
change goes to central through the outbox as a `tier.changed` event. Central's profiles
then settle it (`settle_provisional`, run by `upsert_members`). The edge never downgrades:
a downgrade reaches it only as central's profile.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import date

from gateway.loyalty.tier_review import Standing, TierChange
from gateway.loyalty.wire import to_text

TIER_EVENT = "tier.changed"


@dataclass(frozen=True, slots=True)
class TierRecord:
    """One tier change as `mallgate` shows it."""

    change_id: str
    member_id: str
    from_tier: str
    to_tier: str
    direction: str
    at: str
    anniversary: str | None
    qualifying_fen: int
    reason: str
    origin: str
    confirmed: str | None


def standing_of(conn: sqlite3.Connection, member_id: str) -> Standing | None:
    row = conn.execute("SELECT tier, tier_anniversary FROM members WHERE id = ?",
                       (member_id,)).fetchone()
    if row is None:
        return None
    return Standing(row[0], date.fromisoformat(row[1]) if row[1] else None)


def record_upgrade(conn: sqlite3.Connection, change: TierChange, *, account_id: str,
                   recorded_at: str) -> bool:
    """Apply an upgrade computed here, in the caller's transaction: the member's tier, the
    fact, and its outbox event. False if this fact was already recorded."""
    at = to_text(change.at) or ""
    anniversary = change.anniversary.isoformat() if change.anniversary else None
    inserted = conn.execute(
        "INSERT INTO tier_changes (change_id, member_id, account_id, from_tier, to_tier, "
        "direction, at, anniversary, qualifying_fen, trigger_id, reason, origin, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'edge', ?) "
        "ON CONFLICT (change_id) DO NOTHING",
        (change.change_id, change.member_id, account_id, change.from_tier, change.to_tier,
         change.direction, at, anniversary, change.qualifying_fen, change.trigger,
         change.reason, recorded_at)).rowcount
    if not inserted:
        return False
    conn.execute("UPDATE members SET tier = ?, tier_anniversary = ?, tier_since = ?, "
                 "tier_provisional_at = ? WHERE id = ?",
                 (change.to_tier, anniversary, at, at, change.member_id))
    payload = {"member_id": change.member_id, "account_id": account_id,
               "from_tier": change.from_tier, "to_tier": change.to_tier,
               "direction": change.direction, "changed_at": at, "anniversary": anniversary,
               "qualifying_fen": change.qualifying_fen, "trigger": change.trigger,
               "reason": change.reason}
    conn.execute(
        "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        (change.change_id, TIER_EVENT, account_id, json.dumps(payload, ensure_ascii=False),
         recorded_at))
    return True


def record_central_change(conn: sqlite3.Connection, change: dict[str, object],
                          recorded_at: str) -> None:
    """A tier change central sent with a member's profile: kept as a fact (one with the
    edge's own record of the same upgrade, which it confirms)."""
    conn.execute(
        "INSERT INTO tier_changes (change_id, member_id, account_id, from_tier, to_tier, "
        "direction, at, anniversary, qualifying_fen, trigger_id, reason, origin, confirmed, "
        "recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'central', 'confirmed', ?) "
        "ON CONFLICT (change_id) DO UPDATE SET confirmed = 'confirmed'",
        (change["change_id"], change["member_id"], change["account_id"],
         change["from_tier"], change["to_tier"], change["direction"], change["changed_at"],
         change.get("anniversary"), change.get("qualifying_fen", 0),
         change.get("trigger", ""), change.get("reason", ""), recorded_at))


def settle_provisional(conn: sqlite3.Connection, member_ids: list[str]) -> None:
    """After central's profiles of `member_ids` were applied: the edge's upgrades central
    has decided on since are confirmed (central's tier is theirs) or superseded."""
    conn.execute(
        "UPDATE tier_changes SET confirmed = CASE WHEN to_tier = (SELECT tier FROM members m "
        "WHERE m.id = tier_changes.member_id) THEN 'confirmed' ELSE 'superseded' END "
        "WHERE confirmed IS NULL AND origin = 'edge' AND member_id IN "
        "(SELECT value FROM json_each(?)) AND member_id IN "
        "(SELECT id FROM members WHERE tier_provisional_at IS NULL)",
        (json.dumps(member_ids),))


def tier_history(conn: sqlite3.Connection, account_id: str) -> list[TierRecord]:
    """The tier changes of the account's members, oldest first."""
    rows = conn.execute(
        "SELECT change_id, member_id, from_tier, to_tier, direction, at, anniversary, "
        "qualifying_fen, reason, origin, confirmed FROM tier_changes WHERE account_id = ? "
        "ORDER BY at, change_id", (account_id,)).fetchall()
    return [TierRecord(*row) for row in rows]
