from __future__ import annotations

from datetime import timedelta

from gateway.loyalty import (
    Entry,
    EntryKind,
    LotStatus,
    Refund,
    fold,
    refund_entries,
    reminders_due,
)
from gateway.loyalty.earn import sale_entries
from tests.loyalty.helpers import NORMAL, RULES, at, burn, earn, sale

T0 = at(2026, 3, 1)


def test_burn_takes_the_soonest_expiring_lot_first() -> None:
    late = earn(100, T0, key="late", expires_in_days=300)
    soon = earn(100, T0 + timedelta(days=1), key="soon", expires_in_days=30)
    spend = burn(150, T0 + timedelta(days=2), key="b")
    state = fold([late, soon, spend], T0 + timedelta(days=3))
    assert state.available == 50
    assert state.allocations[spend.entry_id] == ((soon.entry_id, 100), (late.entry_id, 50))
    remaining = {lot.lot_id: lot.remaining for lot in state.lots}
    assert remaining == {soon.entry_id: 0, late.entry_id: 50}


def test_lots_without_expiry_are_spent_last() -> None:
    forever = earn(100, T0, key="forever", expires_in_days=None)
    dated = earn(100, T0 + timedelta(days=5), key="dated", expires_in_days=400)
    state = fold([forever, dated, burn(60, T0 + timedelta(days=6), key="b")],
                 T0 + timedelta(days=7))
    assert {lot.lot_id: lot.remaining for lot in state.lots} == {forever.entry_id: 100,
                                                                 dated.entry_id: 40}


def test_unspent_points_expire_at_the_lot_date_with_a_history_line() -> None:
    lot = earn(100, T0, key="e", expires_in_days=10)
    spend = burn(30, T0 + timedelta(days=1), key="b")
    before = fold([lot, spend], T0 + timedelta(days=10) - timedelta(seconds=1))
    after = fold([lot, spend], T0 + timedelta(days=10))
    assert (before.available, before.expired) == (70, 0)
    assert (after.available, after.expired) == (0, 70)
    assert after.journal[-1].event == "EXPIRED"
    assert after.journal[-1].available_delta == -70


def test_refund_after_points_were_spent_becomes_debt_repaid_by_later_earns() -> None:
    bought = sale(10_000, T0)
    earn_entry = sale_entries(bought, account_id="A1", member_id="M1", tier=NORMAL,
                              rules=RULES)[0]
    spend = burn(100, T0 + timedelta(hours=1), key="gift")
    refund = Refund(store_id="S01", pos_id="P1", refund_no="F1", business_date=T0.date(),
                    occurred_at=T0 + timedelta(hours=2), refund_fen=10_000)
    reverse = refund_entries(refund, sale_total_fen=10_000, earn=earn_entry, burn=None,
                             prior_refunded_fen=0, rules=RULES)
    assert [(e.kind, e.points, e.qual_fen) for e in reverse] == [
        (EntryKind.REVERSE, -100, -10_000)]
    state = fold([earn_entry, spend, *reverse], T0 + timedelta(hours=3))
    assert (state.available, state.debt) == (-100, 100)
    later = earn(130, T0 + timedelta(days=1), key="later")
    state = fold([earn_entry, spend, *reverse, later], T0 + timedelta(days=2))
    assert (state.available, state.debt) == (30, 0)


def test_partial_refunds_are_proportional_on_the_cumulative_share() -> None:
    bought = sale(300, T0)  # earns 3 points
    earn_entry = sale_entries(bought, account_id="A1", member_id="M1", tier=NORMAL,
                              rules=RULES)[0]
    halves = []
    for n, prior in ((1, 0), (2, 150)):
        refund = Refund(store_id="S01", pos_id="P1", refund_no=f"F{n}", business_date=T0.date(),
                        occurred_at=T0 + timedelta(hours=n), refund_fen=150)
        halves += refund_entries(refund, sale_total_fen=300, earn=earn_entry, burn=None,
                                 prior_refunded_fen=prior, rules=RULES)
    assert [e.points for e in halves] == [-1, -2]
    state = fold([earn_entry, *halves], T0 + timedelta(days=1))
    assert (state.available, state.debt, state.reversed[earn_entry.entry_id]) == (0, 0, 3)


def test_reversals_are_capped_in_the_fold_even_when_two_sites_refund() -> None:
    earn_entry = sale_entries(sale(10_000, T0), account_id="A1", member_id="M1", tier=NORMAL,
                              rules=RULES)[0]
    refunds = []
    for site in ("F-site-a", "F-site-b"):  # each site believed the whole sale unrefunded
        refund = Refund(store_id="S01", pos_id="P1", refund_no=site, business_date=T0.date(),
                        occurred_at=T0 + timedelta(hours=1), refund_fen=10_000)
        refunds += refund_entries(refund, sale_total_fen=10_000, earn=earn_entry, burn=None,
                                  prior_refunded_fen=0, rules=RULES)
    state = fold([earn_entry, *refunds], T0 + timedelta(days=1))
    assert (state.available, state.debt, state.reversed[earn_entry.entry_id]) == (0, 0, 100)
    assert sum(q.fen for q in state.qualifying) == 0


