"""Two central workers on one database racing on the same facts: the unique constraints,
not the worker, decide, so every fact is recorded once and sequenced once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from cloud_api.client import CentralClient, Verdict
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from tests.cloud_api.central import GATEWAY, MALL, entry, event, start_central
from tests.cloud_api.pg import fresh_database

FACTS = 300
BATCH = 50


@pytest.fixture(params=["sqlite", "postgres"])
async def two_storages(request: pytest.FixtureRequest,
                       tmp_path: Path) -> tuple[Storage, Storage]:
    """Two storage instances (two workers' connections) over one database."""
    if request.param == "postgres":
        dsn = await fresh_database(request.getfixturevalue("postgres_server"))
        return PostgresStorage(dsn), PostgresStorage(dsn)
    return SqliteStorage(tmp_path / "central.db"), SqliteStorage(tmp_path / "central.db")


async def test_two_workers_record_each_raced_fact_once(
        two_storages: tuple[Storage, Storage]) -> None:
    first = await start_central(two_storages[0])
    try:
        second_gateway = await first.storage.add_token(MALL, "gateway", "gw-two")
        second = await start_central(two_storages[1],
                                     tokens=(second_gateway, first.admin_token))
        try:
            # The same facts from two gateways (each stamps its copies its own way), pushed
            # at the same time, each gateway through its own worker, in opposite orders.
            ours = [entry(i + 1, f"race-{i}", account=f"A{i % 7}", seq=i + 1)
                    for i in range(FACTS)]
            theirs = [entry(i + 1, f"race-{i}", account=f"A{i % 7}", site="gw-two",
                            seq=1000 + i) for i in range(FACTS)][::-1]

            async def push(url: str, token: str, gateway: str,
                           events: list[str]) -> list[Verdict]:
                verdicts: list[Verdict] = []
                async with CentralClient(url, token, timeout_s=30) as client:
                    for i in range(0, len(events), BATCH):
                        verdicts += await client.push_batch(gateway, events[i:i + BATCH])
                return verdicts

            a, b = await asyncio.gather(
                push(first.url, first.gateway_token, GATEWAY, [event(e) for e in ours]),
                push(second.url, second_gateway, "gw-two", [event(e) for e in theirs]))
        finally:
            await second.stop()
        by_fact: dict[str, list[Verdict]] = {}
        for verdict in a + b:
            by_fact.setdefault(verdict.event_id, []).append(verdict)
        assert len(by_fact) == FACTS
        for verdicts in by_fact.values():
            assert sorted(v.status for v in verdicts) == ["accepted", "duplicate"]
            # the duplicate names the sequence number the accepted copy got
            assert verdicts[0].server_seq == verdicts[1].server_seq is not None
        seqs = [v.server_seq or 0 for v in a + b if v.status == "accepted"]
        assert len(set(seqs)) == FACTS
        assert Counter(v.status for v in a + b) == {"accepted": FACTS, "duplicate": FACTS}
        # and the change feed other gateways read carries each fact once, in sequence
        page = await first.storage.changes(MALL, 0, FACTS * 3, None)
        entries = [c for c in page.changes if c.kind == "ledger.entry"]
        assert sorted(c.key for c in entries) == sorted(e.entry_id for e in ours)
        assert sorted(c.server_seq for c in entries) == sorted(seqs)
    finally:
        await first.stop()
