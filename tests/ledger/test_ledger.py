from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ledger import Ledger, Recorded
from gateway.loyalty import AccountState, Entry, ImplausibleEntry, Plausibility, fold
from gateway.loyalty.activities import checkin_entry
from gateway.loyalty.earn import sale_entries
from gateway.loyalty.hlc import HybridClock
from gateway.store import Reader, Writer
from tests.loyalty.helpers import NORMAL, RULES, at, burn, earn, sale
from tests.loyalty.test_properties import histories
from tests.scale import examples


class FakeTime:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(at(2026, 3, 1))


@pytest.fixture
async def ledger(tmp_path: Path, clock: FakeTime) -> AsyncIterator[Ledger]:
    async with Writer(tmp_path / "gw.db") as writer, Reader(tmp_path / "gw.db") as reader:
        yield Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                     now=clock)


def rows(ledger: Ledger, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(ledger._writer.path)  # a plain outside view of the file
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_recording_the_same_fact_twice_returns_the_first_result(ledger: Ledger) -> None:
    first = await ledger.record(earn(100, at(2026, 3, 1), key="s1"))
    # The same natural key with other content (e.g. a later rule version) is a duplicate.
    again = await ledger.record(replace(earn(100, at(2026, 3, 1), key="s1"), points=999,
                                        entry_id=""))
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.entry == first.entry
    assert again.entry.points == 100
    assert (await ledger.balance("A1")).available == 100
    assert rows(ledger, "SELECT count(*) FROM ledger") == [(1,)]
    assert rows(ledger, "SELECT count(*) FROM outbox") == [(1,)]
    assert (ledger.stats.recorded, ledger.stats.duplicates) == (1, 1)


async def test_concurrent_duplicates_apply_once(ledger: Ledger, clock: FakeTime) -> None:
    checkin = checkin_entry(account_id="A1", member_id="M1", at=clock.now, rules=RULES)
    results = await asyncio.gather(*(ledger.record(checkin) for _ in range(50)))
    assert sum(not r.duplicate for r in results) == 1
    assert len({r.entry for r in results}) == 1
    assert (await ledger.balance("A1")).available == RULES.checkin.points


async def test_entries_are_stamped_with_site_sequence_and_clock(ledger: Ledger) -> None:
    entries = [earn(10, at(2026, 3, 1), key=f"k{i}") for i in range(5)]
    recorded = [await ledger.record(e) for e in entries]
    assert [r.entry.origin_seq for r in recorded] == [1, 2, 3, 4, 5]
    assert all(r.entry.origin_site == "gw-1" for r in recorded)
    stamps = [r.entry.hlc for r in recorded]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5
    assert rows(ledger, "SELECT event_id FROM outbox ORDER BY seq") == [
        (r.entry.entry_id,) for r in recorded]


async def test_a_sale_and_its_burn_are_recorded_together(ledger: Ledger) -> None:
    await ledger.record(earn(500, at(2026, 2, 1), key="old"))
    paid = sale(10_000, at(2026, 3, 1), points_used=200, points_paid_fen=2_000)
    results = await ledger.record_many(sale_entries(paid, account_id="A1", member_id="M1",
                                                    tier=NORMAL, rules=RULES))
    assert [r.duplicate for r in results] == [False, False]
    assert (await ledger.balance("A1")).available == 500 + 80 - 200


async def test_balance_splits_confirmed_and_pending(ledger: Ledger, clock: FakeTime) -> None:
    synced = await ledger.record(earn(300, at(2026, 2, 1), key="synced"))
    await ledger.record(earn(50, at(2026, 2, 2), key="local"))
    await ledger.record(burn(20, at(2026, 2, 3), key="local-spend"))
    await ledger.acknowledge([(synced.entry.entry_id, 41)])
    balance = await ledger.balance("A1")
    assert (balance.available, balance.confirmed, balance.pending) == (330, 300, 30)
    assert balance.as_of == clock.now


async def test_history_replays_every_entry_with_its_reason(ledger: Ledger) -> None:
    await ledger.record(earn(100, at(2026, 1, 1), key="a", expires_in_days=30))
    await ledger.record(burn(40, at(2026, 1, 5), key="b"))
    history = await ledger.history("A1")
    assert [(h.event, h.available_delta, h.available, h.reason) for h in history] == [
        ("EARN", 100, 100, "earn a"),
        ("BURN", -40, 60, "burn b"),
        ("EXPIRED", -60, 0, "60 points expired"),
    ]


async def test_entries_survive_a_round_trip_through_the_database(ledger: Ledger) -> None:
    original = earn(7, at(2026, 1, 1, 8, 30), key="rt", available_at=at(2026, 1, 8))
    stored = (await ledger.record(original)).entry
    ((read_back, acked),) = await ledger.entries("A1")
    assert read_back == stored
    assert read_back.fact == original.fact
    assert acked is False


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=histories(), data=st.data())
def test_the_store_holds_the_fold_of_the_set_whatever_the_order(
    tmp_path_factory: pytest.TempPathFactory, entries: list[Entry], data: st.DataObject,
) -> None:
    arrivals = data.draw(st.permutations(entries + entries[:3]))  # shuffled, with repeats
    as_of = at(2028, 6, 1)

    async def stored_state() -> AccountState:
        path = tmp_path_factory.mktemp("prop") / "gw.db"
        async with Writer(path) as writer, Reader(path) as reader:
            ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"),
                            rules=RULES, now=lambda: as_of)
            await asyncio.gather(*(ledger.record(e) for e in arrivals))
            return await ledger.state("A1")

    state = asyncio.run(stored_state())
    expected = fold(entries, as_of, reminder_days=RULES.expiry.reminder_days)
    assert (state.available, state.locked, state.debt, state.lots, state.journal) == (
        expected.available, expected.locked, expected.debt, expected.lots, expected.journal)


