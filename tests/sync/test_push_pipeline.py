"""Pushing a backlog sends the next batch while the one before is settled, and keeps the
rules: each event sent once, a rejected one dead-lettered without blocking the rest, and
an unsettled one holding back the later events of its account."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from cloud_api.client import CentralClient, Verdict
from cloud_api.errors import CentralError
from cloud_api.server.storage import Storage
from gateway.settings.sync import SyncSettings
from sync.outbox import OutboxEvent
from tests.cloud_api.central import MALL, running_central
from tests.sync.edge import FAST, Edge, open_edge
from tests.sync.faults import assert_converged, withhold_verdicts
from tests.sync.test_faults import ACCOUNTS, create_accounts, earn

Middleware = Callable[..., Awaitable[web.StreamResponse]]
BATCHES_OF_5 = SyncSettings(**{**FAST.model_dump(), "batch_max_events": 5})


@asynccontextmanager
async def mall(storage: Storage, tmp_path: Path, middlewares: Sequence[Middleware] = (),
               ) -> AsyncIterator[tuple[CentralClient, Edge]]:
    """Central with the test accounts, and an edge pushing to it five events a batch."""
    async with running_central(storage, middlewares=middlewares) as central, \
            CentralClient(central.url, central.admin_token, timeout_s=5) as admin, \
            open_edge(tmp_path / "gw.db", central.url, central.gateway_token,
                      settings=BATCHES_OF_5) as edge:
        await create_accounts(admin)
        yield admin, edge


async def test_the_next_batch_goes_while_the_one_before_is_settled(
    storage: Storage, tmp_path: Path,
) -> None:
    async with mall(storage, tmp_path) as (admin, edge):
        await edge.ledger.record_many([earn(n) for n in range(3)])
        await edge.writer.submit(lambda c: c.execute(  # central rejects this one
            "INSERT INTO outbox (event_id, event_type, account_id, payload, created_at) "
            "VALUES ('bad', 'ledger.entry', 'A1', '{\"points\": 1}', '2026-05-01')"))
        await edge.ledger.record_many([earn(n) for n in range(3, 30)])
        sent: list[list[str]] = []
        second_sent = asyncio.Event()
        push_batch, settle = edge.client.push_batch, edge.engine._settle

        async def note_batch(gateway_id: str, events: Sequence[str], **kwargs: Any,
                             ) -> list[Verdict]:
            sent.append([json.loads(event)["event_id"] for event in events])
            if len(sent) == 2:
                second_sent.set()
            return await push_batch(gateway_id, events, **kwargs)

        async def settle_once_the_next_is_sent(batch: list[OutboxEvent],
                                               verdicts: list[Verdict]) -> None:
            # Were batches sent one after the other's settle, this would never be set.
            await asyncio.wait_for(second_sent.wait(), 10)
            await settle(batch, verdicts)

        edge.client.push_batch = note_batch  # type: ignore[method-assign]
        edge.engine._settle = settle_once_the_next_is_sent  # type: ignore[method-assign]
        assert await edge.engine.push() == 31
        assert len(sent) == 7
        ids = [event_id for batch in sent for event_id in batch]
        assert len(ids) == len(set(ids)) == 31  # none sent twice
        assert edge.engine.counters == {**edge.engine.counters, "pushed": 30,
                                        "duplicates": 0, "rejected": 1, "unsettled": 0}
        assert await edge.scalar("SELECT count(*) FROM dead_letters") == 1
        await assert_converged(edge, admin, ACCOUNTS)


async def test_an_unsettled_event_stops_the_pass_before_later_events_of_its_account(
    storage: Storage, tmp_path: Path,
) -> None:
    stuck = earn(7)  # account A3, in the second batch
    async with mall(storage, tmp_path,
                    [withhold_verdicts({stuck.entry_id}, [1])]) as (admin, edge):
        await edge.ledger.record_many([earn(n) for n in range(40)])
        with pytest.raises(CentralError):
            await edge.engine.push()
        # Central has A3's entries up to the stuck one, none after it.
        in_central = {e["entry_id"] for e in (await admin.get_member(MALL, "M3"))["ledger"]}
        assert in_central == {earn(3).entry_id, stuck.entry_id}
        assert await edge.scalar("SELECT event_id FROM sync_failures") == stuck.entry_id
        assert await edge.engine.push() == 40 - 10 + 1  # the stuck one again, then the rest
        assert await edge.scalar("SELECT count(*) FROM sync_failures") == 0
        await assert_converged(edge, admin, ACCOUNTS)
