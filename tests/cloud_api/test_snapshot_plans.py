"""The snapshot's keyset pages are read in index order, never sorted page by page.

A page that sorts the whole mall to return its next 2,000 rows makes the snapshot
quadratic: a mall with a million entries would sort them all again for every page.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from cloud_api.server import postgres_store, sqlite_store
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.sqlite_store import SqliteStorage
from tests.cloud_api.pg import fresh_database

KINDS = ["member", "ledger", "coupon_campaign", "coupon"]


@pytest.mark.parametrize("kind", KINDS)
async def test_sqlite_pages_read_an_index_in_order(tmp_path: Path, kind: str) -> None:
    storage = SqliteStorage(tmp_path / "central.db")
    await storage.open()
    await storage.close()
    conn = sqlite3.connect(tmp_path / "central.db")
    try:
        plan = " | ".join(row[-1] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + sqlite_store.SNAPSHOT_PAGE_SQL[kind], ("m1", "", 2000)))
    finally:
        conn.close()
    assert "INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.parametrize("kind", KINDS)
async def test_postgres_pages_read_an_index_in_order(postgres_server: str, kind: str) -> None:
    dsn = await fresh_database(postgres_server)
    storage = PostgresStorage(dsn)
    await storage.open()
    await storage.close()
    conn = await asyncpg.connect(dsn)
    try:
        # On an empty table the planner would rather sort nothing than open an index; with
        # sorting priced out, a plan without a Sort node means an index gives the order.
        await conn.execute("SET enable_sort = off")
        await conn.execute("SET enable_seqscan = off")
        rows = await conn.fetch("EXPLAIN " + postgres_store.SNAPSHOT_PAGE_SQL[kind],
                                "m1", "", 2000)
    finally:
        await conn.close()
    plan = " | ".join(row[0] for row in rows)
    assert "Index" in plan, plan
    assert "Sort" not in plan, plan
