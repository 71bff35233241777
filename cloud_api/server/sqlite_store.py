"""The SQLite backend of central's storage: one connection on one thread, WAL, FULL sync.

An operation runs whole on the connection's thread, in one hop from the event loop. A
write operation is one `BEGIN IMMEDIATE` transaction: the writer holds the database's
write lock from its first read to COMMIT, so what it read stays true until it commits
(across processes too), a batch of events costs one fsync, and the reply is sent after
COMMIT.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from cloud_api.server import operations as ops
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
from cloud_api.server.storage import utc_now
from gateway.loyalty import LoyaltyRules
from gateway.loyalty.wire import to_text

MIGRATIONS = migrations("INTEGER")

# One keyset page of the snapshot, in id order: (mall, after this id, how many). Members
# and entries are each walked along their primary key, (mall, id): a page reads its rows
# in order, each row is passed over at most once in a whole snapshot, and writes pay for
# no extra index.
SNAPSHOT_PAGE_SQL = {
    "member": "SELECT member_id, edge_view FROM members WHERE mall_id = ? AND "
              "erased_at IS NULL AND member_id > ? ORDER BY member_id LIMIT ?",
    "ledger": "SELECT entry_id, payload, server_seq FROM ledger "
              "WHERE mall_id = ? AND entry_id > ? ORDER BY entry_id LIMIT ?",
}
DIALECT = Dialect(row_lock="", snapshot_page_sql=SNAPSHOT_PAGE_SQL)
IN_CHUNK = 500  # values per `IN (...)`, well below SQLite's limit on bound parameters


def _answer(conn: sqlite3.Connection, query: Query) -> Rows:
    match query:
        case Fetch(sql, args):
            return conn.execute(sql, args).fetchall()
        case Execute(sql, args):
            conn.execute(sql, args)
        case ExecuteMany(sql, rows):
            conn.executemany(sql, rows)
        case FetchIn(sql, values, args):
            found: Rows = []
            for i in range(0, len(values), IN_CHUNK):
                chunk = values[i:i + IN_CHUNK]
                marks = f"IN ({', '.join('?' * len(chunk))})"
                found += conn.execute(sql.replace("{in}", marks), (*args, *chunk)).fetchall()
            return found
        case InsertNew(table, columns, rows, conflict, key):
            if not rows:
                return []
            sql = (f"INSERT INTO {table} ({columns}) VALUES "
                   f"({', '.join('?' * len(rows[0]))}) ON CONFLICT ({conflict}) DO NOTHING "
                   f"RETURNING {key}")
            return [new for row in rows for new in conn.execute(sql, row).fetchall()]
    return []


def run(conn: sqlite3.Connection, op: Op[T]) -> T:
    """Drive `op` to its result, answering each query on `conn`."""
    try:
        query = next(op)
        while True:
            query = op.send(_answer(conn, query))
    except StopIteration as done:
        result: T = done.value
        return result
    finally:
        op.close()


def create_schema(conn: sqlite3.Connection, at: str = "") -> list[int]:
    """Bring the database on `conn` (in autocommit mode) to the current schema, in one
    transaction that holds the write lock (so two processes opening it take turns);
    returns the migrations applied."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = run(conn, ops.migrate(MIGRATIONS, at))
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied


class SqliteStorage(SqlStorage):
    dialect = DIALECT

    def __init__(self, path: Path | str, *, rules: LoyaltyRules | None = None,
                 now: Callable[[], datetime] = utc_now,
                 phones: PhoneKeys | None = None,
                 coupon_keys: dict[str, bytes] | None = None) -> None:
        super().__init__(rules=rules, now=now, phones=phones, coupon_keys=coupon_keys)
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def _connect(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="central-sqlite")
        await self._run(self._open)

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA busy_timeout = 5000")
        create_schema(conn, to_text(self.now()) or "")
        self._conn = conn

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise RuntimeError("storage is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("storage is not open")
        return self._conn

    def _in_transaction(self, begin: str, op: Op[T]) -> T:
        conn = self._db()
        conn.execute(begin)
        try:
            result = run(conn, op)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _write(self, op: Op[T]) -> T:
        return await self._run(lambda: self._in_transaction("BEGIN IMMEDIATE", op))

    async def _read(self, op: Op[T], *, consistent: bool = False) -> T:
        if consistent:
            return await self._run(lambda: self._in_transaction("BEGIN", op))
        return await self._run(lambda: run(self._db(), op))
