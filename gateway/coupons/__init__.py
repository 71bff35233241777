"""Coupons in the edge store: issuing, recording their facts, finding them by code or
member. The rules are the loyalty domain's (`gateway.loyalty.coupons`)."""

from gateway.coupons.issuer import CouponIssuer
from gateway.coupons.store import (
    CouponRow,
    campaign_in,
    coupon_by_code,
    coupon_by_id,
    facts_of,
    issue_in,
    member_coupons,
    put_campaign,
    receive_in,
    record_facts_in,
    state_in,
)

__all__ = ["CouponIssuer", "CouponRow", "campaign_in", "coupon_by_code", "coupon_by_id",
           "facts_of", "issue_in", "member_coupons", "put_campaign", "receive_in",
           "record_facts_in", "state_in"]
