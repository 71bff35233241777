"""The PostgreSQL backend of central's storage (asyncpg), for several stateless workers.

The guarantees are those of `Storage`, held across workers by the database itself:
`entry_id` and the natural key are unique constraints (a concurrent duplicate waits for the
first transaction and then sees its row), and every write of a mall's ledger or change log
first locks the mall's row (`SELECT ... FOR UPDATE`) until COMMIT. So a mall's sequence
numbers become visible in order and a change-feed reader never skips one that commits late
(a plain SEQUENCE does not give that), and an online redemption's balance check stays true
until its burn commits, whichever worker the next redemption reaches.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from cloud_api.server import operations as ops
from cloud_api.server import tiers
from cloud_api.server.phones import PhoneKeys
from cloud_api.server.queries import (
    Dialect,
    Execute,
    ExecuteMany,
    Fetch,
    FetchIn,
    InsertNew,
    Op,
    Query,
    Rows,
    T,
)
from cloud_api.server.schema import migrations
from cloud_api.server.sql_storage import SqlStorage
from cloud_api.server.storage import Parsed, Verdict, parsed_id, utc_now
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.wire import to_text

SCHEMA_LOCK = 0x6D616C6C  # advisory lock key: one worker migrates the schema at a time

MIGRATIONS = migrations("BIGINT", c_collation=True)

# One keyset page of the snapshot: (mall, after this id, how many). Members come in byte
# order of their ids, as the edge checks, along the schema's "C" collation index. Entries
# may come in any order the pages agree on: along their primary key, in the database's
# collation for both the comparison and the order, within the mall, so each entry is
# passed over at most once in a whole snapshot and writes pay for no extra index.
SNAPSHOT_PAGE_SQL = {
    "member": 'SELECT member_id, edge_view FROM members WHERE mall_id = $1 AND '
              'erased_at IS NULL AND member_id COLLATE "C" > $2 '
              'ORDER BY member_id COLLATE "C" LIMIT $3',
    "ledger": "SELECT entry_id, payload, server_seq FROM ledger WHERE mall_id = $1 AND "
              "entry_id > $2 ORDER BY entry_id LIMIT $3",
}
DIALECT = Dialect(row_lock=" FOR UPDATE", snapshot_page_sql=SNAPSHOT_PAGE_SQL)

Conn = Any  # an asyncpg connection (asyncpg ships no type information)


@functools.lru_cache(maxsize=256)
def numbered(sql: str) -> str:
    """`sql` with its `?` placeholders numbered `$1`, `$2`, ... (text already numbered, as
    the snapshot pages are, has none to change)."""
    count = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


async def _answer(conn: Conn, query: Query) -> Rows:
    match query:
        case Fetch(sql, args):
            return [tuple(row) for row in await conn.fetch(numbered(sql), *args)]
        case Execute(sql, args):
            await conn.execute(numbered(sql), *args)
        case ExecuteMany(sql, rows):
            await conn.executemany(numbered(sql), rows)
        case FetchIn(sql, values, args):
            if not values:
                return []
            text = numbered(sql.replace("{in}", "= ANY(?::text[])"))
            return [tuple(row) for row in await conn.fetch(text, *args, values)]
        case InsertNew(table, columns, rows, conflict, key):
            if not rows:
                return []
            # One statement for the whole set: each column as an array, unnested to rows.
            arrays = ", ".join(f"${n}::text[]" for n in range(1, len(rows[0]) + 1))
            text = (f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) "
                    f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {key}")
            return [tuple(row) for row in await conn.fetch(
                text, *(list(column) for column in zip(*rows, strict=True)))]
    return []


async def run(conn: Conn, op: Op[T]) -> T:
    """Drive `op` to its result, answering each query on `conn`."""
    try:
        query = next(op)
        while True:
            query = op.send(await _answer(conn, query))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


class PostgresStorage(SqlStorage):
    dialect = DIALECT

    def __init__(self, dsn: str, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now,
                 pool_size: int = 10, phones: PhoneKeys | None = None,
                 coupon_keys: dict[str, bytes] | None = None) -> None:
        super().__init__(rules=rules, now=now, phones=phones, coupon_keys=coupon_keys)
        self.dsn = dsn
        self.pool_size = pool_size
        self._pool: Any = None

    async def _connect(self) -> None:
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.pool_size)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK)
            await run(conn, ops.migrate(MIGRATIONS, to_text(self.now()) or ""))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _p(self) -> Any:
        if self._pool is None:
            raise RuntimeError("storage is not open")
        return self._pool

    async def _write(self, op: Op[T]) -> T:
        async with self._p().acquire() as conn, conn.transaction():
            return await run(conn, op)

    async def _read(self, op: Op[T], *, consistent: bool = False) -> T:
        async with self._p().acquire() as conn:
            if not consistent:
                return await run(conn, op)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                return await run(conn, op)

    async def accept_events(self, mall_id: str, origin: str,
                            items: Sequence[Parsed]) -> list[Verdict]:
        async with self._p().acquire() as conn:
            try:
                async with conn.transaction():
                    return await run(conn, tiers.accept_batch(
                        self.dialect, mall_id, origin, items, self.now(), rules=self.rules))
            except asyncpg.UniqueViolationError:
                # Another worker committed one of these facts meanwhile: redo the batch
                # event by event, each in its own savepoint.
                async with conn.transaction():
                    return [await self._accept_alone(conn, mall_id, origin, item)
                            for item in items]

    async def _accept_alone(self, conn: Conn, mall_id: str, origin: str,
                            item: Parsed) -> Verdict:
        try:
            async with conn.transaction():  # a savepoint: this event alone
                (verdict,) = await run(conn, tiers.accept_batch(
                    self.dialect, mall_id, origin, [item], self.now(), rules=self.rules))
        except asyncpg.UniqueViolationError:
            return await run(conn, ops.raced_entry(mall_id, parsed_id(item)))
        return verdict
