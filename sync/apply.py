"""Applying what central sends to the edge store, inside the caller's transaction.

A change page and its cursor commit together, so a crash re-applies a page at most, and
every operation is idempotent: ledger entries are insert-or-ignore, member upserts keep the
highest central version, an erasure of an absent member does nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from cloud_api.errors import CentralRejected
from gateway.loyalty import Plausibility
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.limits import DEFAULT_LIMITS
from gateway.loyalty.versions import RULES_KIND
from gateway.members import erase_member, has_members, ids_after, versions_between
from gateway.store.deferred import defer_indexes, restore_indexes
from sync.checks import Refused, check_entry, check_member, is_id
from sync.feed import Applied, FeedPage, apply_feed, grant_allowances, put_document

__all__ = ["Applied", "apply_changes", "apply_snapshot_lines", "grant_allowances",
           "put_document"]

CENTRAL_PEER = "central"


def apply_changes(conn: sqlite3.Connection, changes: Iterable[Mapping[str, Any]],
                  allowances: Mapping[str, Any], *, cursor: int, at: str,
                  clock: HybridClock | None = None,
                  limits: Plausibility = DEFAULT_LIMITS) -> Applied:
    """One page of the change feed and its cursor, in the caller's transaction. A change
    the edge cannot apply is refused (`sync.feed`); the cursor moves past it all the same."""
    applied = apply_feed(conn, changes, allowances=allowances, cursor=cursor, at=at,
                         limits=limits, clock=clock)
    save_cursor(conn, cursor, at)
    return applied


def save_cursor(conn: sqlite3.Connection, cursor: int, at: str) -> None:
    conn.execute("INSERT INTO sync_cursor (peer, cursor, updated_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (peer) DO UPDATE SET cursor = excluded.cursor, "
                 "updated_at = excluded.updated_at", (CENTRAL_PEER, str(cursor), at))


def load_cursor(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT cursor FROM sync_cursor WHERE peer = ?",
                       (CENTRAL_PEER,)).fetchone()
    return None if row is None else int(row[0])


def set_state(conn: sqlite3.Connection, name: str, value: Any, at: str) -> None:
    conn.execute("INSERT INTO sync_state (name, value, updated_at) VALUES (?, ?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                 "updated_at = excluded.updated_at", (name, json.dumps(value), at))


def get_state(conn: sqlite3.Connection, name: str) -> Any:
    row = conn.execute("SELECT value FROM sync_state WHERE name = ?", (name,)).fetchone()
    return None if row is None else json.loads(row[0])


# -- snapshot ------------------------------------------------------------------------

SNAPSHOT_STATE = "snapshot"
# The lines after the member phase, in the order central sends their phases: entries,
# then coupon campaigns, then coupons with their facts (format 2 of the snapshot).
AFTER_MEMBERS = ("ledger", "coupon_campaign", "coupon")
# The progress kept between chunks: {"format", "cursor", "phase", "after"}. Progress
# without this format (kept by an older version) is not resumed: the snapshot restarts.
SNAPSHOT_FORMAT = 2


# Secondary indexes of the member tables, set aside while a snapshot fills an empty store
# and built once at its end, which costs less than keeping them up to date row by row. None
# is UNIQUE, so nothing the fill writes can make building them fail.
SNAPSHOT_DEFERRED_INDEXES = ("members_account", "members_birthday",
                             "member_identifiers_member")


def resumable(progress: Mapping[str, Any] | None) -> bool:
    """Whether a saved snapshot progress can be resumed where it stopped."""
    return progress is not None and progress.get("format") == SNAPSHOT_FORMAT


def apply_snapshot_lines(conn: sqlite3.Connection, lines: Iterable[Mapping[str, Any]],
                         at: str, limits: Plausibility = DEFAULT_LIMITS) -> Applied:
    """A chunk of snapshot lines (members, entries, coupon campaigns, coupons) and the
    progress to resume from.

    Members arrive in key order, so a member of the edge whose id falls between two
    members of the snapshot, or after the last one, is one central no longer has (erased
    while this gateway was away): it goes as soon as the snapshot has passed it. The
    progress commits with the chunk, so a crash resumes exactly after it.

    Each line is checked as a change of the feed is (`sync.checks`): one the edge cannot
    apply is refused (a dead letter, its member held) and the snapshot goes on. A valid
    member line ends its member's hold: the snapshot's state includes every change that
    waited. A refused member keeps the copy the edge had, if any."""
    progress = get_state(conn, SNAPSHOT_STATE) or {}
    page = FeedPage(conn, at=at, limits=limits, cursor=_cursor_or_none(progress))
    members: list[Mapping[str, Any]] = []
    keys: list[str] = []  # every member of the chunk, refused ones too: central has them
    for line in lines:
        kind = line.get("type") if type(line) is dict else None
        if kind == "member":
            _member_line(page, line, members, keys)
        elif kind in AFTER_MEMBERS:
            if progress.get("phase") == "member":
                _end_members(page, progress, members, keys)
                members, keys = [], []
            (_ledger_line if kind == "ledger" else _coupon_line)(page, line, progress)
        elif kind == "header":
            cursor = _cursor(line)
            if not resumable(progress) or progress.get("cursor") != line["cursor"]:
                progress = {"format": SNAPSHOT_FORMAT, "cursor": line["cursor"],
                            "phase": "member", "after": ""}
                page.cursor = cursor
                _defer_indexes_if_empty(conn)
            _rule_versions(page, line)
        elif kind == "end":
            cursor = _cursor(line)
            if progress.get("phase") == "member":
                _end_members(page, progress, members, keys)
                members, keys = [], []
            page.flush_entries()
            restore_indexes(conn, SNAPSHOT_DEFERRED_INDEXES)
            conn.execute("DELETE FROM sync_snapshot_seen")  # as older versions left it
            save_cursor(conn, cursor, at)
            progress = {}
        else:
            page.refuse(line, Refused("invalid_line", f"a snapshot line of type "
                                      f"{str(kind)[:40]!r}"), kind="snapshot.line", member=None)
    if keys:
        _flush_members(page, progress, members, keys)
    page.flush_entries()
    if progress:
        set_state(conn, SNAPSHOT_STATE, progress, at)
    else:
        conn.execute("DELETE FROM sync_state WHERE name = ?", (SNAPSHOT_STATE,))
    return page.applied


class SnapshotFormatError(CentralRejected):
    """A snapshot's header or end without a readable cursor: nothing of it can be placed."""

    def __init__(self, line: Mapping[str, Any]) -> None:
        super().__init__(f"snapshot {line.get('type')} line without a cursor",
                         code="snapshot_format")


