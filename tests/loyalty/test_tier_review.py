"""Tiers kept live: upgrades after each qualifying entry, one step down per anniversary."""

from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.loyalty import Entry, fold
from gateway.loyalty.fold import qualifying_of
from gateway.loyalty.tier_review import (
    Standing,
    review_at_anniversary,
    tier_change_id,
    upgrade_after,
)
from tests.loyalty.helpers import RULES, at, earn
from tests.loyalty.test_properties import histories
from tests.scale import examples

YUAN = 100


def spend_entry(yuan: int, when_day: int, key: str, month: int = 3) -> Entry:
    return earn(yuan, at(2026, month, when_day), key=key, qual_fen=yuan * YUAN)


def test_a_sale_that_reaches_silver_upgrades_at_once_with_an_anniversary_a_year_on() -> None:
    first, second = spend_entry(400, 1, "r1"), spend_entry(200, 2, "r2")
    assert upgrade_after(Standing("normal"), qualifying_of([first]), RULES,
                         member_id="M1", trigger=first) is None
    change = upgrade_after(Standing("normal"), qualifying_of([first, second]), RULES,
                           member_id="M1", trigger=second)
    assert change is not None
    assert (change.from_tier, change.to_tier, change.direction) == ("normal", "silver",
                                                                    "upgrade")
    assert change.anniversary == date(2027, 3, 2)
    assert change.qualifying_fen == 600 * YUAN
    assert change.change_id == tier_change_id("M1", "silver", second.entry_id)


def test_an_upgrade_can_skip_tiers_and_never_lowers() -> None:
    big = spend_entry(3_200, 1, "r1")
    change = upgrade_after(Standing("silver"), qualifying_of([big]), RULES,
                           member_id="M1", trigger=big)
    assert change is not None and change.to_tier == "diamond"
    small = spend_entry(10, 2, "r2")
    assert upgrade_after(Standing("gold"), qualifying_of([small]), RULES,
                         member_id="M1", trigger=small) is None


def test_only_the_members_own_spend_counts() -> None:
    mine = spend_entry(300, 1, "r1")
    theirs = earn(300, at(2026, 3, 1), key="r2", qual_fen=300 * YUAN, member="M2")
    assert upgrade_after(Standing("normal"), qualifying_of([mine, theirs]), RULES,
                         member_id="M1", trigger=mine) is None


def test_anniversary_downgrades_one_step_and_keeps_a_tier_still_held() -> None:
    spend = qualifying_of([spend_entry(3_500, 10, "r1", month=1)])
    standing = Standing("diamond", date(2027, 1, 10))
    same, none = review_at_anniversary(standing, spend, RULES, member_id="M1",
                                       today=date(2027, 1, 10))
    assert (same, none) == (standing, [])
    after, changes = review_at_anniversary(standing, spend, RULES, member_id="M1",
                                           today=date(2027, 1, 11))
    assert after == Standing("gold", date(2028, 1, 10))
    assert [(c.from_tier, c.to_tier, c.direction) for c in changes] == [
        ("diamond", "gold", "downgrade")]
    kept, none = review_at_anniversary(
        Standing("silver", date(2027, 1, 10)),
        qualifying_of([spend_entry(600, 1, "r2", month=12)]), RULES, member_id="M1",
        today=date(2027, 1, 11))
    assert (kept, none) == (Standing("silver", date(2028, 1, 10)), [])


@settings(max_examples=examples(200), deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_re_evaluation_is_order_independent_and_idempotent(entries: list[Entry],
                                                           rnd: object) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    # The stream is the fold's, whatever the arrival order.
    assert qualifying_of(shuffled) == qualifying_of(entries)
    folded = fold(entries, at(2030, 1, 1)).qualifying
    assert qualifying_of(entries) == tuple(q for q in folded if q.fen)
    trigger = max(entries, key=lambda e: (e.effective_at, e.entry_id))
    stream = qualifying_of(shuffled)
    first = upgrade_after(Standing("normal"), stream, RULES, member_id="M1", trigger=trigger)
    again = upgrade_after(Standing("normal"), qualifying_of(entries), RULES, member_id="M1",
                          trigger=trigger)
    assert first == again
    if first is not None:  # applied once, the same entries earn nothing more
        assert upgrade_after(first.standing, stream, RULES, member_id="M1",
                             trigger=trigger) is None


def test_spend_under_a_former_provisional_id_counts_for_the_member() -> None:
    """A member enrolled offline spent under its provisional id; merged under central's id,
    that spend is still the member's, for the upgrade and at the anniversary."""
    offline = earn(300, at(2026, 3, 1), key="p1", qual_fen=300 * YUAN, member="p-1")
    later = spend_entry(250, 2, "m1")
    stream = qualifying_of([offline, later])
    assert upgrade_after(Standing("normal"), stream, RULES, member_id="M1",
                         trigger=later) is None
    change = upgrade_after(Standing("normal"), stream, RULES, member_id="M1", trigger=later,
                           known_as={"p-1"})
    assert change is not None and change.to_tier == "silver"
    assert change.qualifying_fen == 550 * YUAN
    # Silver since 2 March 2026, the offline spend within the year: kept another year.
    kept, changes = review_at_anniversary(Standing("silver", date(2026, 12, 1)), stream,
                                          RULES, member_id="M1", today=date(2026, 12, 3),
                                          known_as={"p-1"})
    assert changes == [] and kept.tier == "silver"
