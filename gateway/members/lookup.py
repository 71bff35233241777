"""Reading members: by id or identifier, the profile offers need, and beacon keys.

Each read is a point lookup on a primary key or a unique index (a few microseconds), so
callers on the kiosk path run them on the event loop's thread or inside their writer op.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from gateway.loyalty.calendar import birthday_in
from gateway.members.identity import Lookup


@dataclass(frozen=True, slots=True)
class Member:
    """Who a member is to an operation: the account their points are in, and their tier."""

    id: str
    account_id: str
    display_name: str  # masked by central ("Li *3"); "" when central sent none
    tier: str


@dataclass(frozen=True, slots=True)
class Profile:
    """What offers are chosen by: a member's tier, birthday, tags and opt-outs."""

    member_id: str
    account_id: str
    display_name: str
    tier: str
    birth_month: int | None
    birth_day: int | None
    tags: frozenset[str]
    opt_outs: frozenset[str]

    def birthday_on(self, day: date) -> bool:
        """29 February falls on 28 February in common years, as for the birthday gift."""
        if self.birth_month is None or self.birth_day is None:
            return False
        return birthday_in(day.year, self.birth_month, self.birth_day) == day


_BY_ID = "SELECT id, account_id, display_name_masked, tier FROM members WHERE id = ?"
_BY_IDENTIFIER = (
    "SELECT m.id, m.account_id, m.display_name_masked, m.tier FROM "
    "member_identifiers i JOIN members m ON m.id = i.member_id "
    "WHERE i.kind = ? AND i.value = ?")
# A provisional member's id, once merged, names the member it became.
_BY_ALIAS = (
    "SELECT m.id, m.account_id, m.display_name_masked, m.tier FROM member_aliases a "
    "JOIN members m ON m.id = a.member_id WHERE a.alias_id = ?")
# A code printed on a receipt is a member id, a card number or a QR token.
_BY_CODE = (
    "SELECT m.id, m.account_id, m.display_name_masked, m.tier FROM members m "
    "WHERE m.id = ? UNION ALL "
    "SELECT m.id, m.account_id, m.display_name_masked, m.tier FROM member_identifiers i "
    "JOIN members m ON m.id = i.member_id WHERE i.kind IN ('card', 'qr_token') "
    "AND i.value = ? LIMIT 1")


def find_member(conn: sqlite3.Connection, lookup: Lookup) -> Member | None:
    """The member `lookup` names, or None if the edge has none such."""
    if lookup.kind == "member":
        row = conn.execute(_BY_ID, (lookup.value,)).fetchone()
        if row is None:  # a provisional member merged since: the member it became
            row = conn.execute(_BY_ALIAS, (lookup.value,)).fetchone()
    else:
        row = conn.execute(_BY_IDENTIFIER, (lookup.kind, lookup.value)).fetchone()
    if row is None:
        return None
    return Member(id=row[0], account_id=row[1], display_name=row[2] or "", tier=row[3])


def find_by_code(conn: sqlite3.Connection, code: str) -> Member | None:
    """The member a receipt's member code names: a member id first, else a card or QR
    token identifier."""
    row = conn.execute(_BY_CODE, (code, code)).fetchone()
    if row is None:
        row = conn.execute(_BY_ALIAS, (code,)).fetchone()
    if row is None:
        return None
    return Member(id=row[0], account_id=row[1], display_name=row[2] or "", tier=row[3])


def profile(conn: sqlite3.Connection, member_id: str) -> Profile | None:
    row = conn.execute(
        "SELECT id, account_id, display_name_masked, tier, birth_month, birth_day, tags, "
        "opt_outs FROM members WHERE id = ?", (member_id,)).fetchone()
    if row is None:
        return None
    return Profile(member_id=row[0], account_id=row[1], display_name=row[2] or "",
                   tier=row[3], birth_month=row[4], birth_day=row[5],
                   tags=frozenset(_strings(row[6])), opt_outs=frozenset(_strings(row[7])))


def birthday_of(conn: sqlite3.Connection, member_id: str) -> tuple[int, int] | None:
    """The member's birth month and day, or None (no such member, or no birthday known):
    one primary-key lookup, cheap enough for every sale and kiosk read."""
    row = conn.execute("SELECT birth_month, birth_day FROM members WHERE id = ?",
                       (member_id,)).fetchone()
    if row is None or row[0] is None or row[1] is None:
        return None
    return int(row[0]), int(row[1])


def _strings(text: str | None) -> list[str]:
    """A JSON list of strings as stored; anything else reads as no strings."""
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def has_members(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM members LIMIT 1").fetchone() is not None


# -- beacon keys ------------------------------------------------------------------------

def ble_key_count(conn: sqlite3.Connection) -> int:
    """How many beacon keys the store holds (every member's, valid or not)."""
    return int(conn.execute("SELECT count(*) FROM member_identifiers "
                            "WHERE kind = 'ble_key'").fetchone()[0])


def ble_keys_changed_since(conn: sqlite3.Connection,
                           since: str) -> Iterator[tuple[str, str, str | None]]:
    """(member id, updated_at, beacon key or None) of every member updated at or after
    `since` ("" for all), in member order: a member with several keys gives a row for each,
    a member with none one row with None."""
    return iter(conn.execute(
        "SELECT m.id, m.updated_at, i.value FROM members m "
        "LEFT JOIN member_identifiers i ON i.member_id = m.id AND i.kind = 'ble_key' "
        "WHERE m.updated_at >= ? ORDER BY m.id", (since,)))
