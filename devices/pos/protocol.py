"""The sans-io protocol cores of the POS device kind, in one place.

Nothing here does I/O: the ESC/POS tokenizer and receipt splitter, the `framed` and
`jsonl` codecs and the template reader are pure objects fed bytes and text.
"""

from devices.pos.errors import CodecError, FrameError, PosError, ReceiptParseError
from devices.pos.escpos import Kind, Token, Tokenizer, codes, receipt_text, tokenize
from devices.pos.framing import (
    FrameDecoder,
    LineDecoder,
    Message,
    Rejected,
    crc16_xmodem,
    encode_frame,
    encode_line,
    frame_ack,
    frame_nak,
    line_ack,
    line_nak,
)
from devices.pos.jobs import Job, Splitter
from devices.pos.templates import (
    Template,
    classify,
    parse_receipt,
    receipt_from_payload,
)
from gateway.receipts import ParsedReceipt, ReceiptKind

__all__ = [
    "CodecError", "FrameDecoder", "FrameError", "Job", "Kind", "LineDecoder", "Message",
    "ParsedReceipt", "PosError", "ReceiptKind", "ReceiptParseError", "Rejected", "Splitter",
    "Template", "Token", "Tokenizer", "classify", "codes", "crc16_xmodem", "encode_frame",
    "encode_line", "frame_ack", "frame_nak", "line_ack", "line_nak", "parse_receipt",
    "receipt_from_payload", "receipt_text", "tokenize",
]
