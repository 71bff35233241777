"""Properties of the fold that make the ledger safe to replicate."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.loyalty import AccountState, Entry, EntryKind, LotStatus, fold, quote_sale
from tests.loyalty.helpers import NORMAL, RULES, at, sale
from tests.loyalty.tier_replay import tier_at
from tests.scale import examples

T0 = at(2026, 1, 1)
AS_OF = T0 + timedelta(days=800)
REMINDERS = (30, 7)

offsets = st.integers(min_value=0, max_value=700 * 24).map(lambda h: T0 + timedelta(hours=h))


@st.composite
def histories(draw: st.DrawFn) -> list[Entry]:
    """An account's entries: earns (some locked, some never expiring), spends, adjustments,
    refunds of earlier earns and restores of earlier spends, including over-refunds."""
    entries: list[Entry] = []
    earns: list[Entry] = []
    burns: list[Entry] = []
    for n in range(draw(st.integers(min_value=1, max_value=25))):
        when: datetime = draw(offsets)
        kind = draw(st.sampled_from(["earn", "earn", "burn", "adjust", "reverse", "restore",
                                     "qual"]))
        make = partial(Entry, account_id="A1",
                       member_id=draw(st.sampled_from(["M1", "M2"])), source_type="prop",
                       source_key=f"k{n}", reason=kind, effective_at=when, rule_version="t",
                       hlc=draw(st.sampled_from(["", "0000000000001-0000-a",
                                                 "0000000000002-0000-b"])))
        if kind == "earn":
            life = draw(st.none() | st.integers(min_value=1, max_value=400))
            lock = draw(st.none() | st.integers(min_value=0, max_value=30))
            entry = make(kind=EntryKind.EARN, points=draw(st.integers(0, 500)),
                          qual_fen=draw(st.integers(0, 200_000)),
                          expires_at=when + timedelta(days=life) if life else None,
                          available_at=when + timedelta(days=lock) if lock is not None
                          else None)
            earns.append(entry)
        elif kind == "burn":
            entry = make(kind=EntryKind.BURN, points=-draw(st.integers(1, 400)))
            burns.append(entry)
        elif kind == "adjust":
            entry = make(kind=EntryKind.ADJUST,
                          points=draw(st.integers(-300, 300).filter(bool)))
        elif kind == "reverse" and earns:
            ref = draw(st.sampled_from(earns))
            entry = make(kind=EntryKind.REVERSE, points=-draw(st.integers(0, 600)),
                          qual_fen=-draw(st.integers(0, 250_000)), ref_entry_id=ref.entry_id,)
        elif kind == "restore" and burns:
            ref = draw(st.sampled_from(burns))
            entry = make(kind=EntryKind.RESTORE, points=draw(st.integers(1, 500)),
                          ref_entry_id=ref.entry_id, expires_at=when + timedelta(days=365),)
        else:
            entry = make(kind=EntryKind.QUAL_SPEND, points=0,
                          qual_fen=draw(st.integers(-50_000, 50_000)))
        entries.append(entry)
    return entries


def summary(state: AccountState) -> tuple[object, ...]:
    return (state.available, state.locked, state.debt, state.expired, state.lots,
            sorted(state.reversed.items()), sorted(state.restored.items()),
            sorted(state.allocations.items()), state.journal,
            tier_at(state.qualifying, RULES, AS_OF, member_id="M1"))


@settings(max_examples=examples(150), deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_fold_is_independent_of_arrival_order(entries: list[Entry], rnd: object) -> None:
    shuffled = list(entries)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert summary(fold(shuffled, AS_OF)) == summary(fold(entries, AS_OF))


@settings(max_examples=examples(150), deadline=None)
@given(histories(), st.data())
def test_merging_two_sites_converges_in_any_order(entries: list[Entry],
                                                  data: st.DataObject) -> None:
    # Each entry is known at site A, at site B, or at both; merging is a set union.
    placement = [data.draw(st.sampled_from(["a", "b", "ab"])) for _ in entries]
    site_a = [e for e, p in zip(entries, placement, strict=True) if "a" in p]
    site_b = [e for e, p in zip(entries, placement, strict=True) if "b" in p]
    whole = summary(fold(entries, AS_OF))
    assert summary(fold(site_a + site_b, AS_OF)) == whole
    assert summary(fold(site_b + site_a, AS_OF)) == whole
    assert summary(fold(site_b + site_a + site_b, AS_OF)) == whole


@settings(max_examples=examples(150), deadline=None)
@given(histories(), st.data())
def test_recording_an_entry_twice_changes_nothing(entries: list[Entry],
                                                  data: st.DataObject) -> None:
    again = data.draw(st.lists(st.sampled_from(entries), max_size=5))
    assert summary(fold(entries + again, AS_OF)) == summary(fold(entries, AS_OF))


@settings(max_examples=examples(200), deadline=None)
@given(histories(), offsets)
def test_balance_is_open_lot_remainders_minus_debt(entries: list[Entry],
                                                   as_of: datetime) -> None:
    state = fold(entries, as_of, reminder_days=REMINDERS)
    spendable = sum(lot.remaining for lot in state.lots if lot.status is LotStatus.AVAILABLE)
    locked = sum(lot.remaining for lot in state.lots if lot.status is LotStatus.LOCKED)
    assert state.available == spendable - state.debt
    assert state.locked == locked
    assert state.debt >= 0
    assert state.debt == 0 or spendable == 0  # debt absorbs points as soon as they are free
    assert all(lot.remaining == 0 for lot in state.lots if lot.status is LotStatus.EXPIRED)
    assert all(0 <= lot.remaining <= lot.granted for lot in state.lots)
    for ref, taken in state.reversed.items():
        earned = next(e.points for e in entries if e.entry_id == ref)
        assert 0 <= taken <= earned
    if state.journal:
        last = state.journal[-1]
        assert (last.available, last.locked, last.debt) == (state.available, state.locked,
                                                            state.debt)


def _all_ints(value: object) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(_all_ints(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return all(_all_ints(v) for v in value)
    if hasattr(value, "__slots__"):
        return all(_all_ints(getattr(value, s)) for s in value.__slots__)
    return True


@settings(max_examples=examples(100), deadline=None)
@given(histories())
def test_only_integer_arithmetic(entries: list[Entry]) -> None:
    state = fold(entries, AS_OF)
    assert _all_ints(state)
    assert isinstance(state.available, int)
    assert all(type(line.available_delta) is int for line in state.journal)


@settings(max_examples=examples(300), deadline=None)
@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9))
def test_plain_earn_is_floor_of_whole_yuan_and_monotonic(a: int, b: int) -> None:
    plain_day = at(2026, 3, 10)
    low, high = sorted((a, b))
    points_low = quote_sale(sale(low, plain_day), NORMAL, RULES).points
    points_high = quote_sale(sale(high, plain_day), NORMAL, RULES).points
    assert points_low == low // 100
    assert type(points_low) is int
    assert points_low <= points_high


@settings(max_examples=examples(100), deadline=None)
@given(histories(), st.data())
def test_copies_stamped_differently_by_two_sites_merge_the_same_way(
    entries: list[Entry], data: st.DataObject,
) -> None:
    # Both sites recorded every fact; B's copies carry B's own stamps (clock, sequence,
    # recording time). Whichever copy wins, both merge orders must pick the same one.
    site_a = [replace(e, origin_site="a", origin_seq=i, recorded_at=e.effective_at,
                      hlc=f"{i:013d}-0000-a") for i, e in enumerate(entries)]
    site_b = [replace(e, origin_site="b", origin_seq=i,
                      recorded_at=e.effective_at + timedelta(seconds=data.draw(
                          st.integers(-5, 5))),
                      hlc=f"{i:013d}-0001-b") for i, e in enumerate(entries)]
    assert summary(fold(site_a + site_b, AS_OF)) == summary(fold(site_b + site_a, AS_OF))
