"""Properties of the coupon fold that make coupon facts safe to replicate: any order, any
duplicates and any split between the edge and central fold to the same state."""

from __future__ import annotations

from datetime import datetime, timedelta
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.loyalty import CouponFact, CouponStatus, FactKind, fold_coupon
from tests.loyalty.helpers import at
from tests.scale import examples

T0 = at(2026, 5, 1)
HOLDS = ("h1", "h2", "h3")
times = st.integers(0, 48 * 60).map(lambda minutes: T0 + timedelta(minutes=minutes))


@st.composite
def facts(draw: st.DrawFn) -> list[CouponFact]:
    """A coupon's facts as several sites might record them: holds, releases, redemptions,
    refunds restoring them, voids and expiries, in any mix."""
    issued = CouponFact(coupon_id="cp-1", kind=FactKind.ISSUED, at=T0,
                        until=T0 + timedelta(hours=draw(st.integers(1, 48))))
    out = [issued]
    for n in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(list(FactKind)))
        hold = draw(st.sampled_from(HOLDS))
        when = draw(times)
        if kind is FactKind.ISSUED:
            continue
        if kind is FactKind.RESTORED:
            out.append(CouponFact(coupon_id="cp-1", kind=kind, at=when, ref=f"refund-{n}",
                                  of_ref=hold))
        elif kind is FactKind.HELD:
            out.append(CouponFact(coupon_id="cp-1", kind=kind, at=when, ref=hold,
                                  until=when + timedelta(minutes=draw(st.integers(1, 30)))))
        elif kind in (FactKind.RELEASED, FactKind.REDEEMED):
            out.append(CouponFact(coupon_id="cp-1", kind=kind, at=when, ref=hold))
        else:
            out.append(CouponFact(coupon_id="cp-1", kind=kind, at=when))
    return out


@settings(max_examples=examples(300), deadline=None)
@given(facts(), st.randoms(use_true_random=False), times)
def test_the_fold_ignores_order_and_duplicates(history: list[CouponFact], rnd: Random,
                                               as_of: datetime) -> None:
    shuffled = history + history[: len(history) // 2]
    rnd.shuffle(shuffled)
    assert fold_coupon(shuffled, as_of=as_of) == fold_coupon(history, as_of=as_of)


@settings(max_examples=examples(300), deadline=None)
@given(facts(), st.data())
def test_edge_and_central_converge_once_they_have_exchanged_facts(
        history: list[CouponFact], data: st.DataObject) -> None:
    """Split the facts between the edge and central (both may hold some of the same); after
    sync each holds the union, and both fold to what the whole history folds to."""
    on_edge = [fact for fact in history if data.draw(st.booleans())]
    at_central = [fact for fact in history if fact not in on_edge or data.draw(st.booleans())]
    as_of = data.draw(times)
    edge_after = on_edge + [fact for fact in at_central if fact not in on_edge]
    central_after = at_central + [fact for fact in on_edge if fact not in at_central]
    assert (fold_coupon(edge_after, as_of=as_of) == fold_coupon(central_after, as_of=as_of)
            == fold_coupon(history, as_of=as_of))


@settings(max_examples=examples(300), deadline=None)
@given(facts(), times)
def test_a_coupon_is_redeemed_while_a_redemption_stands_and_only_then(
        history: list[CouponFact], as_of: datetime) -> None:
    state = fold_coupon(history, as_of=as_of)
    assert state is not None
    undone = {fact.of_ref for fact in history if fact.kind is FactKind.RESTORED}
    standing = {fact.ref for fact in history
                if fact.kind is FactKind.REDEEMED and fact.ref not in undone}
    assert (state.status is CouponStatus.REDEEMED) == bool(standing)
    if standing:
        assert state.redeemed_by in standing and state.conflicts == len(standing) - 1
    if state.status is CouponStatus.HELD:
        assert state.hold_id is not None


def test_nothing_is_known_before_the_issue() -> None:
    held = CouponFact(coupon_id="cp-1", kind=FactKind.HELD, ref="h1", at=T0)
    assert fold_coupon([held], as_of=T0) is None
