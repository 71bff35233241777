from __future__ import annotations

from datetime import datetime, timedelta

from gateway.loyalty.fold import Qualifying
from tests.loyalty.helpers import RULES, at
from tests.loyalty.tier_replay import tier_at

YUAN = 100


def spend(when: datetime, yuan: int, member: str = "M1") -> Qualifying:
    return Qualifying(when, member, yuan * YUAN)


def test_base_tier_without_spend() -> None:
    state = tier_at([], RULES, at(2026, 1, 1))
    assert (state.tier.code, state.anniversary) == ("normal", None)


def test_upgrade_happens_at_once_and_can_skip_tiers() -> None:
    stream = [spend(at(2026, 1, 10), 400), spend(at(2026, 2, 1), 1_200)]
    assert tier_at(stream, RULES, at(2026, 1, 31)).tier.code == "normal"
    state = tier_at(stream, RULES, at(2026, 2, 1))
    assert (state.tier.code, state.since) == ("gold", at(2026, 2, 1))
    assert state.anniversary == at(2027, 2, 1)


def test_refund_lowers_spend_but_never_downgrades_before_the_anniversary() -> None:
    stream = [spend(at(2026, 1, 10), 1_600), spend(at(2026, 1, 20), -1_600)]
    state = tier_at(stream, RULES, at(2026, 12, 31))
    assert (state.tier.code, state.qualifying_fen) == ("gold", 0)


def test_downgrade_one_step_per_anniversary() -> None:
    stream = [spend(at(2025, 1, 10), 3_500)]  # diamond on 2025-01-10, nothing after
    assert tier_at(stream, RULES, at(2026, 1, 9)).tier.code == "diamond"
    after_first = tier_at(stream, RULES, at(2026, 1, 10))
    assert (after_first.tier.code, after_first.anniversary) == ("gold", at(2027, 1, 10))
    assert tier_at(stream, RULES, at(2027, 1, 10)).tier.code == "silver"
    assert tier_at(stream, RULES, at(2028, 1, 10)).tier.code == "normal"
    assert tier_at(stream, RULES, at(2030, 1, 10)).tier.code == "normal"


def test_tier_kept_when_the_window_still_qualifies_at_the_anniversary() -> None:
    # Gold on 2025-02-01 (1000 + 500 in the window); the April spend keeps the next
    # window at 1500, so the anniversary review keeps gold for another year.
    stream = [spend(at(2024, 3, 1), 1_000), spend(at(2025, 2, 1), 500),
              spend(at(2025, 4, 1), 1_500)]
    assert tier_at(stream, RULES, at(2025, 4, 1)).tier.code == "gold"
    state = tier_at(stream, RULES, at(2026, 2, 1))
    assert (state.tier.code, state.anniversary) == ("gold", at(2027, 2, 1))


def test_spend_is_counted_over_a_rolling_window() -> None:
    stream = [spend(at(2025, 3, 1), 300), spend(at(2026, 2, 1), 300),
              spend(at(2026, 4, 1), 100)]
    # 2026-02-01: 300 + 300 within 12 months -> silver. 2026-04-01: the March 2025 spend
    # left the window, 300 + 100 = 400 in it.
    assert tier_at(stream, RULES, at(2026, 2, 1)).tier.code == "silver"
    state = tier_at(stream, RULES, at(2026, 4, 1))
    assert (state.tier.code, state.qualifying_fen) == ("silver", 400 * YUAN)


def test_only_the_members_own_spend_counts_in_a_family_account() -> None:
    stream = [spend(at(2026, 1, 1), 2_000, "parent"), spend(at(2026, 1, 2), 100, "child")]
    assert tier_at(stream, RULES, at(2026, 2, 1), member_id="child").tier.code == "normal"
    assert tier_at(stream, RULES, at(2026, 2, 1), member_id="parent").tier.code == "gold"


def test_tier_boundaries_are_inclusive() -> None:
    exactly = [spend(at(2026, 1, 1), 500)]
    just_below = [Qualifying(at(2026, 1, 1), "M1", 500 * YUAN - 1)]
    assert tier_at(exactly, RULES, at(2026, 1, 2)).tier.code == "silver"
    assert tier_at(just_below, RULES, at(2026, 1, 2)).tier.code == "normal"
    assert tier_at(exactly, RULES, at(2026, 1, 1) + timedelta(hours=1)).index == 1
