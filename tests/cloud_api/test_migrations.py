"""A database made before central's keys were scoped by mall (with no migrations recorded)
opens migrated: its rows kept, its keys now per mall."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import asyncpg

from cloud_api.client import CentralClient
from cloud_api.server.postgres_store import PostgresStorage
from cloud_api.server.schema import migrations
from cloud_api.server.sqlite_store import SqliteStorage
from cloud_api.server.storage import Storage
from tests.cloud_api.central import GATEWAY, MALL, entry, event, running_central
from tests.cloud_api.pg import fresh_database

OLD = "tables"  # the first migration: the tables as central made them before migrations


def old_schema(integer: str, *, c_collation: bool = False) -> list[str]:
    (first, *_) = migrations(integer, c_collation=c_collation)
    assert first.name == OLD
    return list(first.statements)


# Rows as the old server wrote them: a member, an entry of this mall, its change.
ROWS = [
    "INSERT INTO malls VALUES ('test-mall', 2, 0)",
    "INSERT INTO members VALUES ('test-mall', 'M1', 'A1', '{}', "
    "'{\"member_id\":\"M1\",\"account_id\":\"A1\"}', 1, NULL, '')",
]


def seeded_entry_row() -> tuple[str, ...]:
    pushed = entry(70, "checkin:M1:2026-05-01")
    payload = json.dumps(json.loads(event(pushed))["payload"], sort_keys=True)
    return (pushed.entry_id, MALL, "A1", "test", "checkin:M1:2026-05-01", "EARN", GATEWAY,
            "2", payload, "")


async def check_migrated(storage: Storage, *, again: bool = False) -> None:
    async with running_central(storage) as central:
        other = await central.storage.add_token("other-mall", "gateway", "gw-o")
        async with CentralClient(central.url, central.admin_token) as admin:
            state = await admin.get_member(MALL, "M1")
            assert state["balance"]["available"] == 70
        async with CentralClient(central.url, central.gateway_token) as gw:
            (ours,) = await gw.push_batch(GATEWAY, [event(entry(70, "checkin:M1:2026-05-01"))])
            assert (ours.status, ours.server_seq) == ("duplicate", 2)
        async with CentralClient(central.url, other) as gw_o:
            (theirs,) = await gw_o.push_batch("gw-o", [event(entry(70, "checkin:M1:2026-05-01"))])
            status = "duplicate" if again else "accepted"
            assert (theirs.status, theirs.server_seq) == (status, 1)


async def test_an_old_sqlite_database_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "central.db"
    conn = sqlite3.connect(db)
    for statement in [*old_schema("INTEGER"), *ROWS]:
        conn.execute(statement)
    conn.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 seeded_entry_row())
    conn.commit()
    conn.close()
    await check_migrated(SqliteStorage(db))
    conn = sqlite3.connect(db)
    assert [r[0] for r in conn.execute("SELECT version FROM schema_migrations")] == [
        m.version for m in migrations("INTEGER")]
    conn.close()
    await check_migrated(SqliteStorage(db), again=True)  # nothing is applied twice


async def test_an_old_postgres_database_is_migrated(postgres_server: str) -> None:
    dsn = await fresh_database(postgres_server)
    conn = await asyncpg.connect(dsn)
    try:
        for statement in [*old_schema("BIGINT", c_collation=True), *ROWS]:
            await conn.execute(statement)
        row: list[object] = list(seeded_entry_row())
        row[7] = int(str(row[7]))
        await conn.execute("INSERT INTO ledger VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                           "$10)", *row)
    finally:
        await conn.close()
    await check_migrated(PostgresStorage(dsn))
    await check_migrated(PostgresStorage(dsn), again=True)
