"""Provisional members: enrolled at a kiosk while central was unreachable, merged under
central's id once it confirms them.

A provisional member's id and account are derived from the kiosk request that made it
(`p-…`, `pa-…`), so a redelivered request makes the same member, and it earns at once.
Central confirms it with the account the gateway opened (`cloud_api` enrolMember): the
entries stay where they are, keyed by that account, and merging is a change of the
member's id only, done in one transaction here:

- central's member is upserted (its view names the same account, or, when the phone was
  already a member, that member's own account: the caller then moves the points);
- everything that named the provisional id (receipts, coupons, welcome deliveries, tier
  changes, the account's owner) names the final id;
- the provisional row goes, and an alias keeps the provisional id pointing at the final
  member, for sessions, receipts' member codes and retried requests that name it.

Run again after it committed, it finds the provisional member merged and does nothing.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.members.store import upsert_member

# The tables whose `member_id` a merge moves to the final member (the foreign keys of some
# would otherwise delete or forget the provisional member's rows with it; ledger entries
# are immutable and keyed by account, which the merge keeps).
_MEMBER_COLUMNS = ("receipts", "coupons", "offer_deliveries", "tier_changes", "holds")


@dataclass(frozen=True, slots=True)
class Provisional:
    member_id: str
    account_id: str
    enrolment_id: str
    phone_hash: str
    phone_masked: str
    consent: dict[str, Any]
    referrer: str | None
    created_at: str


def provisional_ids(request_key: str) -> tuple[str, str, str]:
    """The member id, account id and enrolment id of the provisional member the request
    with this key makes."""
    digest = hashlib.sha256(f"enrol\x1f{request_key}".encode()).hexdigest()[:24]
    return f"p-{digest}", f"pa-{digest}", f"e-{digest}"


def add_provisional(conn: sqlite3.Connection, p: Provisional) -> None:
    """The member, its account, its phone identifier and what central will be told."""
    conn.execute("INSERT INTO accounts (id, owner_member_id, updated_at) VALUES (?, ?, ?)",
                 (p.account_id, p.member_id, p.created_at))
    conn.execute("INSERT INTO members (id, account_id, display_name_masked, tier, updated_at) "
                 "VALUES (?, ?, ?, 'normal', ?)",
                 (p.member_id, p.account_id, p.phone_masked, p.created_at))
    conn.execute("INSERT INTO member_identifiers (kind, value, member_id) "
                 "VALUES ('phone_hash', ?, ?)", (p.phone_hash, p.member_id))
    conn.execute(
        "INSERT INTO provisional_members (member_id, account_id, enrolment_id, phone_hash, "
        "phone_masked, consent, referrer, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (p.member_id, p.account_id, p.enrolment_id, p.phone_hash, p.phone_masked,
         json.dumps(p.consent), p.referrer, p.created_at))


def pending_provisionals(conn: sqlite3.Connection, limit: int = 100) -> list[Provisional]:
    """Provisional members central has not confirmed yet, oldest first."""
    rows = conn.execute(
        "SELECT member_id, account_id, enrolment_id, phone_hash, phone_masked, consent, "
        "referrer, created_at FROM provisional_members WHERE merged_at IS NULL "
        "ORDER BY created_at, member_id LIMIT ?", (limit,)).fetchall()
    return [Provisional(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7])
            for r in rows]


def merge_provisional(conn: sqlite3.Connection, member_id: str, view: Mapping[str, Any],
                      at: str) -> bool:
    """Merge the provisional member under central's member `view` (in the caller's
    transaction); False if it was merged already."""
    pending = conn.execute("SELECT 1 FROM provisional_members WHERE member_id = ? AND "
                           "merged_at IS NULL", (member_id,)).fetchone()
    if pending is None:
        return False
    final = str(view["member_id"])
    upsert_member(conn, view, at)
    for table in _MEMBER_COLUMNS:
        conn.execute(f"UPDATE {table} SET member_id = ? WHERE member_id = ?",
                     (final, member_id))
    conn.execute("UPDATE accounts SET owner_member_id = ? WHERE owner_member_id = ?",
                 (final, member_id))
    conn.execute("DELETE FROM members WHERE id = ?", (member_id,))
    conn.execute("INSERT INTO member_aliases (alias_id, member_id, created_at) "
                 "VALUES (?, ?, ?) ON CONFLICT (alias_id) DO NOTHING", (member_id, final, at))
    # Merged: central has the number's hash now; the edge keeps it only as the member's
    # identifier, like any member's.
    conn.execute("UPDATE provisional_members SET final_member_id = ?, merged_at = ?, "
                 "phone_hash = '', consent = '{}' WHERE member_id = ?", (final, at, member_id))
    return True


def alias_of(conn: sqlite3.Connection, member_id: str) -> str | None:
    """The member a merged provisional id became, if it is one."""
    row = conn.execute("SELECT member_id FROM member_aliases WHERE alias_id = ?",
                       (member_id,)).fetchone()
    return str(row[0]) if row else None


def former_ids(conn: sqlite3.Connection, member_id: str) -> list[str]:
    """The provisional ids merged under the member: entries keep the id they were recorded
    under, and what they count (a tier's spend) is the member's all the same."""
    return [str(row[0]) for row in conn.execute(
        "SELECT alias_id FROM member_aliases WHERE member_id = ? ORDER BY alias_id",
        (member_id,))]
