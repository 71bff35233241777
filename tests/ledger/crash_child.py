"""Child process of the ledger crash test: records entries until killed.

Usage: python crash_child.py DB_PATH PREFIX PRODUCERS

Each producer records a distinct earn entry through `Ledger.record` and prints its
source key only after `record` returned. The parent kills this process with SIGKILL and
checks that every printed entry is in the ledger with its outbox row.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta

from gateway.ledger import Ledger
from gateway.loyalty import Entry, EntryKind, LoyaltyRules
from gateway.loyalty.hlc import HybridClock
from gateway.store import Reader, Writer

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def produce(ledger: Ledger, prefix: str, producer: int) -> None:
    n = 0
    while True:
        key = f"{prefix}-{producer}-{n}"
        await ledger.record(Entry(
            kind=EntryKind.EARN, points=1, account_id=f"A{producer % 8}", member_id="M",
            source_type="crash", source_key=key, reason="crash test", effective_at=T0,
            expires_at=T0 + timedelta(days=365), rule_version="t",
        ))
        sys.stdout.write(key + "\n")
        sys.stdout.flush()
        n += 1


async def main(path: str, prefix: str, producers: int) -> None:
    async with Writer(path) as writer, Reader(path) as reader:
        ledger = Ledger(writer, reader, site="gw-crash", clock=HybridClock("gw-crash"),
                        rules=LoyaltyRules())
        async with asyncio.TaskGroup() as group:
            for producer in range(producers):
                group.create_task(produce(ledger, prefix, producer))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
