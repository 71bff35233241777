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


def _utc_text(at: datetime) -> str:
    return (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat(timespec="microseconds")


# The instant converted last and its text: recording an entry converts one `now` several
# times (its effective and recorded times, the kiosk reply's). Swapped as one tuple, so a
# thread never sees half of it; holding the datetime keeps the identity check sound.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_last_text: list[tuple[datetime, str]] = [(_EPOCH, _utc_text(_EPOCH))]


def to_text(at: datetime | None) -> str | None:
    """Fixed-width UTC text, so SQL ordering by the column is time ordering."""
    if at is None:
        return None
    last_at, last_text = _last_text[0]
    if last_at is at:
        return last_text
    text = _utc_text(at)
    _last_text[0] = (at, text)
    return text


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def entry_to_row(entry: Entry) -> dict[str, Any]:
    """The entry as a row, keyed in `COLUMNS` order (so `tuple(row.values())` binds to
    positional placeholders); spelled out rather than looped, as every recording runs it."""
    return {
        "entry_id": entry.entry_id, "account_id": entry.account_id,
        "member_id": entry.member_id, "kind": entry.kind.value, "points": entry.points,
        "qual_fen": entry.qual_fen, "lot_id": entry.lot_id,
        "expires_at": to_text(entry.expires_at), "available_at": to_text(entry.available_at),
        "ref_entry_id": entry.ref_entry_id, "source_type": entry.source_type,
        "source_key": entry.source_key, "rule_version": entry.rule_version,
        "reason": entry.reason, "origin_site": entry.origin_site,
        "origin_seq": entry.origin_seq, "hlc": entry.hlc,
        "effective_at": to_text(entry.effective_at), "recorded_at": to_text(entry.recorded_at),
        "actor": entry.actor,
    }


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
