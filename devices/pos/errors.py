"""The error tree of the POS codecs: every rejection carries its reason and the raw bytes."""

from __future__ import annotations

from gateway.receipts import UnreadableReceipt


class PosError(Exception):
    """Base of every error raised by `devices.pos`."""


class CodecError(PosError, ValueError):
    """Bytes a codec cannot accept. `raw` is kept for the dead-letter table."""

    def __init__(self, reason: str, *, code: str, raw: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.raw = raw


class FrameError(CodecError):
    """A framed or JSON-lines frame that fails its length, CRC or JSON checks."""


class ReceiptParseError(CodecError, UnreadableReceipt):
    """A receipt whose text the store's template cannot read."""
