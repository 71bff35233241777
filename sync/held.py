"""Refused changes from central and the changes of their member that wait behind them.

A change the edge cannot apply is kept as a dead letter (source `sync`) with why, the
change's kind, sequence and member, and its member is *held*: later changes of that member
are kept in `sync_held` as they came, not applied, while every other member's changes go
on. The hold ends when the refused change is resolved: a newer valid profile of the member
supersedes a refused profile, an erasure supersedes everything of the member, and an
operator can discard it (`mallgate sync discard`). The held changes are then
applied in the order they came. All in the caller's transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.deadletters import keep
from sync.checks import Refused

DEAD_LETTER_SOURCE = "sync"


def pending_letter(conn: sqlite3.Connection, letter_id: int) -> str | None:
    """Why dead letter `letter_id` is not a refused change waiting, or None if it is."""
    row = conn.execute("SELECT source, replayed_at FROM dead_letters WHERE id = ?",
                       (letter_id,)).fetchone()
    if row is None:
        return f"dead letter {letter_id}: no such dead letter"
    if row[0] != DEAD_LETTER_SOURCE:
        return f"dead letter {letter_id}: not a change from central (source {row[0]})"
    if row[1] is not None:
        return f"dead letter {letter_id}: already resolved"
    return None


def held_members(conn: sqlite3.Connection) -> set[str]:
    """The members whose changes wait behind a refused one (usually none)."""
    return {row[0] for row in conn.execute("SELECT DISTINCT member_id FROM sync_held")}


def refuse(conn: sqlite3.Connection, raw: object, refused: Refused, *, kind: str,
           member_id: str | None, context: Mapping[str, str | int | None], at: str) -> int:
    """Keep a change the edge cannot apply, and hold its member; the dead letter's id."""
    try:
        text = json.dumps(raw, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(raw)
    letter = keep(conn, source=DEAD_LETTER_SOURCE, raw=text, code=refused.code,
                  error=str(refused),
                  context={"kind": kind, "member_id": member_id, **context}, at=at)
    if member_id is not None:
        conn.execute("INSERT INTO sync_held (member_id, kind, server_seq, letter_id, held_at) "
                     "VALUES (?, ?, ?, ?, ?)",
                     (member_id, kind, context.get("server_seq"), letter, at))
    return letter


def hold(conn: sqlite3.Connection, member_id: str, change: Mapping[str, Any], kind: str,
         at: str) -> None:
    """Keep a change of a held member, to apply once its member is released."""
    seq = change.get("server_seq")
    conn.execute("INSERT INTO sync_held (member_id, kind, server_seq, change, held_at) "
                 "VALUES (?, ?, ?, ?, ?)",
                 (member_id, kind, seq if type(seq) is int else None,
                  json.dumps(change, ensure_ascii=False), at))


def refused_kinds(conn: sqlite3.Connection, member_id: str) -> set[str]:
    """The kinds of the member's refused changes that hold it."""
    return {row[0] for row in conn.execute(
        "SELECT kind FROM sync_held WHERE member_id = ? AND letter_id IS NOT NULL",
        (member_id,))}


def release(conn: sqlite3.Connection, member_id: str, why: str, at: str,
            ) -> list[dict[str, Any]]:
    """End the member's hold: its refused changes are resolved (`why`), and the changes
    that waited are returned, in the order they came, for the caller to apply."""
    rows = conn.execute("SELECT change, letter_id FROM sync_held WHERE member_id = ? "
                        "ORDER BY id", (member_id,)).fetchall()
    conn.execute("DELETE FROM sync_held WHERE member_id = ?", (member_id,))
    resolve(conn, [letter for _, letter in rows if letter is not None], why, at)
    return [json.loads(change) for change, _ in rows if change is not None]


def resolve(conn: sqlite3.Connection, letters: list[int], why: str, at: str) -> None:
    conn.executemany("UPDATE dead_letters SET replayed_at = ?, replay_result = ? "
                     "WHERE id = ? AND replayed_at IS NULL",
                     [(at, why, letter) for letter in letters])


@dataclass(frozen=True, slots=True)
class Refusals:
    """Refused changes not yet resolved, as operators see them."""

    count: int = 0
    held: int = 0  # changes waiting behind them
    first: str | None = None  # the oldest one: what, whose, at which sequence, why

    def describe(self) -> str | None:
        if not self.count:
            return None
        noun = "change" if self.count == 1 else "changes"
        return (f"{self.count} {noun} from central refused ({self.held} held behind them); "
                f"first: {self.first}")


def refusals(conn: sqlite3.Connection) -> Refusals:
    row = conn.execute(
        "SELECT count(*), min(id) FROM dead_letters WHERE source = ? AND replayed_at IS NULL",
        (DEAD_LETTER_SOURCE,)).fetchone()
    if not row[0]:
        return Refusals()
    (held,) = conn.execute("SELECT count(*) FROM sync_held WHERE change IS NOT NULL").fetchone()
    error, context = conn.execute("SELECT error, context FROM dead_letters WHERE id = ?",
                                  (row[1],)).fetchone()
    where = json.loads(context)
    whose = where.get("member_id") or where.get("key") or ""
    seq = where.get("server_seq")
    at_seq = f" at seq {seq}" if seq is not None else ""
    first = f"{where.get('kind')} {whose}{at_seq}: {error}".replace("  ", " ")
    return Refusals(int(row[0]), int(held), first)
