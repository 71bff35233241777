"""The coupons of a hold, inside the writer transaction of its authorize, capture or void.

Authorize checks every code against the basket and, if all pass, records each coupon as
held by the hold until its expiry; a coupon another open hold holds is `already_held`, so
of two tills racing for one coupon the single writer lets the first win. The capture
redeems the coupons the sale names (once: the redeemed fact's id is the coupon and the
hold) and releases the others; a void releases them all; an expired hold frees them by
itself (the fold reads the hold's expiry).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.coupons import record_facts_in
from gateway.coupons.lookup import find_code
from gateway.holds.model import AuthorizeRequest, HoldRefused
from gateway.loyalty import (
    Basket,
    BasketLine,
    Coupon,
    CouponFact,
    FactKind,
    Grant,
    Where,
    check_coupons,
    display_code,
    normalise_code,
)


def basket_of(request: AuthorizeRequest) -> Basket:
    return Basket(request.total_fen, tuple(
        BasketLine(x.amount_fen, x.category, x.sku, x.quantity) for x in request.lines))


@dataclass(frozen=True, slots=True)
class HeldCoupons:
    """What a request's coupons take off its basket, checked and not yet recorded."""

    hold_id: str
    granted: list[tuple[Coupon, Grant]]

    @property
    def discount_fen(self) -> int:
        return sum(grant.discount_fen for _, grant in self.granted)

    def reply(self) -> list[dict[str, Any]]:
        return [_granted(coupon.code, grant) for coupon, grant in self.granted]

    def record_in(self, conn: sqlite3.Connection, *, now: datetime, until: datetime,
                  site: str) -> None:
        """Each coupon held by the hold until it expires."""
        record_facts_in(conn, [
            CouponFact(coupon_id=coupon.coupon_id, kind=FactKind.HELD, ref=self.hold_id,
                       at=now, until=until, site=site) for coupon, _ in self.granted],
            now=now)


def check_hold_coupons(conn: sqlite3.Connection, request: AuthorizeRequest, *,
                       member_id: str, mall: str, online: bool, now: datetime,
                       ) -> HeldCoupons:
    """The request's coupons checked against its basket, all or none: raises the first
    `CouponError` (mistyped, unknown, or refused with its code)."""
    found = [find_code(conn, code, now) for code in request.coupon_codes]
    where = Where(mall=mall, online=online, member_id=member_id, hold_id=request.hold_id)
    grants = check_coupons(found, basket_of(request), at=now, where=where)
    return HeldCoupons(request.hold_id, [(coupon, grant) for (coupon, _), grant
                                         in zip(found, grants, strict=True)])


def _granted(code: str, grant: Grant) -> dict[str, Any]:
    out = {"coupon_id": grant.coupon_id, "code": display_code(code),
           "discount_fen": grant.discount_fen}
    return out | ({"sku": grant.sku} if grant.sku else {})


def held_by(conn: sqlite3.Connection, hold_id: str) -> dict[str, str]:
    """The coupons a hold was granted: code -> coupon id."""
    return dict(conn.execute(
        "SELECT c.code, f.coupon_id FROM coupon_facts f JOIN coupons c ON c.id = f.coupon_id "
        "WHERE f.kind = 'held' AND f.ref = ?", (hold_id,)).fetchall())


def redeem_in(conn: sqlite3.Connection, hold_id: str, codes: Sequence[str], *,
              now: datetime, site: str) -> None:
    """The capture of a hold: the coupons the sale names are redeemed, the others the hold
    held are released. `HoldRefused("coupon_not_held")` if the sale names one it did not."""
    held = held_by(conn, hold_id)
    named: set[str] = set()
    for code in codes:
        try:
            normal = normalise_code(code)
        except ValueError:
            normal = code
        if normal not in held:
            raise HoldRefused("coupon_not_held",
                              f"coupon {code} was not granted by hold {hold_id}")
        named.add(normal)
    record_facts_in(conn, [
        CouponFact(coupon_id=coupon_id, ref=hold_id, at=now, site=site,
                   kind=FactKind.REDEEMED if code in named else FactKind.RELEASED)
        for code, coupon_id in held.items()], now=now)


def release_in(conn: sqlite3.Connection, hold_id: str, *, now: datetime, site: str) -> None:
    """A void: every coupon the hold held is free again."""
    record_facts_in(conn, [
        CouponFact(coupon_id=coupon_id, kind=FactKind.RELEASED, ref=hold_id, at=now,
                   site=site) for coupon_id in held_by(conn, hold_id).values()], now=now)



def restore_in(conn: sqlite3.Connection, sale_key: str, *, refund_key: str, now: datetime,
               site: str) -> None:
    """A refund of the sale `sale_key`: the coupons its hold redeemed are usable again."""
    row = conn.execute("SELECT id FROM holds WHERE capture_key = ?", (sale_key,)).fetchone()
    if row is None:
        return
    hold_id = str(row[0])
    redeemed = conn.execute("SELECT coupon_id FROM coupon_facts WHERE kind = 'redeemed' "
                            "AND ref = ?", (hold_id,)).fetchall()
    record_facts_in(conn, [
        CouponFact(coupon_id=str(coupon_id), kind=FactKind.RESTORED, ref=refund_key,
                   of_ref=hold_id, at=now, site=site) for (coupon_id,) in redeemed], now=now)
