"""Ledger rows of the edge's SQLite store: the entry's wire fields as columns.

A row holds exactly the wire object of `gateway.loyalty.wire`, field for column in the same
order, so one `entry_to_wire` both binds the row and becomes the outbox payload.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from gateway.loyalty import Entry, EntryKind
from gateway.loyalty.wire import FIELDS, from_text

COLUMNS = FIELDS  # the ledger table's columns, in table order


def tuple_to_entry(row: tuple[Any, ...]) -> Entry:
    """A ledger row selected as `COLUMNS` in order. Rows were validated before they were
    written and the table is append-only, so they are not validated again."""
    values = dict(zip(COLUMNS, row, strict=False))
    del values["lot_id"]  # derived from the kind, not stored state
    values["kind"] = EntryKind(values["kind"])
    values["effective_at"] = datetime.fromisoformat(values["effective_at"])
    for name in ("expires_at", "available_at", "recorded_at"):
        values[name] = from_text(values[name])
    return Entry.trusted(values)


def row_to_json(row: dict[str, Any]) -> str:
    # Byte for byte the wire object's canonical text (`gateway.loyalty.wire`: sorted keys,
    # no spaces, characters as they are), fast: this runs once per recorded entry.
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode()