def _cursor(line: Mapping[str, Any]) -> int:
    value = line.get("cursor")
    if type(value) is int or (type(value) is str and value.isdigit() and len(value) < 20):
        return int(value)
    raise SnapshotFormatError(line)


def _rule_versions(page: FeedPage, header: Mapping[str, Any]) -> None:
    """The rules versions a snapshot's header carries, each applied (or refused) as the
    `config.version` change it was: their changes may be purged from central's log."""
    versions = header.get("rule_versions", [])
    if type(versions) is not list:
        page.refuse(header, Refused("invalid_line", "a snapshot header's rule_versions "
                                    "must be a list"), kind="snapshot.header", member=None)
        return
    for version in versions:
        seq = version.get("server_seq") if type(version) is dict else None
        page.apply({"kind": "config.version", "key": RULES_KIND, "server_seq": seq,
                    "payload": version})


def _cursor_or_none(progress: Mapping[str, Any]) -> int | None:
    try:
        return int(progress["cursor"])
    except (KeyError, TypeError, ValueError):
        return None


def _member_line(page: FeedPage, line: Mapping[str, Any], members: list[Mapping[str, Any]],
                 keys: list[str]) -> None:
    key = line.get("key")
    if not is_id(key):
        page.refuse(line, Refused("invalid_member", "a snapshot member needs its key"),
                    kind="snapshot.member", member=None)
        return
    keys.append(key)
    try:
        view = check_member(line.get("data"), key)
    except Refused as refused:
        page.refuse(line, refused, kind="snapshot.member", member=key)
        return
    if key in page.held:
        page.forget(key, "superseded by the snapshot")
    members.append(view)


