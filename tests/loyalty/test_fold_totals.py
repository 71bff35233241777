"""`fold_totals` is `fold`'s available, locked and debt, for any history and instant."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings

from gateway.loyalty import Entry, fold, fold_totals
from tests.loyalty.test_properties import histories, offsets
from tests.scale import examples


@settings(max_examples=examples(300), deadline=None)
@given(histories(), offsets)
def test_totals_are_the_folds_sums(entries: list[Entry], as_of: datetime) -> None:
    state = fold(entries, as_of, journal=False)
    totals = fold_totals(entries, as_of)
    assert (totals.available, totals.locked, totals.debt) == (
        state.available, state.locked, state.debt)
