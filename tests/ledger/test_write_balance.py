"""A balance read inside the writer op that just recorded an entry, with that entry handed
over rather than read back, equals the balance read afresh once the op has committed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.ledger import Ledger
from gateway.ledger.service import Balance, account_entries
from gateway.loyalty import Entry
from gateway.loyalty.hlc import HybridClock
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES, at, burn, earn

NOW = at(2026, 3, 1)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Writer(tmp_path / "gw.db") as writer, Reader(tmp_path / "gw.db") as reader:
        yield Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                     now=lambda: NOW)


def ids(rows: list[tuple[Entry, bool]]) -> list[tuple[str, bool]]:
    return sorted((entry.entry_id, acked) for entry, acked in rows)


@pytest.mark.parametrize("cached", [False, True])
async def test_a_balance_with_the_just_recorded_entry_equals_a_fresh_read(
        ledger: Ledger, cached: bool) -> None:
    earlier = await ledger.record_many(
        [earn(100, at(2026, 2, 1), key="e1"), earn(40, at(2026, 2, 2), key="e2"),
         burn(30, at(2026, 2, 3), key="b1")])
    await ledger.acknowledge([(earlier[0].entry.entry_id, 1)])  # e2 and b1 stay pending
    if cached:
        await ledger.entries("A1")
    cache_size = len(ledger.cache)

    def op(conn: sqlite3.Connection) -> tuple[list[tuple[Entry, bool]],
                                              list[tuple[Entry, bool]], Entry]:
        recorded = ledger.insert_in(conn, [earn(25, NOW, key="e3")], NOW)
        handed = ledger.entries_in_write(conn, "A1", recorded)
        read_back = ledger.entries_in_write(conn, "A1")
        return handed, read_back, recorded[0].entry

    handed, read_back, new = await ledger._writer.submit(op)
    assert any(entry is new for entry, _ in handed)  # used as it is, not decoded again
    assert len(ledger.cache) == cache_size  # nothing of the op's transaction kept

    afresh = await account_entries(ledger._reader, "A1")
    assert ids(handed) == ids(read_back) == ids(afresh)
    balance: Balance = ledger.balance_of("A1", handed, NOW)
    assert balance == ledger.balance_of("A1", read_back, NOW)
    assert balance == ledger.balance_of("A1", afresh, NOW) == await ledger.balance("A1", NOW)
    assert (balance.available, balance.confirmed, balance.pending) == (135, 100, 35)


async def test_a_duplicate_is_read_back_as_stored(ledger: Ledger) -> None:
    (first,) = await ledger.record_many([earn(10, at(2026, 2, 1), key="e1")])

    def op(conn: sqlite3.Connection) -> list[tuple[Entry, bool]]:
        recorded = ledger.insert_in(conn, [earn(10, at(2026, 2, 1), key="e1")], NOW)
        assert recorded[0].duplicate
        return ledger.entries_in_write(conn, "A1", recorded)

    rows = await ledger._writer.submit(op)
    assert [(entry.fact, entry.origin_seq) for entry, _ in rows] == [
        (first.entry.fact, first.entry.origin_seq)]
