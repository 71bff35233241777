"""The ledger's entry cache: a read decodes only the rows added since the last one, sees
acknowledgements as they come, stays within its size, and always equals a fresh read."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.ledger import Ledger
from gateway.ledger.cache import EntryCache
from gateway.ledger.service import account_entries
from gateway.loyalty.hlc import HybridClock
from gateway.store import Reader, Writer
from tests.loyalty.helpers import RULES, at, burn, earn


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with Writer(tmp_path / "gw.db") as writer, Reader(tmp_path / "gw.db") as reader:
        yield Ledger(writer, reader, site="gw-1", clock=HybridClock("gw1"), rules=RULES,
                     now=lambda: at(2026, 3, 1))


async def fresh(ledger: Ledger, account: str) -> list[tuple[str, bool]]:
    """The account's entries read without the cache, as (id, acknowledged), sorted."""
    return sorted((e.entry_id, acked)
                  for e, acked in await account_entries(ledger._reader, account))


async def cached(ledger: Ledger, account: str) -> list[tuple[str, bool]]:
    return sorted((e.entry_id, acked) for e, acked in await ledger.entries(account))


async def test_a_read_decodes_only_what_was_added_since(ledger: Ledger) -> None:
    await ledger.record_many([earn(10, at(2026, 3, 1), key=f"e{i}") for i in range(50)])
    assert len(await ledger.entries("A1")) == 50
    assert ledger.cache.stats.rows_read == 50
    await ledger.record(burn(5, at(2026, 3, 1), key="b1"))
    entries = await ledger.entries("A1")
    assert len(entries) == 51 and ledger.cache.stats.rows_read == 51
    assert await cached(ledger, "A1") == await fresh(ledger, "A1")
    assert (await ledger.balance("A1")).available == 50 * 10 - 5


async def test_acknowledgements_show_up_in_cached_entries(ledger: Ledger) -> None:
    recorded = await ledger.record_many([earn(10, at(2026, 3, 1), key=f"e{i}")
                                         for i in range(3)])
    assert [acked for _, acked in await ledger.entries("A1")] == [False] * 3
    await ledger.acknowledge([(recorded[1].entry.entry_id, 7)])
    assert await cached(ledger, "A1") == await fresh(ledger, "A1")
    assert sum(acked for _, acked in await ledger.entries("A1")) == 1
    balance = await ledger.balance("A1")
    assert (balance.confirmed, balance.pending) == (10, 20)


async def test_the_cache_stays_within_its_size_and_evicted_accounts_read_whole(
        ledger: Ledger) -> None:
    ledger.cache = EntryCache(max_entries=25)
    for account in ("A1", "A2", "A3"):
        await ledger.record_many([earn(1, at(2026, 3, 1), key=f"{account}-{i}",
                                       account=account) for i in range(10)])
        await ledger.entries(account)
        assert len(ledger.cache) <= 25
    assert ledger.cache.stats.evictions == 1  # A1 went when A3 came
    for account in ("A1", "A2", "A3"):
        assert await cached(ledger, account) == await fresh(ledger, account)
    huge = EntryCache(max_entries=5)
    ledger.cache = huge
    assert len(await ledger.entries("A1")) == 10 and len(huge) == 0  # too big to keep


async def test_concurrent_reads_and_writes_always_match_a_fresh_read(ledger: Ledger) -> None:
    rng = random.Random(4)
    accounts = [f"A{i}" for i in range(5)]

    async def write(n: int) -> None:
        account = rng.choice(accounts)
        await ledger.record(earn(n + 1, at(2026, 3, 1), key=f"w{n}", account=account))

    for round_ in range(20):
        await asyncio.gather(*(write(round_ * 10 + i) for i in range(10)),
                             *(ledger.entries(a) for a in accounts for _ in range(3)))
    for account in accounts:
        assert await cached(ledger, account) == await fresh(ledger, account)
