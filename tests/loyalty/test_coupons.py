"""Coupons on a basket: each kind's discount, its conditions and every refusal code."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from gateway.loyalty import (
    GROUP_WIDE,
    Basket,
    BasketLine,
    Campaign,
    Coupon,
    CouponFact,
    CouponKind,
    CouponRefused,
    CouponState,
    CouponStatus,
    CouponTerms,
    FactKind,
    IssueRefused,
    Where,
    check_coupon,
    check_coupons,
    check_issue,
    fold_coupon,
    issue_coupon,
    issued_fact,
)
from tests.loyalty.helpers import at

T0 = at(2026, 3, 1)
HERE = Where(mall="mall-a", online=False, member_id="M1")
BASKET = Basket(30_000, (BasketLine(20_000, "fashion", "SKU-1", 2),
                         BasketLine(10_000, "food", "SKU-COFFEE")))


def coupon(terms: CouponTerms, *, mall: str = "mall-a", member: str | None = "M1",
           days: int = 7) -> Coupon:
    campaign = Campaign(campaign_id="c1", mall=mall, terms=terms, valid_days=days)
    return issue_coupon(campaign, member_id=member, source_key="k1", code="X", at=T0)


def state_of(c: Coupon, *facts: CouponFact, when: timedelta = timedelta(hours=1)
             ) -> CouponState:
    folded = fold_coupon([issued_fact(c), *facts], as_of=T0 + when)
    assert folded is not None
    return folded


def discount(terms: CouponTerms, basket: Basket = BASKET) -> int:
    c = coupon(terms)
    return check_coupon(c, state_of(c), basket, at=T0 + timedelta(hours=1),
                        where=HERE).discount_fen


def refusal(c: Coupon, state: CouponState | None = None, basket: Basket = BASKET, *,
            when: timedelta = timedelta(hours=1), where: Where = HERE) -> str:
    with pytest.raises(CouponRefused) as caught:
        check_coupon(c, state or state_of(c, when=when), basket, at=T0 + when, where=where)
    return caught.value.code


def test_each_kind_is_worth_its_value_on_the_basket() -> None:
    assert discount(CouponTerms(kind=CouponKind.SPEND_X_GET_Y, threshold_fen=30_000,
                                off_fen=5_000)) == 5_000
    assert discount(CouponTerms(kind=CouponKind.PERCENTAGE, percent=10)) == 3_000
    assert discount(CouponTerms(kind=CouponKind.PERCENTAGE, percent=10, cap_fen=1_000)) == 1_000
    assert discount(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=2_000)) == 2_000
    # One unit of the item free: two units cost 20,000, one is 10,000.
    assert discount(CouponTerms(kind=CouponKind.FREE_ITEM, sku="SKU-1")) == 10_000


def test_eligible_categories_limit_what_counts_and_what_is_discounted() -> None:
    food = CouponTerms(kind=CouponKind.PERCENTAGE, percent=50, categories=("food",))
    assert discount(food) == 5_000
    # A voucher worth more than the eligible lines gives what they cost.
    assert discount(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=50_000,
                                categories=("food",))) == 10_000
    c = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=100, categories=("toys",)))
    assert refusal(c) == "not_eligible"


def test_minimum_spend_counts_eligible_lines_only() -> None:
    c = coupon(CouponTerms(kind=CouponKind.SPEND_X_GET_Y, threshold_fen=15_000, off_fen=2_000,
                           categories=("food",)))
    assert refusal(c) == "below_minimum_spend"
    c = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=100, min_spend_fen=30_001))
    assert refusal(c) == "below_minimum_spend"


def test_refusals_name_why() -> None:
    c = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
    assert refusal(c, when=timedelta(days=7)) == "expired"
    assert refusal(c, when=timedelta(hours=-1)) == "not_yet_valid"
    assert refusal(c, where=replace(HERE, mall="mall-b")) == "not_this_mall"
    assert refusal(c, where=replace(HERE, member_id="M2")) == "not_this_member"
    held = CouponFact(coupon_id=c.coupon_id, kind=FactKind.HELD, ref="h1", at=T0,
                      until=T0 + timedelta(hours=2))
    assert refusal(c, state_of(c, held)) == "already_held"
    # The hold that holds it may check it again.
    assert check_coupon(c, state_of(c, held), BASKET, at=T0 + timedelta(hours=1),
                        where=replace(HERE, hold_id="h1")).discount_fen == 500
    redeemed = CouponFact(coupon_id=c.coupon_id, kind=FactKind.REDEEMED, ref="h1", at=T0)
    assert refusal(c, state_of(c, held, redeemed)) == "already_redeemed"
    voided = CouponFact(coupon_id=c.coupon_id, kind=FactKind.VOIDED, at=T0)
    assert refusal(c, state_of(c, voided)) == "voided"
    free = coupon(CouponTerms(kind=CouponKind.FREE_ITEM, sku="SKU-9"))
    assert refusal(free) == "item_not_in_basket"


def test_group_wide_coupons_need_central() -> None:
    c = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500), mall=GROUP_WIDE)
    assert refusal(c) == "needs_online"
    # Online, a gateway still sends it to central: only central sees every mall's use.
    assert refusal(c, where=replace(HERE, online=True)) == "redeem_at_central"
    assert check_coupon(c, state_of(c), BASKET, at=T0 + timedelta(hours=1),
                        where=replace(HERE, online=True, at_central=True)).discount_fen == 500


def test_several_coupons_never_take_more_than_the_basket() -> None:
    big = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=25_000))
    other = replace(coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=25_000)),
                    coupon_id="cp-other")
    grants = check_coupons([(big, state_of(big)), (other, state_of(other))], BASKET,
                           at=T0 + timedelta(hours=1), where=HERE)
    assert [grant.discount_fen for grant in grants] == [25_000, 5_000]
    with pytest.raises(CouponRefused) as caught:
        check_coupons([(big, state_of(big)), (big, state_of(big))], BASKET,
                      at=T0 + timedelta(hours=1), where=HERE)
    assert caught.value.code == "duplicate_coupon"


def test_campaign_limits_and_window() -> None:
    terms = CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500)
    campaign = Campaign(campaign_id="c1", mall="mall-a", terms=terms, valid_days=30,
                        per_member_limit=2, total_limit=100, ends_at=T0 + timedelta(days=10))
    check_issue(campaign, member_issued=1, campaign_issued=99, at=T0)
    for member_issued, total, when, code in ((2, 0, T0, "member_limit"),
                                             (0, 100, T0, "campaign_limit"),
                                             (0, 0, T0 + timedelta(days=10), "campaign_closed")):
        with pytest.raises(IssueRefused) as caught:
            check_issue(campaign, member_issued=member_issued, campaign_issued=total, at=when)
        assert caught.value.code == code
    issued = issue_coupon(campaign, member_id="M1", source_key="k", code="X", at=T0)
    assert issued.valid_until == T0 + timedelta(days=10)  # the campaign's end caps it
    again = issue_coupon(campaign, member_id="M1", source_key="k", code="Y", at=T0)
    assert again.coupon_id == issued.coupon_id


def test_terms_that_cannot_be_right_are_refused() -> None:
    bad: list[dict[str, Any]] = [
        {"kind": CouponKind.SPEND_X_GET_Y, "threshold_fen": 100, "off_fen": 200},
        {"kind": CouponKind.PERCENTAGE, "percent": 100},
        {"kind": CouponKind.CASH_VOUCHER, "off_fen": 0},
        {"kind": CouponKind.FREE_ITEM},
        {"kind": CouponKind.CASH_VOUCHER, "off_fen": 10, "min_spend_fen": -1}]
    for terms in bad:
        with pytest.raises(ValueError):
            CouponTerms(**terms)


def test_hold_expiry_and_release_give_the_coupon_back() -> None:
    c = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
    held = CouponFact(coupon_id=c.coupon_id, kind=FactKind.HELD, ref="h1", at=T0,
                      until=T0 + timedelta(minutes=30))
    assert state_of(c, held, when=timedelta(minutes=10)).status is CouponStatus.HELD
    assert state_of(c, held, when=timedelta(minutes=30)).status is CouponStatus.ISSUED
    released = CouponFact(coupon_id=c.coupon_id, kind=FactKind.RELEASED, ref="h1", at=T0)
    assert state_of(c, held, released, when=timedelta(minutes=1)).status is CouponStatus.ISSUED


def test_a_refund_restores_a_redeemed_coupon_once() -> None:
    c = coupon(CouponTerms(kind=CouponKind.CASH_VOUCHER, off_fen=500))
    redeemed = CouponFact(coupon_id=c.coupon_id, kind=FactKind.REDEEMED, ref="h1", at=T0)
    restored = CouponFact(coupon_id=c.coupon_id, kind=FactKind.RESTORED, ref="refund-1",
                          of_ref="h1", at=T0 + timedelta(minutes=5))
    assert state_of(c, redeemed).status is CouponStatus.REDEEMED
    assert state_of(c, redeemed, restored).status is CouponStatus.ISSUED
    again = CouponFact(coupon_id=c.coupon_id, kind=FactKind.REDEEMED, ref="h2",
                       at=T0 + timedelta(minutes=9))
    assert state_of(c, redeemed, restored, again).redeemed_by == "h2"


def test_facts_round_trip_on_the_wire_and_keep_their_identity() -> None:
    fact = CouponFact(coupon_id="cp-1", kind=FactKind.HELD, ref="h1", at=T0,
                      until=T0 + timedelta(minutes=5), site="mall-a")
    assert CouponFact.from_wire(fact.to_wire()) == fact
    forged = fact.to_wire() | {"ref": "h2"}
    with pytest.raises(ValueError, match="does not match"):
        CouponFact.from_wire(forged)
