"""One page of central's change feed, applied change by change, defensively.

Each change is checked (`sync.checks`) and applied on its own savepoint: one the edge
cannot apply, because it is invalid or because applying it raised, is refused (a dead
letter, its member held; `sync.held`) and the rest of the page goes on. A change of a
held member waits in `sync_held`, unless it resolves the hold: an erasure, or a valid
profile after refused profiles. Ledger entries are checked in order and inserted together
at the end of the page (set-wise, as before); should that insert fail, they are inserted
one by one and only the failing ones are refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from gateway.coupons import put_campaign, receive_in
from gateway.ledger.service import insert_remote
from gateway.loyalty import Entry, Plausibility
from gateway.loyalty.hlc import HybridClock, Stamp
from gateway.loyalty.versions import RULES_KIND
from gateway.loyalty.wire import from_text
from gateway.members import erase_member, upsert_member, upsert_members
from sync import held as holds
from sync.checks import (
    Refused,
    check_allowance,
    check_campaign,
    check_coupon_change,
    check_document,
    check_entry,
    check_member,
    document_text,
    is_id,
)

T = TypeVar("T")
MEMBER_KINDS = frozenset({"member.upsert", "member.erased"})
DOCUMENT_KINDS = frozenset({"offer.upsert", "config.version"})
# A stamp from central more than this ahead of the local clock is not believed: the
# gateway's clock moves past every stamp it observes, and one from a clock years ahead
# would drag every later local stamp with it.
MAX_STAMP_AHEAD_MS = 24 * 3600 * 1000


@dataclass(slots=True)
class Applied:
    entries: int = 0
    members: int = 0
    erased: int = 0
    documents: int = 0
    coupons: int = 0
    refused: int = 0
    held: int = 0
    released: int = 0
    skipped: list[str] = field(default_factory=list)


def _subject(change: object) -> tuple[str, str | None]:
    """The change's kind and the member it is about (None: no member, or unreadable)."""
    if type(change) is not dict:
        raise Refused("invalid_change", "a change must be an object")
    kind = change.get("kind")
    if type(kind) is not str or len(kind) > 64:
        raise Refused("invalid_change", "a change needs a kind")
    if type(change.get("server_seq")) is not int:
        raise Refused("invalid_change", "a change needs its server_seq")
    key = change.get("key")
    if kind in MEMBER_KINDS:
        return kind, key if is_id(key) else None
    if kind == "ledger.entry":
        payload = change.get("payload")
        member = payload.get("member_id") if type(payload) is dict else None
        return kind, member if is_id(member) else None
    return kind, None


