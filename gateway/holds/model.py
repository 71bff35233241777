"""What a till asks of holds and the refusals a sale spending points can meet: pure values."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

HoldCode = Literal[
    "hold_required",  # a sale spends points and names no hold
    "unknown_hold",  # no granted hold with this id
    "hold_till",  # the hold was granted to another till
    "hold_member",  # the sale's member is not the hold's
    "hold_captured",  # another sale already spent the hold
    "hold_voided",
    "hold_expired",
    "exceeds_hold",  # the sale spends more points than the hold granted
    "coupon_not_held",  # the sale names a coupon its hold did not grant
]
HOLD_CODES: frozenset[str] = frozenset(HoldCode.__args__)  # type: ignore[attr-defined]


class HoldRefused(Exception):
    """A capture or void the holds refuse, with a stable code for the till."""

    def __init__(self, code: HoldCode, msg: str) -> None:
        super().__init__(msg)
        self.code: HoldCode = code
        self.msg = msg


def hold_id_for(store_id: str, pos_id: str, request_id: str) -> str:
    """A hold's id from its till and request id: a resent request names the same hold."""
    digest = hashlib.sha256("\x1f".join(("mallgate/hold/v1", store_id, pos_id, request_id))
                            .encode()).hexdigest()
    return "H" + digest[:23]


@dataclass(frozen=True, slots=True)
class BasketLine:
    name: str
    amount_fen: int
    category: str | None = None
    sku: str | None = None  # for free item coupons
    quantity: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizeRequest:
    """A till asks to pay `points` of a basket of `total_fen` with a member's points and
    to take `coupon_codes` off it (points, coupons or both).

    `request_id` is the till's idempotency key: a resend gets the first answer."""

    store_id: str
    pos_id: str
    request_id: str
    member_code: str
    total_fen: int
    points: int
    lines: tuple[BasketLine, ...] = ()
    coupon_codes: tuple[str, ...] = ()
    partial: bool = True  # False: all the points asked, or none

    @property
    def hold_id(self) -> str:
        return hold_id_for(self.store_id, self.pos_id, self.request_id)

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "member_code": self.member_code,
                "total_fen": self.total_fen, "points": self.points,
                "lines": [{"name": x.name, "amount_fen": x.amount_fen,
                           "category": x.category, "sku": x.sku, "quantity": x.quantity}
                          for x in self.lines],
                "coupon_codes": list(self.coupon_codes), "partial": self.partial}


@dataclass(frozen=True, slots=True, kw_only=True)
class VoidRequest:
    """A till releases a hold it will not capture (the sale was cancelled)."""

    store_id: str
    pos_id: str
    hold_id: str