def _ledger_line(page: FeedPage, line: Mapping[str, Any], progress: dict[str, Any]) -> None:
    key, data, seq = line.get("key"), line.get("data"), line.get("server_seq")
    member = data.get("member_id") if type(data) is dict else None
    member = member if is_id(member) else None
    if is_id(key):
        progress.update(phase="ledger", after=key)
    if not is_id(key) or (seq is not None and type(seq) is not int):
        page.refuse(line, Refused("invalid_entry", "a snapshot entry needs its key and "
                                  "server_seq"), kind="snapshot.ledger", member=member)
        return
    try:
        entry = check_entry(data, page.limits)
    except Refused as refused:
        page.refuse(line, refused, kind="snapshot.ledger", member=member)
        return
    if member is not None and member in page.held:
        page.hold_change(member, {"server_seq": seq, "kind": "ledger.entry", "key": key,
                                  "payload": data})
    else:
        page.add_entry(entry, seq, line)


def _coupon_line(page: FeedPage, line: Mapping[str, Any], progress: dict[str, Any]) -> None:
    """A campaign, or a coupon with its facts, checked and applied as the change of the
    feed that carried it (`coupon_campaign.upsert`, `coupon.upsert`)."""
    kind, key, data = str(line.get("type")), line.get("key"), line.get("data")
    if is_id(key):
        progress.update(phase=kind, after=key)
    try:
        if kind == "coupon":
            page.apply_coupon(key, data)
        else:
            page.apply_campaign(key, data)
    except Refused as refused:
        # As a refused `coupon.upsert` of the feed: kept and counted, but its member is
        # not held (the coupon's next change replaces it whole).
        page.refuse(line, refused, kind=f"snapshot.{kind}", member=None)


def _defer_indexes_if_empty(conn: sqlite3.Connection) -> None:
    """A snapshot starting on an empty store (the first sync) fills the member tables
    without their secondary indexes; the snapshot's end builds them. A crash in between
    leaves them listed in `deferred_indexes`, and the store builds them when it opens."""
    if not has_members(conn):
        defer_indexes(conn, SNAPSHOT_DEFERRED_INDEXES)


class SnapshotOrderError(CentralRejected):
    """The snapshot's members are not in key order: which members central no longer has
    cannot be told, so nothing of the chunk is applied."""

    def __init__(self, key: str, after: str) -> None:
        super().__init__(f"snapshot member {key!r} comes after {after!r}, out of key order",
                         code="snapshot_order")


def _flush_members(page: FeedPage, progress: dict[str, Any],
                   members: list[Mapping[str, Any]], keys: list[str]) -> None:
    """Apply members that follow `progress["after"]` in key order, erase the edge's
    members in the gaps between them, and move `after` to the last one."""
    conn = page.conn
    after = first = progress.get("after", "")
    for key in keys:
        if key <= after:
            raise SnapshotOrderError(key, after)
        after = key
    # One range read gives the versions the edge has and the members central no longer
    # has; on an empty store (the first sync) it finds nothing.
    current = versions_between(conn, first, after)
    if current:
        for gone in current.keys() - set(keys):
            _erase_gone(page, gone)
            del current[gone]
    page.upsert_members(members, current)
    progress.update(phase="member", after=after)


def _erase_gone(page: FeedPage, member_id: str) -> None:
    erase_member(page.conn, member_id)
    if member_id in page.held:  # nothing of it is left to wait for
        page.forget(member_id, "the member is gone from central")


def _end_members(page: FeedPage, progress: dict[str, Any],
                 members: list[Mapping[str, Any]], keys: list[str]) -> None:
    """The member phase is over: the last members, then every member of the edge after
    the last one of the snapshot goes; the ledger phase starts."""
    if keys:
        _flush_members(page, progress, members, keys)
    for member_id in ids_after(page.conn, progress.get("after", "")):
        _erase_gone(page, member_id)
    progress.update(phase="ledger", after="")
