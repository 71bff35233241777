"""The edge's tier check sums the window's spend with indexed queries; it must count what
the fold counts, refunds capped at what their sale counted included."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ledger import Ledger
from gateway.ledger.tiers import window_spend_in
from gateway.loyalty import Entry, fold
from gateway.loyalty.hlc import HybridClock
from gateway.loyalty.tier_review import window_spend
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES, earn
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


async def test_the_window_counts_spend_under_the_members_merged_provisional_id() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gw.db"
        async with Writer(path) as writer, Reader(path) as reader:
            ledger = Ledger(writer, reader, site="gw", clock=HybridClock("gw"), rules=RULES)
            at = datetime(2026, 3, 2, 12, tzinfo=RULES.tz)
            await ledger.record_many([
                earn(300, at - timedelta(days=1), key="p1", qual_fen=30_000, member="p-1"),
                earn(250, at, key="m1", qual_fen=25_000, member="M1"),
                earn(900, at, key="o1", qual_fen=90_000, member="M2")])  # family: not M1's
            await writer.submit(lambda c: c.execute(
                "INSERT INTO member_aliases (alias_id, member_id, created_at) "
                "VALUES ('p-1', 'M1', '2026-03-02')"))
            spend = await reader.run(lambda c: window_spend_in(c, ledger, "A1", "M1", at))
    assert spend == 55_000
