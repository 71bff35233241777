"""An entry on the wire: the JSON object every site exchanges, and its timestamp text.

The edge's outbox, central's ledger and change feed, and the snapshot all carry an entry
as this one object: every field by name, kinds as their value, times as fixed-width UTC
ISO-8601 text (so ordering the text orders the times). Its canonical text has sorted keys,
no spaces and characters as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.loyalty.entries import Entry, EntryKind

# Every field of the object, in this order (the edge's ledger table has them as its
# columns, in the same order, so a row binds positionally).
FIELDS = (
    "entry_id", "account_id", "member_id", "kind", "points", "qual_fen", "lot_id",
    "expires_at", "available_at", "ref_entry_id", "source_type", "source_key",
    "rule_version", "reason", "origin_site", "origin_seq", "hlc", "effective_at",
    "recorded_at", "actor",
)
TIMES = ("expires_at", "available_at", "effective_at", "recorded_at")

def _utc_text(at: datetime) -> str:
    return (at if at.tzinfo is UTC else at.astimezone(UTC)).isoformat(timespec="microseconds")


# The instant converted last and its text: recording an entry converts one `now` several
# times (its effective and recorded times, the kiosk reply's). Swapped as one tuple, so a
# thread never sees half of it; holding the datetime keeps the identity check sound.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_last_text: list[tuple[datetime, str]] = [(_EPOCH, _utc_text(_EPOCH))]


def to_text(at: datetime | None) -> str | None:
    """Fixed-width UTC text, so ordering by the text is time ordering."""
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


def entry_to_wire(entry: Entry) -> dict[str, Any]:
    """The entry as its wire object, keyed in `FIELDS` order; spelled out rather than
    looped, as every recording runs it."""
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


def entry_from_wire(data: Mapping[str, Any]) -> Entry:
    """The entry a wire object describes, validated (`InvalidEntry`, or `KeyError`,
    `ValueError`, `TypeError` for a missing or malformed field). `lot_id` is derived from
    the kind, so the object's own is not read."""
    values = {name: data[name] for name in FIELDS if name != "lot_id"}
    values["kind"] = EntryKind(values["kind"])
    for name in TIMES:
        values[name] = from_text(values[name])
    return Entry(**values)


def entry_from_json(text: str) -> Entry:
    return entry_from_wire(json.loads(text))
