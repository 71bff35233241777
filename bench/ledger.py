"""The ledger: fold speed, durable record throughput and balance latency.

    python bench/ledger.py [--quick]

- fold: entries folded per second for one busy account, beside the rate of merely summing
  the same entries' points in Python (the floor of touching each entry once).
- record: durable entries per second through `Ledger.record` from concurrent producers,
  beside bare single-row inserts through the same group-commit writer in the same run.
- balance: latency of `Ledger.balance` for an account with a year of activity, as a
  kiosk's balance query would see it, with the account's entries in the ledger's cache;
  the baseline is the same for a first read (every row decoded).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import emit, percentile

from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind, LoyaltyRules, fold
from gateway.loyalty.hlc import HybridClock
from gateway.store import Reader, Writer

BENCH = "ledger"
RULES = LoyaltyRules()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Plan:
    fold_entries: int
    fold_repeats: int
    record_entries: int
    producers: int
    balance_entries: int
    balance_queries: int


QUICK = Plan(fold_entries=2_000, fold_repeats=3, record_entries=3_000, producers=32,
             balance_entries=200, balance_queries=200)
FULL = Plan(fold_entries=20_000, fold_repeats=5, record_entries=50_000, producers=64,
            balance_entries=400, balance_queries=2_000)


def account_history(n: int, account: str = "A1", seed: int = 7) -> list[Entry]:
    """A busy account: earns, spends, refunds, with lots expiring along the way."""
    rnd = random.Random(seed)
    entries: list[Entry] = []
    earns: list[Entry] = []
    for i in range(n):
        at = T0 + timedelta(minutes=i * 30)
        roll = rnd.random()
        common = {"account_id": account, "member_id": "M1", "source_type": "bench",
                  "source_key": f"{account}:{i}", "effective_at": at, "rule_version": "b"}
        if roll < 0.6 or not earns:
            entry = Entry(kind=EntryKind.EARN, points=rnd.randint(1, 300),
                          qual_fen=rnd.randint(100, 30_000), reason="purchase",
                          expires_at=at + timedelta(days=rnd.randint(30, 700)),
                          **common)  # type: ignore[arg-type]
            earns.append(entry)
        elif roll < 0.9:
            entry = Entry(kind=EntryKind.BURN, points=-rnd.randint(1, 200), reason="gift",
                          **common)  # type: ignore[arg-type]
        else:
            entry = Entry(kind=EntryKind.REVERSE, points=-rnd.randint(0, 100),
                          qual_fen=-rnd.randint(0, 5_000), reason="refund",
                          ref_entry_id=rnd.choice(earns).entry_id,
                          **common)  # type: ignore[arg-type]
        entries.append(entry)
    return entries


def bench_fold(plan: Plan) -> None:
    entries = account_history(plan.fold_entries)
    as_of = T0 + timedelta(days=3_000)

    def best_rate(run: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(plan.fold_repeats):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        return len(entries) / best

    scan = best_rate(lambda: sum(e.points for e in entries))
    balances = best_rate(lambda: fold(entries, as_of, journal=False))
    history = best_rate(lambda: fold(entries, as_of, reminder_days=(30, 7)))
    emit(BENCH, "fold_balance_entries_per_s", balances, unit="entries/s",
         target=">= 100000", baseline=scan)
    emit(BENCH, "fold_history_entries_per_s", history, unit="entries/s", target=">= 50000",
         baseline=scan)


async def bench_record(plan: Plan, directory: Path) -> None:
    entries = [
        Entry(kind=EntryKind.EARN, points=10, account_id=f"A{i % 1000}", member_id="M",
              source_type="bench", source_key=str(i), reason="bench", effective_at=T0,
              rule_version="b", expires_at=T0 + timedelta(days=365))
        for i in range(plan.record_entries)
    ]
    path = directory / "record.db"
    async with Writer(path) as writer, Reader(path) as reader:
        ledger = Ledger(writer, reader, site="bench", clock=HybridClock("bench"), rules=RULES)
        queue = list(entries)

        async def producer() -> None:
            while queue:
                await ledger.record(queue.pop())

        start = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(plan.producers)))
        ledger_rate = len(entries) / (time.perf_counter() - start)

        counter = iter(range(plan.record_entries))

        def bare_insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO counters (name, value) VALUES (?, 0)",
                         (f"bare-{next(counter)}",))

        async def bare_producer(n: int) -> None:
            for _ in range(n):
                await writer.submit(bare_insert)

        per = plan.record_entries // plan.producers
        start = time.perf_counter()
        await asyncio.gather(*(bare_producer(per) for _ in range(plan.producers)))
        bare_rate = per * plan.producers / (time.perf_counter() - start)
    emit(BENCH, "record_durable_entries_per_s", ledger_rate, unit="entries/s",
         target=">= 5000", baseline=bare_rate)


async def bench_balance(plan: Plan, directory: Path) -> None:
    path = directory / "balance.db"
    async with Writer(path) as writer, Reader(path) as reader:
        ledger = Ledger(writer, reader, site="bench", clock=HybridClock("bench"), rules=RULES,
                        now=lambda: T0 + timedelta(days=365))
        for n in range(50):
            await ledger.record_many(account_history(plan.balance_entries, f"A{n}", seed=n))
        samples: list[float] = []
        for i in range(plan.balance_queries):
            start = time.perf_counter()
            await ledger.balance(f"A{i % 50}")
            samples.append((time.perf_counter() - start) * 1000)
    # The first read of each account decodes all its rows; later ones find its entries in
    # the ledger's cache and decode only rows added since (a member's second request at a
    # kiosk, or any account read within the cache's reach).
    cold, warm = samples[:50], samples[50:]
    emit(BENCH, "balance_p50_ms", percentile(warm, 50), unit="ms", target="<= 5",
         baseline=percentile(cold, 50))
    emit(BENCH, "balance_p99_ms", percentile(warm, 99), unit="ms", target="<= 20",
         baseline=percentile(cold, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for CI")
    plan = QUICK if parser.parse_args().quick else FULL
    bench_fold(plan)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench_record(plan, Path(tmp)))
        asyncio.run(bench_balance(plan, Path(tmp)))


if __name__ == "__main__":
    main()
