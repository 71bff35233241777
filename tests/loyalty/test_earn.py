from __future__ import annotations

import json

import pytest

from gateway.loyalty import EntryKind, InvalidSale, LoyaltyRules, Sale, SaleLine, quote_sale
from gateway.loyalty.earn import sale_entries
from tests.loyalty.helpers import DIAMOND, GOLD, NORMAL, RULES, at, sale

PLAIN_DAY = at(2026, 3, 10)  # not the 18th: no member day
MEMBER_DAY = at(2026, 3, 18)


def rules_with(**earn: object) -> LoyaltyRules:
    data = RULES.model_dump(mode="json")
    data["earn"].update(earn)
    return LoyaltyRules.model_validate_json(json.dumps(data))


def test_one_point_per_whole_yuan_paid() -> None:
    quote = quote_sale(sale(12_345, PLAIN_DAY), NORMAL, RULES)
    assert (quote.points, quote.qual_fen) == (123, 12_345)


def test_member_day_and_tier_multiply_before_a_single_floor() -> None:
    # ¥99.99 x gold 1.25 x member day 2 = 249.975 -> 249 (one floor at the end).
    assert quote_sale(sale(9_999, MEMBER_DAY), GOLD, RULES).points == 249
    assert quote_sale(sale(9_999, PLAIN_DAY), DIAMOND, RULES).points == 149  # 149.985


def test_member_day_is_the_local_day_not_utc() -> None:
    # 18 March 01:00 in Shanghai is still 17 March in UTC.
    assert quote_sale(sale(10_000, at(2026, 3, 18, 1)), NORMAL, RULES).points == 200
    assert quote_sale(sale(10_000, at(2026, 3, 19, 1)), NORMAL, RULES).points == 100


def test_small_lines_are_not_floored_one_by_one() -> None:
    three_cheap = Sale(store_id="S01", pos_id="P1", receipt_no="R9",
                       business_date=PLAIN_DAY.date(), occurred_at=PLAIN_DAY, total_fen=297,
                       lines=(SaleLine(99), SaleLine(99), SaleLine(99)))
    assert quote_sale(three_cheap, NORMAL, RULES).points == 2


def test_category_and_store_multipliers() -> None:
    rules = rules_with(category_multiplier_pct={"tobacco": 0, "beauty": 300},
                       store_multiplier_pct={"S01": 150})
    mixed = Sale(store_id="S01", pos_id="P1", receipt_no="R2", business_date=PLAIN_DAY.date(),
                 occurred_at=PLAIN_DAY, total_fen=20_000,
                 lines=(SaleLine(10_000, "tobacco"), SaleLine(10_000, "beauty")))
    # half earns nothing, half earns triple; the store adds 1.5x: 200 * (0+3)/2 * 1.5 = 450.
    assert quote_sale(mixed, NORMAL, rules).points == 450


def test_highest_spend_bonus_reached_applies() -> None:
    rules = rules_with(spend_bonuses=[
        {"min_fen": 50_000, "bonus_points": 20},
        {"min_fen": 100_000, "multiplier_pct": 120, "bonus_points": 50},
    ])
    assert quote_sale(sale(100_000, PLAIN_DAY), NORMAL, rules).points == 1_250
    assert quote_sale(sale(60_000, PLAIN_DAY), NORMAL, rules).points == 620
    assert quote_sale(sale(49_999, PLAIN_DAY), NORMAL, rules).points == 499


def test_points_paid_part_neither_earns_nor_qualifies_and_is_burned() -> None:
    paid = sale(10_000, PLAIN_DAY, points_used=300, points_paid_fen=3_000)
    earn_entry, burn_entry = sale_entries(paid, account_id="A1", member_id="M1", tier=NORMAL,
                                          rules=RULES)
    assert (earn_entry.kind, earn_entry.points, earn_entry.qual_fen) == (EntryKind.EARN, 70,
                                                                         7_000)
    assert (burn_entry.kind, burn_entry.points) == (EntryKind.BURN, -300)
    assert earn_entry.entry_id != burn_entry.entry_id


def test_sale_identity_is_store_pos_receipt_and_business_date() -> None:
    first = sale_entries(sale(100, PLAIN_DAY), account_id="A1", member_id="M1", tier=NORMAL,
                         rules=RULES)[0]
    copy = sale_entries(sale(100, PLAIN_DAY), account_id="A1", member_id="M1", tier=NORMAL,
                        rules=RULES)[0]
    next_day = sale_entries(sale(100, at(2026, 3, 11)), account_id="A1", member_id="M1",
                            tier=NORMAL, rules=RULES)[0]
    assert first.entry_id == copy.entry_id
    assert first.entry_id != next_day.entry_id


def test_default_expiry_is_end_of_next_calendar_year_local() -> None:
    entry = sale_entries(sale(100, at(2026, 12, 31, 23, 59)), account_id="A1",
                         member_id="M1", tier=NORMAL, rules=RULES)[0]
    assert entry.expires_at == at(2028, 1, 1, 0, 0)


def test_pending_days_lock_points_for_the_return_window() -> None:
    rules = rules_with(pending_days=7)
    entry = sale_entries(sale(100, PLAIN_DAY), account_id="A1", member_id="M1", tier=NORMAL,
                         rules=rules)[0]
    assert entry.available_at == at(2026, 3, 17)


@pytest.mark.parametrize(("total", "paid_fen", "used"), [
    (-1, 0, 0),  # negative total
    (100, 200, 20),  # paid more with points than the bill
    (100, 50, 0),  # points paid without points used
])
def test_impossible_sales_are_refused(total: int, paid_fen: int, used: int) -> None:
    with pytest.raises(InvalidSale):
        Sale(store_id="S", pos_id="P", receipt_no="R", business_date=PLAIN_DAY.date(),
             occurred_at=PLAIN_DAY, total_fen=total, points_paid_fen=paid_fen,
             points_used=used)
