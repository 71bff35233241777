"""Which dead letters can be replayed, and why one cannot: shared by `mallgate deadletters
replay` and the local API, so both refuse the same letters with the same words."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gateway.receipts import DEAD_LETTER_SOURCE


@dataclass(frozen=True, slots=True)
class Letter:
    id: int
    source: str
    capture_id: int | None
    replay_result: str | None  # set once it was replayed
    raw_kept: bool  # its capture still has its raw bytes ([store] pos_capture_retention_days)


def letters(conn: sqlite3.Connection, ids: tuple[int, ...]) -> dict[int, Letter]:
    """The letters among `ids`, or every pending POS letter when `ids` is empty."""
    query = ("SELECT id, source, json_extract(context, '$.capture_id'), replay_result, "
             "coalesce((SELECT length(raw) > 0 FROM pos_captures WHERE id = "
             "json_extract(context, '$.capture_id')), 0) FROM dead_letters ")
    if ids:
        rows = conn.execute(query + f"WHERE id IN ({', '.join('?' * len(ids))})", ids)
    else:
        rows = conn.execute(query + "WHERE source = ? AND replayed_at IS NULL",
                            (DEAD_LETTER_SOURCE,))
    return {row[0]: Letter(row[0], row[1], row[2], row[3], bool(row[4])) for row in rows}


def refusal(letter_id: int, letter: Letter | None) -> str | None:
    """Why the letter cannot be replayed, or None if it can."""
    if letter is None:
        return f"dead letter {letter_id}: no such dead letter"
    if letter.source != DEAD_LETTER_SOURCE or letter.capture_id is None:
        return (f"dead letter {letter_id}: not replayable (source {letter.source}; only "
                f"{DEAD_LETTER_SOURCE} dead letters are)")
    if letter.replay_result is not None:
        return (f"dead letter {letter_id}: not replayable (already replayed: "
                f"{letter.replay_result})")
    if not letter.raw_kept:
        return (f"dead letter {letter_id}: not replayable (its capture's raw bytes were "
                "deleted after [store] pos_capture_retention_days)")
    return None
