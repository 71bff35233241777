"""Authorize and void: each one writer op that reads, decides and stores its reply.

`authorize` finds the member, subtracts what the account's open holds reserve from its
available points (and, while central is offline, from the offline allowance left, the rule
kiosk redemptions follow), grants what it can up to what was asked, and stores the hold
with its reply before answering. A till that resends the request (same request id) gets
the stored reply; nothing is reserved twice. Sales capture holds in the receipt pipeline.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import orjson

from gateway.holds import rows
from gateway.holds.coupons import check_hold_coupons, release_in
from gateway.holds.model import AuthorizeRequest, HoldRefused, VoidRequest
from gateway.ledger import Ledger, Recorded
from gateway.ledger.allowance import allowance_left
from gateway.loyalty import (
    CouponCodeMistyped,
    CouponCodeUnknown,
    CouponError,
    CouponRefusal,
    CouponRefused,
    RedemptionRefused,
    grant_points,
)
from gateway.loyalty.tier_review import benefits, tier_of
from gateway.loyalty.wire import to_text
from gateway.members import find_by_code

Reply = dict[str, Any]
# The refusals that are a coupon's (counted by code for the metrics).
COUPON_CODES = frozenset({*CouponRefusal.__args__,  # type: ignore[attr-defined]
                          CouponCodeMistyped.code, CouponCodeUnknown.code})


@dataclass(slots=True)
class HoldStats:
    granted: int = 0
    refused: int = 0
    voided: int = 0
    retries: int = 0  # resent requests answered from the stored reply
    coupons_held: int = 0  # coupons granted holds took off their baskets
    coupon_refusals: Counter[str] = field(default_factory=Counter)  # by refusal code


def available_after_holds(ledger: Ledger, conn: sqlite3.Connection, account_id: str,
                          now: datetime, *, online: bool) -> tuple[int, int | None]:
    """An account's available points and, offline, its allowance left, both less what its
    open holds reserve; inside a writer op (so the decision and its write are one step)."""
    held = rows.reserved(conn, account_id, _text(now))
    balance = ledger.balance_of(account_id, ledger.entries_in_write(conn, account_id), now)
    cap = ledger.rules_at(now).redemption.offline_allowance_cap
    allowance = None if online else allowance_left(conn, account_id, cap)
    return balance.available - held, None if allowance is None else max(0, allowance - held)


class Holds:
    def __init__(self, ledger: Ledger, *, central_online: Callable[[], bool],
                 expiry_s: float, mall: str = "", site: str = "") -> None:
        self.ledger = ledger
        self.central_online = central_online
        self.expiry = timedelta(seconds=expiry_s)
        self.mall = mall  # whose coupons this gateway redeems
        self.site = site  # this gateway, recorded on the coupon facts it writes
        self.stats = HoldStats()

    async def authorize(self, request: AuthorizeRequest) -> Reply:
        """The decision on `request`, durable when it returns."""
        now = self.ledger.now()
        online = self.central_online()

        def op(conn: sqlite3.Connection, _: list[Recorded]) -> tuple[Reply, bool]:
            stored = conn.execute(
                "SELECT reply FROM holds WHERE store_id = ? AND pos_id = ? AND request_id = ?",
                (request.store_id, request.pos_id, request.request_id)).fetchone()
            if stored is not None:
                return cast(Reply, orjson.loads(stored[0])), True
            return self._decide(conn, request, now=now, expires=now + self.expiry,
                                online=online), False

        _, (reply, retry) = await self.ledger.record_with([], op)
        if retry:
            self.stats.retries += 1
        elif reply["status"] == "granted":
            self.stats.granted += 1
            self.stats.coupons_held += len(reply["coupons"])
        else:
            self.stats.refused += 1
            if request.coupon_codes and reply.get("error") in COUPON_CODES:
                self.stats.coupon_refusals[reply["error"]] += 1
        return reply

    def _decide(self, conn: sqlite3.Connection, request: AuthorizeRequest, *, now: datetime,
                expires: datetime, online: bool) -> Reply:
        base: Reply = {"type": "authorize", "request_id": request.request_id}
        expires_text = _text(expires)
        member = find_by_code(conn, request.member_code)
        points, value, decision = 0, 0, "granted"
        if member is None:
            decision = "unknown_member"
            reply = base | {"status": "refused", "error": decision,
                            "msg": "no member with this code here"}
        else:
            available, allowance = available_after_holds(self.ledger, conn, member.account_id,
                                                         now, online=online)
            rate = self.ledger.rules.redemption.fen_per_point
            try:
                # Coupons first: what they take off is not there to pay with points.
                coupons = check_hold_coupons(conn, request, member_id=member.id,
                                             mall=self.mall, online=online, now=now)
                payable = request.total_fen - coupons.discount_fen
                if request.points:
                    points = grant_points(asked=request.points, available=available,
                                          online=online, allowance_left=allowance,
                                          payable_fen=payable, fen_per_point=rate,
                                          partial=request.partial)
            except (RedemptionRefused, CouponError) as refused:
                decision = refused.code
                reply = base | {"status": "refused", "error": decision, "msg": str(refused),
                                "member_id": member.id, "available": max(0, available)}
                if isinstance(refused, CouponRefused):
                    reply["coupon_id"] = refused.coupon_id
            else:
                coupons.record_in(conn, now=now, until=expires, site=self.site)
                value = points * rate
                reply = base | {
                    "status": "granted", "hold_id": request.hold_id,
                    "member_id": member.id,
                    **benefits(tier_of(self.ledger.rules, member.tier)), "points": points,
                    "value_fen": value, "expires_at": expires_text,
                    "available": available - points, "coupons": coupons.reply(),
                    "discount_fen": coupons.discount_fen}
        conn.execute(
            "INSERT INTO holds (id, store_id, pos_id, request_id, account_id, member_id, "
            "decision, asked, points, value_fen, basket_fen, request, reply, created_at, "
            "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (request.hold_id, request.store_id, request.pos_id, request.request_id,
             member.account_id if member else None, member.id if member else None, decision,
             request.points, points, value, request.total_fen,
             orjson.dumps(request.to_json()).decode(), orjson.dumps(reply).decode(),
             _text(now), expires_text))
        return reply

    async def void(self, request: VoidRequest) -> Reply:
        """Release a hold; voiding one already voided or expired answers its state."""
        now = self.ledger.now()
        now_text = _text(now)
        base: Reply = {"type": "void", "hold_id": request.hold_id}

        def op(conn: sqlite3.Connection, _: list[Recorded]) -> Reply:
            try:
                state = rows.void(conn, hold_id=request.hold_id, store_id=request.store_id,
                                  pos_id=request.pos_id, now=now_text)
                if state == "voided":
                    release_in(conn, request.hold_id, now=now, site=self.site)
            except HoldRefused as refused:
                return base | {"status": "refused", "error": refused.code,
                               "msg": refused.msg}
            return base | {"status": state}

        _, reply = await self.ledger.record_with([], op)
        if reply["status"] == "voided":
            self.stats.voided += 1
        return reply


def _text(at: datetime) -> str:
    text = to_text(at)
    assert text is not None  # noqa: S101 - to_text maps only None to None
    return text
