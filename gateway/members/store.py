"""Writing members: central's profiles (one change, or a whole snapshot) and demo members.

Central is the authority for members: a profile with a higher central version replaces
the edge's copy, its identifiers follow it, and its account is created on first sight
(accounts are keyed by id; a family shares one). All in the caller's transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.members.tiers import record_central_change, settle_provisional

# One encoder for the hot path: json.dumps with options builds a new encoder per call.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# Tags and opt-outs repeat across members: each distinct list is encoded once.
_LIST_TEXT: dict[tuple[Any, ...], str] = {}
_LIST_TEXT_MAX = 4096


def _json_list(values: Any) -> str:
    if not values:
        return "[]"
    if type(values) is not list or not all(type(v) is str for v in values):
        return _JSON.encode(values)  # not a list of strings: encoded every time
    key = tuple(values)
    text = _LIST_TEXT.get(key)
    if text is None:
        if len(_LIST_TEXT) >= _LIST_TEXT_MAX:
            _LIST_TEXT.clear()
        text = _LIST_TEXT[key] = _JSON.encode(values)
    return text


# An upgrade made at the edge (`tier_provisional_at` set) survives a profile of central's
# that does not know of it yet: one whose tier differs and that central decided before the
# upgrade (its `tier_since` earlier). Any profile deciding the tier since replaces it, and
# clears the mark (`excluded.tier_provisional_at` is always NULL).
_KEEP_PROVISIONAL = (
    "CASE WHEN members.tier_provisional_at IS NOT NULL AND excluded.tier <> members.tier "
    "AND coalesce(excluded.tier_since, '') < members.tier_provisional_at "
    "THEN members.{0} ELSE excluded.{0} END")


def _settle_tiers(conn: sqlite3.Connection, took: Sequence[Mapping[str, Any]],
                  replaced: list[str], at: str) -> None:
    """Central's tier changes sent with its profiles become facts here, and the edge's
    upgrades central has decided on since are settled."""
    for view in took:
        change = view.get("tier_change")
        if isinstance(change, dict):
            record_central_change(conn, change, at)
    if replaced:
        settle_provisional(conn, replaced)


def upsert_members(conn: sqlite3.Connection, views: Sequence[Mapping[str, Any]],
                   at: str, *, current: Mapping[str, int] | None = None) -> None:
    """Central wins: a newer central version replaces the edge's copy of each profile.

    Set-wise (one statement per table for the whole list), so a snapshot of a million
    members applies at database speed; identifiers follow only a profile that took. A
    member appears at most once in `views` (a snapshot chunk, or one change). `current`
    is the central version of each of these members the edge has, if the caller already
    read it."""
    if current is None:
        current = _versions(conn, [v["member_id"] for v in views])
    took: list[Mapping[str, Any]] = []
    rows = []
    for v in views:
        member_id, version = v["member_id"], int(v.get("version", 0))
        if version < current.get(member_id, -1):
            continue
        took.append(v)
        get = v.get
        rows.append((member_id, v["account_id"], get("display_name_masked"),
                     get("tier") or "normal", get("tier_anniversary"), get("birth_month"),
                     get("birth_day"), _json_list(get("tags")), _json_list(get("opt_outs")),
                     version, get("tier_since")))
    if not rows:
        return
    members = _json_rows(rows)
    conn.execute(
        "INSERT INTO members (id, account_id, display_name_masked, tier, tier_anniversary, "
        "birth_month, birth_day, tags, opt_outs, central_version, tier_since, updated_at) "
        "SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, "
        "j.value ->> 5, j.value ->> 6, j.value ->> 7, j.value ->> 8, j.value ->> 9, "
        "j.value ->> 10, ?2 "
        "FROM json_each(?1) AS j WHERE true ON CONFLICT (id) DO UPDATE SET "
        "account_id = excluded.account_id, display_name_masked = excluded.display_name_masked, "
        f"tier = {_KEEP_PROVISIONAL.format('tier')}, "
        f"tier_anniversary = {_KEEP_PROVISIONAL.format('tier_anniversary')}, "
        f"tier_since = {_KEEP_PROVISIONAL.format('tier_since')}, "
        f"tier_provisional_at = {_KEEP_PROVISIONAL.format('tier_provisional_at')}, "
        "birth_month = excluded.birth_month, birth_day = excluded.birth_day, "
        "tags = excluded.tags, opt_outs = excluded.opt_outs, "
        "central_version = excluded.central_version, updated_at = excluded.updated_at "
        "WHERE excluded.central_version >= members.central_version", (members, at))
    conn.execute(
        "INSERT INTO accounts (id, owner_member_id, updated_at) "
        "SELECT j.value ->> 1, j.value ->> 0, ?2 FROM json_each(?1) AS j WHERE true "
        "ON CONFLICT (id) DO NOTHING", (members, at))
    replaced = [row[0] for row in rows if row[0] in current]
    _settle_tiers(conn, took, replaced, at)
    if replaced:
        conn.execute("DELETE FROM member_identifiers WHERE member_id IN "
                     "(SELECT value FROM json_each(?))", (_json_rows(replaced),))
    _insert_identifiers(conn, [(i["kind"], i["value"], v["member_id"])
                               for v in took for i in v.get("identifiers") or []])


def upsert_member(conn: sqlite3.Connection, view: Mapping[str, Any], at: str) -> None:
    upsert_members(conn, [view], at)


def _json_rows(rows: Sequence[Any]) -> str:
    """Rows as one JSON array, for a statement that reads them with json_each.

    One statement inserts the whole list in one step: none of `executemany`'s per-row
    binding and resetting, and SQLite runs the step without holding the GIL, so the
    event loop parses the next snapshot chunk meanwhile (with `executemany` the writer
    takes the GIL back for every row, and waits for it while the loop is parsing)."""
    return orjson.dumps(rows).decode()


def _insert_identifiers(conn: sqlite3.Connection, rows: list[tuple[str, str, str]]) -> None:
    """An identifier belongs to one member: the last one given it wins. Plain inserts
    first, which cost half of a conflict-resolving insert; only if an identifier is
    already taken (a card passed on to another member) is the list replayed so."""
    if not rows:
        return
    insert = ("INSERT {}INTO member_identifiers (kind, value, member_id) "
              "SELECT j.value ->> 0, j.value ->> 1, j.value ->> 2 FROM json_each(?) AS j")
    identifiers = _json_rows(rows)
    conn.execute("SAVEPOINT identifiers")
    try:
        conn.execute(insert.format(""), (identifiers,))
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK TO identifiers")
        conn.execute(insert.format("OR REPLACE "), (identifiers,))
    conn.execute("RELEASE identifiers")


def _versions(conn: sqlite3.Connection, member_ids: list[str]) -> dict[str, int]:
    """The central version of each of these members the edge already has."""
    found: dict[str, int] = {}
    for i in range(0, len(member_ids), 500):
        chunk = member_ids[i:i + 500]
        found.update(conn.execute(
            f"SELECT id, central_version FROM members WHERE id IN "
            f"({', '.join('?' * len(chunk))})", chunk).fetchall())
    return found


# Members made here that central does not know yet (enrolled at a kiosk offline): a
# snapshot, which lists central's members only, must not take them for members central
# has dropped.
_NOT_PROVISIONAL = ("id NOT IN (SELECT member_id FROM provisional_members "
                    "WHERE merged_at IS NULL)")


def versions_between(conn: sqlite3.Connection, first: str, last: str) -> dict[str, int]:
    """The central version of every member of the edge with `first < id <= last` (but
    provisional members central has not confirmed yet): one range read on the primary key
    (a snapshot chunk's span)."""
    return dict(conn.execute(
        "SELECT id, central_version FROM members WHERE id > ? AND id <= ? AND "
        + _NOT_PROVISIONAL, (first, last)).fetchall())


def ids_after(conn: sqlite3.Connection, after: str) -> list[str]:
    """The ids of the edge's members after `after` (but provisional members central has
    not confirmed yet), in key order."""
    return [row[0] for row in conn.execute(
        "SELECT id FROM members WHERE id > ? AND " + _NOT_PROVISIONAL + " ORDER BY id",
        (after,))]


# -- members made at the edge (the demo) ------------------------------------------------

@dataclass(frozen=True, slots=True)
class NewMember:
    id: str
    account_id: str  # an account of its own, owned by this member
    display_name: str
    tier: str
    identifiers: tuple[tuple[str, str], ...] = ()  # (kind, value)


def add_members(conn: sqlite3.Connection, members: Iterable[NewMember], at: str) -> None:
    """New members, each with its own account and its identifiers."""
    for m in members:
        conn.execute("INSERT INTO accounts (id, owner_member_id, updated_at) "
                     "VALUES (?, ?, ?)", (m.account_id, m.id, at))
        conn.execute(
            "INSERT INTO members (id, account_id, display_name_masked, tier, updated_at) "
            "VALUES (?, ?, ?, ?, ?)", (m.id, m.account_id, m.display_name, m.tier, at))
        conn.executemany("INSERT INTO member_identifiers (kind, value, member_id) "
                         "VALUES (?, ?, ?)",
                         [(kind, value, m.id) for kind, value in m.identifiers])


def members_without(conn: sqlite3.Connection, kind: str, *, id_prefix: str = "") -> list[str]:
    """The ids (starting with `id_prefix`) of members with no identifier of `kind`."""
    return [row[0] for row in conn.execute(
        "SELECT id FROM members WHERE id LIKE ? || '%' AND id NOT IN "
        "(SELECT member_id FROM member_identifiers WHERE kind = ?) ORDER BY id",
        (id_prefix, kind))]


def give_identifiers(conn: sqlite3.Connection, kind: str, values: Mapping[str, str],
                     at: str) -> None:
    """Add an identifier of `kind` to each member (member id -> value). The members count
    as updated at `at`: readers that follow changes by `updated_at` (the beacon keyring)
    see their new identifiers."""
    conn.executemany(
        "INSERT INTO member_identifiers (kind, value, member_id) VALUES (?, ?, ?)",
        [(kind, value, member) for member, value in values.items()])
    conn.executemany("UPDATE members SET updated_at = ? WHERE id = ?",
                     [(at, member) for member in values])