async def test_record_with_commits_the_events_own_rows_with_its_entries(
    ledger: Ledger,
) -> None:
    def note_request(conn: sqlite3.Connection, recorded: list[Recorded]) -> str:
        conn.execute("INSERT INTO kiosk_requests (request_id, kiosk_id, op, reply, created_at) "
                     "VALUES ('r1', 'k1', 'redeem', '{}', 't')")
        return "duplicate" if recorded[0].duplicate else "new"

    results, extra = await ledger.record_with([earn(5, at(2026, 1, 1), key="w")], note_request)
    assert (extra, results[0].duplicate) == ("new", False)
    assert rows(ledger, "SELECT request_id FROM kiosk_requests") == [("r1",)]


async def test_record_with_writes_nothing_when_the_extra_step_fails(ledger: Ledger) -> None:
    def fail(conn: sqlite3.Connection, recorded: list[Recorded]) -> None:
        raise LookupError("receipt already claimed")

    with pytest.raises(LookupError):
        await ledger.record_with([earn(5, at(2026, 1, 1), key="x")], fail)
    assert rows(ledger, "SELECT count(*) FROM ledger") == [(0,)]
    assert rows(ledger, "SELECT count(*) FROM outbox") == [(0,)]


async def test_an_implausible_entry_is_refused_with_a_typed_error(tmp_path: Path) -> None:
    limits = Plausibility(max_entry_points=1000, max_sale_fen=100_000)
    async with Writer(tmp_path / "lim.db") as writer, Reader(tmp_path / "lim.db") as reader:
        ledger = Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                        limits=limits)
        when = at(2026, 3, 1)
        with pytest.raises(ImplausibleEntry, match="1001 points"):
            await ledger.record(earn(1001, when, key="big"))
        with pytest.raises(ImplausibleEntry, match="qual_fen"):
            await ledger.record(earn(1, when, key="spend", qual_fen=100_001))
        with pytest.raises(ImplausibleEntry):
            await ledger.record(burn(1001, when, key="big-burn"))
        # Nothing of a refused entry was written, and a plausible one still goes.
        assert (await ledger.record(earn(1000, when, key="ok"))).duplicate is False
        assert [r[0] for r in rows(ledger, "SELECT source_key FROM ledger")] == ["ok"]
        assert [r[0] for r in rows(ledger, "SELECT event_id FROM outbox")] == [
            earn(1000, when, key="ok").entry_id]