class FeedPage:
    """Applies changes inside the caller's transaction; `applied` counts what happened."""

    def __init__(self, conn: sqlite3.Connection, *, at: str, limits: Plausibility,
                 cursor: int | None, clock: HybridClock | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        self.conn = conn
        self.at = at
        self.limits = limits
        self.cursor = cursor
        self.clock = clock
        self.now_ms = now_ms or (lambda: int(datetime.fromisoformat(at).timestamp() * 1000))
        self.applied = Applied()
        self.held = holds.held_members(conn)
        self._entries: list[tuple[Entry, int | None, Mapping[str, Any]]] = []

    # -- one change ---------------------------------------------------------------------
    def apply(self, change: Mapping[str, Any]) -> None:
        try:
            kind, member = _subject(change)
        except Refused as refused:
            self.refuse(change, refused, kind="unknown", member=None)
            return
        if member is not None and member in self.held:
            if not self._resolves_hold(kind, member, change):
                holds.hold(self.conn, member, change, kind, self.at)
                self.applied.held += 1
                return
            self._release(member, f"superseded by {kind} at seq {change['server_seq']}")
        try:
            self._apply(kind, change)
        except Refused as refused:
            self.refuse(change, refused, kind=kind, member=member)

    def _resolves_hold(self, kind: str, member: str, change: Mapping[str, Any]) -> bool:
        """An erasure ends a member's hold; so does a valid profile, when what holds the
        member are refused profiles (central's later profile replaces them)."""
        if kind == "member.erased":
            return True
        if kind != "member.upsert" or not change.get("payload"):
            return False
        try:
            check_member(change.get("payload"), change.get("key"))
        except Refused:
            return False
        return holds.refused_kinds(self.conn, member) <= {"member.upsert", "snapshot.member"}

    def _release(self, member: str, why: str) -> None:
        self.held.discard(member)
        waiting = holds.release(self.conn, member, why, self.at)
        self.applied.released += len(waiting)
        for change in waiting:
            self.apply(change)

    def _apply(self, kind: str, change: Mapping[str, Any]) -> None:
        payload, key = change.get("payload"), change.get("key")
        if kind == "ledger.entry":
            entry = check_entry(payload, self.limits)
            stamp = self._stamp(entry)
            self._entries.append((entry, change["server_seq"], change))
            if self.clock is not None and stamp is not None:
                self.clock.observe(stamp)
        elif kind == "member.upsert":
            if payload:  # empty: an upsert scrubbed by a later erasure
                view = check_member(payload, key)
                self._guarded(lambda: upsert_member(self.conn, view, self.at))
                self.applied.members += 1
        elif kind == "member.erased":
            if not is_id(key):
                raise Refused("invalid_change", "an erasure needs the member's id")
            member: str = key
            erased = self._guarded(lambda: erase_member(self.conn, member))
            self.applied.erased += erased
        elif kind == "coupon.upsert":
            if not payload:  # scrubbed by a later erasure of its member
                return
            coupon, facts = check_coupon_change(key, payload)
            at = from_text(self.at)
            assert at is not None  # noqa: S101 - the page's time is always set
            kept = self._guarded(lambda: receive_in(self.conn, coupon, facts, now=at))
            self.applied.coupons += kept
        elif kind == "coupon_campaign.upsert":
            definition = check_campaign(key, payload)
            campaign_id = str(key)
            self._guarded(lambda: put_campaign(self.conn, campaign_id, definition, self.at))
            self.applied.documents += 1
        elif kind in DOCUMENT_KINDS:
            document = check_document(kind, key, payload)
            name: str = change["key"]  # checked: an id
            self._guarded(lambda: put_document(self.conn, kind, name, document, self.at))
            self.applied.documents += 1
        else:
            self.applied.skipped.append(kind)  # a newer central's operation: ignored, counted

    def _stamp(self, entry: Entry) -> Stamp | None:
        if not entry.hlc:
            return None
        try:
            stamp = Stamp.parse(entry.hlc)
        except ValueError as exc:
            raise Refused("invalid_entry", str(exc)) from None
        if stamp.wall > self.now_ms() + MAX_STAMP_AHEAD_MS:
            raise Refused("invalid_entry", f"entry {entry.entry_id} is stamped more than a "
                          f"day ahead of this gateway's clock ({entry.hlc})")
        return stamp

    def _guarded(self, write: Callable[[], T]) -> T:
        """A write on its own savepoint: if the store refuses it, nothing of it stays."""
        self.conn.execute("SAVEPOINT change")
        try:
            result = write()
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK TO change")
            self.conn.execute("RELEASE change")
            raise Refused("not_applied", f"the store refused it: {exc}") from None
        self.conn.execute("RELEASE change")
        return result

    def refuse(self, change: object, refused: Refused, *, kind: str,
               member: str | None) -> None:
        seq = change.get("server_seq") if type(change) is dict else None
        key = change.get("key") if type(change) is dict else None
        holds.refuse(self.conn, change, refused, kind=kind, member_id=member, context={
            "server_seq": seq if type(seq) is int else None,
            "key": key if type(key) is str else None, "cursor": self.cursor}, at=self.at)
        if member is not None:
            self.held.add(member)
        self.applied.refused += 1

    # -- an operator's decision ----------------------------------------------------------
    def discard(self, letter_id: int, why: str) -> None:
        """Give up a refused change for good; once its member has no other refused
        change, what waited behind it is applied, in the order it came."""
        row = self.conn.execute("SELECT member_id FROM sync_held WHERE letter_id = ?",
                                (letter_id,)).fetchone()
        holds.resolve(self.conn, [letter_id], why, self.at)
        self.conn.execute("DELETE FROM sync_held WHERE letter_id = ?", (letter_id,))
        if row is not None and not holds.refused_kinds(self.conn, row[0]):
            self._release(row[0], why)

    # -- for the snapshot ----------------------------------------------------------------
    def forget(self, member: str, why: str) -> None:
        """End a member's hold without applying what waited: a newer state replaces it."""
        self.held.discard(member)
        holds.release(self.conn, member, why, self.at)

    def hold_change(self, member: str, change: Mapping[str, Any]) -> None:
        holds.hold(self.conn, member, change, str(change.get("kind")), self.at)
        self.applied.held += 1

    def add_entry(self, entry: Entry, seq: int | None, raw: Mapping[str, Any]) -> None:
        """A checked entry, inserted with the others at `flush_entries`."""
        self._entries.append((entry, seq, raw))

    def upsert_members(self, views: list[Mapping[str, Any]],
                       current: Mapping[str, int]) -> None:
        """Checked member views, set-wise; should the store refuse the set, one by one,
        refusing only the views it refuses."""
        if not views:
            return
        try:
            self._guarded(lambda: upsert_members(self.conn, views, self.at, current=current))
        except Refused:
            pass
        else:
            return
        for view in views:
            one = [view]
            try:
                self._guarded(lambda one=one: upsert_members(  # type: ignore[misc]
                    self.conn, one, self.at, current=current))
            except Refused as refused:
                self.refuse(view, refused, kind="snapshot.member", member=view["member_id"])

    # -- the end of the page ------------------------------------------------------------
    def finish(self, allowances: Mapping[str, Any] | None = None) -> Applied:
        self.flush_entries()
        if allowances:
            self._grant(allowances)
        return self.applied

    def flush_entries(self) -> None:
        entries, self._entries = self._entries, []
        if not entries:
            return
        pairs = [(entry, seq) for entry, seq, _ in entries]
        try:
            self.applied.entries += self._guarded(lambda: insert_remote(self.conn, pairs,
                                                                        self.at))
        except Refused:
            pass
        else:
            return
        for entry, seq, change in entries:  # one by one: refuse only what fails
            one = [(entry, seq)]
            try:
                self.applied.entries += self._guarded(
                    lambda one=one: insert_remote(self.conn, one, self.at))  # type: ignore[misc]
            except Refused as refused:
                self.refuse(change, refused, kind="ledger.entry", member=entry.member_id)

    def _grant(self, allowances: Mapping[str, Any]) -> None:
        """An allowance the edge cannot read is refused and the account's allowance is
        revoked (0): offline, its member redeems nothing until central grants again."""
        rows = []
        for account, points in allowances.items():
            try:
                rows.append((account, check_allowance(account, points, self.limits)))
            except Refused as refused:
                self.refuse({"account_id": account, "points": points}, refused,
                            kind="allowance", member=None)
                if is_id(account):
                    rows.append((account, 0))
        grant_allowances(self.conn, dict(rows), self.cursor or 0, self.at)


def put_document(conn: sqlite3.Connection, kind: str, key: str, payload: Mapping[str, Any],
                 at: str) -> None:
    if kind == "offer.upsert":
        conn.execute(
            "INSERT INTO offers (id, title, definition, valid_from, valid_until, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title, "
            "definition = excluded.definition, valid_from = excluded.valid_from, "
            "valid_until = excluded.valid_until, updated_at = excluded.updated_at",
            (key, str(payload.get("title", key)), document_text(payload, kind),
             payload.get("valid_from"), payload.get("valid_until"), at))
    else:
        # A version already kept stays as it was: a version names one document forever.
        conn.execute(
            "INSERT INTO config_versions (kind, version, payload, applied_at, effective_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key, str(payload.get("version")), document_text(payload.get("payload"), kind),
             at, payload.get("effective_at") if key == RULES_KIND else None))


def grant_allowances(conn: sqlite3.Connection, allowances: Mapping[str, int], seq: int,
                     at: str) -> None:
    conn.executemany(
        "INSERT INTO offline_allowances (account_id, points, granted_seq, granted_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET points = excluded.points, "
        "granted_seq = excluded.granted_seq, granted_at = excluded.granted_at",
        [(account, max(0, points), seq, at) for account, points in allowances.items()])


def apply_feed(conn: sqlite3.Connection, changes: Iterable[Mapping[str, Any]], *,
               allowances: Mapping[str, Any], cursor: int, at: str, limits: Plausibility,
               clock: HybridClock | None = None) -> Applied:
    page = FeedPage(conn, at=at, limits=limits, cursor=cursor, clock=clock)
    for change in changes:
        page.apply(change)
    return page.finish(allowances)
