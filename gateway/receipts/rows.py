"""Reading receipts and their ledger entries inside a writer transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.ledger.codec import COLUMNS
from gateway.loyalty import Entry, EntryKind, entry_id_for
from gateway.loyalty.wire import entry_from_wire, to_text


def utc_text(at: datetime) -> str:
    text = to_text(at)
    assert text is not None  # noqa: S101 - to_text maps only None to None
    return text


def receipt_row(conn: sqlite3.Connection, where: str, args: Sequence[object],
                 ) -> dict[str, Any] | None:
    cursor = conn.execute(
        "SELECT id, store_id, pos_id, receipt_no, business_date, parsed, parse_status, "
        f"member_id, kind FROM receipts WHERE {where}", tuple(args))
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cursor.description], row, strict=True))


def ledger_entry(conn: sqlite3.Connection, source_type: str, key: str,
                  kind: EntryKind) -> Entry | None:
    row = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM ledger WHERE entry_id = ?",
                       (entry_id_for(source_type, key, kind),)).fetchone()
    return entry_from_wire(dict(zip(COLUMNS, row, strict=True))) if row else None


def refunds_of(conn: sqlite3.Connection, key: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT store_id, pos_id, receipt_no, business_date, parsed FROM receipts "
        "WHERE kind = 'refund' AND json_extract(parsed, '$.original_key') = ? ORDER BY id",
        (key,)).fetchall()
    return [{"store_id": r[0], "pos_id": r[1], "receipt_no": r[2], "business_date": r[3],
             "parsed": json.loads(r[4])} for r in rows]
