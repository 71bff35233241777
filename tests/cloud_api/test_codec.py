"""Central stores each entry as the canonical wire text, encoded its own faster way."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings

from cloud_api.server.codec import entry_text
from gateway.loyalty import Entry
from tests.loyalty.canonical import entry_to_json
from tests.loyalty.test_properties import histories
from tests.scale import examples


@settings(max_examples=examples(50), deadline=None)
@given(histories())
def test_entry_text_is_the_canonical_wire_text(entries: list[Entry]) -> None:
    for n, entry in enumerate(entries):
        stamped = entry.stamped(origin_site="gw-1", origin_seq=n + 1, hlc=f"h{n}",
                                recorded_at=entry.effective_at + timedelta(seconds=n))
        assert entry_text(stamped) == entry_to_json(stamped)
