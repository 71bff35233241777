"""Sync converges through every fault central or the network can throw at it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloud_api.client import CentralClient
from cloud_api.errors import CentralError
from cloud_api.server.storage import Storage
from gateway.loyalty import Entry, EntryKind
from gateway.settings.sync import SyncSettings
from tests.cloud_api.central import MALL, Central, running_central, start_central
from tests.sync.edge import FAST, Edge, open_edge
from tests.sync.faults import Faults, assert_converged, withhold_verdicts

ACCOUNTS = {f"M{n}": f"A{n}" for n in range(4)}
T0 = datetime(2026, 5, 1, 4, tzinfo=UTC)


async def create_accounts(admin: CentralClient,
                          accounts: Mapping[str, str] = ACCOUNTS) -> None:
    """Central's members for `accounts` (member id to account id) that test sales earn on."""
    for member, account in accounts.items():
        await admin.create_member(MALL, {"member_id": member, "account_id": account})


def earn(n: int) -> Entry:
    member = f"M{n % len(ACCOUNTS)}"
    return Entry(kind=EntryKind.EARN, points=1 + n % 7, account_id=ACCOUNTS[member],
                 member_id=member, source_type="test.sale", source_key=f"sale-{n}",
                 reason="sale", effective_at=T0 + timedelta(seconds=n), rule_version="t")


@contextlib.asynccontextmanager
async def faulty(storage: Storage, faults: Faults) -> AsyncIterator[Central]:
    async with running_central(storage, middlewares=[faults.middleware()]) as central:
        yield central


async def until_synced(edge: Edge, limit_s: float = 30) -> None:
    async with asyncio.timeout(limit_s):
        while True:
            status = await edge.engine.status()
            if status.outbox_depth == 0 and status.cursor_lag == 0:
                return
            await asyncio.sleep(0.05)


async def run_with(edge: Edge, admin: CentralClient, count: int, *,
                   backlog: int = 0) -> None:
    """`backlog` events recorded while sync is off, then `count` more while it runs."""
    await create_accounts(admin)
    await edge.ledger.record_many([earn(n) for n in range(count, count + backlog)])
    runner = asyncio.create_task(edge.engine.run())
    try:
        for n in range(count):
            await edge.ledger.record(earn(n))
            edge.engine.nudge()
        await admin.adjust(MALL, "M1", request_id="central-side", points=40, reason="gift")
        await until_synced(edge)
        await edge.engine.sync_now()  # a final pull: central's own entry comes down
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


@pytest.mark.parametrize("plan", [
    ["5xx"] * 6,
    ["429", "429"],
    ["slow"] * 5,
    ["silent", "silent"],
    ["lost", "lost", "lost"],
    ["5xx", "lost", "silent", "429", "slow", "lost"],
], ids=["5xx-storm", "429-retry-after", "slow", "silent", "reply-lost", "mixed"])
async def test_sync_converges_through_faults(storage: Storage, tmp_path: Path,
                                             plan: list[str]) -> None:
    faults = Faults()
    faults.plan.extend(plan)
    async with faulty(storage, faults) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token,
                      timeout_s=0.5) as edge:
        await run_with(edge, admin, 60)
        await assert_converged(edge, admin, ACCOUNTS)
        assert sum(faults.seen.values()) == len(plan)


async def test_a_413_halves_batches_until_they_pass(storage: Storage, tmp_path: Path) -> None:
    faults = Faults(max_body=6000)
    small = SyncSettings(**{**FAST.model_dump(), "batch_max_events": 200})
    async with faulty(storage, faults) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token,
                      settings=small) as edge:
        await run_with(edge, admin, 10, backlog=100)
        await assert_converged(edge, admin, ACCOUNTS)
        assert faults.seen["413"] >= 1


async def test_central_stopped_then_back_loses_nothing(storage: Storage,
                                                      tmp_path: Path) -> None:
    servers = [await start_central(storage)]
    first = servers[0]
    try:
        async with CentralClient(first.url, first.admin_token, timeout_s=5) as admin, \
                open_edge(tmp_path / "gw.db", first.url, first.gateway_token,
                          timeout_s=0.5) as edge:
            await create_accounts(admin)
            runner = asyncio.create_task(edge.engine.run())
            try:
                for n in range(30):
                    await edge.ledger.record(earn(n))
                await until_synced(edge)
                await first.stop()  # central goes away; the edge keeps recording
                for n in range(30, 90):
                    await edge.ledger.record(earn(n))
                await asyncio.sleep(0.3)
                assert (await edge.engine.status()).outbox_depth > 0
                assert edge.engine.mode == "offline"
                # The same database behind a new server on the same port.
                servers.append(await start_central(
                    storage, port=first.port, tokens=(first.gateway_token, first.admin_token)))
                await until_synced(edge)
            finally:
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
            await assert_converged(edge, admin, ACCOUNTS)
    finally:
        for server in servers:
            await server.stop()


async def test_an_unsettled_event_holds_back_only_its_own_account(storage: Storage,
                                                                 tmp_path: Path) -> None:
    stuck = earn(0)  # account A0
    times = [3]
    async with running_central(storage, middlewares=[
                withhold_verdicts({stuck.entry_id}, times)]) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token) as edge:
        await create_accounts(admin)
        await edge.ledger.record_many([earn(n) for n in range(40)])
        with pytest.raises(CentralError):
            await edge.engine.push_once()  # all sent; the reply leaves the first one out
        assert await edge.scalar("SELECT count(*) FROM outbox") == 1
        await edge.ledger.record_many([earn(n) for n in range(40, 80)])
        for _ in range(2):
            with pytest.raises(CentralError):
                await edge.engine.push_once()  # still unsettled, and withheld again
            # Other accounts went on; A0's later events wait behind the stuck one.
            left = await edge.read(lambda c: c.execute(
                "SELECT account_id, count(*) FROM outbox GROUP BY account_id").fetchall())
            assert left == [("A0", 11)]
        assert await edge.scalar("SELECT attempts FROM sync_failures") == 3
        await edge.engine.sync_now()  # central answers for it at last: the rest follows
        await assert_converged(edge, admin, ACCOUNTS)
        assert await edge.scalar("SELECT count(*) FROM sync_failures") == 0


async def test_sync_now_splits_on_413_and_dead_letters_an_event_too_large_to_send(
    storage: Storage, tmp_path: Path,
) -> None:
    faults = Faults(max_body=6000)
    huge = Entry(kind=EntryKind.EARN, points=1, account_id="A1", member_id="M1",
                 source_type="test.sale", source_key="huge", reason="x" * 8000,
                 effective_at=T0, rule_version="t")
    async with faulty(storage, faults) as central, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token) as edge:
        await edge.ledger.record_many([earn(n) for n in range(30)])
        await edge.ledger.record(huge)
        await edge.ledger.record_many([earn(n) for n in range(30, 60)])
        status = await edge.engine.sync_now()
        assert status.outbox_depth == 0 and status.dead_letters == 1
        assert edge.engine.counters["pushed"] == 60
        assert await edge.scalar("SELECT error_code FROM dead_letters") == "too_large"
        assert faults.seen["413"] >= 2
