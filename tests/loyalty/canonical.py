"""The canonical text of an entry's wire object, by the standard library: the reference
the product's fast encoders (`gateway.ledger.codec`, `cloud_api.server.codec`) are held
to byte for byte, and how tests write the payloads a gateway would push."""

from __future__ import annotations

import json

from gateway.loyalty import Entry
from gateway.loyalty.wire import entry_to_wire

_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def entry_to_json(entry: Entry) -> str:
    """Sorted keys, no spaces, characters as they are (`gateway.loyalty.wire`)."""
    return _CANONICAL.encode(entry_to_wire(entry))
