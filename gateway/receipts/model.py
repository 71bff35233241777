"""What the core knows of a receipt, whatever the protocol that carried it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any


class ReceiptKind(enum.Enum):
    SALE = "sale"
    REFUND = "refund"
    COPY = "copy"  # merchant/customer copy or reprint of a sale already printed
    NON_SALE = "non_sale"  # kitchen ticket, X/Z report, anything that is not a sale


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    amount_fen: int
    category: str | None = None  # for per-category earn multipliers (e.g. tobacco 0 %)


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    """A receipt as read from the POS, whatever the protocol."""

    kind: ReceiptKind
    receipt_no: str
    occurred_at: datetime  # aware, in the store's time zone
    total_fen: int
    points_paid_fen: int = 0
    points_used: int = 0
    payment: str | None = None
    member_code: str | None = None
    original_no: str | None = None  # a refund's original receipt
    lines: tuple[Line, ...] = ()
    hold_id: str | None = None  # the hold a till authorized the points payment with
    coupon_codes: tuple[str, ...] = ()  # the coupons the sale applied (its hold granted)

    @property
    def business_date(self) -> date:
        return self.occurred_at.date()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "receipt_no": self.receipt_no,
            "occurred_at": self.occurred_at.isoformat(),
            "business_date": self.business_date.isoformat(), "total_fen": self.total_fen,
            "points_paid_fen": self.points_paid_fen, "points_used": self.points_used,
            "payment": self.payment, "member_code": self.member_code,
            "original_no": self.original_no,
            "lines": [{"name": x.name, "amount_fen": x.amount_fen}
                      | ({"category": x.category} if x.category else {}) for x in self.lines],
            "hold_id": self.hold_id,
        } | ({"coupon_codes": list(self.coupon_codes)} if self.coupon_codes else {})


class UnreadableReceipt(ValueError):
    """A capture its parser cannot read; `code` is stable, for counters and dead letters."""

    def __init__(self, reason: str, *, code: str = "unreadable") -> None:
        super().__init__(reason)
        self.code = code


def sale_key(store_id: str, pos_id: str, receipt_no: str, business_date: date) -> str:
    return f"{store_id}:{pos_id}:{receipt_no}:{business_date.isoformat()}"