def test_refunding_a_sale_paid_with_points_restores_them() -> None:
    start = earn(500, T0 - timedelta(days=1), key="old")
    paid = sale(10_000, T0, points_used=200, points_paid_fen=2_000)
    sold = sale_entries(paid, account_id="A1", member_id="M1", tier=NORMAL, rules=RULES)
    refund = Refund(store_id="S01", pos_id="P1", refund_no="F1", business_date=T0.date(),
                    occurred_at=T0 + timedelta(hours=1), refund_fen=5_000)
    back = refund_entries(refund, sale_total_fen=10_000, earn=sold[0], burn=sold[1],
                          prior_refunded_fen=0, rules=RULES)
    assert [(e.kind, e.points) for e in back] == [(EntryKind.REVERSE, -40),
                                                  (EntryKind.RESTORE, 100)]
    state = fold([start, *sold, *back], T0 + timedelta(days=1))
    # 500 + 80 earned - 200 used - 40 reversed + 100 restored
    assert state.available == 440


def test_points_in_the_return_window_are_locked_and_a_refund_voids_them() -> None:
    pending = earn(100, T0, key="p", available_at=T0 + timedelta(days=7))
    locked = fold([pending], T0 + timedelta(days=1))
    assert (locked.available, locked.locked) == (0, 100)
    assert locked.lots[0].status is LotStatus.LOCKED
    unlocked = fold([pending], T0 + timedelta(days=7))
    assert (unlocked.available, unlocked.locked) == (100, 0)
    assert unlocked.journal[-1].event == "UNLOCKED"

    reverse = Entry(kind=EntryKind.REVERSE, points=-100, account_id="A1", member_id="M1",
                    source_type="test", source_key="refund", reason="refund",
                    effective_at=T0 + timedelta(days=2), rule_version="t",
                    ref_entry_id=pending.entry_id)
    voided = fold([pending, reverse], T0 + timedelta(days=8))
    assert (voided.available, voided.locked, voided.debt) == (0, 0, 0)


def test_refund_of_already_expired_points_creates_no_debt() -> None:
    lot = earn(100, T0, key="e", expires_in_days=10)
    reverse = Entry(kind=EntryKind.REVERSE, points=-100, account_id="A1", member_id="M1",
                    source_type="test", source_key="late-refund", reason="refund",
                    effective_at=T0 + timedelta(days=20), rule_version="t",
                    ref_entry_id=lot.entry_id)
    other = earn(50, T0 + timedelta(days=15), key="other")
    state = fold([lot, other, reverse], T0 + timedelta(days=30))
    assert (state.available, state.debt) == (50, 0)


def test_restore_without_the_burn_it_refers_to_has_no_effect_until_it_arrives() -> None:
    spend = burn(80, T0 + timedelta(hours=1), key="paid")
    restore = Entry(kind=EntryKind.RESTORE, points=80, account_id="A1", member_id="M1",
                    source_type="test", source_key="r", reason="restore",
                    effective_at=T0 + timedelta(hours=2), rule_version="t",
                    ref_entry_id=spend.entry_id)
    lot = earn(100, T0, key="lot")
    assert fold([lot, restore], T0 + timedelta(days=1)).available == 100
    assert fold([lot, spend, restore], T0 + timedelta(days=1)).available == 100


def test_history_explains_every_step_with_running_balances() -> None:
    entries = [earn(100, T0, key="a"), burn(40, T0 + timedelta(days=1), key="b")]
    journal = fold(entries, T0 + timedelta(days=2)).journal
    assert [(line.event, line.available_delta, line.available, line.reason)
            for line in journal] == [("EARN", 100, 100, "earn a"), ("BURN", -40, 60, "burn b")]


def test_reminder_dates_and_due_reminders() -> None:
    lot = earn(100, T0, key="e", expires_in_days=40)
    state = fold([lot], T0 + timedelta(days=1), reminder_days=(30, 7))
    expires = T0 + timedelta(days=40)
    assert state.lots[0].remind_at == (expires - timedelta(days=30), expires - timedelta(days=7))
    assert reminders_due(state, T0 + timedelta(days=5)) == []
    due = reminders_due(state, T0 + timedelta(days=35))
    assert [(d[0].lot_id, d[1]) for d in due] == [(lot.entry_id, expires - timedelta(days=7))]


def test_future_entries_are_not_counted_before_their_time() -> None:
    entries = [earn(100, T0, key="a"), earn(50, T0 + timedelta(days=3), key="b")]
    assert fold(entries, T0 + timedelta(days=1)).available == 100
    assert fold(entries, T0 + timedelta(days=3)).available == 150
