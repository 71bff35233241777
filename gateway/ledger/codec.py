"""Entries to and from database rows and JSON: UTC ISO-8601 text, fixed width, sortable."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.loyalty import Entry, EntryKind

COLUMNS = (
    "entry_id", "account_id", "member_id", "kind", "points", "qual_fen", "lot_id",
    "expires_at", "available_at", "ref_entry_id", "source_type", "source_key",
    "rule_version", "reason", "origin_site", "origin_seq", "hlc", "effective_at",
    "recorded_at", "actor",
)
_TIMES = ("expires_at", "available_at", "effective_at", "recorded_at")


def to_text(at: datetime | None) -> str | None:
    """Fixed-width UTC text, so SQL ordering by the column is time ordering."""
    if at is None:
        return None
    return (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat(timespec="microseconds")


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def entry_to_row(entry: Entry) -> dict[str, Any]:
    row: dict[str, Any] = {name: getattr(entry, name) for name in COLUMNS}
    row["kind"] = entry.kind.value
    for name in _TIMES:
        row[name] = to_text(row[name])
    return row


def row_to_entry(row: sqlite3.Row | dict[str, Any]) -> Entry:
    values = {name: row[name] for name in COLUMNS if name != "lot_id"}
    values["kind"] = EntryKind(values["kind"])
    for name in _TIMES:
        values[name] = from_text(values[name])
    return Entry(**values)


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
    # Byte for byte what json.dumps(row, ensure_ascii=False, separators=(",", ":"),
    # sort_keys=True) gives, in a fraction of the time: this runs once per recorded entry.
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode()


def entry_to_json(entry: Entry) -> str:
    return row_to_json(entry_to_row(entry))


def entry_from_json(text: str) -> Entry:
    return row_to_entry(json.loads(text))
