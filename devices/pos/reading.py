"""Reading a stored capture: the parser the core's receipt pipeline calls for POS captures.

A capture keeps the bytes exactly as they came off the line (a whole print job, a frame
or a JSON line), so a receipt can be read again after its store's template is fixed.
"""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

from devices.pos.errors import ReceiptParseError
from devices.pos.escpos import codes as payloads
from devices.pos.escpos import receipt_text, tokenize
from devices.pos.framing import FrameDecoder, LineDecoder, Message
from devices.pos.templates import Template, parse_receipt, receipt_from_payload
from gateway.receipts import Capture, ParsedReceipt
from gateway.settings.pos import PosSettings, ReceiptTemplate


def compile_template(t: ReceiptTemplate) -> Template:
    fields = {name: getattr(t, name) for name in (
        "receipt_no", "occurred_at", "total", "payment", "points_used", "member_code",
        "original_no") if getattr(t, name)}
    markers = {name: getattr(t, f"{name}_marker") for name in ("refund", "copy", "non_sale")
               if getattr(t, f"{name}_marker")}
    return Template.compile(t.store_id, fields=fields, markers=markers, item=t.item or None,
                            datetime_format=t.datetime_format,
                            categories=tuple((c.category, c.name, c.sku)
                                             for c in t.categories))


class CaptureReader:
    """`reader(capture) -> ParsedReceipt`; raises `ReceiptParseError` when it cannot."""

    def __init__(self, settings: PosSettings, tz: tzinfo) -> None:
        self.tz = tz
        self.templates = {t.store_id: compile_template(t) for t in settings.templates}
        self.encodings = {(p.store_id, p.pos_id): p.encoding for p in settings.ports}

    def __call__(self, capture: Capture) -> ParsedReceipt:
        if capture.mode == "escpos":
            return self._escpos(capture)
        if capture.mode == "http":
            return receipt_from_payload(http_payload(capture.raw), self.tz)
        decoder = FrameDecoder() if capture.mode == "framed" else LineDecoder()
        events = decoder.receive(capture.raw, 0.0)
        message = next((e for e in events if isinstance(e, Message)), None)
        if message is None:
            raise ReceiptParseError("capture holds no valid message", code="bad_frame")
        return receipt_from_payload(message.payload, self.tz)

    def _escpos(self, capture: Capture) -> ParsedReceipt:
        template = self.templates.get(capture.store_id)
        if template is None:
            raise ReceiptParseError(f"no template for store {capture.store_id}",
                                    code="no_template")
        encoding = self.encodings.get((capture.store_id, capture.pos_id), "gb18030")
        tokens = tokenize(capture.raw, encoding)
        codes = [code.decode("utf-8", "replace") for code in payloads(tokens)]
        return parse_receipt(template, receipt_text(tokens), codes, self.tz)



def http_payload(raw: bytes) -> dict[str, Any]:
    """A sale posted over HTTP: its body, one JSON receipt as on framed and jsonl."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ReceiptParseError(f"the body is not UTF-8 JSON: {exc}", code="bad_payload",
                                ) from exc
    if not isinstance(payload, dict):
        raise ReceiptParseError("the body is not a JSON object", code="bad_payload")
    return payload
