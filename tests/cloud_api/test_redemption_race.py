"""Online redemptions of one account racing through real central processes.

Two 80-point redemptions against 100 points, sent at the same instant: the balance check
and the burn are one transaction, so exactly one goes through, the other is refused as
`insufficient_points`, and the balance ends at 20, never below zero. The race is run
several times so that a pass is not luck; on PostgreSQL also with each redemption sent to
another worker process over the same database.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from cloud_api.client import CentralClient
from cloud_api.errors import CentralRejected
from tests.cloud_api.pg import fresh_database
from tests.cloud_api.processes import central_processes, issue_token

MALL = "race-mall"
ROUNDS = 6
BALANCE, COST = 100, 80

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX processes")


async def race_round(clients: list[CentralClient], admin: CentralClient, n: int) -> None:
    member = f"M{n}"
    await admin.create_member(MALL, {"member_id": member, "account_id": f"A{n}"})
    await admin.adjust(MALL, member, request_id=f"seed-{n}", points=BALANCE, reason="seed")

    async def redeem(client: CentralClient, request_id: str) -> dict[str, Any]:
        return await client.redeem(MALL, member, request_id=request_id, cost=COST,
                                   item="voucher")

    outcomes = await asyncio.gather(
        *(redeem(client, f"rq-{n}-{i}") for i, client in enumerate(clients)),
        return_exceptions=True)
    done = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, CentralRejected)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert done[0]["verdict"]["status"] == "accepted"
    assert done[0]["balance"]["available"] == BALANCE - COST
    assert (refused[0].status, refused[0].code) == (422, "insufficient_points")
    state = await admin.get_member(MALL, member)
    assert state["balance"] == state["balance"] | {"available": BALANCE - COST, "debt": 0}
    assert state["flagged_debts"] == []
    assert [e["points"] for e in state["ledger"] if e["kind"] == "BURN"] == [-COST]


async def race(db: Path, dsn: str | None, workers: int) -> None:
    """`ROUNDS` races; with two workers, each redemption goes to its own worker."""
    token = await issue_token(db, dsn, MALL, "admin")
    async with central_processes(db, dsn, workers) as urls, \
            CentralClient(urls[0], token, timeout_s=15) as admin, \
            CentralClient(urls[0], token, timeout_s=15) as first, \
            CentralClient(urls[-1], token, timeout_s=15) as second:
        for n in range(ROUNDS):
            await race_round([first, second], admin, n)


async def test_racing_online_redemptions_on_sqlite(tmp_path: Path) -> None:
    await race(tmp_path / "central.db", None, workers=1)


async def test_racing_online_redemptions_on_postgres(postgres_server: str,
                                                     tmp_path: Path) -> None:
    await race(tmp_path / "unused.db", await fresh_database(postgres_server), workers=1)


async def test_racing_online_redemptions_through_two_workers_on_postgres(
        postgres_server: str, tmp_path: Path) -> None:
    await race(tmp_path / "unused.db", await fresh_database(postgres_server), workers=2)
