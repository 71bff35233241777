"""Stored POS captures for installers: listing them and turning their bytes into text.

Reads the store read-only (safe beside a running gateway). A capture's text is what a
template reads: the printed text of an ESC/POS job (with the payloads of its QR codes and
barcodes), or the JSON of a frame or line.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from devices.pos.escpos import codes as code_payloads
from devices.pos.escpos import receipt_text, tokenize
from devices.pos.framing import FrameDecoder, LineDecoder, Message

_COLUMNS = ("id, store_id, pos_id, mode, received_at, status, length(raw), receipt_id, "
            "dead_letter_id")


@dataclass(frozen=True, slots=True)
class CaptureRow:
    id: int
    store_id: str
    pos_id: str
    mode: str
    received_at: str
    status: str
    size: int  # bytes kept (0 once pruned by [store] pos_capture_retention_days)
    receipt_id: int | None
    dead_letter_id: int | None


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    codes: list[str]  # QR code and barcode payloads (escpos)


def list_captures(conn: sqlite3.Connection, *, store_id: str | None = None,
                  limit: int = 50) -> list[CaptureRow]:
    """The newest captures first, of one store or all."""
    where, args = ("WHERE store_id = ? ", (store_id,)) if store_id else ("", ())
    rows = conn.execute(f"SELECT {_COLUMNS} FROM pos_captures {where}ORDER BY id DESC LIMIT ?",
                        (*args, limit)).fetchall()
    return [CaptureRow(*row) for row in rows]


def get_capture(conn: sqlite3.Connection, capture_id: int) -> tuple[CaptureRow, bytes] | None:
    row = conn.execute(f"SELECT {_COLUMNS}, raw FROM pos_captures WHERE id = ?",
                       (capture_id,)).fetchone()
    if row is None:
        return None
    return CaptureRow(*row[:-1]), bytes(row[-1])


def decode(mode: str, raw: bytes, encoding: str = "gb18030") -> Decoded:
    """The text a template (escpos) or the payload reader (framed, jsonl) sees."""
    if mode == "escpos":
        tokens = tokenize(raw, encoding)
        return Decoded(receipt_text(tokens),
                       [c.decode("utf-8", "replace") for c in code_payloads(tokens)])
    decoder = FrameDecoder() if mode == "framed" else LineDecoder()
    messages = [e for e in decoder.receive(raw, 0.0) if isinstance(e, Message)]
    if not messages:
        return Decoded(raw.decode("utf-8", "replace"), [])
    return Decoded("\n".join(json.dumps(m.payload, ensure_ascii=False, indent=2)
                             for m in messages), [])


def numbered(text: str) -> list[str]:
    """`text` with 1-based line numbers, as `pos try-template` refers to them."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    width = len(str(len(lines)))
    return [f"{n:>{width}} | {line}" for n, line in enumerate(lines, start=1)]
