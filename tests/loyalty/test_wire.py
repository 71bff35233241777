"""Entries on the wire: every field in order, times as fixed-width UTC text, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings

from gateway.loyalty import Entry
from gateway.loyalty.wire import FIELDS, entry_from_json, entry_to_wire, to_text
from tests.loyalty.canonical import entry_to_json
from tests.loyalty.helpers import SHANGHAI
from tests.loyalty.test_properties import histories
from tests.scale import examples


def reference_object(entry: Entry) -> dict[str, Any]:
    """The wire object spelled generically: every field read off the entry by name."""
    row: dict[str, Any] = {name: getattr(entry, name) for name in FIELDS}
    row["kind"] = entry.kind.value
    for name in ("expires_at", "available_at", "effective_at", "recorded_at"):
        value = row[name]
        row[name] = None if value is None else value.astimezone(UTC).isoformat(
            timespec="microseconds")
    return row


@settings(max_examples=examples(100), deadline=None)
@given(histories())
def test_the_wire_object_has_every_field_in_order_and_reads_back(entries: list[Entry]) -> None:
    for n, entry in enumerate(entries):
        stamped = entry.stamped(origin_site="gw-1", origin_seq=n + 1, hlc=f"h{n}",
                                recorded_at=entry.effective_at + timedelta(seconds=n))
        wire = entry_to_wire(stamped)
        assert tuple(wire) == FIELDS
        assert wire == reference_object(stamped)
        back = entry_from_json(entry_to_json(stamped))
        assert back == stamped and back.lot_id == stamped.lot_id


def test_to_text_of_each_instant_is_its_own() -> None:
    # Repeated and interleaved conversions: the one remembered text never leaks to another.
    a = datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC)
    b = datetime(2026, 3, 1, 20, 0, 0, 1, tzinfo=SHANGHAI)  # the same instant as `a`
    c = a + timedelta(microseconds=1)
    for _ in range(2):
        assert to_text(a) == "2026-03-01T12:00:00.000001+00:00"
        assert to_text(a) == "2026-03-01T12:00:00.000001+00:00"
        assert to_text(b) == "2026-03-01T12:00:00.000001+00:00"
        assert to_text(c) == "2026-03-01T12:00:00.000002+00:00"
        assert to_text(None) is None
