"""Text central stores and sends as it is: entries, member views, snapshot lines."""

from __future__ import annotations

import json
from typing import Any

import orjson

from gateway.loyalty import Entry
from gateway.loyalty.wire import entry_to_wire


def entry_text(entry: Entry) -> str:
    """The entry's canonical wire text, byte for byte as `gateway.loyalty.wire` defines it
    (sorted keys, no spaces), fast: every accepted event is encoded once, on the push
    path."""
    return orjson.dumps(entry_to_wire(entry), option=orjson.OPT_SORT_KEYS).decode()


def view_json(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False, separators=(",", ":"))


def snapshot_line(kind: str, key: str, data_json: str, server_seq: int | None = None) -> str:
    """One NDJSON line of the snapshot, around stored JSON text that is not re-encoded."""
    seq = "" if server_seq is None else f',"server_seq":{server_seq}'
    return f'{{"type":"{kind}","key":{json.dumps(key)}{seq},"data":{data_json}}}'
