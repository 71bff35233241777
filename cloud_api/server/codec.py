"""Text central stores and sends as it is: entries, member views, snapshot lines."""

from __future__ import annotations

import orjson

from gateway.loyalty import Entry
from gateway.loyalty.wire import entry_to_wire


def entry_text(entry: Entry) -> str:
    """The entry's canonical wire text, byte for byte `wire.entry_to_json`, in a fraction of
    its time: every accepted event is encoded once, on the push path."""
    return orjson.dumps(entry_to_wire(entry), option=orjson.OPT_SORT_KEYS).decode()
