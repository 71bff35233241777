"""Issuing a mall's coupons at the edge: a campaign's coupon with a fresh keyed code, kept
with its issued fact in the caller's transaction."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from gateway.coupons.store import coupon_by_id, issue_in
from gateway.loyalty import Campaign, Coupon, issue_coupon, new_code


@dataclass(frozen=True, slots=True)
class CouponIssuer:
    """Who issues: the mall whose coupons these are, the gateway recording the facts, and
    the mall's coupon key (shared with central)."""

    mall: str
    site: str
    key: bytes

    @classmethod
    def for_run(cls, mall: str, site: str, key: bytes | None) -> CouponIssuer:
        """Without a configured key, one for this run: codes are as random, only their
        tags cannot be checked after a restart (they are then found by lookup alone)."""
        return cls(mall, site, key or secrets.token_bytes(32))

    def issue_in(self, conn: sqlite3.Connection, campaign: Campaign, *,
                 member_id: str | None, source_key: str, now: datetime,
                 offer_id: str | None = None, delivery_id: int | None = None) -> Coupon:
        """The campaign's coupon for `source_key`; issuing the same source again returns
        the coupon issued the first time, with its code."""
        coupon = issue_coupon(campaign, member_id=member_id, source_key=source_key,
                              code=new_code(self.key, self.mall), at=now)
        if issue_in(conn, coupon, site=self.site, now=now, offer_id=offer_id,
                    delivery_id=delivery_id):
            return coupon
        first = coupon_by_id(conn, coupon.coupon_id)
        assert first is not None  # noqa: S101 - the insert just met it
        return first
