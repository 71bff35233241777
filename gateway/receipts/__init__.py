"""Receipts in the core: the capture pipeline (POS in, credited sales out) and claiming.

`model` is what a receipt is, `pipeline` stores and credits captures, `claim` credits an
unclaimed sale to a member at a kiosk, `rows` reads receipts inside a transaction.
"""

from gateway.receipts.claim import (
    ClaimResult,
    ReceiptAlreadyClaimed,
    ReceiptClaimError,
    ReceiptClaimExpired,
    ReceiptNotFound,
    claim_deadline,
    claim_receipt,
)
from gateway.receipts.model import Line, ParsedReceipt, ReceiptKind, UnreadableReceipt, sale_key
from gateway.receipts.pipeline import (
    DEAD_LETTER_SOURCE,
    Capture,
    Outcome,
    PipelineStats,
    ReceiptPipeline,
)

__all__ = [
    "DEAD_LETTER_SOURCE", "Capture", "ClaimResult", "Line", "Outcome", "ParsedReceipt",
    "PipelineStats", "ReceiptAlreadyClaimed", "ReceiptClaimError", "ReceiptClaimExpired",
    "ReceiptKind", "ReceiptNotFound", "ReceiptPipeline", "UnreadableReceipt", "claim_deadline",
    "claim_receipt", "sale_key",
]
