from __future__ import annotations

import pytest

from gateway.loyalty import (
    InsufficientPoints,
    OfflineLimitExceeded,
    birthday_entry,
    check_redemption,
    checkin_entry,
    fold,
    new_member_entry,
    offline_allowance,
    profile_completed_entry,
    profile_is_complete,
    redemption_entry,
    referral_entries,
)
from gateway.loyalty.rules import TaskRules
from tests.loyalty.helpers import RULES, at


def test_checkin_identity_is_member_and_local_day() -> None:
    morning = checkin_entry(account_id="A1", member_id="M1", at=at(2026, 5, 1, 0, 30),
                            rules=RULES)
    evening = checkin_entry(account_id="A1", member_id="M1", at=at(2026, 5, 1, 23, 30),
                            rules=RULES)
    next_day = checkin_entry(account_id="A1", member_id="M1", at=at(2026, 5, 2, 0, 0),
                             rules=RULES)
    assert morning.entry_id == evening.entry_id != next_day.entry_id
    assert morning.source_key == "M1:2026-05-01"  # 2026-04-30 in UTC, local day counts
    assert fold([morning, evening, next_day], at(2026, 5, 3)).available == 2 * RULES.checkin.points


def test_profile_task_once_and_referral_rewards_both_sides() -> None:
    first = profile_completed_entry(account_id="A1", member_id="M1", at=at(2026, 1, 1),
                                    rules=RULES)
    again = profile_completed_entry(account_id="A1", member_id="M1", at=at(2026, 6, 1),
                                    rules=RULES)
    assert first.entry_id == again.entry_id
    inviter, friend = referral_entries(referrer_account="A1", referrer_id="M1",
                                       referee_account="A2", referee_id="M2",
                                       at=at(2026, 2, 1), rules=RULES)
    assert (inviter.account_id, inviter.points) == ("A1", RULES.tasks.referrer_points)
    assert (friend.account_id, friend.points) == ("A2", RULES.tasks.referee_points)


def test_birthday_gift_once_a_year_in_the_birthday_month() -> None:
    gifts = [birthday_entry(account_id="A1", member_id="M1", birth_month=7, birth_day=20,
                            at=when, rules=RULES)
             for when in (at(2026, 7, 1), at(2026, 7, 31), at(2027, 7, 5))]
    assert all(g is not None for g in gifts)
    ids = [g.entry_id for g in gifts if g is not None]
    assert ids[0] == ids[1] != ids[2]
    assert birthday_entry(account_id="A1", member_id="M1", birth_month=7, birth_day=20,
                          at=at(2026, 8, 1), rules=RULES) is None


def test_leap_day_birthday_in_a_common_year_with_day_window() -> None:
    rules = RULES.model_copy(update={"birthday": RULES.birthday.model_copy(
        update={"window": "day"})})
    assert birthday_entry(account_id="A1", member_id="M1", birth_month=2, birth_day=29,
                          at=at(2027, 2, 28), rules=rules) is not None
    assert birthday_entry(account_id="A1", member_id="M1", birth_month=2, birth_day=29,
                          at=at(2027, 3, 1), rules=rules) is None


def test_redemption_checks_balance_then_offline_allowance() -> None:
    check_redemption(cost=100, available=100, online=True, allowance_left=None)
    with pytest.raises(InsufficientPoints) as short:
        check_redemption(cost=101, available=100, online=True, allowance_left=None)
    assert (short.value.code, short.value.cost, short.value.available) == (
        "insufficient_points", 101, 100)
    check_redemption(cost=50, available=100, online=False, allowance_left=50)
    with pytest.raises(OfflineLimitExceeded) as offline:
        check_redemption(cost=51, available=100, online=False, allowance_left=50)
    assert offline.value.code == "offline_limit"
    with pytest.raises(OfflineLimitExceeded):
        check_redemption(cost=1, available=100, online=False, allowance_left=None)


def test_offline_allowance_is_capped_and_never_negative() -> None:
    assert offline_allowance(10_000, RULES) == RULES.redemption.offline_allowance_cap
    assert offline_allowance(120, RULES) == 120
    assert offline_allowance(-30, RULES) == 0


def test_redemption_retry_has_the_same_identity() -> None:
    one = redemption_entry(account_id="A1", member_id="M1", request_id="01J0", cost=10,
                           item="coffee", at=at(2026, 1, 1), rules=RULES)
    two = redemption_entry(account_id="A1", member_id="M1", request_id="01J0", cost=10,
                           item="coffee", at=at(2026, 1, 1, 13), rules=RULES)
    assert one.entry_id == two.entry_id
    assert one.points == -10


def test_a_stamped_copy_is_the_same_fact_with_the_sites_stamps() -> None:
    entry = checkin_entry(account_id="A1", member_id="M1", at=at(2026, 5, 1), rules=RULES)
    copy = entry.stamped(origin_site="gw-9", origin_seq=12, hlc="0000000000001-0000-gw",
                         recorded_at=at(2026, 5, 1, 12, 1))
    assert copy.fact == entry.fact
    assert (copy.origin_site, copy.origin_seq, copy.recorded_at) == ("gw-9", 12,
                                                                     at(2026, 5, 1, 12, 1))
    assert entry.origin_site == ""  # the original is untouched


def test_new_member_gift_is_once_per_member_and_off_by_default() -> None:
    assert new_member_entry(account_id="A1", member_id="M1", at=at(2026, 1, 1),
                            rules=RULES) is None
    rules = RULES.model_copy(update={"tasks": TaskRules(new_member_points=30)})
    first = new_member_entry(account_id="A1", member_id="M1", at=at(2026, 1, 1), rules=rules)
    again = new_member_entry(account_id="A1", member_id="M1", at=at(2026, 3, 1), rules=rules)
    other = new_member_entry(account_id="A2", member_id="M2", at=at(2026, 1, 1), rules=rules)
    assert first is not None and again is not None and other is not None
    assert first.entry_id == again.entry_id != other.entry_id
    assert first.points == 30


def test_a_profile_is_complete_with_every_field_the_rules_ask_for() -> None:
    full = {"name": "张三", "phone_masked": "138****8000", "birth_month": 2, "birth_day": 29}
    assert profile_is_complete(full, RULES)
    assert profile_is_complete({**full, "phone_masked": None, "phone": "13800138000"}, RULES)
    assert not profile_is_complete({**full, "name": ""}, RULES)
    assert not profile_is_complete({**full, "birth_day": None}, RULES)
    names_only = RULES.model_copy(update={"tasks": TaskRules(profile_fields=("name",))})
    assert profile_is_complete({"name": "李"}, names_only)
