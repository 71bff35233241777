"""The edge's tier check sums the window's spend with indexed queries; it must count what
the fold counts, refunds capped at what their sale counted included."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ledger import Ledger
from gateway.ledger.tiers import window_spend_in
from gateway.loyalty import Entry, fold
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.tier_review import window_spend
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES
from tests.loyalty.test_properties import histories, offsets
from tests.scale import examples


async def both(entries: list[Entry], at: datetime, member: str) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gw.db"
        async with Writer(path) as writer, Reader(path) as reader:
            ledger = Ledger(writer, reader, site="gw", clock=HybridClock("gw"), rules=RULES)
            await ledger.record_many(entries)
            edge = await reader.run(lambda conn: window_spend_in(conn, ledger, "A1", member,
                                                                 at))
    folded = window_spend(fold(entries, at).qualifying, RULES, at, member)
    return edge, folded


@settings(max_examples=examples(40), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(histories(), offsets, st.sampled_from(["M1", "M2"]))
def test_the_indexed_window_spend_is_the_folds(entries: list[Entry], at: datetime,
                                               member: str) -> None:
    edge, folded = asyncio.run(both(entries, at, member))
    assert edge == folded
