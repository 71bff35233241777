"""A coupon and its terms on the wire: the JSON objects the edge stores, syncs and central
keeps, read back into the pure values (with their checks)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.loyalty.coupons import (
    GROUP_WIDE,
    Basket,
    BasketLine,
    Campaign,
    Coupon,
    CouponKind,
    CouponTerms,
)


def terms_to_wire(terms: CouponTerms) -> dict[str, Any]:
    """Only what the kind uses, so a document says what a coupon gives and nothing else."""
    out: dict[str, Any] = {"kind": terms.kind.value}
    if terms.kind is CouponKind.SPEND_X_GET_Y:
        out |= {"threshold_fen": terms.threshold_fen, "off_fen": terms.off_fen}
    elif terms.kind is CouponKind.PERCENTAGE:
        out |= {"percent": terms.percent, "cap_fen": terms.cap_fen}
    elif terms.kind is CouponKind.CASH_VOUCHER:
        out |= {"off_fen": terms.off_fen}
    else:
        out |= {"sku": terms.sku}
    return out | {"min_spend_fen": terms.min_spend_fen, "categories": list(terms.categories)}


def _int(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name) or 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer")  # noqa: TRY004 - bad input, not a bug
    return value


def terms_from_wire(data: Mapping[str, Any]) -> CouponTerms:
    """The terms of a wire object; `ValueError` when they are not terms of a coupon."""
    cap = data.get("cap_fen")
    categories = data.get("categories") or ()
    if not isinstance(categories, list | tuple) or not all(isinstance(c, str)
                                                          for c in categories):
        raise ValueError("categories must be a list of names")
    sku = data.get("sku")
    return CouponTerms(
        kind=CouponKind(str(data.get("kind"))), threshold_fen=_int(data, "threshold_fen"),
        off_fen=_int(data, "off_fen"), percent=_int(data, "percent"),
        cap_fen=None if cap is None else _int(data, "cap_fen"),
        sku=str(sku) if sku is not None else None, min_spend_fen=_int(data, "min_spend_fen"),
        categories=tuple(categories))


def coupon_to_wire(coupon: Coupon) -> dict[str, Any]:
    return {"coupon_id": coupon.coupon_id, "code": coupon.code, "mall": coupon.mall,
            "campaign_id": coupon.campaign_id, "member_id": coupon.member_id,
            "terms": terms_to_wire(coupon.terms), "issued_at": coupon.issued_at.isoformat(),
            "valid_from": coupon.valid_from.isoformat(),
            "valid_until": coupon.valid_until.isoformat()}


def coupon_from_wire(data: Mapping[str, Any]) -> Coupon:
    """A coupon of a wire object; `ValueError` (or `KeyError`) when it is not one."""
    member = data.get("member_id")
    return Coupon(
        coupon_id=str(data["coupon_id"]), code=str(data["code"]), mall=str(data["mall"]),
        campaign_id=str(data.get("campaign_id") or ""),
        member_id=str(member) if member is not None else None,
        terms=terms_from_wire(data["terms"]),
        issued_at=datetime.fromisoformat(data["issued_at"]),
        valid_from=datetime.fromisoformat(data["valid_from"]),
        valid_until=datetime.fromisoformat(data["valid_until"]))


def campaign_from_wire(campaign_id: str, mall: str, data: Mapping[str, Any]) -> Campaign:
    """A campaign of `mall` from its definition (`terms`, `valid_days`, limits, window,
    `group_wide`); `ValueError` (or `KeyError`) when it does not make one."""
    def when(name: str) -> datetime | None:
        value = data.get(name)
        return datetime.fromisoformat(value) if value else None

    per_member = data.get("per_member_limit", 1)
    total = data.get("total_limit")
    return Campaign(
        campaign_id=campaign_id, mall=GROUP_WIDE if data.get("group_wide") else mall,
        terms=terms_from_wire(data["terms"]), valid_days=_int(data, "valid_days"),
        per_member_limit=None if per_member is None else int(per_member),
        total_limit=None if total is None else int(total), starts_at=when("starts_at"),
        ends_at=when("ends_at"))


def basket_from_wire(data: Mapping[str, Any]) -> Basket:
    """A basket of `{"total_fen", "lines": [{"amount_fen", "category", "sku", "quantity"}]}`;
    `ValueError` when it is not one."""
    lines = data.get("lines") or []
    if not isinstance(lines, list) or not all(isinstance(line, Mapping) for line in lines):
        raise ValueError("lines must be a list of objects")
    return Basket(_int(data, "total_fen"), tuple(
        BasketLine(_int(line, "amount_fen"), _text(line, "category"), _text(line, "sku"),
                   _int(line, "quantity") or 1) for line in lines))


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    return None if value is None else str(value)
