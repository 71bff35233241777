"""A member's coupons and a code's check, as kiosks and tills ask for them."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from gateway.coupons.store import coupon_by_code, member_coupons, state_in
from gateway.loyalty import (
    Basket,
    Coupon,
    CouponCodeUnknown,
    CouponState,
    CouponStatus,
    Grant,
    Where,
    check_coupon,
    display_code,
    normalise_code,
    terms_to_wire,
)
from gateway.loyalty.wire import to_text


def coupon_data(coupon: Coupon, state: CouponState) -> dict[str, Any]:
    """A coupon as a kiosk or a till shows it."""
    return {"coupon_id": coupon.coupon_id, "code": display_code(coupon.code),
            "status": state.status.value, "terms": terms_to_wire(coupon.terms),
            "group_wide": coupon.group_wide, "valid_from": to_text(coupon.valid_from),
            "valid_until": to_text(coupon.valid_until)}


def just_issued(coupon: Coupon) -> CouponState:
    """The state of a coupon usable now (what a check that passed, or an issue, saw)."""
    return CouponState(coupon.coupon_id, CouponStatus.ISSUED)


def list_coupons(conn: sqlite3.Connection, member_id: str, now: datetime,
                 ) -> list[dict[str, Any]]:
    return [coupon_data(row.coupon, row.state)
            for row in member_coupons(conn, member_id, now)]


def find_code(conn: sqlite3.Connection, text: str, now: datetime,
              ) -> tuple[Coupon, CouponState]:
    """The coupon a typed or scanned code names, with its state at `now`:
    `CouponCodeMistyped` for a typo, `CouponCodeUnknown` when no coupon here has it."""
    coupon = coupon_by_code(conn, normalise_code(text))
    if coupon is None:
        raise CouponCodeUnknown("no coupon here has this code")
    return coupon, state_in(conn, coupon, now)


def check_code(conn: sqlite3.Connection, text: str, basket: Basket, *, at: datetime,
               where: Where) -> tuple[Coupon, Grant]:
    """What the coupon of code `text` takes off `basket`, or the `CouponError` why not."""
    coupon, state = find_code(conn, text, at)
    return coupon, check_coupon(coupon, state, basket, at=at, where=where)
