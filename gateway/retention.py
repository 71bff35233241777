"""Retention: what the edge keeps of refused input and of POS bytes, and for how long.

DESIGN.md section 4 keeps refused input (dead letters) to be read and replayed, and every
POS capture's raw bytes so a receipt can be read again after a template fix. Both may hold
personal data (a capture's bytes are not masked: they are what a replay parses), so
neither is kept for ever:

- a dead letter is deleted after `[store] dead_letter_retention_days`; a POS capture that
  pointed at it keeps its status, without the letter;
- the raw bytes of a POS capture and of its receipt are deleted (emptied) after
  `[store] pos_capture_retention_days`; the parsed receipt row stays, with its points. A
  capture not processed yet (`new`) keeps its bytes whatever its age.

Work is done in batches of `BATCH_ROWS`, each its own writer op, so a first prune of a
large old store never holds the single writer for long.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

BATCH_ROWS = 1000


@dataclass(frozen=True, slots=True)
class Pruned:
    dead_letters: int = 0
    pos_captures: int = 0  # captures whose raw bytes were deleted
    receipts: int = 0  # receipts whose copy of those bytes was deleted

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.dead_letters + other.dead_letters,
                      self.pos_captures + other.pos_captures, self.receipts + other.receipts)

    @property
    def total(self) -> int:
        return self.dead_letters + self.pos_captures + self.receipts


def prune_batch(conn: sqlite3.Connection, *, dead_letters_before: str, captures_before: str,
                limit: int = BATCH_ROWS) -> Pruned:
    """At most `limit` rows of each kind older than its cutoff (store UTC texts), in the
    caller's transaction."""
    letters = [row[0] for row in conn.execute(
        "SELECT id FROM dead_letters WHERE received_at < ? ORDER BY id LIMIT ?",
        (dead_letters_before, limit))]
    if letters:
        ids = ", ".join("?" * len(letters))
        conn.execute(f"UPDATE pos_captures SET dead_letter_id = NULL "
                     f"WHERE dead_letter_id IN ({ids})", letters)
        conn.execute(f"DELETE FROM dead_letters WHERE id IN ({ids})", letters)
    captures = conn.execute(
        "UPDATE pos_captures SET raw = x'' WHERE id IN (SELECT id FROM pos_captures "
        "WHERE received_at < ? AND status != 'new' AND length(raw) > 0 LIMIT ?)",
        (captures_before, limit)).rowcount
    receipts = conn.execute(
        "UPDATE receipts SET raw = x'' WHERE id IN (SELECT id FROM receipts "
        "WHERE received_at < ? AND length(raw) > 0 LIMIT ?)", (captures_before, limit)).rowcount
    return Pruned(len(letters), captures, receipts)


def due(conn: sqlite3.Connection, *, dead_letters_before: str, captures_before: str) -> bool:
    """Whether anything is past its period: a read, so a day with nothing to prune costs
    the writer nothing."""
    return bool(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM dead_letters WHERE received_at < ?1) "
        "OR EXISTS (SELECT 1 FROM pos_captures WHERE received_at < ?2 AND status != 'new' "
        "AND length(raw) > 0) "
        "OR EXISTS (SELECT 1 FROM receipts WHERE received_at < ?2 AND length(raw) > 0)",
        (dead_letters_before, captures_before)).fetchone()[0])


def prune(conn: sqlite3.Connection, *, dead_letters_before: str,
          captures_before: str) -> Pruned:
    """Everything older than its cutoff, in one transaction (tests and small stores)."""
    pruned = Pruned()
    while True:
        batch = prune_batch(conn, dead_letters_before=dead_letters_before,
                            captures_before=captures_before)
        pruned += batch
        if batch.total == 0:
            return pruned
