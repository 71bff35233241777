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
    frame_answer,
    frame_nak,
    line_ack,
    line_nak,
    line_refused,
    line_reply,
)
from devices.pos.jobs import Job, Splitter
from devices.pos.requests import MessageType, authorize_request, message_type, void_request
from devices.pos.templates import (
    Template,
    classify,
    parse_receipt,
    receipt_from_payload,
)
from gateway.receipts import ParsedReceipt, ReceiptKind

__all__ = [
    "CodecError", "FrameDecoder", "FrameError", "Job", "Kind", "LineDecoder", "Message",
    "MessageType", "ParsedReceipt", "PosError", "ReceiptKind", "ReceiptParseError",
    "Rejected", "Splitter", "Template", "Token", "Tokenizer", "authorize_request",
    "classify", "codes", "crc16_xmodem", "encode_frame", "encode_line", "frame_ack",
    "frame_answer", "frame_nak", "line_ack", "line_nak", "line_refused", "line_reply",
    "message_type", "parse_receipt", "receipt_from_payload", "receipt_text", "tokenize",
    "void_request",
]
