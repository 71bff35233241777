"""Applying what central sends to the edge store, inside the caller's transaction.

A change page and its cursor commit together, so a crash re-applies a page at most, and
every operation is idempotent: ledger entries are insert-or-ignore, member upserts keep the
highest central version, an erasure of an absent member does nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud_api.errors import CentralRejected
from gateway.ledger.service import insert_remote
from gateway.loyalty import Entry
from gateway.loyalty.hlc import HybridClock, Stamp
from gateway.loyalty.wire import entry_from_wire
from gateway.members import (
    erase_member,
    has_members,
    ids_after,
    upsert_member,
    upsert_members,
    versions_between,
)
from gateway.store.deferred import defer_indexes, restore_indexes

CENTRAL_PEER = "central"


@dataclass(slots=True)
class Applied:
    entries: int = 0
    members: int = 0
    erased: int = 0
    documents: int = 0
    skipped: list[str] = field(default_factory=list)


def remote_entry(data: Mapping[str, Any]) -> tuple[Entry, int | None]:
    values = {k: v for k, v in data.items() if k != "server_seq"}
    return entry_from_wire(values), data.get("server_seq")


def put_document(conn: sqlite3.Connection, kind: str, key: str, payload: Mapping[str, Any],
                 at: str) -> None:
    if kind == "offer.upsert":
        conn.execute(
            "INSERT INTO offers (id, title, definition, valid_from, valid_until, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title, "
            "definition = excluded.definition, valid_from = excluded.valid_from, "
            "valid_until = excluded.valid_until, updated_at = excluded.updated_at",
            (key, str(payload.get("title", key)), json.dumps(payload, ensure_ascii=False),
             payload.get("valid_from"), payload.get("valid_until"), at))
    else:
        conn.execute(
            "INSERT INTO config_versions (kind, version, payload, applied_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key, str(payload.get("version")),
             json.dumps(payload.get("payload"), ensure_ascii=False), at))


def apply_changes(conn: sqlite3.Connection, changes: Iterable[Mapping[str, Any]],
                  allowances: Mapping[str, int], *, cursor: int, at: str,
                  clock: HybridClock | None = None) -> Applied:
    """One page of the change feed and its cursor, in the caller's transaction."""
    applied = Applied()
    entries: list[tuple[Entry, int | None]] = []
    for change in changes:
        kind, payload = change["kind"], change["payload"]
        if kind == "ledger.entry":
            entry, _ = remote_entry(payload)
            entries.append((entry, int(change["server_seq"])))
            if clock is not None and entry.hlc:
                clock.observe(Stamp.parse(entry.hlc))
        elif kind == "member.upsert":
            if payload:  # an upsert scrubbed by a later erasure
                upsert_member(conn, payload, at)
                applied.members += 1
        elif kind == "member.erased":
            applied.erased += erase_member(conn, change["key"])
        elif kind in {"offer.upsert", "config.version"}:
            put_document(conn, kind, change["key"], payload, at)
            applied.documents += 1
        else:
            applied.skipped.append(kind)  # a newer central's operation: ignored, counted
    applied.entries = insert_remote(conn, entries, at)
    grant_allowances(conn, allowances, cursor, at)
    save_cursor(conn, cursor, at)
    return applied


def grant_allowances(conn: sqlite3.Connection, allowances: Mapping[str, int], seq: int,
                     at: str) -> None:
    conn.executemany(
        "INSERT INTO offline_allowances (account_id, points, granted_seq, granted_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET points = excluded.points, "
        "granted_seq = excluded.granted_seq, granted_at = excluded.granted_at",
        [(account, max(0, points), seq, at) for account, points in allowances.items()])


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
                         at: str) -> None:
    """A chunk of snapshot lines (members, entries) and the progress to resume from.

    Members arrive in key order, so a member of the edge whose id falls between two
    members of the snapshot, or after the last one, is one central no longer has (erased
    while this gateway was away): it goes as soon as the snapshot has passed it. The
    progress commits with the chunk, so a crash resumes exactly after it."""
    progress = get_state(conn, SNAPSHOT_STATE) or {}
    entries: list[tuple[Entry, int | None]] = []
    members: list[Mapping[str, Any]] = []
    for line in lines:
        kind = line["type"]
        if kind == "member":
            members.append(line["data"])
        elif kind == "ledger":
            if progress.get("phase") == "member":
                _end_members(conn, progress, members, at)
                members = []
            entries.append((entry_from_wire(line["data"]), line.get("server_seq")))
            progress.update(phase="ledger", after=line["key"])
        elif kind == "header":
            if not resumable(progress) or progress.get("cursor") != line["cursor"]:
                progress = {"format": SNAPSHOT_FORMAT, "cursor": line["cursor"],
                            "phase": "member", "after": ""}
                _defer_indexes_if_empty(conn)
        elif kind == "end":
            if progress.get("phase") == "member":
                _end_members(conn, progress, members, at)
                members = []
            insert_remote(conn, entries, at)
            entries = []
            restore_indexes(conn, SNAPSHOT_DEFERRED_INDEXES)
            conn.execute("DELETE FROM sync_snapshot_seen")  # as older versions left it
            save_cursor(conn, int(line["cursor"]), at)
            progress = {}
    if members:
        _flush_members(conn, progress, members, at)
    insert_remote(conn, entries, at)
    if progress:
        set_state(conn, SNAPSHOT_STATE, progress, at)
    else:
        conn.execute("DELETE FROM sync_state WHERE name = ?", (SNAPSHOT_STATE,))


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


def _flush_members(conn: sqlite3.Connection, progress: dict[str, Any],
                   members: list[Mapping[str, Any]], at: str) -> None:
    """Apply members that follow `progress["after"]` in key order, erase the edge's
    members in the gaps between them, and move `after` to the last one."""
    after = first = progress.get("after", "")
    keys = [m["member_id"] for m in members]
    for key in keys:
        if key <= after:
            raise SnapshotOrderError(key, after)
        after = key
    # One range read gives the versions the edge has and the members central no longer
    # has; on an empty store (the first sync) it finds nothing.
    current = versions_between(conn, first, after)
    if current:
        for gone in current.keys() - set(keys):
            erase_member(conn, gone)
            del current[gone]
    upsert_members(conn, members, at, current=current)
    progress.update(phase="member", after=after)


def _end_members(conn: sqlite3.Connection, progress: dict[str, Any],
                 members: list[Mapping[str, Any]], at: str) -> None:
    """The member phase is over: the last members, then every member of the edge after
    the last one of the snapshot goes; the ledger phase starts."""
    if members:
        _flush_members(conn, progress, members, at)
    for member_id in ids_after(conn, progress.get("after", "")):
        erase_member(conn, member_id)
    progress.update(phase="ledger", after="")
