"""Forgetting the dead letters that name an erased member.

A dead letter keeps refused input masked (`gateway.redaction`), but a member id, or a card
code that is not card-shaped (`VIP00042`), stays readable: it is what ties a refusal to a
member when diagnosing. When central erases the member those letters go, whatever their
age: they are found by the member's id and identifiers as whole words (`M1` is not in
`M10`) in the raw input, the error and the context. A POS capture that pointed at one loses
its raw bytes as well (the unmasked copy of the same receipt).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])")


def mentions(data: bytes | str, names: Iterable[str]) -> bool:
    """Whether `data` holds any of `names` as a whole word."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return any(_word(name).search(text) for name in names if name)


def forget_letters_naming(conn: sqlite3.Connection, names: Sequence[str]) -> int:
    """Delete the dead letters that name any of `names`, in the caller's transaction;
    how many went."""
    names = [name for name in names if name]
    if not names:
        return 0
    # instr narrows the scan in SQLite; the whole-word check is done here.
    where = " OR ".join("instr(raw, ?) OR instr(error, ?) OR instr(context, ?)"
                        for _ in names)
    args = [arg for name in names for arg in (name.encode(), name, name)]
    letters = [row[0] for row in conn.execute(
        f"SELECT id, raw, error, context FROM dead_letters WHERE {where}", args)
        if any(mentions(part, names) for part in row[1:])]
    for i in range(0, len(letters), 500):
        chunk = letters[i:i + 500]
        ids = ", ".join("?" * len(chunk))
        conn.execute(f"UPDATE pos_captures SET raw = x'', dead_letter_id = NULL "
                     f"WHERE dead_letter_id IN ({ids})", chunk)
        conn.execute(f"DELETE FROM dead_letters WHERE id IN ({ids})", chunk)
    return len(letters)
