"""Coupons: what each kind is worth on a basket, who may use it where and when, and how a
campaign issues them within its limits.

Pure functions over integer fen, the same at the edge and centrally. A coupon's life
(issued, held, redeemed, expired, voided) is a set of facts folded in
`gateway.loyalty.coupon_facts`; `check_coupon` takes that folded state and a basket and returns
the discount or a `CouponRefused` with a stable code.

Money is fen; a percentage is an integer percent; a discount is never more than what the
eligible lines cost, nor than what is left of the basket.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from gateway.loyalty.coupon_facts import CouponFact, CouponState, CouponStatus, FactKind
from gateway.loyalty.errors import CouponRefused, IssueRefused

# A coupon of this scope is valid in every mall of the group: only central, which sees all
# of them, can redeem it exactly once, so a gateway refuses it offline.
GROUP_WIDE = "*"
_ID_NAMESPACE = "mallgate/coupon/v1"
_PERCENT = 100

CouponRefusal = Literal[
    "not_this_mall", "needs_online", "not_this_member", "voided", "already_redeemed",
    "already_held", "expired", "not_yet_valid", "not_eligible", "below_minimum_spend",
    "item_not_in_basket", "duplicate_coupon", "redeem_at_central",
]


class CouponKind(StrEnum):
    SPEND_X_GET_Y = "spend_x_get_y"  # 满减: spend `threshold_fen`, get `off_fen` off
    PERCENTAGE = "percentage"  # `percent` off the eligible lines, at most `cap_fen`
    CASH_VOUCHER = "cash_voucher"  # `off_fen` off, as cash
    FREE_ITEM = "free_item"  # one unit of `sku` free


@dataclass(frozen=True, slots=True, kw_only=True)
class CouponTerms:
    """What a coupon gives and on what condition; each kind sets its own values.

    `categories` empty means every line is eligible; otherwise only lines of those
    categories count, both towards `min_spend_fen` and as what the discount applies to.
    """

    kind: CouponKind
    threshold_fen: int = 0
    off_fen: int = 0
    percent: int = 0
    cap_fen: int | None = None
    sku: str | None = None
    min_spend_fen: int = 0
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if min(self.threshold_fen, self.off_fen, self.percent, self.min_spend_fen,
               self.cap_fen or 0) < 0:
            raise ValueError("coupon amounts must not be negative")
        kind = self.kind
        if kind is CouponKind.SPEND_X_GET_Y and not 0 < self.off_fen <= self.threshold_fen:
            raise ValueError("spend X get Y off needs 0 < off_fen <= threshold_fen")
        if kind is CouponKind.PERCENTAGE and not 0 < self.percent < _PERCENT:
            raise ValueError("a percentage coupon takes 1 to 99 percent off")
        if kind is CouponKind.CASH_VOUCHER and self.off_fen <= 0:
            raise ValueError("a cash voucher is worth a positive amount")
        if kind is CouponKind.FREE_ITEM and not self.sku:
            raise ValueError("a free item coupon names its SKU")

    @property
    def minimum_fen(self) -> int:
        """The eligible spend the coupon needs before it gives anything."""
        if self.kind is CouponKind.SPEND_X_GET_Y:
            return max(self.min_spend_fen, self.threshold_fen)
        return self.min_spend_fen


@dataclass(frozen=True, slots=True, kw_only=True)
class Coupon:
    """One issued coupon. `mall` is the mall whose gateway redeems it, or `GROUP_WIDE`;
    `member_id` None is a bearer coupon anyone holding the code may use."""

    coupon_id: str
    code: str
    mall: str
    campaign_id: str
    member_id: str | None
    terms: CouponTerms
    issued_at: datetime
    valid_from: datetime
    valid_until: datetime

    def __post_init__(self) -> None:
        if self.valid_until <= self.valid_from:
            raise ValueError(f"coupon {self.coupon_id}: its window ends before it starts")

    @property
    def group_wide(self) -> bool:
        return self.mall == GROUP_WIDE


@dataclass(frozen=True, slots=True, kw_only=True)
class Campaign:
    """Coupons to issue: their terms, how long each is valid, and the limits.

    `per_member_limit` caps how many coupons of the campaign one member may hold in all,
    `total_limit` how many the campaign issues in all (None: no limit). `ends_at` caps
    every coupon's window.
    """

    campaign_id: str
    mall: str
    terms: CouponTerms
    valid_days: int
    per_member_limit: int | None = 1
    total_limit: int | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.valid_days <= 0:
            raise ValueError("a coupon is valid for at least a day")
        if min(self.per_member_limit or 1, self.total_limit or 1) <= 0:
            raise ValueError("a campaign limit is positive, or None for no limit")


def coupon_id_for(mall: str, campaign_id: str, source_key: str) -> str:
    """A coupon's id from what issued it (the campaign and, e.g., the showing, the kiosk
    request or the member and a sequence): issuing the same thing twice is one coupon."""
    digest = hashlib.sha256(
        "\x1f".join((_ID_NAMESPACE, mall, campaign_id, source_key)).encode()).hexdigest()
    return f"cp-{digest[:24]}"


def check_issue(campaign: Campaign, *, member_issued: int, campaign_issued: int,
                at: datetime) -> None:
    """Raise `IssueRefused` if the campaign may not issue one more coupon to a member who
    already holds `member_issued` of it, with `campaign_issued` issued in all."""
    if campaign.per_member_limit is not None and member_issued >= campaign.per_member_limit:
        raise IssueRefused("member_limit", f"the member already has {member_issued} coupons "
                           f"of campaign {campaign.campaign_id}",
                           campaign_id=campaign.campaign_id)
    if campaign.total_limit is not None and campaign_issued >= campaign.total_limit:
        raise IssueRefused("campaign_limit", f"campaign {campaign.campaign_id} has issued all "
                           f"{campaign.total_limit} coupons", campaign_id=campaign.campaign_id)
    if ((campaign.starts_at is not None and at < campaign.starts_at)
            or (campaign.ends_at is not None and at >= campaign.ends_at)):
        raise IssueRefused("campaign_closed", f"campaign {campaign.campaign_id} is not "
                           "issuing now", campaign_id=campaign.campaign_id)


def issue_coupon(campaign: Campaign, *, member_id: str | None, source_key: str, code: str,
          at: datetime) -> Coupon:
    """The coupon the campaign issues for `source_key`, valid from `at` for its days."""
    until = at + timedelta(days=campaign.valid_days)
    if campaign.ends_at is not None:
        until = min(until, campaign.ends_at)
    return Coupon(
        coupon_id=coupon_id_for(campaign.mall, campaign.campaign_id, source_key), code=code,
        mall=campaign.mall, campaign_id=campaign.campaign_id, member_id=member_id,
        terms=campaign.terms, issued_at=at, valid_from=at, valid_until=until)


# -- checking against a basket ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BasketLine:
    amount_fen: int
    category: str | None = None
    sku: str | None = None
    quantity: int = 1

    def __post_init__(self) -> None:
        if self.amount_fen < 0 or self.quantity <= 0:
            raise ValueError("a basket line costs >= 0 fen for >= 1 unit")


@dataclass(frozen=True, slots=True)
class Basket:
    """What the till is about to sell; without lines the whole total is one line of no
    category (eligible for coupons that name no categories only)."""

    total_fen: int
    lines: tuple[BasketLine, ...] = ()

    def __post_init__(self) -> None:
        if self.total_fen < 0:
            raise ValueError("a basket total is >= 0 fen")

    def eligible_fen(self, categories: tuple[str, ...]) -> int:
        if not categories:
            return self.total_fen
        return min(self.total_fen, sum(line.amount_fen for line in self.lines
                                       if line.category in categories))


@dataclass(frozen=True, slots=True)
class Grant:
    """What a coupon takes off the basket."""

    coupon_id: str
    discount_fen: int
    sku: str | None = None  # the free item, for a free item coupon


@dataclass(frozen=True, slots=True, kw_only=True)
class Where:
    """Where and how a coupon is being used: the mall, whether central is reachable, the
    member presenting it, the hold allowed to hold it already (re-checking one's own),
    and whether this is central itself (the only place a group-wide coupon is redeemed)."""

    mall: str
    online: bool
    member_id: str | None = None
    hold_id: str | None = None
    at_central: bool = False


def _refuse(coupon: Coupon, code: CouponRefusal, message: str) -> CouponRefused:
    return CouponRefused(code, message, coupon_id=coupon.coupon_id)


def _check_usable(coupon: Coupon, state: CouponState, where: Where, at: datetime) -> None:
    if not coupon.group_wide and coupon.mall != where.mall:
        raise _refuse(coupon, "not_this_mall", f"this coupon is for mall {coupon.mall}")
    if coupon.group_wide and not where.online:
        raise _refuse(coupon, "needs_online",
                      "a group-wide coupon is redeemed through central, which is unreachable")
    if coupon.group_wide and not where.at_central:
        # Every mall's gateway could take it at once: only central sees them all.
        raise _refuse(coupon, "redeem_at_central",
                      "a group-wide coupon is redeemed online through central")
    if coupon.member_id is not None and where.member_id not in (None, coupon.member_id):
        raise _refuse(coupon, "not_this_member", "this coupon belongs to another member")
    status = state.status
    if status is CouponStatus.VOIDED:
        raise _refuse(coupon, "voided", "this coupon was voided")
    if status is CouponStatus.REDEEMED:
        raise _refuse(coupon, "already_redeemed", "this coupon was already used")
    if status is CouponStatus.HELD and state.hold_id != where.hold_id:
        raise _refuse(coupon, "already_held", "this coupon is being used at another till")
    if status is CouponStatus.EXPIRED or at >= coupon.valid_until:
        raise _refuse(coupon, "expired", f"this coupon expired at {coupon.valid_until}")
    if at < coupon.valid_from:
        raise _refuse(coupon, "not_yet_valid", f"this coupon is valid from {coupon.valid_from}")


def _discount(coupon: Coupon, basket: Basket) -> Grant:
    terms = coupon.terms
    eligible = basket.eligible_fen(terms.categories)
    if terms.categories and eligible == 0:
        raise _refuse(coupon, "not_eligible", "no item in the basket is of an eligible category")
    if eligible < terms.minimum_fen:
        raise _refuse(coupon, "below_minimum_spend",
                      f"needs {terms.minimum_fen} fen of eligible spend, the basket has {eligible}")
    if terms.kind is CouponKind.FREE_ITEM:
        line = next((line for line in basket.lines if line.sku == terms.sku), None)
        if line is None:
            raise _refuse(coupon, "item_not_in_basket", f"item {terms.sku} is not in the basket")
        return Grant(coupon.coupon_id, line.amount_fen // line.quantity, terms.sku)
    if terms.kind is CouponKind.PERCENTAGE:
        off = eligible * terms.percent // _PERCENT
        if terms.cap_fen is not None:
            off = min(off, terms.cap_fen)
    else:  # spend X get Y off, cash voucher
        off = min(terms.off_fen, eligible)
    return Grant(coupon.coupon_id, off)


def check_coupon(coupon: Coupon, state: CouponState, basket: Basket, *, at: datetime,
          where: Where) -> Grant:
    """The discount `coupon` (in folded `state`) gives on `basket` at `at`, or the
    `CouponRefused` saying why it cannot be used."""
    _check_usable(coupon, state, where, at)
    return _discount(coupon, basket)


def check_coupons(coupons: Iterable[tuple[Coupon, CouponState]], basket: Basket, *,
              at: datetime, where: Where) -> list[Grant]:
    """Every coupon checked on the same basket, in the order given: each discount comes off
    what the ones before left, so together they never take more than the basket's total.
    The same coupon twice is refused (`duplicate_coupon`)."""
    grants: list[Grant] = []
    seen: set[str] = set()
    left = basket.total_fen
    for coupon, state in coupons:
        if coupon.coupon_id in seen:
            raise _refuse(coupon, "duplicate_coupon", "the same coupon is given twice")
        seen.add(coupon.coupon_id)
        grant = check_coupon(coupon, state, basket, at=at, where=where)
        grant = Grant(grant.coupon_id, min(grant.discount_fen, left), grant.sku)
        left -= grant.discount_fen
        grants.append(grant)
    return grants



def issued_fact(coupon: Coupon, *, site: str = "") -> CouponFact:
    """The fact that `coupon` was issued; it carries the end of its window for the fold."""
    return CouponFact(coupon_id=coupon.coupon_id, kind=FactKind.ISSUED, at=coupon.issued_at,
                      until=coupon.valid_until, site=site)
