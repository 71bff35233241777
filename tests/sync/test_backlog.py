"""A long outage: the edge keeps recording, central comes back, everything drains once.

The default suite drains a few thousand events; `make soak` drains 100,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cloud_api.client import CentralClient
from cloud_api.server.storage import Storage
from gateway.loyalty import Entry, EntryKind
from tests.cloud_api.central import MALL, start_central
from tests.sync.edge import open_edge
from tests.sync.faults import assert_converged
from tests.sync.test_faults import create_accounts, until_synced

BACKLOG = 100_000 if os.environ.get("MALLGATE_SOAK") == "1" else 3_000
# A mall's worth of members, each with a plausible number of entries: central folds a
# touched account's whole ledger to grant its offline allowance.
ACCOUNTS = {f"M{n}": f"A{n}" for n in range(200)}
T0 = datetime(2026, 5, 1, 4, tzinfo=UTC)


def earn(n: int) -> Entry:
    member = f"M{n % len(ACCOUNTS)}"
    return Entry(kind=EntryKind.EARN, points=1 + n % 7, account_id=ACCOUNTS[member],
                 member_id=member, source_type="test.sale", source_key=f"sale-{n}",
                 reason="sale", effective_at=T0 + timedelta(seconds=n), rule_version="t")


async def test_a_backlog_recorded_while_central_was_away_drains_exactly_once(
    storage: Storage, tmp_path: Path,
) -> None:
    first = await start_central(storage)
    try:
        async with CentralClient(first.url, first.admin_token, timeout_s=60) as admin:
            await create_accounts(admin, ACCOUNTS)
    finally:
        await first.stop()  # central goes away for a long time
    async with open_edge(tmp_path / "gw.db", first.url, first.gateway_token,
                         timeout_s=5) as edge:
        runner = asyncio.create_task(edge.engine.run())
        try:
            for start in range(0, BACKLOG, 500):
                await edge.ledger.record_many(
                    [earn(n) for n in range(start, min(BACKLOG, start + 500))])
            assert (await edge.engine.status()).outbox_depth == BACKLOG
            assert edge.engine.mode == "offline"
            back = await start_central(storage, port=first.port,
                                       tokens=(first.gateway_token, first.admin_token))
            try:
                async with CentralClient(back.url, back.admin_token, timeout_s=60) as admin:
                    await until_synced(edge, limit_s=900)
                    await assert_converged(edge, admin, ACCOUNTS)
                    ledgers = [(await admin.get_member(MALL, m))["ledger"] for m in ACCOUNTS]
                    assert sum(len(ledger) for ledger in ledgers) == BACKLOG
            finally:
                await back.stop()
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
